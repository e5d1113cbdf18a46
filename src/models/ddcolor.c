/* DDColor in C (see ddcolor.h and the DDColor section of docs: models.md).
 *
 * Activations are NHWC (pixel-major). One prediction runs a plan: a list of
 * steps, each a oneDNN primitive or one of the dd_ops, built once per input
 * size with every buffer allocated up front.
 *
 * Two places compute the reference's result in another order, with the same
 * value up to float rounding:
 *   - BatchNorms are folded (into the 1x1 conv before them, into fused
 *     post-ops after a 3x3 conv, into an affine step on the skip input);
 *   - the refine conv is linear in the einsum's 100 maps, and the einsum is
 *     linear in the blurred full-resolution features, and the blur is linear
 *     too: so the refine weights are applied to the colour embeddings first
 *     (2 x E), then to each pixel-shuffle sub-position of the last conv's
 *     output (dd_reduce2), and the blur is done on those 2 channels. The
 *     256-channel full-resolution features are never materialised. */
#include "models/ddcolor.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "ckpt/ckpt.h"
#include "nn/dd_dnnl.h"
#include "nn/dd_ops.h"

#define SH(...) ((const int64_t[]){__VA_ARGS__})

typedef struct lin_w {
    const float *w, *b; /* PyTorch Linear layout [out, in]; b may be NULL */
    int out, in;
} lin_w;

typedef struct ln_w {
    const float *w, *b;
} ln_w;

typedef struct block_w {
    const float *dw_w, *dw_b, *gamma;
    ln_w norm;
    lin_w pw1, pw2;
} block_w;

typedef struct unet_w {
    int cin, cs, n;
    const float *shuf_w;      /* [4n, cin] weight_orig, in place */
    float *shuf_a, *shuf_b;   /* its BatchNorm as x*a + b, a divided by the spectral norm */
    float *skip_a, *skip_b;   /* BatchNorm of the skip input as x*a + b */
    const float *conv_w;      /* [n, n+cs, 3, 3] weight_orig, in place */
    float conv_inv_sigma;     /* 1 / its spectral norm */
    float *bn_a, *bn_b;       /* BatchNorm after the conv's ReLU */
} unet_w;

typedef struct attn_w {
    lin_w q, k, v, o; /* views into in_proj_weight / out_proj */
    ln_w norm;
} attn_w;

typedef struct layer_w {
    attn_w cross, self;
    lin_w ffn1, ffn2;
    ln_w ffn_norm;
} layer_w;

/* ------------------------------------------------------------- plan */

enum op_kind { OP_NORMALIZE, OP_SHUFBLUR, OP_AFFRELU, OP_ADD, OP_POS, OP_COPY, OP_FOLDREF, OP_REDUCE, OP_FINAL };

typedef struct op_arg {
    enum op_kind kind;
    const float *a, *b, *c, *d;
    float *out;
    int64_t n;
    int i0, i1, i2, i3;
} op_arg;

typedef struct dd_step {
    dd_prim prim; /* used when prim.prim != NULL */
    op_arg op;
    int nthr;     /* OpenMP threads it runs on (1 for tiny ops: waking threads costs more) */
    int tick;     /* a progress step ends here */
} dd_step;

/* Rounds a float count up to 64 bytes. */
#define A16(x) (((x) + 15) & ~(int64_t)15)

/* Below these sizes an op runs on one thread. */
#define SMALL_MACS (8 << 20)
#define SMALL_ELEMS (256 << 10)

typedef struct dd_plan {
    int size;
    int threads; /* the model's thread count */
    dd_step *steps;
    int nsteps, cap;
    void **bufs; /* pm_malloc_aligned buffers owned by the plan */
    int nbufs, bcap;
    uint64_t bytes;
    int ticks;
    const float *io_rgb; /* set for each run */
    float *io_ab;
} dd_plan;

struct pm_ddcolor {
    pm_ddcolor_config cfg;
    char path[512];
    char prefix[128];
    pm_ckpt *ck;
    int threads;
    void **owned; /* pm_malloc'd weight buffers */
    int nowned, cowned;
    uint64_t owned_bytes, mapped_bytes;

    const float *stem_w, *stem_b, *ds_w[4], *ds_b[4];
    ln_w stem_ln, ds_ln[4], feat_ln[4];
    block_w *blocks[4];
    unet_w dec[3];
    const float *ls_w, *ls_b; /* last_shuf weight_orig [16E, E] in place, bias */
    float ls_inv_sigma;
    lin_w proj[3];
    const float *level_embed, *query_feat, *query_embed;
    layer_w *layers;
    ln_w dec_norm;
    lin_w ce[3];
    float *ref_w;
    const float *ref_b;
    float mean[3], std[3];

    dd_engine eng;
    dd_plan *plan;               /* under lock */
    pthread_mutex_t lock;        /* held while a run uses or replaces the plan */
    /* The current plan's size and bytes, for pm_ddcolor_workspace_bytes
     * (admission asks while a run holds `lock`). plan_lock is a leaf: nothing
     * else is taken while it is held, so any thread may take it under its own
     * locks. */
    pthread_mutex_t plan_lock;
    int plan_size;
    uint64_t plan_bytes;
};

/* With m->lock held: publishes the plan's size and bytes (0 when none). */
static void publish_plan(pm_ddcolor *m)
{
    pthread_mutex_lock(&m->plan_lock);
    m->plan_size = m->plan ? m->plan->size : 0;
    m->plan_bytes = m->plan ? m->plan->bytes : 0;
    pthread_mutex_unlock(&m->plan_lock);
}

/* ----------------------------------------------------- weight access */

static void fmt_shape(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t o = 0;
    o += (size_t)snprintf(buf + o, n - o, "[");
    for (int i = 0; i < ndim && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (o < n)
        snprintf(buf + o, n - o, "]");
}

static int own(pm_ddcolor *m, void *p, size_t bytes)
{
    if (m->nowned == m->cowned) {
        int nc = m->cowned ? m->cowned * 2 : 64;
        void **np = pm_realloc(m->owned, (size_t)nc * sizeof *np);
        if (!np) {
            pm_free(p);
            return pm_errorf(PM_ENOMEM, "out of memory loading DDColor weights");
        }
        m->owned = np;
        m->cowned = nc;
    }
    m->owned[m->nowned++] = p;
    m->owned_bytes += bytes;
    return 0;
}

static float *alloc_owned(pm_ddcolor *m, size_t nfloats)
{
    float *p = pm_malloc(nfloats * sizeof(float) + 4);
    if (!p) {
        pm_errorf(PM_ENOMEM, "out of memory (%zu bytes) loading DDColor weights", nfloats * sizeof(float));
        return NULL;
    }
    if (own(m, p, nfloats * sizeof(float)))
        return NULL;
    return p;
}

/* The checked tensor `name` (printf format, prefix prepended) of shape `shape`. */
static int vfind(pm_ddcolor *m, const pm_tensor_ref **out, char *name, size_t nlen, int ndim,
                 const int64_t *shape, const char *fmt, va_list ap)
{
    int o = snprintf(name, nlen, "%s", m->prefix);
    vsnprintf(name + o, nlen - (size_t)o, fmt, ap);
    const pm_tensor_ref *r = pm_ckpt_find(m->ck, name);
    char want[128], found[128];
    fmt_shape(want, sizeof want, ndim, shape);
    if (!r)
        return pm_errorf(PM_ECHECKPOINT,
                         "checkpoint %s has no tensor %s (expected shape %s); give an official DDColor checkpoint "
                         "(.pth with 'params', or pytorch_model.bin)", m->path, name, want);
    int same = r->ndim == ndim;
    for (int d = 0; same && d < ndim; d++)
        same = r->shape[d] == shape[d];
    if (!same) {
        fmt_shape(found, sizeof found, r->ndim, r->shape);
        return pm_errorf(PM_ECHECKPOINT,
                         "checkpoint %s: tensor %s has shape %s; expected %s for the configuration read from its "
                         "other tensors (depths %d,%d,%d,%d, dims %d,%d,%d,%d, nf %d, hidden %d, queries %d)",
                         m->path, name, found, want, m->cfg.depths[0], m->cfg.depths[1], m->cfg.depths[2],
                         m->cfg.depths[3], m->cfg.dims[0], m->cfg.dims[1], m->cfg.dims[2], m->cfg.dims[3], m->cfg.nf,
                         m->cfg.hidden, m->cfg.queries);
    }
    *out = r;
    return 0;
}

/* A float pointer to the tensor: in place when it is float32, else a
 * converted copy owned by the model. */
static int get(pm_ddcolor *m, const float **out, int ndim, const int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int get(pm_ddcolor *m, const float **out, int ndim, const int64_t *shape, const char *fmt, ...)
{
    char name[256];
    const pm_tensor_ref *r = NULL;
    va_list ap;
    va_start(ap, fmt);
    int rc = vfind(m, &r, name, sizeof name, ndim, shape, fmt, ap);
    va_end(ap);
    if (rc)
        return rc;
    if (r->dtype == PM_DT_F32 && (uintptr_t)r->data % 4 == 0) {
        *out = r->data;
        m->mapped_bytes += r->nbytes;
        return 0;
    }
    size_t n = r->nbytes / pm_dtype_size(r->dtype);
    float *p = alloc_owned(m, n);
    if (!p)
        return PM_ENOMEM;
    if ((rc = pm_ckpt_get_f32(m->ck, name, ndim, shape, p)))
        return rc;
    *out = p;
    return 0;
}

/* A spectral-normalised conv weight base.weight_orig of `shape` (in place)
 * and its norm u . (W v), with W = weight_orig as [out, -1] and the stored
 * vectors base.weight_u [out], base.weight_v [rest]: the effective weight is
 * weight_orig / sigma. */
static int get_sn(pm_ddcolor *m, const float **w_out, float *sigma_out, int ndim, const int64_t *shape,
                  const char *base)
{
    int64_t rows = shape[0], cols = 1;
    for (int d = 1; d < ndim; d++)
        cols *= shape[d];
    const float *w, *u, *v;
    int rc = get(m, &w, ndim, shape, "%s.weight_orig", base);
    if (!rc)
        rc = get(m, &u, 1, SH(rows), "%s.weight_u", base);
    if (!rc)
        rc = get(m, &v, 1, SH(cols), "%s.weight_v", base);
    if (rc)
        return rc;
    double sigma = 0;
    for (int64_t i = 0; i < rows; i++) {
        double wv = 0;
        for (int64_t j = 0; j < cols; j++)
            wv += (double)w[i * cols + j] * v[j];
        sigma += (double)u[i] * (float)wv;
    }
    float s = (float)sigma;
    if (!isfinite(s) || s == 0.0f)
        return pm_errorf(PM_ECHECKPOINT, "checkpoint %s: spectral norm of %s%s is %g (u . W v); the file is damaged",
                         m->path, m->prefix, base, (double)s);
    *w_out = w;
    *sigma_out = s;
    return 0;
}

/* BatchNorm base.{weight,bias,running_mean,running_var} of n channels as x*a + b. */
static int get_bn(pm_ddcolor *m, float **a, float **b, int n, const char *base)
{
    const float *w, *bi, *mu, *var;
    int rc = get(m, &w, 1, SH(n), "%s.weight", base);
    if (!rc)
        rc = get(m, &bi, 1, SH(n), "%s.bias", base);
    if (!rc)
        rc = get(m, &mu, 1, SH(n), "%s.running_mean", base);
    if (!rc)
        rc = get(m, &var, 1, SH(n), "%s.running_var", base);
    if (rc)
        return rc;
    if (!(*a = alloc_owned(m, (size_t)n)) || !(*b = alloc_owned(m, (size_t)n)))
        return PM_ENOMEM;
    dd_bn_fold(w, bi, mu, var, n, 1e-5f, *a, *b);
    return 0;
}

static int get_ln(pm_ddcolor *m, ln_w *out, int n, const char *base)
{
    int rc = get(m, &out->w, 1, SH(n), "%s.weight", base);
    return rc ? rc : get(m, &out->b, 1, SH(n), "%s.bias", base);
}

static int get_lin(pm_ddcolor *m, lin_w *out, int nout, int nin, const char *base)
{
    out->out = nout;
    out->in = nin;
    int rc = get(m, &out->w, 2, SH(nout, nin), "%s.weight", base);
    return rc ? rc : get(m, &out->b, 1, SH(nout), "%s.bias", base);
}

static int get_attn(pm_ddcolor *m, attn_w *a, int hid, const char *base)
{
    char n[200];
    const float *w, *b;
    snprintf(n, sizeof n, "%s.in_proj_weight", base);
    int rc = get(m, &w, 2, SH(3 * hid, hid), "%s", n);
    if (!rc) {
        snprintf(n, sizeof n, "%s.in_proj_bias", base);
        rc = get(m, &b, 1, SH(3 * hid), "%s", n);
    }
    if (rc)
        return rc;
    lin_w *parts[3] = {&a->q, &a->k, &a->v};
    for (int i = 0; i < 3; i++) {
        parts[i]->w = w + (size_t)i * hid * hid;
        parts[i]->b = b + (size_t)i * hid;
        parts[i]->out = parts[i]->in = hid;
    }
    char ob[200];
    snprintf(ob, sizeof ob, "%s.out_proj", base);
    return get_lin(m, &a->o, hid, hid, ob);
}

/* --------------------------------------------------- configuration */

static int count_indexed(pm_ddcolor *m, const char *fmt_pre, int i, const char *suffix)
{
    int n = 0;
    char name[256];
    for (;;) {
        if (i >= 0)
            snprintf(name, sizeof name, "%s%s%d.%d.%s", m->prefix, fmt_pre, i, n, suffix);
        else
            snprintf(name, sizeof name, "%s%s%d.%s", m->prefix, fmt_pre, n, suffix);
        if (!pm_ckpt_find(m->ck, name))
            return n;
        n++;
    }
}

static const pm_tensor_ref *find_p(pm_ddcolor *m, const char *name)
{
    char full[256];
    snprintf(full, sizeof full, "%s%s", m->prefix, name);
    return pm_ckpt_find(m->ck, full);
}

static int need(pm_ddcolor *m, const char *name, int ndim, const pm_tensor_ref **out, const char *what)
{
    const pm_tensor_ref *r = find_p(m, name);
    if (!r)
        return pm_errorf(PM_ECHECKPOINT,
                         "checkpoint %s has no tensor %s%s (it gives %s); give an official DDColor checkpoint "
                         "(.pth with 'params', or pytorch_model.bin)", m->path, m->prefix, name, what);
    if (r->ndim != ndim) {
        char found[128];
        fmt_shape(found, sizeof found, r->ndim, r->shape);
        return pm_errorf(PM_ECHECKPOINT, "checkpoint %s: tensor %s%s has shape %s; expected %d dimensions (it gives %s)",
                         m->path, m->prefix, name, found, ndim, what);
    }
    *out = r;
    return 0;
}

/* Reads the configuration from tensor names and shapes; also finds the key
 * prefix (none in the releases; "module." and the like are accepted). */
static int detect_config(pm_ddcolor *m)
{
    static const char key0[] = "encoder.arch.norm0.weight";
    if (!pm_ckpt_find(m->ck, key0)) {
        size_t kl = strlen(key0);
        for (int i = 0; i < pm_ckpt_count(m->ck); i++) {
            const char *k = pm_ckpt_at(m->ck, i)->name;
            size_t l = strlen(k);
            if (l > kl && strcmp(k + l - kl, key0) == 0 && l - kl < sizeof m->prefix) {
                memcpy(m->prefix, k, l - kl);
                m->prefix[l - kl] = 0;
                break;
            }
        }
        if (!m->prefix[0]) {
            int n = pm_ckpt_count(m->ck);
            return pm_errorf(PM_ECHECKPOINT,
                             "%s is not a DDColor checkpoint: it has no tensor %s (it holds %d tensors%s%s); give "
                             "ddcolor_paper.pth, ddcolor_paper_tiny.pth or a DDColor pytorch_model.bin",
                             m->path, key0, n, n ? ", the first is " : "", n ? pm_ckpt_at(m->ck, 0)->name : "");
        }
    }
    pm_ddcolor_config *c = &m->cfg;
    const pm_tensor_ref *r = NULL;
    int rc;
    for (int i = 0; i < 4; i++) {
        char n[64];
        snprintf(n, sizeof n, "encoder.arch.norm%d.weight", i);
        if ((rc = need(m, n, 1, &r, "the encoder's stage widths")))
            return rc;
        c->dims[i] = (int)r->shape[0];
        c->depths[i] = count_indexed(m, "encoder.arch.stages.", i, "gamma");
        if (c->depths[i] == 0)
            return pm_errorf(PM_ECHECKPOINT, "checkpoint %s has no tensor %sencoder.arch.stages.%d.0.gamma: encoder "
                             "stage %d has no blocks", m->path, m->prefix, i, i);
    }
    if ((rc = need(m, "decoder.layers.0.shuf.conv.0.weight_orig", 4, &r, "the pixel decoder width nf")))
        return rc;
    c->nf = (int)(r->shape[0] / 4);
    if (r->shape[0] % 4 || c->nf < 2 || c->nf % 2)
        return pm_errorf(PM_ECHECKPOINT, "checkpoint %s: decoder.layers.0.shuf.conv.0.weight_orig has %lld output "
                         "channels; expected 4 x nf with nf even", m->path, (long long)r->shape[0]);
    c->embed = c->nf / 2;
    if ((rc = need(m, "decoder.color_decoder.query_feat.weight", 2, &r, "the number of queries and the hidden width")))
        return rc;
    c->queries = (int)r->shape[0];
    c->hidden = (int)r->shape[1];
    c->heads = 8;
    if (c->hidden % c->heads || c->hidden < c->heads)
        return pm_errorf(PM_ECHECKPOINT, "checkpoint %s: hidden width %d is not a multiple of the %d attention heads",
                         m->path, c->hidden, c->heads);
    if ((rc = need(m, "decoder.color_decoder.level_embed.weight", 2, &r, "the number of scales")))
        return rc;
    c->scales = (int)r->shape[0];
    if (c->scales < 1 || c->scales > 3)
        return pm_errorf(PM_ECHECKPOINT, "checkpoint %s: level_embed has %d scales; the pixel decoder gives 1 to 3",
                         m->path, c->scales);
    c->layers = count_indexed(m, "decoder.color_decoder.transformer_ffn_layers.", -1, "linear1.weight");
    if (c->layers == 0)
        return pm_errorf(PM_ECHECKPOINT, "checkpoint %s has no tensor %sdecoder.color_decoder.transformer_ffn_layers."
                         "0.linear1.weight: the colour decoder has no layers", m->path, m->prefix);
    if ((rc = need(m, "decoder.color_decoder.transformer_ffn_layers.0.linear1.weight", 2, &r, "the FFN width")))
        return rc;
    c->ffn = (int)r->shape[0];
    return 0;
}

/* ------------------------------------------------------------ load */

static int load_weights(pm_ddcolor *m)
{
    const pm_ddcolor_config *c = &m->cfg;
    int rc;
    char b[200];
    const float *mean, *std;
    if ((rc = get(m, &mean, 4, SH(1, 3, 1, 1), "mean")) || (rc = get(m, &std, 4, SH(1, 3, 1, 1), "std")))
        return rc;
    memcpy(m->mean, mean, sizeof m->mean);
    memcpy(m->std, std, sizeof m->std);

    /* encoder */
    if ((rc = get(m, &m->stem_w, 4, SH(c->dims[0], 3, 4, 4), "encoder.arch.downsample_layers.0.0.weight")) ||
        (rc = get(m, &m->stem_b, 1, SH(c->dims[0]), "encoder.arch.downsample_layers.0.0.bias")) ||
        (rc = get_ln(m, &m->stem_ln, c->dims[0], "encoder.arch.downsample_layers.0.1")))
        return rc;
    for (int i = 0; i < 4; i++) {
        int d = c->dims[i];
        if (i > 0) {
            snprintf(b, sizeof b, "encoder.arch.downsample_layers.%d.0", i);
            if ((rc = get_ln(m, &m->ds_ln[i], c->dims[i - 1], b)) ||
                (rc = get(m, &m->ds_w[i], 4, SH(d, c->dims[i - 1], 2, 2), "encoder.arch.downsample_layers.%d.1.weight", i)) ||
                (rc = get(m, &m->ds_b[i], 1, SH(d), "encoder.arch.downsample_layers.%d.1.bias", i)))
                return rc;
        }
        snprintf(b, sizeof b, "encoder.arch.norm%d", i);
        if ((rc = get_ln(m, &m->feat_ln[i], d, b)))
            return rc;
        m->blocks[i] = pm_calloc((size_t)c->depths[i], sizeof(block_w));
        if (!m->blocks[i])
            return pm_errorf(PM_ENOMEM, "out of memory loading DDColor");
        for (int j = 0; j < c->depths[i]; j++) {
            block_w *k = &m->blocks[i][j];
            if ((rc = get(m, &k->dw_w, 4, SH(d, 1, 7, 7), "encoder.arch.stages.%d.%d.dwconv.weight", i, j)) ||
                (rc = get(m, &k->dw_b, 1, SH(d), "encoder.arch.stages.%d.%d.dwconv.bias", i, j)) ||
                (rc = get(m, &k->gamma, 1, SH(d), "encoder.arch.stages.%d.%d.gamma", i, j)))
                return rc;
            snprintf(b, sizeof b, "encoder.arch.stages.%d.%d.norm", i, j);
            if ((rc = get_ln(m, &k->norm, d, b)))
                return rc;
            snprintf(b, sizeof b, "encoder.arch.stages.%d.%d.pwconv1", i, j);
            if ((rc = get_lin(m, &k->pw1, 4 * d, d, b)))
                return rc;
            snprintf(b, sizeof b, "encoder.arch.stages.%d.%d.pwconv2", i, j);
            if ((rc = get_lin(m, &k->pw2, d, 4 * d, b)))
                return rc;
        }
    }

    /* pixel decoder */
    for (int k = 0; k < 3; k++) {
        unet_w *u = &m->dec[k];
        u->cin = k == 0 ? c->dims[3] : c->nf;
        u->cs = c->dims[2 - k];
        u->n = k < 2 ? c->nf : c->embed;
        float sigma;
        snprintf(b, sizeof b, "decoder.layers.%d.shuf.conv.0", k);
        if ((rc = get_sn(m, &u->shuf_w, &sigma, 4, SH(4 * u->n, u->cin, 1, 1), b)))
            return rc;
        snprintf(b, sizeof b, "decoder.layers.%d.shuf.conv.1", k);
        if ((rc = get_bn(m, &u->shuf_a, &u->shuf_b, 4 * u->n, b)))
            return rc;
        for (int o = 0; o < 4 * u->n; o++)
            u->shuf_a[o] /= sigma;
        snprintf(b, sizeof b, "decoder.layers.%d.bn", k);
        if ((rc = get_bn(m, &u->skip_a, &u->skip_b, u->cs, b)))
            return rc;
        snprintf(b, sizeof b, "decoder.layers.%d.conv.0", k);
        if ((rc = get_sn(m, &u->conv_w, &sigma, 4, SH(u->n, u->n + u->cs, 3, 3), b)))
            return rc;
        u->conv_inv_sigma = 1.0f / sigma;
        snprintf(b, sizeof b, "decoder.layers.%d.conv.2", k);
        if ((rc = get_bn(m, &u->bn_a, &u->bn_b, u->n, b)))
            return rc;
    }
    int e = c->embed;
    float sigma;
    if ((rc = get_sn(m, &m->ls_w, &sigma, 4, SH(16 * e, e, 1, 1), "decoder.last_shuf.conv.0")) ||
        (rc = get(m, &m->ls_b, 1, SH(16 * e), "decoder.last_shuf.conv.0.bias")))
        return rc;
    m->ls_inv_sigma = 1.0f / sigma;

    /* colour decoder */
    int hid = c->hidden, q = c->queries;
    for (int l = 0; l < c->scales; l++) {
        int n = m->dec[l].n;
        m->proj[l].out = hid;
        m->proj[l].in = n;
        if ((rc = get(m, &m->proj[l].w, 4, SH(hid, n, 1, 1), "decoder.color_decoder.input_proj.%d.weight", l)) ||
            (rc = get(m, &m->proj[l].b, 1, SH(hid), "decoder.color_decoder.input_proj.%d.bias", l)))
            return rc;
    }
    if ((rc = get(m, &m->level_embed, 2, SH(c->scales, hid), "decoder.color_decoder.level_embed.weight")) ||
        (rc = get(m, &m->query_feat, 2, SH(q, hid), "decoder.color_decoder.query_feat.weight")) ||
        (rc = get(m, &m->query_embed, 2, SH(q, hid), "decoder.color_decoder.query_embed.weight")))
        return rc;
    m->layers = pm_calloc((size_t)c->layers, sizeof(layer_w));
    if (!m->layers)
        return pm_errorf(PM_ENOMEM, "out of memory loading DDColor");
    for (int i = 0; i < c->layers; i++) {
        layer_w *L = &m->layers[i];
        snprintf(b, sizeof b, "decoder.color_decoder.transformer_cross_attention_layers.%d.multihead_attn", i);
        if ((rc = get_attn(m, &L->cross, hid, b)))
            return rc;
        snprintf(b, sizeof b, "decoder.color_decoder.transformer_cross_attention_layers.%d.norm", i);
        if ((rc = get_ln(m, &L->cross.norm, hid, b)))
            return rc;
        snprintf(b, sizeof b, "decoder.color_decoder.transformer_self_attention_layers.%d.self_attn", i);
        if ((rc = get_attn(m, &L->self, hid, b)))
            return rc;
        snprintf(b, sizeof b, "decoder.color_decoder.transformer_self_attention_layers.%d.norm", i);
        if ((rc = get_ln(m, &L->self.norm, hid, b)))
            return rc;
        snprintf(b, sizeof b, "decoder.color_decoder.transformer_ffn_layers.%d.linear1", i);
        if ((rc = get_lin(m, &L->ffn1, c->ffn, hid, b)))
            return rc;
        snprintf(b, sizeof b, "decoder.color_decoder.transformer_ffn_layers.%d.linear2", i);
        if ((rc = get_lin(m, &L->ffn2, hid, c->ffn, b)))
            return rc;
        snprintf(b, sizeof b, "decoder.color_decoder.transformer_ffn_layers.%d.norm", i);
        if ((rc = get_ln(m, &L->ffn_norm, hid, b)))
            return rc;
    }
    if ((rc = get_ln(m, &m->dec_norm, hid, "decoder.color_decoder.decoder_norm")) ||
        (rc = get_lin(m, &m->ce[0], hid, hid, "decoder.color_decoder.color_embed.layers.0")) ||
        (rc = get_lin(m, &m->ce[1], hid, hid, "decoder.color_decoder.color_embed.layers.1")) ||
        (rc = get_lin(m, &m->ce[2], e, hid, "decoder.color_decoder.color_embed.layers.2")))
        return rc;

    /* refine: a small folded copy (weight_orig / sigma, as PyTorch computes it) */
    const float *rw;
    if ((rc = get_sn(m, &rw, &sigma, 4, SH(2, q + 3, 1, 1), "refine_net.0.0")) ||
        (rc = get(m, &m->ref_b, 1, SH(2), "refine_net.0.0.bias")))
        return rc;
    if (!(m->ref_w = alloc_owned(m, (size_t)2 * (q + 3))))
        return PM_ENOMEM;
    for (int i = 0; i < 2 * (q + 3); i++)
        m->ref_w[i] = rw[i] / sigma;
    return 0;
}

static void plan_free(dd_plan *p);

void pm_ddcolor_free(pm_ddcolor *m)
{
    if (!m)
        return;
    if (m->plan)
        plan_free(m->plan);
    dd_engine_free(&m->eng);
    for (int i = 0; i < m->nowned; i++)
        pm_free(m->owned[i]);
    pm_free(m->owned);
    for (int i = 0; i < 4; i++)
        pm_free(m->blocks[i]);
    pm_free(m->layers);
    if (m->ck)
        pm_ckpt_close(m->ck);
    pthread_mutex_destroy(&m->lock);
    pthread_mutex_destroy(&m->plan_lock);
    pm_free(m);
}

int pm_ddcolor_load(const char *path, const pm_model_opts *opts, pm_ddcolor **out)
{
    *out = NULL;
    if (!path || !*path)
        return pm_errorf(PM_EINVAL, "DDColor needs a weights file (--model ddcolor_paper.pth)");
    pm_ddcolor *m = pm_calloc(1, sizeof *m);
    if (!m)
        return pm_errorf(PM_ENOMEM, "out of memory loading DDColor");
    pthread_mutex_init(&m->lock, NULL);
    pthread_mutex_init(&m->plan_lock, NULL);
    snprintf(m->path, sizeof m->path, "%s", path);
    m->threads = opts && opts->threads > 0 ? opts->threads : pm_cpu_count();
    if (opts && opts->precision != PM_PREC_FP32) {
        pm_ddcolor_free(m);
        return pm_errorf(PM_EUNSUPPORTED, "DDColor runs in fp32 only; drop the bf16 precision option");
    }
    int rc = pm_ckpt_open(path, NULL, &m->ck);
    if (rc)
        goto free_model;
    pm_ckpt_set_hint(m->ck, "DDColor");
    if ((rc = detect_config(m)) || (rc = load_weights(m)) || (rc = dd_engine_init(&m->eng)))
        goto free_model;
    /* Opening and folding read the whole file; let go of those pages: what a
     * run needs is faulted back in by its first use (from the page cache),
     * convolution weights only while a plan is built, unused tensors never. */
    for (int i = 0; i < pm_ckpt_count(m->ck); i++) {
        const pm_tensor_ref *r = pm_ckpt_at(m->ck, i);
        dd_release_pages(r->data, r->nbytes);
    }
    *out = m;
    return 0;
free_model:
    pm_ddcolor_free(m);
    return rc;
}

const pm_ddcolor_config *pm_ddcolor_config_of(const pm_ddcolor *m)
{
    return &m->cfg;
}

int pm_ddcolor_progress_steps(const pm_ddcolor *m)
{
    const pm_ddcolor_config *c = &m->cfg;
    return 1 + c->depths[0] + c->depths[1] + c->depths[2] + c->depths[3] + 3 + c->layers + 1;
}

uint64_t pm_ddcolor_weight_bytes(const pm_ddcolor *m)
{
    return m->owned_bytes + m->mapped_bytes;
}

/* ------------------------------------------------------- plan build */

static void plan_free(dd_plan *p)
{
    for (int i = 0; i < p->nsteps; i++)
        dd_prim_free(&p->steps[i].prim);
    pm_free(p->steps);
    for (int i = 0; i < p->nbufs; i++)
        pm_free_aligned(p->bufs[i]);
    pm_free(p->bufs);
    pm_free(p);
}

static int track(dd_plan *p, void *buf, size_t bytes)
{
    if (p->nbufs == p->bcap) {
        int nc = p->bcap ? p->bcap * 2 : 64;
        void **nb = pm_realloc(p->bufs, (size_t)nc * sizeof *nb);
        if (!nb) {
            pm_free_aligned(buf);
            return pm_errorf(PM_ENOMEM, "out of memory planning DDColor");
        }
        p->bufs = nb;
        p->bcap = nc;
    }
    p->bufs[p->nbufs++] = buf;
    p->bytes += bytes;
    return 0;
}

static float *buf(dd_plan *p, size_t nfloats)
{
    size_t bytes = nfloats * sizeof(float);
    float *b = pm_malloc_aligned(bytes ? bytes : 64);
    if (!b) {
        pm_errorf(PM_ENOMEM, "out of memory: the DDColor plan for %dx%d needs %zu more bytes", p->size, p->size, bytes);
        return NULL;
    }
    if (track(p, b, bytes))
        return NULL;
    return b;
}

static dd_step *new_step(dd_plan *p)
{
    if (p->nsteps == p->cap) {
        int nc = p->cap ? p->cap * 2 : 256;
        dd_step *ns = pm_realloc(p->steps, (size_t)nc * sizeof *ns);
        if (!ns) {
            pm_errorf(PM_ENOMEM, "out of memory planning DDColor");
            return NULL;
        }
        p->steps = ns;
        p->cap = nc;
    }
    dd_step *s = &p->steps[p->nsteps++];
    memset(s, 0, sizeof *s);
    s->nthr = p->threads;
    return s;
}

/* Makes the step being built run on one thread when its work is below
 * `small`; the primitive is then created for that many threads. */
static void step_threads(dd_plan *p, dd_step *s, int64_t work, int64_t small)
{
    s->nthr = work < small ? 1 : p->threads;
    dd_set_threads(s->nthr);
}

static int op(dd_plan *p, op_arg a)
{
    dd_step *s = new_step(p);
    if (!s)
        return PM_ENOMEM;
    s->op = a;
    return 0;
}

static void tick(dd_plan *p)
{
    if (p->nsteps) {
        p->steps[p->nsteps - 1].tick = 1;
        p->ticks++;
    }
}

/* Post-op lists. */
static const dd_post PO_NONE = {0, {{0, 0, NULL}}};
static const dd_post PO_RELU = {1, {{DD_PO_RELU, 0, NULL}}};
static const dd_post PO_GELU = {1, {{DD_PO_GELU, 0, NULL}}};
static const dd_post PO_SUM = {1, {{DD_PO_SUM, 0, NULL}}};

/* One matmul step. */
static int mm(pm_ddcolor *m, dd_plan *p, dd_view src, dd_view wei, const float *bias, dd_view dst,
              const dd_post *po)
{
    dd_step *s = new_step(p);
    if (!s)
        return PM_ENOMEM;
    step_threads(p, s, src.rows * src.cols * wei.cols * (src.batch > 1 ? src.batch : 1), SMALL_MACS);
    int rc = dd_matmul(&m->eng, &s->prim, src, wei, bias, dst, po);
    if (rc)
        p->nsteps--;
    return rc;
}

/* y = post(x W^T + b) for a Linear over `rows` rows. */
static int linear(pm_ddcolor *m, dd_plan *p, const lin_w *l, const float *x, int64_t rows, float *y,
                  const dd_post *po)
{
    return mm(m, p, dd_rows((float *)x, rows, l->in), dd_linear_weight(l->w, l->out, l->in, l->in), l->b,
              dd_rows(y, rows, l->out), po);
}

static int conv(pm_ddcolor *m, dd_plan *p, const dd_conv_shape *sh, const float *src, const float *w,
                const float *bias, float *dst, const dd_post *po)
{
    dd_step *s = new_step(p);
    if (!s)
        return PM_ENOMEM;
    float *owned = NULL;
    dd_set_threads(s->nthr);
    int rc = dd_conv(&m->eng, &s->prim, sh, src, w, bias, dst, po, &owned);
    if (rc) {
        p->nsteps--;
        return rc;
    }
    const dnnl_memory_desc_t *wmd;
    dnnl_memory_get_memory_desc(s->prim.args[1].memory, &wmd);
    /* Convolution weights are read from the checkpoint only here: the plan
     * keeps its reordered copy, so the mapped originals need not stay resident. */
    int g = sh->groups > 1 ? sh->groups : 1;
    dd_release_pages(w, (size_t)sh->oc * (sh->ic / g) * sh->kh * sh->kw * sizeof(float));
    return track(p, owned, dnnl_memory_desc_get_size(wmd));
}

static int layernorm(pm_ddcolor *m, dd_plan *p, int64_t rows, int64_t c, const float *src, float *dst,
                     const ln_w *w, float eps)
{
    dd_step *s = new_step(p);
    if (!s)
        return PM_ENOMEM;
    step_threads(p, s, rows * c, SMALL_ELEMS);
    int rc = dd_layernorm(&m->eng, &s->prim, rows, c, src, dst, w->w, w->b, eps);
    if (rc)
        p->nsteps--;
    return rc;
}

static int softmax(pm_ddcolor *m, dd_plan *p, int64_t rows, int64_t cols, float *data)
{
    dd_step *s = new_step(p);
    if (!s)
        return PM_ENOMEM;
    step_threads(p, s, rows * cols, SMALL_ELEMS);
    int rc = dd_softmax(&m->eng, &s->prim, rows, cols, cols, data);
    if (rc)
        p->nsteps--;
    return rc;
}

/* Attention scores of all heads are computed at once up to this many floats. */
#define SMALL_SCORES (4 << 20)
/* Above this many keys, keys and values are projected one head at a time. */
#define PER_HEAD_KEYS 4096

/* Buffers of the colour decoder, [rows x hidden] unless noted. */
typedef struct cd_bufs {
    float *out, *qin, *qm, *km, *vm, *att, *sc /* Q x max(HW, Q) */, *fh /* Q x ffn */;
} cd_bufs;

/* Multi-head attention: out = LN(out + MHA(qsrc, ksrc, vsrc)), nk keys. */
static int attention(pm_ddcolor *m, dd_plan *p, const attn_w *a, const float *qsrc, const float *ksrc,
                     const float *vsrc, int64_t nk, const cd_bufs *B)
{
    const pm_ddcolor_config *c = &m->cfg;
    int64_t Q = c->queries, hid = c->hidden, hd = hid / c->heads;
    int rc;
    dd_post qscale = {1, {{DD_PO_SCALE, 1.0f / sqrtf((float)hd), NULL}}};
    if ((rc = linear(m, p, &a->q, qsrc, Q, B->qm, &qscale)))
        return rc;
    if (nk > PER_HEAD_KEYS) {
        /* Many keys: project keys and values head by head (hd columns each),
         * so that only one head's K and V are held at a time. */
        for (int64_t h = 0; h < c->heads; h++) {
            lin_w kh = {a->k.w + h * hd * hid, a->k.b + h * hd, (int)hd, (int)hid};
            lin_w vh = {a->v.w + h * hd * hid, a->v.b + h * hd, (int)hd, (int)hid};
            dd_view qh = {B->qm + h * hd, Q, hd, hid, 1, 1, 0};
            dd_view kt = {B->km, hd, nk, 1, hd, 1, 0};
            dd_view ah = {B->att + h * hd, Q, hd, hid, 1, 1, 0};
            if ((rc = linear(m, p, &kh, ksrc, nk, B->km, &PO_NONE)) ||
                (rc = linear(m, p, &vh, vsrc, nk, B->vm, &PO_NONE)) ||
                (rc = mm(m, p, qh, kt, NULL, dd_rows(B->sc, Q, nk), &PO_NONE)) ||
                (rc = softmax(m, p, Q, nk, B->sc)) ||
                (rc = mm(m, p, dd_rows(B->sc, Q, nk), dd_rows(B->vm, nk, hd), NULL, ah, &PO_NONE)))
                return rc;
        }
    } else {
        if ((rc = linear(m, p, &a->k, ksrc, nk, B->km, &PO_NONE)) ||
            (rc = linear(m, p, &a->v, vsrc, nk, B->vm, &PO_NONE)))
            return rc;
        /* All heads in one batched product when their scores fit SMALL_SCORES,
         * else head by head (the scores of one head at a time). */
        int64_t nb = c->heads * Q * nk <= SMALL_SCORES ? c->heads : 1;
        for (int64_t h = 0; h < c->heads; h += nb) {
            dd_view qh = {B->qm + h * hd, Q, hd, hid, 1, nb, hd};
            dd_view kt = {B->km + h * hd, hd, nk, 1, hid, nb, hd};
            dd_view vh = {B->vm + h * hd, nk, hd, hid, 1, nb, hd};
            dd_view ah = {B->att + h * hd, Q, hd, hid, 1, nb, hd};
            dd_view sc = {B->sc, Q, nk, nk, 1, nb, Q * nk};
            if ((rc = mm(m, p, qh, kt, NULL, sc, &PO_NONE)) ||
                (rc = softmax(m, p, nb * Q, nk, B->sc)) ||
                (rc = mm(m, p, sc, vh, NULL, ah, &PO_NONE)))
                return rc;
        }
    }
    if ((rc = linear(m, p, &a->o, B->att, Q, B->out, &PO_SUM)))
        return rc;
    return layernorm(m, p, Q, hid, B->out, B->out, &a->norm, 1e-5f);
}

static int plan_build(pm_ddcolor *m, int S, dd_plan **out)
{
    const pm_ddcolor_config *c = &m->cfg;
    dd_plan *p = pm_calloc(1, sizeof *p);
    if (!p)
        return pm_errorf(PM_ENOMEM, "out of memory planning DDColor");
    p->size = S;
    p->threads = m->threads;
    int rc = PM_ENOMEM;
    int hs[4];
    for (int i = 0; i < 4; i++)
        hs[i] = S >> (2 + i);
    int64_t px[4];
    for (int i = 0; i < 4; i++)
        px[i] = (int64_t)hs[i] * hs[i];

    /* ---- buffers that live through the whole run */
    float *xin = buf(p, (size_t)S * S * 3);
    float *feat[4], *dout[3];
    for (int k = 0; k < 3; k++)
        if (xin && !(dout[k] = buf(p, (size_t)px[2 - k] * m->dec[k].n)))
            xin = NULL;
    if (!xin)
        goto fail;

    /* ---- encoder */
    int64_t enc_t = 0, enc_h = 0, chunk[4];
    for (int i = 0; i < 4; i++) {
        int64_t n = px[i] * c->dims[i];
        if (n > enc_t)
            enc_t = n;
        if (i > 0 && px[i - 1] * c->dims[i - 1] > enc_t)
            enc_t = px[i - 1] * c->dims[i - 1];
        int64_t ch = ((int64_t)1 << 21) / (4 * c->dims[i]);
        if (ch < 1024)
            ch = 1024;
        chunk[i] = ch < px[i] ? ch : px[i];
        if (chunk[i] * 4 * c->dims[i] > enc_h)
            enc_h = chunk[i] * 4 * c->dims[i];
    }
    /* ---- decoder scratch */
    int64_t dec_t = 0, dec_cat = 0;
    for (int k = 0; k < 3; k++) {
        const unet_w *u = &m->dec[k];
        int64_t in_px = px[3 - k];
        if (in_px * 4 * u->n > dec_t)
            dec_t = in_px * 4 * u->n;
        if (px[2 - k] * (u->n + u->cs) > dec_cat)
            dec_cat = px[2 - k] * (u->n + u->cs);
    }
    /* ---- colour decoder */
    int64_t Q = c->queries, hid = c->hidden, kvn = 0, scn = 0;
    for (int l = 0; l <= c->scales; l++) { /* the levels, and the queries themselves */
        int64_t nk = l < c->scales ? px[2 - l] : Q;
        int64_t kv = nk > PER_HEAD_KEYS ? nk * (hid / c->heads) : nk * hid;
        if (kv > kvn)
            kvn = kv;
        int64_t v = c->heads * Q * nk <= SMALL_SCORES ? c->heads * Q * nk : Q * nk;
        if (v > scn)
            scn = v;
    }
    int64_t cd_scr = 2 * A16(kvn) + scn;
    /* ---- last stage: conv tiles of about 2048 pixels */
    int w2 = hs[0], e = c->embed;
    int trows = 2048 / w2 < 1 ? 1 : 2048 / w2;
    if (trows > w2)
        trows = w2;
    int64_t last_scr = (int64_t)trows * w2 * 16 * e;

    /* One region is reused phase by phase (offsets in floats, 64-byte aligned):
     *   encoder:        feat | X (all stages) | T | HB
     *   pixel decoder:  feat | DT | CAT
     *   colour decoder: src, srcpos (per level) | K | V | scores
     *   last stage:     R (one tile of the last conv's output) */
    int64_t F = 0, foff[4], SP = 0, soff[3];
    for (int i = 0; i < 4; i++)
        foff[i] = F, F += A16(px[i] * c->dims[i]);
    for (int l = 0; l < c->scales; l++)
        soff[l] = SP, SP += 2 * A16(px[2 - l] * hid);
    int64_t scr = 2 * F + A16(enc_t) + A16(enc_h);
    if (F + A16(dec_t) + A16(dec_cat) > scr)
        scr = F + A16(dec_t) + A16(dec_cat);
    if (SP + A16(cd_scr) > scr)
        scr = SP + A16(cd_scr);
    if (last_scr > scr)
        scr = last_scr;
    float *scratch = buf(p, (size_t)scr);
    float *src[3] = {0}, *srcpos[3] = {0};
    for (int i = 0; i < 4 && scratch; i++)
        feat[i] = scratch + foff[i];
    for (int l = 0; l < c->scales && scratch; l++) {
        src[l] = scratch + soff[l];
        srcpos[l] = src[l] + A16(px[2 - l] * hid);
    }
    cd_bufs B;
    B.out = scratch ? buf(p, (size_t)Q * hid) : NULL;
    B.qin = B.out ? buf(p, (size_t)Q * hid) : NULL;
    B.qm = B.qin ? buf(p, (size_t)Q * hid) : NULL;
    B.att = B.qm ? buf(p, (size_t)Q * hid) : NULL;
    B.fh = B.att ? buf(p, (size_t)Q * c->ffn) : NULL;
    float *dn = B.fh ? buf(p, (size_t)Q * hid) : NULL;
    float *e1 = dn ? buf(p, (size_t)Q * hid) : NULL;
    float *e2 = e1 ? buf(p, (size_t)Q * hid) : NULL;
    float *ce = e2 ? buf(p, (size_t)Q * e) : NULL;
    float *mm2 = ce ? buf(p, (size_t)2 * e) : NULL;
    float *g = mm2 ? buf(p, (size_t)px[0] * 32) : NULL;
    if (!g)
        goto fail;

    /* ---- encoder steps */
    float *X[4], *T = scratch + 2 * F, *HB = T + A16(enc_t);
    for (int i = 0; i < 4; i++)
        X[i] = scratch + F + foff[i];
    if ((rc = op(p, (op_arg){.kind = OP_NORMALIZE, .out = xin, .i0 = S})))
        goto fail;
    dd_conv_shape stem = {3, S, S, c->dims[0], 4, 4, 4, 0, 0, 0, 0, 1};
    if ((rc = conv(m, p, &stem, xin, m->stem_w, m->stem_b, X[0], NULL)) ||
        (rc = layernorm(m, p, px[0], c->dims[0], X[0], X[0], &m->stem_ln, 1e-6f)))
        goto fail;
    tick(p);
    for (int i = 0; i < 4; i++) {
        int d = c->dims[i];
        if (i > 0) {
            dd_conv_shape ds = {c->dims[i - 1], hs[i - 1], hs[i - 1], d, 2, 2, 2, 0, 0, 0, 0, 1};
            if ((rc = layernorm(m, p, px[i - 1], c->dims[i - 1], X[i - 1], T, &m->ds_ln[i], 1e-6f)) ||
                (rc = conv(m, p, &ds, T, m->ds_w[i], m->ds_b[i], X[i], NULL)))
                goto fail;
        }
        for (int j = 0; j < c->depths[i]; j++) {
            const block_w *k = &m->blocks[i][j];
            dd_conv_shape dw = {d, hs[i], hs[i], d, 7, 7, 1, 3, 3, 3, 3, d};
            if ((rc = conv(m, p, &dw, X[i], k->dw_w, k->dw_b, T, NULL)) ||
                (rc = layernorm(m, p, px[i], d, T, T, &k->norm, 1e-6f)))
                goto fail;
            for (int64_t r0 = 0; r0 < px[i]; r0 += chunk[i]) {
                int64_t rows = px[i] - r0 < chunk[i] ? px[i] - r0 : chunk[i];
                dd_post po2 = {2, {{DD_PO_MULVEC, 0, k->gamma}, {DD_PO_SUM, 0, NULL}}};
                if ((rc = linear(m, p, &k->pw1, T + r0 * d, rows, HB, &PO_GELU)) ||
                    (rc = linear(m, p, &k->pw2, HB, rows, X[i] + r0 * d, &po2)))
                    goto fail;
            }
            tick(p);
        }
        if ((rc = layernorm(m, p, px[i], d, X[i], feat[i], &m->feat_ln[i], 1e-6f)))
            goto fail;
    }

    /* ---- pixel decoder */
    const float *din = feat[3];
    for (int k = 0; k < 3; k++) {
        const unet_w *u = &m->dec[k];
        int h = hs[3 - k];
        float *DT = scratch + F, *CAT = DT + A16(dec_t);
        lin_w sl = {u->shuf_w, NULL, 4 * u->n, u->cin};
        dd_conv_shape c3 = {u->n + u->cs, 2 * h, 2 * h, u->n, 3, 3, 1, 1, 1, 1, 1, 1};
        dd_post pos = {3, {{DD_PO_MULVEC, 0, u->shuf_a}, {DD_PO_ADDVEC, 0, u->shuf_b}, {DD_PO_RELU, 0, NULL}}};
        dd_post po = {4, {{DD_PO_SCALE, u->conv_inv_sigma, NULL}, {DD_PO_RELU, 0, NULL},
                          {DD_PO_MULVEC, 0, u->bn_a}, {DD_PO_ADDVEC, 0, u->bn_b}}};
        if ((rc = linear(m, p, &sl, din, (int64_t)h * h, DT, &pos)) ||
            (rc = op(p, (op_arg){.kind = OP_SHUFBLUR, .a = DT, .out = CAT, .i0 = h, .i1 = 2, .i2 = u->n,
                                 .i3 = u->n + u->cs})) ||
            (rc = op(p, (op_arg){.kind = OP_AFFRELU, .a = feat[2 - k], .b = u->skip_a, .c = u->skip_b,
                                 .out = CAT + u->n, .n = px[2 - k], .i0 = u->cs, .i1 = u->n + u->cs})) ||
            (rc = conv(m, p, &c3, CAT, u->conv_w, NULL, dout[k], &po)))
            goto fail;
        tick(p);
        din = dout[k];
    }

    /* ---- colour decoder */
    for (int l = 0; l < c->scales; l++) {
        int64_t n = px[2 - l];
        dd_post le = {1, {{DD_PO_ADDVEC, 0, m->level_embed + l * hid}}};
        if ((rc = linear(m, p, &m->proj[l], dout[l], n, src[l], &le)))
            goto fail;
        if ((rc = op(p, (op_arg){.kind = OP_POS, .a = src[l], .out = srcpos[l], .i0 = hs[2 - l], .i1 = (int)hid})))
            goto fail;
    }
    B.km = scratch + SP;
    B.vm = B.km + A16(kvn);
    B.sc = B.vm + A16(kvn);
    if ((rc = op(p, (op_arg){.kind = OP_COPY, .a = m->query_feat, .out = B.out, .n = Q * hid})))
        goto fail;
    for (int i = 0; i < c->layers; i++) {
        const layer_w *L = &m->layers[i];
        int l = i % c->scales;
        if ((rc = op(p, (op_arg){.kind = OP_ADD, .a = B.out, .b = m->query_embed, .out = B.qin, .n = Q * hid})) ||
            (rc = attention(m, p, &L->cross, B.qin, srcpos[l], src[l], px[2 - l], &B)) ||
            (rc = op(p, (op_arg){.kind = OP_ADD, .a = B.out, .b = m->query_embed, .out = B.qin, .n = Q * hid})) ||
            (rc = attention(m, p, &L->self, B.qin, B.qin, B.out, Q, &B)) ||
            (rc = linear(m, p, &L->ffn1, B.out, Q, B.fh, &PO_RELU)) ||
            (rc = linear(m, p, &L->ffn2, B.fh, Q, B.out, &PO_SUM)) ||
            (rc = layernorm(m, p, Q, hid, B.out, B.out, &L->ffn_norm, 1e-5f)))
            goto fail;
        tick(p);
    }
    if ((rc = layernorm(m, p, Q, hid, B.out, dn, &m->dec_norm, 1e-5f)) ||
        (rc = linear(m, p, &m->ce[0], dn, Q, e1, &PO_RELU)) ||
        (rc = linear(m, p, &m->ce[1], e1, Q, e2, &PO_RELU)) ||
        (rc = linear(m, p, &m->ce[2], e2, Q, ce, &PO_NONE)) ||
        (rc = op(p, (op_arg){.kind = OP_FOLDREF, .a = m->ref_w, .b = ce, .out = mm2, .i0 = (int)Q, .i1 = e})))
        goto fail;

    /* ---- last shuffle conv, refine, blur: tile by rows of the stride-4 map */
    lin_w ls = {m->ls_w, NULL, 16 * e, e};
    dd_post lpo = {3, {{DD_PO_SCALE, m->ls_inv_sigma, NULL}, {DD_PO_ADDVEC, 0, m->ls_b}, {DD_PO_RELU, 0, NULL}}};
    for (int r0 = 0; r0 < w2; r0 += trows) {
        int rows = w2 - r0 < trows ? w2 - r0 : trows;
        int64_t np = (int64_t)rows * w2;
        if ((rc = linear(m, p, &ls, dout[2] + (int64_t)r0 * w2 * e, np, scratch, &lpo)) ||
            (rc = op(p, (op_arg){.kind = OP_REDUCE, .a = scratch, .b = mm2, .out = g + (int64_t)r0 * w2 * 32,
                                 .n = np, .i0 = e})))
            goto fail;
    }
    if ((rc = op(p, (op_arg){.kind = OP_FINAL, .a = g, .b = xin, .c = m->ref_w, .d = m->ref_b, .i0 = w2,
                             .i1 = (int)Q})))
        goto fail;
    tick(p);

    /* One scratchpad for all primitives: they run one at a time. */
    size_t sp = 0;
    for (int i = 0; i < p->nsteps; i++)
        if (p->steps[i].prim.scratch_bytes > sp)
            sp = p->steps[i].prim.scratch_bytes;
    if (sp) {
        float *spbuf = buf(p, (sp + sizeof(float) - 1) / sizeof(float));
        if (!spbuf)
            goto fail;
        for (int i = 0; i < p->nsteps; i++)
            if (p->steps[i].prim.prim && (rc = dd_prim_set_scratchpad(&m->eng, &p->steps[i].prim, spbuf)))
                goto fail;
    }
    *out = p;
    return 0;
fail:
    if (!rc)
        rc = PM_ENOMEM;
    plan_free(p);
    return rc;
}

/* -------------------------------------------------------- execution */

static void fold_refine(const float *w, const float *ce, int q, int e, float *out)
{
    /* out[k][j] = sum_i w[k][i] * ce[i][j] over the q query maps; w is 2 x (q+3). */
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < e; j++) {
            double s = 0;
            for (int i = 0; i < q; i++)
                s += (double)w[k * (q + 3) + i] * ce[(size_t)i * e + j];
            out[k * e + j] = (float)s;
        }
}

static void run_op(const pm_ddcolor *m, const dd_plan *p, const op_arg *o)
{
    switch (o->kind) {
    case OP_NORMALIZE:
        dd_normalize_input(p->io_rgb, o->i0, m->mean, m->std, o->out);
        break;
    case OP_SHUFBLUR:
        dd_shuffle_blur(o->a, o->i0, o->i0, o->i1, o->i2, o->out, o->i3);
        break;
    case OP_AFFRELU:
        dd_affine_relu(o->a, o->n, o->i0, o->b, o->c, o->out, o->i1);
        break;
    case OP_ADD:
        dd_add(o->a, o->b, o->out, o->n);
        break;
    case OP_POS:
        dd_add_sine_pos(o->a, o->i0, o->i0, o->i1, o->out);
        break;
    case OP_COPY:
        memcpy(o->out, o->a, (size_t)o->n * sizeof(float));
        break;
    case OP_FOLDREF:
        fold_refine(o->a, o->b, o->i0, o->i1, o->out);
        break;
    case OP_REDUCE:
        dd_reduce2(o->a, o->n, o->i0, 16, o->b, o->out);
        break;
    case OP_FINAL: {
        float wx[6];
        for (int k = 0; k < 2; k++)
            for (int j = 0; j < 3; j++)
                wx[k * 3 + j] = o->c[k * (o->i1 + 3) + o->i1 + j];
        dd_final_ab(o->a, o->i0, o->i0, 4, o->b, wx, o->d, p->io_ab);
        break;
    }
    }
}

int pm_ddcolor_predict(pm_ddcolor *m, const float *rgb, int size, float *ab, const pm_run_ctx *ctx)
{
    if (size < 32 || size % 32)
        return pm_errorf(PM_EINVAL, "DDColor input size %d is not a multiple of 32 (use 512, or e.g. 256, 1024)",
                         size);
    pthread_mutex_lock(&m->lock);
    int rc = 0;
    dd_set_threads(m->threads);
    if (!m->plan || m->plan->size != size) {
        if (m->plan)
            plan_free(m->plan);
        m->plan = NULL;
        rc = plan_build(m, size, &m->plan);
        publish_plan(m);
        if (rc)
            goto unlock;
    }
    dd_plan *p = m->plan;
    p->io_rgb = rgb;
    p->io_ab = ab;
    int done = 0, cur = m->threads;
    dd_set_threads(cur);
    for (int i = 0; i < p->nsteps; i++) {
        const dd_step *s = &p->steps[i];
        if (s->nthr != cur)
            dd_set_threads(cur = s->nthr);
        if (s->prim.prim) {
            if ((rc = dd_prim_run(&m->eng, &s->prim)))
                goto unlock;
        } else {
            run_op(m, p, &s->op);
        }
        if (s->tick) {
            done++;
            if (ctx && ctx->progress && ctx->progress(ctx->progress_user, done, p->ticks)) {
                rc = pm_errorf(PM_ECANCELLED, "colorization cancelled after step %d of %d", done, p->ticks);
                goto unlock;
            }
        }
    }
unlock:
    dd_set_threads(m->threads);
    pthread_mutex_unlock(&m->lock);
    return rc;
}

void pm_ddcolor_trim(pm_ddcolor *m)
{
    pthread_mutex_lock(&m->lock);
    if (m->plan)
        plan_free(m->plan);
    m->plan = NULL;
    publish_plan(m);
    pthread_mutex_unlock(&m->lock);
}

uint64_t pm_ddcolor_workspace_bytes(const pm_ddcolor *m, int size)
{
    pm_ddcolor *mm = (pm_ddcolor *)m; /* the leaf lock only; nothing else changes */
    pthread_mutex_lock(&mm->plan_lock);
    uint64_t planned = m->plan_size == size ? m->plan_bytes : 0;
    pthread_mutex_unlock(&mm->plan_lock);
    if (planned)
        return planned;
    /* Estimate: the buffers plan_build allocates (without alignment padding),
     * plus the reordered convolution weights. */
    const pm_ddcolor_config *c = &m->cfg;
    int64_t px[4], S = size, Q = c->queries, hid = c->hidden;
    for (int i = 0; i < 4; i++)
        px[i] = (S >> (2 + i)) * (S >> (2 + i));
    int64_t F = 0, t = 0, hb = 0;
    for (int i = 0; i < 4; i++) {
        F += px[i] * c->dims[i];
        if (px[i] * c->dims[i] > t)
            t = px[i] * c->dims[i];
        int64_t ch = ((int64_t)1 << 21) / (4 * c->dims[i]);
        ch = ch < 1024 ? 1024 : ch;
        ch = ch < px[i] ? ch : px[i];
        if (ch * 4 * c->dims[i] > hb)
            hb = ch * 4 * c->dims[i];
    }
    int64_t f = S * S * 3, dec = 0;
    for (int k = 0; k < 3; k++) {
        f += px[2 - k] * m->dec[k].n;
        int64_t v = px[3 - k] * 4 * m->dec[k].n + px[2 - k] * (m->dec[k].n + m->dec[k].cs);
        if (v > dec)
            dec = v;
    }
    int64_t SP = 0, kvn = Q * hid, scn = 0;
    for (int l = 0; l < c->scales; l++) {
        SP += 2 * px[2 - l] * hid;
        int64_t kv = px[2 - l] > PER_HEAD_KEYS ? px[2 - l] * (hid / c->heads) : px[2 - l] * hid;
        kvn = kv > kvn ? kv : kvn;
        int64_t v = c->heads * Q * px[2 - l] <= SMALL_SCORES ? c->heads * Q * px[2 - l] : Q * px[2 - l];
        scn = v > scn ? v : scn;
    }
    int64_t scr = 2 * F + t + hb;
    if (F + dec > scr)
        scr = F + dec;
    if (SP + 2 * kvn + scn > scr)
        scr = SP + 2 * kvn + scn;
    int64_t last = (int64_t)(2048 / (S / 4) < 1 ? 1 : 2048 / (S / 4)) * (S / 4) * 16 * c->embed;
    if (last > scr)
        scr = last;
    f += scr + px[0] * 32 + Q * (7 * hid + c->ffn + c->embed) + 2 * c->embed;
    int64_t convw = (int64_t)c->dims[0] * 48;
    for (int i = 0; i < 4; i++) {
        convw += (int64_t)c->depths[i] * c->dims[i] * 49;
        if (i > 0)
            convw += (int64_t)c->dims[i] * c->dims[i - 1] * 4;
    }
    for (int k = 0; k < 3; k++)
        convw += (int64_t)m->dec[k].n * (m->dec[k].n + m->dec[k].cs) * 9;
    return (uint64_t)(f + convw) * sizeof(float);
}

/* ------------------------------------------------------- registry */

static int desc_load(const char *path, const pm_model_opts *opts, void **state)
{
    pm_ddcolor *m;
    int rc = pm_ddcolor_load(path, opts, &m);
    *state = rc ? NULL : m;
    return rc;
}

static void desc_unload(void *state)
{
    pm_ddcolor_free(state);
}

static int desc_colorize(void *state, const float *rgb, int size, float *ab, const pm_run_ctx *ctx)
{
    return pm_ddcolor_predict(state, rgb, size, ab, ctx);
}

/* Calibrated with bench/ddcolor (run_bench.py --mem-law, DDColor-L at 512,
 * images of 0.26 to 12 MP): a run's RSS peak over the warm model was
 * 194 MiB + 3.08 bytes/pixel, of which the plan and the pipeline's buffers
 * (pm_malloc) were 184 MiB + 3 bytes/pixel; the rest, at most 11 MiB, is
 * oneDNN's kernels and thread stacks: 32 MiB are allowed. The first run of a
 * loaded model also lays its weights out for oneDNN (the checkpoint's pages
 * were released at load): measured with `pixmend calibrate`, a fresh model's
 * run peaked at 319-345 MiB (tiny) and 983-1005 MiB (L) over the loaded
 * state. Admission must cover that first run, so the weights are counted;
 * later runs need less. */
static uint64_t desc_mem(const void *state, int w, int h, int input_size)
{
    const pm_ddcolor *m = state;
    uint64_t S = (uint64_t)(input_size > 0 ? input_size : PM_DDCOLOR_SIZE_DEFAULT);
    uint64_t pipe = S * S * 9 * sizeof(float) + (uint64_t)(w + h) * 64;
    uint64_t a = pm_ddcolor_workspace_bytes(m, (int)S) + pipe + (32u << 20) + pm_ddcolor_weight_bytes(m);
    uint64_t b = 4; /* the output image (3 or 4 bytes a pixel) */
    return a + b * (uint64_t)w * (uint64_t)h;
}

const pm_model_desc pm_model_ddcolor = {
    .name = "ddcolor",
    .task = PM_TASK_COLORIZE,
    .needs_file = 1,
    .load = desc_load,
    .unload = desc_unload,
    .inpaint = NULL,
    .colorize = desc_colorize,
    .mem_estimate = desc_mem,
};
