/* LaMa big-lama: checkpoint loading with BatchNorm folding, per-size plans
 * and the reference prediction steps. See lama.h and /work/shared/models.md. */
#include "models/lama.h"

#include "base/base.h"
#include "ckpt/ckpt.h"
#include "nn/nn.h"

#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LAMA_PLANS 3   /* cached plans (working sizes) per loaded state */
#define BN_EPS 1e-5f

/* The convolutions of one FFC of a residual block, BatchNorms folded. */
enum { L2L, G2L,    /* local output: l2l carries bn_l's shift */
       L2G,         /* global output (with ST2): l2g carries bn_g's shift */
       ST1, FU,     /* spectral 1x1 in, Fourier unit 1x1 (each +BN, ReLU) */
       ST2,         /* spectral 1x1 out */
       FFC_CONVS };
/* The head's convolutions. */
enum { CONV1, DOWN1, DOWN2, DOWN3L, DOWN3G, HEAD_CONVS };
typedef struct lama_ffc {
    pm_nn_weights w[FFC_CONVS];
} lama_ffc;

typedef struct lama_plan {
    int h, w;          /* working size (multiple of 8) */
    pm_nn_plan *plan;
    uint64_t used;     /* LRU stamp */
} lama_plan;

typedef struct lama_state {
    pm_nn_ctx *ctx;
    int threads;
    pm_nn_dt dt;
    int winograd;
    size_t band_bytes;
    int ngf, blocks;
    pm_nn_weights head[HEAD_CONVS];
    lama_ffc *ffc; /* 2 per block */
    pm_nn_weights up[3][4]; /* transposed convolutions, as four sub-pixel convolutions each */
    pm_nn_small_weights out; /* the RGB output layer */
    size_t weight_bytes;
    pthread_mutex_t lock; /* one run at a time: plans and the stream are shared */
    lama_plan plans[LAMA_PLANS];
    uint64_t clock;
} lama_state;

/* ---------------------------------------------------------------- loading */

#define REF 512 /* reference input side for choosing weight formats */

typedef struct loader {
    const pm_ckpt *ck;
    pm_nn_ctx *ctx;
    pm_nn_dt dt;
    size_t bytes; /* weights made so far */
    float *buf;   /* owned: the weight tensor being converted (one buffer, reused: */
    size_t cap;   /* freeing one per tensor would leave holes between the weights) */
} loader;

/* Reads tensor generator.<name> of the given shape into dst (float32) and
 * gives its file pages back: it is read once. */
static int read_tensor(loader *L, float *dst, int ndim, const int64_t *shape, const char *name)
{
    char full[160];
    snprintf(full, sizeof full, "generator.%s", name);
    int rc = pm_ckpt_get_f32(L->ck, full, ndim, shape, dst);
    if (!rc)
        pm_ckpt_release(L->ck, pm_ckpt_find(L->ck, full));
    return rc;
}

/* Folds BatchNorm `prefix`.{weight,bias,running_mean,running_var} of oc
 * channels into wt and bias, its shift only when `shift` (pm_nn_fold_bn). */
static int fold_bn(loader *L, const char *prefix, float *wt, float *bias, int oc, int ic, int kk, int transposed,
                   int shift)
{
    static const char *const part[4] = {"weight", "bias", "running_mean", "running_var"};
    int64_t s[1] = {oc};
    char name[128];
    float *v = pm_malloc((size_t)4 * oc * sizeof *v), *var = v ? v + (size_t)3 * oc : NULL;
    int rc = v ? 0 : pm_errorf(PM_ENOMEM, "out of memory loading LaMa");
    for (int i = 0; i < 4 && !rc; i++) {
        snprintf(name, sizeof name, "%s.%s", prefix, part[i]);
        rc = read_tensor(L, v + (size_t)i * oc, 1, s, name);
    }
    for (int i = 0; i < oc && !rc; i++)
        if (!(var[i] >= 0.0f) || !isfinite(var[i]))
            rc = pm_errorf(PM_ECHECKPOINT, "generator.%s.running_var[%d] is %g; a variance must be finite and "
                                           "non-negative: the checkpoint is damaged", prefix, i, (double)var[i]);
    if (!rc)
        pm_nn_fold_bn(wt, bias, oc, ic, kk, transposed, v, v + oc, v + 2 * oc, var, BN_EPS, shift);
    pm_free(v);
    return rc;
}

/* A convolution of the checkpoint: weight `w` ([oc][ic][k][k], or
 * [ic][oc][k][k] when transposed), optional bias `b` and BatchNorm `bn`. */
typedef struct conv_spec {
    int ic, oc, k, stride, transposed;
    int ref; /* reference input side */
    int winograd;
    char w[64], b[64], bn[64]; /* tensor names under generator.; "": none */
    int shift; /* fold the BatchNorm's shift (else only its scale) and keep a bias */
    pm_nn_weights *dst; /* what it becomes: four sub-pixel convolutions when transposed */
} conv_spec;

/* Reads c's weight and bias and folds its BatchNorm: *wt is L->buf (valid
 * until the next read), *bias a new buffer the caller owns (pm_free), NULL
 * when c has neither a bias nor a shift. */
static int read_folded(loader *L, const conv_spec *c, float **wt, float **bias)
{
    int64_t shape[4] = {c->transposed ? c->ic : c->oc, c->transposed ? c->oc : c->ic, c->k, c->k}, bs[1] = {c->oc};
    size_t n = (size_t)c->ic * c->oc * c->k * c->k;
    int has_bias = c->b[0] || c->shift;
    if (n > L->cap) {
        pm_free(L->buf);
        L->cap = (L->buf = pm_malloc(n * sizeof *L->buf)) ? n : 0;
    }
    *wt = L->buf;
    *bias = has_bias ? pm_calloc((size_t)c->oc, sizeof **bias) : NULL;
    int rc = !*wt || (has_bias && !*bias) ? pm_errorf(PM_ENOMEM, "out of memory loading LaMa")
                                          : read_tensor(L, *wt, 4, shape, c->w);
    if (!rc && c->b[0])
        rc = read_tensor(L, *bias, 1, bs, c->b);
    if (!rc && c->bn[0])
        rc = fold_bn(L, c->bn, *wt, *bias, c->oc, c->ic, c->k * c->k, c->transposed, c->shift);
    if (rc) {
        pm_free(*bias);
        *wt = *bias = NULL;
    }
    return rc;
}

/* The weights of d from plain wt and bias, counted in L->bytes. */
static int make_weights(loader *L, pm_nn_weights *w, const pm_nn_conv_desc *d, const float *wt, const float *bias)
{
    int rc = pm_nn_weights_init(L->ctx, w, d, wt, bias);
    if (!rc)
        L->bytes += w->bytes;
    return rc;
}

/* A convolution with its BatchNorm folded (see read_folded), into c->dst. */
static int make_conv(loader *L, const conv_spec *c)
{
    float *wt, *bias;
    int rc = read_folded(L, c, &wt, &bias);
    pm_nn_conv_desc d = {.ic = c->ic, .oc = c->oc, .kh = c->k, .kw = c->k, .stride = c->stride, .dt = L->dt,
                         .ref_h = c->ref, .ref_w = c->ref, .winograd = c->winograd};
    if (!rc)
        rc = make_weights(L, c->dst, &d, wt, bias);
    pm_free(bias);
    return rc;
}

/* A ConvTranspose2d(ic, oc, 3, stride 2, padding 1, output_padding 1) + BN
 * as four stride-1 convolutions on the input, one per output parity
 * (py, px), whose results are interleaved (depth-to-space):
 *   out(o, 2y+py, 2x+px) = sum_i sum_{dy,dx} in(i, y+dy, x+dx) W(i, o, ky, kx)
 * with dy in {0} -> ky 1 for py 0, dy in {0, 1} -> ky 2, 0 for py 1 (same in
 * x); inputs past the bottom/right edge are zero. Same work as the
 * transposed convolution, on oneDNN's fast forward convolutions. */
static int make_deconv(loader *L, const conv_spec *c)
{
    float *wt, *bias;
    int rc = read_folded(L, c, &wt, &bias);
    if (rc)
        return rc;
    float *k = pm_malloc((size_t)c->oc * c->ic * 4 * sizeof *k);
    if (!k)
        rc = pm_errorf(PM_ENOMEM, "out of memory loading LaMa");
    static const int tap[2][2] = {{1, -1}, {2, 0}}; /* [parity][d] -> kernel index */
    for (int q = 0; q < 4 && !rc; q++) {
        int py = q >> 1, px = q & 1, kh = py + 1, kw = px + 1;
        for (int o = 0; o < c->oc; o++)
            for (int i = 0; i < c->ic; i++)
                for (int dy = 0; dy < kh; dy++)
                    for (int dx = 0; dx < kw; dx++)
                        k[(((size_t)o * c->ic + i) * kh + dy) * kw + dx] =
                            wt[(((size_t)i * c->oc + o) * 3 + tap[py][dy]) * 3 + tap[px][dx]];
        pm_nn_conv_desc d = {.ic = c->ic, .oc = c->oc, .kh = kh, .kw = kw, .stride = 1, .pad_b = py, .pad_r = px,
                             .dt = L->dt, .ref_h = c->ref, .ref_w = c->ref};
        rc = make_weights(L, &c->dst[q], &d, k, bias);
    }
    pm_free(k);
    pm_free(bias);
    return rc;
}

/* Adds the convolutions of FFC `which` of residual block `block` to jobs. */
static conv_spec *ffc_jobs(conv_spec *j, lama_ffc *f, int block, int which, int ngf, int wino)
{
    int cl = 2 * ngf, cg = 6 * ngf, hid = 3 * ngf;
    const struct {
        int ic, oc, k;
        const char *w_name, *bn_name;
        int shift;
    } t[FFC_CONVS] = { /* in the order of the enum */
        {cl, cl, 3, "ffc.convl2l.weight", "bn_l", 1},
        {cg, cl, 3, "ffc.convg2l.weight", "bn_l", 0},
        {cl, cg, 3, "ffc.convl2g.weight", "bn_g", 1},
        {cg, hid, 1, "ffc.convg2g.conv1.0.weight", "ffc.convg2g.conv1.1", 1},
        {2 * hid, 2 * hid, 1, "ffc.convg2g.fu.conv_layer.weight", "ffc.convg2g.fu.bn", 1},
        {hid, cg, 1, "ffc.convg2g.conv2.weight", "bn_g", 0},
    };
    for (int i = 0; i < FFC_CONVS; i++, j++) {
        *j = (conv_spec){.ic = t[i].ic, .oc = t[i].oc, .k = t[i].k, .stride = 1, .ref = REF / 8 + (t[i].k == 3 ? 2 : 0),
                         .winograd = t[i].k == 3 && wino, .shift = t[i].shift, .dst = &f->w[i]};
        snprintf(j->w, sizeof j->w, "model.%d.conv%d.%s", block, which, t[i].w_name);
        snprintf(j->bn, sizeof j->bn, "model.%d.conv%d.%s", block, which, t[i].bn_name);
    }
    return j;
}

/* Converts the n weights of jobs on the OpenMP threads (each with its own
 * buffer; the checkpoint is only read); the first failure is returned. */
static int run_jobs(loader *L, const conv_spec *jobs, int n)
{
    atomic_int rc = 0;
    char msg[512] = "";
    size_t bytes = 0;
#pragma omp parallel reduction(+ : bytes)
    {
        loader my = *L;
        my.buf = NULL;
        my.cap = my.bytes = 0;
#pragma omp for schedule(dynamic)
        for (int i = 0; i < n; i++) {
            int r = atomic_load(&rc) ? 0 : jobs[i].transposed ? make_deconv(&my, &jobs[i]) : make_conv(&my, &jobs[i]);
            int none = 0;
            if (r && atomic_compare_exchange_strong(&rc, &none, r))
                snprintf(msg, sizeof msg, "%s", pm_error_detail());
        }
        pm_free(my.buf);
        bytes += my.bytes;
    }
    L->bytes += bytes;
    return rc ? pm_errorf(rc, "%s", msg) : 0;
}

void pm_lama_unload(void *state)
{
    lama_state *s = state;
    if (!s)
        return;
    for (int i = 0; i < LAMA_PLANS; i++)
        pm_nn_plan_free(s->plans[i].plan);
    for (int k = 0; k < HEAD_CONVS; k++)
        pm_nn_weights_free(&s->head[k]);
    for (int i = 0; s->ffc && i < 2 * s->blocks; i++)
        for (int k = 0; k < FFC_CONVS; k++)
            pm_nn_weights_free(&s->ffc[i].w[k]);
    pm_free(s->ffc);
    for (int i = 0; i < 3; i++)
        for (int q = 0; q < 4; q++)
            pm_nn_weights_free(&s->up[i][q]);
    pm_nn_small_weights_free(&s->out);
    pm_nn_ctx_destroy(s->ctx);
    pthread_mutex_destroy(&s->lock);
    pm_free(s);
}

/* Width and depth from the shapes: ngf from model.1's weight, blocks = the
 * run of model.<5+i>.conv1 entries. */
static int infer_config(const pm_ckpt *ck, int *ngf, int *blocks)
{
    const char *n1 = "generator.model.1.ffc.convl2l.weight";
    const pm_tensor_ref *r = pm_ckpt_find(ck, n1);
    if (!r) /* pm_ckpt_open_rooted found no model.1.ffc.convl2l.weight under any root */
        return pm_errorf(PM_ECHECKPOINT, "%s (%s) is not a LaMa (big-lama, ffc_resnet) generator: none of its tensors is named *model.1.ffc.convl2l.weight",
                         pm_ckpt_what(ck), pm_ckpt_format(ck));
    if (r->ndim != 4 || r->shape[1] != 4 || r->shape[2] != 7 || r->shape[3] != 7 || r->shape[0] < 1 ||
        r->shape[0] > 1024)
        return pm_errorf(PM_ECHECKPOINT,
                         "%s has shape [%lld, %lld, %lld, %lld] (%d dims); expected [ngf, 4, 7, 7]", n1,
                         (long long)r->shape[0], (long long)(r->ndim > 1 ? r->shape[1] : 0),
                         (long long)(r->ndim > 2 ? r->shape[2] : 0), (long long)(r->ndim > 3 ? r->shape[3] : 0),
                         r->ndim);
    *ngf = (int)r->shape[0];
    int b = pm_ckpt_count_run(ck, "generator.model.", 5, ".conv1.ffc.convl2l.weight");
    if (b == 0)
        return pm_errorf(PM_ECHECKPOINT,
                         "this checkpoint has no residual blocks (no generator.model.5.conv1.ffc.convl2l.weight); "
                         "it is not a LaMa ffc_resnet generator");
    *blocks = b;
    return 0;
}

int pm_lama_load(const char *path, const pm_lama_opts *opts, void **state)
{
    *state = NULL;
    pm_lama_opts o = opts ? *opts : (pm_lama_opts){0};
    if (!path)
        return pm_errorf(PM_EINVAL, "LaMa needs a checkpoint file (big-lama/models/best.ckpt); none was given");
    if (o.precision == PM_PREC_BF16 && !pm_nn_cpu_has_bf16())
        return pm_errorf(PM_EUNSUPPORTED,
                         "bf16 precision needs a CPU with AVX512-BF16 and this one has none; use fp32");
    lama_state *s = pm_calloc(1, sizeof *s);
    if (!s)
        return pm_errorf(PM_ENOMEM, "out of memory loading LaMa");
    pthread_mutex_init(&s->lock, NULL);
    s->threads = o.threads > 0 ? o.threads : pm_cpu_count();
    s->dt = o.precision == PM_PREC_BF16 ? PM_NN_BF16 : PM_NN_F32;
    s->winograd = s->dt == PM_NN_F32 && o.winograd == 1;
    s->band_bytes = o.band_bytes ? o.band_bytes : (size_t)4 << 20;
    pm_ckpt *ck = NULL;
    loader L = {.dt = s->dt};
    int rc = pm_nn_ctx_create(&s->ctx);
    if (rc)
        goto free_state;
    if ((rc = pm_ckpt_open_rooted(path, "generator.", "model.1.ffc.convl2l.weight", &ck)))
        goto free_state;
    pm_ckpt_set_hint(ck, "big-lama");
    if ((rc = infer_config(ck, &s->ngf, &s->blocks)))
        goto close_ckpt;
    int ngf = s->ngf, B = s->blocks;
    L.ck = ck;
    L.ctx = s->ctx;
    pm_nn_set_threads(s->threads);
    s->ffc = pm_calloc((size_t)2 * B, sizeof *s->ffc);
    conv_spec *jobs = pm_malloc((HEAD_CONVS + (size_t)2 * B * FFC_CONVS + 3) * sizeof *jobs), *j = jobs;
    if (!s->ffc || !jobs) {
        pm_free(jobs);
        rc = pm_errorf(PM_ENOMEM, "out of memory loading LaMa");
        goto close_ckpt;
    }
    const conv_spec t[HEAD_CONVS] = { /* in the order of the enum; BatchNorm shifts folded */
        {4, ngf, 7, 1, 0, REF + 6, 0, "model.1.ffc.convl2l.weight", "", "model.1.bn_l", 1, &s->head[CONV1]},
        {ngf, 2 * ngf, 3, 2, 0, REF + 2, 0, "model.2.ffc.convl2l.weight", "", "model.2.bn_l", 1, &s->head[DOWN1]},
        {2 * ngf, 4 * ngf, 3, 2, 0, REF / 2 + 2, 0, "model.3.ffc.convl2l.weight", "", "model.3.bn_l", 1, &s->head[DOWN2]},
        {4 * ngf, 2 * ngf, 3, 2, 0, REF / 4 + 2, 0, "model.4.ffc.convl2l.weight", "", "model.4.bn_l", 1, &s->head[DOWN3L]},
        {4 * ngf, 6 * ngf, 3, 2, 0, REF / 4 + 2, 0, "model.4.ffc.convl2g.weight", "", "model.4.bn_g", 1, &s->head[DOWN3G]},
    };
    memcpy(j, t, sizeof t);
    j += HEAD_CONVS;
    for (int b = 0; b < B; b++)
        for (int k = 0; k < 2; k++)
            j = ffc_jobs(j, &s->ffc[2 * b + k], 5 + b, k + 1, ngf, s->winograd);
    for (int i = 0, ch = 8 * ngf; i < 3; i++, ch /= 2, j++) {
        int li = 6 + B + 3 * i;
        *j = (conv_spec){.ic = ch, .oc = ch / 2, .k = 3, .stride = 2, .transposed = 1, .ref = REF / (8 >> i), .shift = 1,
                         .dst = s->up[i]};
        snprintf(j->w, sizeof j->w, "model.%d.weight", li);
        snprintf(j->b, sizeof j->b, "model.%d.bias", li);
        snprintf(j->bn, sizeof j->bn, "model.%d", li + 1);
    }
    rc = run_jobs(&L, jobs, (int)(j - jobs));
    pm_free(jobs);
    if (rc)
        goto close_ckpt;
    conv_spec oc = {.ic = ngf, .oc = 3, .k = 7, .stride = 1};
    snprintf(oc.w, sizeof oc.w, "model.%d.weight", 16 + B);
    snprintf(oc.b, sizeof oc.b, "model.%d.bias", 16 + B);
    float *wt, *bias;
    if ((rc = read_folded(&L, &oc, &wt, &bias)))
        goto close_ckpt;
    rc = pm_nn_small_weights_init(&s->out, ngf, 3, 7, wt, bias);
    pm_free(bias);
    if (rc)
        goto close_ckpt;
    s->weight_bytes = L.bytes + (size_t)49 * ((ngf + 7) / 8) * 8 * 3 * sizeof(float);
    pm_free(L.buf);
    pm_ckpt_close(ck);
    /* loading freed many temporary buffers; hand the heap's free pages back */
    malloc_trim(0);
    *state = s;
    return 0;
close_ckpt:
    pm_free(L.buf);
    pm_ckpt_close(ck);
free_state:
    pm_lama_unload(s);
    return rc;
}

void pm_lama_config(const void *state, int *ngf, int *blocks)
{
    const lama_state *s = state;
    *ngf = s->ngf;
    *blocks = s->blocks;
}

/* ------------------------------------------------------------------ plans */

/* The step name in `n` (a char array) made by printf, for the calls below. */
#define NM(...) (snprintf(n, sizeof n, __VA_ARGS__), n)

/* One FFC on (l, g): returns the local and global outputs. When addl/addg
 * are given, l += addl and g += addg first (the previous block's residual). */
static void ffc_ops(lama_state *s, pm_nn_plan *p, const lama_ffc *f, const char *tag, pm_nn_t l, pm_nn_t g,
                    pm_nn_t addl, pm_nn_t addg, pm_nn_t *ol, pm_nn_t *og)
{
    char n[48];
    unsigned wino = s->winograd ? PM_NN_WINOGRAD : 0;
    int c, h, w;
    pm_nn_shape(p, g, &c, &h, &w);
    pm_nn_t pl = pm_nn_pad_reflect(p, NM("%s@pad_l", tag), l, 1, addl);
    pm_nn_t pg = pm_nn_pad_reflect(p, NM("%s@pad_g", tag), g, 1, addg);
    *ol = pm_nn_conv(p, NM("%s@conv_l2l", tag), pl, &f->w[L2L], wino, -1, s->dt, 1.0f);
    pm_nn_conv(p, NM("%s@conv_g2l", tag), pg, &f->w[G2L], wino | PM_NN_SUM | PM_NN_RELU, *ol, s->dt, 1.0f);
    *og = pm_nn_conv(p, NM("%s@conv_l2g", tag), pl, &f->w[L2G], wino, -1, s->dt, 1.0f);
    /* spectral transform: x = relu(bn(conv1(g))); st2(x + FU(x)) */
    pm_nn_t x = pm_nn_conv(p, NM("%s@spec_in_1x1", tag), g, &f->w[ST1], PM_NN_RELU, -1, PM_NN_F32, 1.0f);
    pm_nn_t fr = pm_nn_rfft2(p, NM("%s@fft_r2c", tag), x);
    /* ortho scaling folded in: relu(W F/sqrt(N) + b) = relu(W F + sqrt(N) b) / sqrt(N) */
    float n_px = (float)h * (float)w;
    pm_nn_t fz = pm_nn_conv(p, NM("%s@fu_1x1", tag), fr, &f->w[FU], PM_NN_RELU, -1, PM_NN_F32, sqrtf(n_px));
    pm_nn_t xy = pm_nn_irfft2_add(p, NM("%s@fft_c2r_add", tag), fz, w, 1.0f / n_px, x, s->dt);
    pm_nn_conv(p, NM("%s@spec_out_1x1", tag), xy, &f->w[ST2], PM_NN_SUM | PM_NN_RELU, *og, s->dt, 1.0f);
}

/* Rows per band so that one band of a `row_bytes`-per-row tensor is about
 * `target` bytes (at least `min`, even). */
static int band_rows(size_t row_bytes, size_t target, int min)
{
    size_t r = row_bytes ? target / row_bytes : (size_t)min;
    if (r < (size_t)min)
        r = (size_t)min;
    if (r > 1 << 20)
        r = 1 << 20;
    return (int)r & ~1;
}

#define IN_BORDER 10 /* reflect border of the plan input (see head_ops) */

/* conv 7x7 -> down1 -> down2 -> down3 on the input (4 channels, working
 * size h x w, reflect-bordered by IN_BORDER). The first three layers run in
 * row bands so that neither the full-resolution map nor the half-resolution
 * one ever exists whole. Each layer of a band is computed with a border --
 * conv 7x7 with 7 pixels, down1 with 3, down2 with 1 -- made a reflection of
 * the inside before the next (stride-2) layer reads it, so that down2 writes
 * rows of its output already reflect-padded by 1, as down3 needs. (Only the
 * rows and columns just before the inside must be exact reflections: with
 * even sizes and stride 2 the far borders are never read.) */
static void head_ops(lama_state *s, pm_nn_plan *p, pm_nn_t in, int h, int w, pm_nn_t *l, pm_nn_t *g)
{
    int ngf = s->ngf;
    size_t es = s->dt == PM_NN_BF16 ? 2 : 4;
    int h3 = h / 4 + 2, w3 = w / 4 + 2;
    pm_nn_t p3 = pm_nn_new(p, 4 * ngf, h3, w3, s->dt);
    /* rows [a, b) of p3 need rows [2a, 2b + 1) of down1's bordered output,
     * rows [4a, 4b + 3) of conv 7x7's and input rows [4a, 4b + 9); at least 4
     * rows, so that the first band holds its reflected borders */
    int R = band_rows((size_t)4 * (w + 14) * ngf * es, s->band_bytes, 8) / 2;
    char n[48];
    for (int a = 0, k = 0; a < h3; a += R, k++) {
        int b = a + R < h3 ? a + R : h3;
        pm_nn_t c1 = pm_nn_conv(p, NM("head@conv7x7~%d", k), pm_nn_rows(p, in, 4 * a, 4 * b + 9), &s->head[CONV1],
                                PM_NN_RELU, -1, s->dt, 1.0f);
        pm_nn_reflect_border(p, NM("head@border1~%d", k), c1, a == 0 ? 7 : 0, 0, 7, 7);
        pm_nn_t d1 = pm_nn_conv(p, NM("head@down1~%d", k), c1, &s->head[DOWN1], PM_NN_RELU, -1, s->dt, 1.0f);
        pm_nn_reflect_border(p, NM("head@border2~%d", k), d1, a == 0 ? 3 : 0, 0, 3, 3);
        pm_nn_conv(p, NM("head@down2~%d", k), d1, &s->head[DOWN2], PM_NN_RELU | PM_NN_INTO,
                   pm_nn_rows(p, p3, a, b), s->dt, 1.0f);
    }
    pm_nn_reflect_border(p, "head@border3", p3, 1, 1, 1, 1);
    *l = pm_nn_conv(p, "head@down3_l", p3, &s->head[DOWN3L], PM_NN_RELU, -1, s->dt, 1.0f);
    *g = pm_nn_conv(p, "head@down3_g", p3, &s->head[DOWN3G], PM_NN_RELU, -1, s->dt, 1.0f);
}

/* The four sub-pixel convolutions of up-sampling `i` for rows [r0, r1) of
 * its input, interleaved into `dst` (new when < 0): rows 2*r0 .. 2*r1 - 1
 * of the up-sampled map. `x` holds input rows [x_row0, x_row0 + rows of x)
 * of a map `full_h` rows high. The two-tap kernels read one row past the
 * band; past the last row that is the transposed convolution's zero
 * padding. */
static pm_nn_t up_ops(lama_state *s, pm_nn_plan *p, int i, pm_nn_t x, int x_row0, int full_h, int r0, int r1,
                      pm_nn_t dst, pm_nn_dt out_dt, const char *band)
{
    char n[48];
    pm_nn_t q[4];
    int c, xh, w;
    pm_nn_shape(p, x, &c, &xh, &w);
    for (int k = 0; k < 4; k++) {
        int py = k >> 1;
        int end = r1 + py <= full_h ? r1 + py : full_h;
        int pad_b = r1 + py > full_h ? 1 : 0;
        int v0 = r0 - x_row0, v1 = end - x_row0;
        pm_nn_t src = (v0 == 0 && v1 == xh) ? x : pm_nn_rows(p, x, v0, v1);
        q[k] = pm_nn_conv_pad(p, NM("tail@up%d_%d%d%s", i + 1, py, k & 1, band), src, &s->up[i][k], PM_NN_RELU, -1,
                              out_dt, 0, pad_b);
    }
    return pm_nn_interleave2(p, NM("tail@up%d_shuffle%s", i + 1, band), q, dst);
}

/* concat -> up1 -> up2 -> up3 -> reflect pad 3 -> conv 7x7 + sigmoid.
 * After up1, everything runs in bands of output rows: a band of the output
 * needs rows [a-3, b+3) of up3 (reflected at the edges), made from a few
 * rows of up2, made from a few rows of up1's output -- so neither up2's nor
 * up3's output ever exists whole (up2's rows at band edges are computed
 * twice). */
static pm_nn_t tail_ops(lama_state *s, pm_nn_plan *p, pm_nn_t l, pm_nn_t g, int h, int w)
{
    int ngf = s->ngf;
    size_t es = s->dt == PM_NN_BF16 ? 2 : 4;
    char band[16], n[48];
    int h4 = h / 4, h2 = h / 2;
    pm_nn_t x = pm_nn_concat(p, "tail@concat", l, g);
    /* up1 in bands too, so that its four sub-pixel outputs are never whole */
    pm_nn_t i1 = pm_nn_new(p, 4 * ngf, h4, w / 4, s->dt);
    int R = band_rows((size_t)2 * (w / 4) * 4 * ngf * es, s->band_bytes, 2) / 2;
    for (int a = 0, k = 0; a < h / 8; a += R, k++) {
        int b = a + R < h / 8 ? a + R : h / 8;
        snprintf(band, sizeof band, "~%d", k);
        up_ops(s, p, 0, x, 0, h / 8, a, b, pm_nn_rows(p, i1, 2 * a, 2 * b), s->dt, band);
    }
    pm_nn_t out = pm_nn_new(p, 3, h, w, PM_NN_F32);
    R = band_rows((size_t)w * ngf * sizeof(float), s->band_bytes, 16); /* up3's bands are f32 */
    for (int a = 0, k = 0; a < h; a += R, k++) {
        int b = a + R < h ? a + R : h;
        snprintf(band, sizeof band, "~%d", k);
        /* up3 rows [u0, u1); its two-tap kernels read up2 rows [u0/2, c1) */
        int u0 = a >= 4 ? a - 4 : 0, u1 = b + 4 <= h ? b + 4 : h;
        int c1 = u1 / 2 + 1 <= h2 ? u1 / 2 + 1 : h2;
        int j0 = u0 / 4, j1 = (c1 + 1) / 2; /* up1-output rows making up2 rows [2 j0, 2 j1) */
        pm_nn_t i2 = up_ops(s, p, 1, i1, 0, h4, j0, j1, -1, s->dt, band);
        /* up3 gives f32 (in bf16 mode too) to the output layer's kernel */
        pm_nn_t u = up_ops(s, p, 2, i2, 2 * j0, h2, u0 / 2, u1 / 2, -1, PM_NN_F32, band);
        pm_nn_t q = pm_nn_pad_window(p, NM("tail@pad7%s", band), u, u0, h, a - 3, b + 3, 3);
        pm_nn_conv_small(p, NM("tail@conv7x7%s", band), q, &s->out, PM_NN_SIGMOID | PM_NN_INTO,
                         pm_nn_rows(p, out, a, b));
    }
    return out;
}

static int build_plan(lama_state *s, int h, int w, pm_nn_plan **out)
{
    pm_nn_plan *p;
    int rc = pm_nn_plan_begin(s->ctx, s->threads, &p);
    if (rc)
        return rc;
    pm_nn_plan_set_layout(p, s->winograd ? PM_NN_LAYOUT_BLOCKED16 : PM_NN_LAYOUT_NHWC);
    pm_nn_t in = pm_nn_input(p, 4, h + 2 * IN_BORDER, w + 2 * IN_BORDER, s->dt);
    pm_nn_t l, g;
    head_ops(s, p, in, h, w, &l, &g);
    pm_nn_mark(p, 1);
    pm_nn_t rl = -1, rg = -1; /* pending residual of the previous block */
    for (int b = 0; b < s->blocks; b++) {
        char tag[16];
        pm_nn_t yl, yg, zl, zg;
        snprintf(tag, sizeof tag, "b%02d.1", b);
        ffc_ops(s, p, &s->ffc[2 * b], tag, l, g, rl, rg, &yl, &yg);
        snprintf(tag, sizeof tag, "b%02d.2", b);
        ffc_ops(s, p, &s->ffc[2 * b + 1], tag, yl, yg, -1, -1, &zl, &zg);
        rl = zl;
        rg = zg;
        pm_nn_mark(p, 2 + b);
    }
    pm_nn_add(p, "tail@residual_l", l, rl);
    pm_nn_add(p, "tail@residual_g", g, rg);
    pm_nn_output(p, tail_ops(s, p, l, g, h, w));
    pm_nn_mark(p, s->blocks + 2);
    rc = pm_nn_plan_finish(p);
    if (rc) {
        pm_nn_plan_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

/* The cached plan for a working size, built on a miss (evicting the least
 * recently used). Called with s->lock held; the plan stays owned by s. */
static int get_plan(lama_state *s, int h, int w, pm_nn_plan **out)
{
    s->clock++;
    int victim = 0;
    for (int i = 0; i < LAMA_PLANS; i++) {
        lama_plan *c = &s->plans[i];
        if (c->plan && c->h == h && c->w == w) {
            c->used = s->clock;
            *out = c->plan;
            return 0;
        }
        if (!c->plan || (s->plans[victim].plan && c->used < s->plans[victim].used))
            victim = i;
    }
    pm_nn_plan *p;
    int rc = build_plan(s, h, w, &p);
    if (rc)
        return rc;
    lama_plan *c = &s->plans[victim];
    pm_nn_plan_free(c->plan);
    c->plan = p;
    c->h = h;
    c->w = w;
    c->used = s->clock;
    *out = p;
    return 0;
}

static int check_size(int w, int h)
{
    if (w < 9 || h < 9)
        return pm_errorf(PM_EINVAL, "image is %dx%d pixels; LaMa needs at least 9 pixels on each side "
                                    "(use the patchmatch model for tiny images)", w, h);
    if ((uint64_t)w * h > (uint64_t)1 << 28)
        return pm_errorf(PM_ETOOBIG, "image is %dx%d pixels; LaMa here takes at most 268 MP", w, h);
    return 0;
}

/* --------------------------------------------------------------- running */

static inline int reflect(int i, int n)
{
    return i < 0 ? -i : i >= n ? 2 * n - 2 - i : i;
}

/* The reference preparation: symmetric (edge) padding to the working size,
 * mask > 0, input = [rgb/255 * (1 - mask), mask], then a reflect border of
 * IN_BORDER (the network's own padding of 3, and 3 more for head_ops). */
typedef struct inpaint_io {
    const pm_image *rgb, *mask;
    pm_image *out;
} inpaint_io;

static int fill_image(void *user, const pm_nn_view *v)
{
    const inpaint_io *io = user;
    int w = io->rgb->width, h = io->rgb->height;
    int hp = v->h - 2 * IN_BORDER, wp = v->w - 2 * IN_BORDER;
    for (int y = 0; y < v->h; y++) {
        int sy = reflect(y - IN_BORDER, hp);
        if (sy > h - 1)
            sy = h - 1;
        const uint8_t *rrow = io->rgb->data + (size_t)sy * w * 3;
        const uint8_t *mrow = io->mask->data + (size_t)sy * w;
        for (int x = 0; x < v->w; x++) {
            int sx = reflect(x - IN_BORDER, wp);
            if (sx > w - 1)
                sx = w - 1;
            float m = mrow[sx] > 0 ? 1.0f : 0.0f;
            for (int c = 0; c < 3; c++)
                pm_nn_st(v, pm_nn_view_off(v, c, y, x), (float)rrow[3 * sx + c] / 255.0f * (1.0f - m));
            pm_nn_st(v, pm_nn_view_off(v, 3, y, x), m);
        }
    }
    return 0;
}

/* mask * prediction + (1 - mask) * image, cropped; clip(x * 255) truncated.
 * Pixels outside the mask are copied from the input unchanged. */
static int read_image(void *user, const pm_nn_view *v)
{
    inpaint_io *io = user;
    int w = io->rgb->width, h = io->rgb->height;
    for (int y = 0; y < h; y++) {
        const uint8_t *rrow = io->rgb->data + (size_t)y * w * 3;
        const uint8_t *mrow = io->mask->data + (size_t)y * w;
        uint8_t *orow = io->out->data + (size_t)y * w * 3;
        for (int x = 0; x < w; x++) {
            if (!mrow[x]) {
                memcpy(orow + 3 * x, rrow + 3 * x, 3);
                continue;
            }
            for (int c = 0; c < 3; c++) {
                float t = pm_nn_ld(v, pm_nn_view_off(v, c, y, x)) * 255.0f;
                t = t < 0.0f ? 0.0f : t > 255.0f ? 255.0f : t;
                orow[3 * x + c] = (uint8_t)t;
            }
        }
    }
    return 0;
}

static int run_plan(lama_state *s, int hp, int wp, pm_nn_run_io *io, const pm_run_ctx *ctx)
{
    pthread_mutex_lock(&s->lock);
    pm_nn_plan *p;
    int rc = get_plan(s, hp, wp, &p);
    if (rc)
        goto unlock;
    io->progress = ctx ? ctx->progress : NULL;
    io->progress_user = ctx ? ctx->progress_user : NULL;
    io->progress_max = s->blocks + 2;
    if (io->progress && io->progress(io->progress_user, 0, io->progress_max)) {
        rc = pm_errorf(PM_ECANCELLED, "inpainting was cancelled before it started");
        goto unlock;
    }
    rc = pm_nn_plan_run(p, io);
    if (rc == PM_ECANCELLED)
        rc = pm_errorf(PM_ECANCELLED, "inpainting was cancelled");
unlock:
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int lama_inpaint(void *state, const pm_image *rgb, const pm_image *mask, pm_image *out,
                        const pm_run_ctx *ctx)
{
    lama_state *s = state;
    memset(out, 0, sizeof *out);
    if (!rgb || !rgb->data || rgb->channels != 3)
        return pm_errorf(PM_EINVAL, "LaMa takes an RGB image (3 channels)%s; convert it first",
                         rgb && rgb->data ? ", not another channel count" : "");
    if (!mask || !mask->data || mask->channels != 1)
        return pm_errorf(PM_EINVAL, "LaMa takes a 1-channel mask; convert it first");
    if (mask->width != rgb->width || mask->height != rgb->height)
        return pm_errorf(PM_EMISMATCH, "mask is %dx%d but the image is %dx%d; they must be the same size",
                         mask->width, mask->height, rgb->width, rgb->height);
    int rc;
    if ((rc = check_size(rgb->width, rgb->height)) || (rc = pm_image_alloc(out, rgb->width, rgb->height, 3)))
        return rc;
    int hp = (rgb->height + 7) / 8 * 8, wp = (rgb->width + 7) / 8 * 8;
    inpaint_io data = {.rgb = rgb, .mask = mask, .out = out};
    pm_nn_run_io io = {.fill = fill_image, .read = read_image, .user = &data};
    rc = run_plan(s, hp, wp, &io, ctx);
    if (rc)
        pm_image_free(out);
    return rc;
}

/* planar float in/out for pm_lama_forward */
typedef struct raw_io {
    const float *in;
    float *out;
    int h, w;
} raw_io;

static int fill_raw(void *user, const pm_nn_view *v)
{
    const raw_io *r = user;
    for (int c = 0; c < 4; c++)
        for (int y = 0; y < v->h; y++) {
            const float *row = r->in + ((size_t)c * r->h + reflect(y - IN_BORDER, r->h)) * r->w;
            for (int x = 0; x < v->w; x++)
                pm_nn_st(v, pm_nn_view_off(v, c, y, x), row[reflect(x - IN_BORDER, r->w)]);
        }
    return 0;
}

static int read_raw(void *user, const pm_nn_view *v)
{
    raw_io *r = user;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < r->h; y++)
            for (int x = 0; x < r->w; x++)
                r->out[((size_t)c * r->h + y) * r->w + x] = pm_nn_ld(v, pm_nn_view_off(v, c, y, x));
    return 0;
}

int pm_lama_forward(void *state, const float *in, int w, int h, float *out, const pm_run_ctx *ctx)
{
    lama_state *s = state;
    if (w % 8 || h % 8 || w < 16 || h < 16)
        return pm_errorf(PM_EINVAL, "the LaMa network takes sizes that are multiples of 8 and at least 16; got %dx%d",
                         w, h);
    raw_io r = {.in = in, .out = out, .h = h, .w = w};
    pm_nn_run_io io = {.fill = fill_raw, .read = read_raw, .user = &r};
    return run_plan(s, h, w, &io, ctx);
}

/* ---------------------------------------------------------------- memory */

/* The registry's estimate: one inpaint of a w x h image beyond the loaded
 * state, a calibrated a + b * pixels law (input_size: colorization only). */
static uint64_t lama_mem_estimate(const void *state, int w, int h, int input_size)
{
    const lama_state *s = state;
    (void)input_size;
    uint64_t hp = ((uint64_t)h + 7) / 8 * 8, wp = ((uint64_t)w + 7) / 8 * 8;
    double px = (double)(hp * wp);
    /* Calibrated with bench_lama on ngf 64 (2 threads, 4 MB bands): the peak
     * RSS of a run above the loaded state, 256..1536 px squares, was
     * fp32 21, 40, 84, 141, 308 MB and bf16 18, 30, 56, 92, 198 MB; the law
     * below stays 3-20 % above each. The arena is ~128 (fp32) / ~75 (bf16)
     * bytes per working pixel, in proportion to the width (ngf); the constant
     * covers primitives, band buffers and the output image. A whole job on
     * a freshly loaded model (`pixmend calibrate`: decode, pipeline, first
     * plan, encode) peaked at 28, 52 and 176 MiB for 256, 512 and 1024 px
     * fp32: 40 more bytes a pixel and 6 MiB more cover the image buffers
     * and the first plan's construction. */
    double per_px = (s->dt == PM_NN_BF16 ? 80.0 : 128.0) * (double)s->ngf / 64.0 + 40.0;
    double fixed = (s->dt == PM_NN_BF16 ? 22.0 : 20.0) * 1024 * 1024;
    return (uint64_t)(fixed + per_px * px);
}

/* ----------------------------------------------------------------- bench */

static int fill_noise(void *user, const pm_nn_view *v)
{
    uint32_t r = 2463534242u;
    (void)user;
    for (int c = 0; c < v->c; c++)
        for (int y = 0; y < v->h; y++)
            for (int x = 0; x < v->w; x++) {
                r ^= r << 13;
                r ^= r >> 17;
                r ^= r << 5;
                float val = c == 3 ? (float)((x / 32 + y / 32) % 2) : (float)(r >> 8) / 16777216.0f;
                pm_nn_st(v, pm_nn_view_off(v, c, y, x), val);
            }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int pm_lama_bench(void *state, int w, int h, int runs, FILE *profile, pm_lama_bench_result *res)
{
    lama_state *s = state;
    memset(res, 0, sizeof *res);
    if (runs < 1)
        runs = 1;
    int rc = check_size(w, h);
    if (rc)
        return rc;
    int hp = (h + 7) / 8 * 8, wp = (w + 7) / 8 * 8;
    double *t = pm_malloc((size_t)runs * sizeof *t);
    if (!t)
        return pm_errorf(PM_ENOMEM, "out of memory");
    pthread_mutex_lock(&s->lock);
    pm_nn_plan *p;
    double t0 = pm_now();
    rc = get_plan(s, hp, wp, &p);
    res->plan_s = pm_now() - t0;
    if (rc)
        goto unlock;
    pm_nn_run_io io = {.fill = fill_noise};
    t0 = pm_now();
    if ((rc = pm_nn_plan_run(p, &io)))
        goto unlock;
    res->first_s = pm_now() - t0;
    pm_nn_plan_profile(p, profile != NULL);
    for (int i = 0; i < runs; i++) {
        t0 = pm_now();
        if ((rc = pm_nn_plan_run(p, &io)))
            goto unlock;
        t[i] = pm_now() - t0;
    }
    if (profile) {
        pm_nn_plan_profile_print(p, profile);
        pm_nn_plan_describe(p, profile, 0);
    }
    pm_nn_plan_profile(p, 0);
    qsort(t, (size_t)runs, sizeof *t, cmp_double);
    res->median_s = runs % 2 ? t[runs / 2] : 0.5 * (t[runs / 2 - 1] + t[runs / 2]);
    res->min_s = t[0];
    res->max_s = t[runs - 1];
    res->arena_bytes = pm_nn_plan_arena_bytes(p);
    res->weight_bytes = s->weight_bytes;
    res->gflop = pm_nn_plan_gflop(p);
unlock:
    pthread_mutex_unlock(&s->lock);
    pm_free(t);
    return rc;
}

/* -------------------------------------------------------------- registry */

static int lama_load(const char *path, const pm_model_opts *opts, void **state)
{
    pm_lama_opts o = {.threads = opts ? opts->threads : 0, .precision = opts ? opts->precision : PM_PREC_FP32,
                      .winograd = -1};
    return pm_lama_load(path, &o, state);
}

const pm_model_desc pm_model_lama = {
    .name = "lama",
    .task = PM_TASK_INPAINT,
    .needs_file = 1,
    .load = lama_load,
    .unload = pm_lama_unload,
    .inpaint = lama_inpaint,
    .colorize = NULL,
    .mem_estimate = lama_mem_estimate,
};
