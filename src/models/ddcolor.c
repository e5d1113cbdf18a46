/* DDColor in C (see ddcolor.h and the DDColor section of docs: models.md):
 * its weight namespace (names, shapes, configuration, folding) and the
 * registry entry. The graph is built on the engine in ddcolor_plan.c. */
#include "models/ddcolor_internal.h"

#define DDCOLOR_KEY0 "encoder.arch.norm0.weight" /* the tensor that roots the names */

/* ----------------------------------------------------- weight access */

/* A buffer of n floats the model owns (freed with it); NULL after recording
 * an error. */
static float *alloc_owned(pm_ddcolor *m, size_t n)
{
    float *p = NULL;
    if (m->nowned == m->cowned) {
        int nc = m->cowned ? m->cowned * 2 : 64;
        void **np = pm_realloc(m->owned, (size_t)nc * sizeof *np);
        if (np) {
            m->owned = np;
            m->cowned = nc;
        }
    }
    if (m->nowned == m->cowned || !(p = pm_malloc(n * sizeof(float) + 4))) {
        pm_errorf(PM_ENOMEM, "out of memory (%zu bytes) loading DDColor weights", n * sizeof(float));
        return NULL;
    }
    m->owned[m->nowned++] = p;
    m->owned_bytes += n * sizeof(float);
    return p;
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
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    int rc = pm_ckpt_check(m->ck, name, ndim, shape, &r);
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
    int rc;
    if ((rc = get(m, &w, ndim, shape, "%s.weight_orig", base)) || (rc = get(m, &u, 1, SH(rows), "%s.weight_u", base)) ||
        (rc = get(m, &v, 1, SH(cols), "%s.weight_v", base)))
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
        return pm_errorf(PM_ECHECKPOINT, "checkpoint %s: spectral norm of %s is %g (u . W v); the file is damaged",
                         m->path, base, (double)s);
    *w_out = w;
    *sigma_out = s;
    return 0;
}

/* BatchNorm base.{weight,bias,running_mean,running_var} of n channels as x*a + b. */
static int get_bn(pm_ddcolor *m, float **a, float **b, int n, const char *base)
{
    static const char *const part[4] = {"weight", "bias", "running_mean", "running_var"};
    const float *v[4]; /* gamma, beta, mean, variance */
    int rc = 0;
    for (int i = 0; i < 4 && !rc; i++)
        rc = get(m, &v[i], 1, SH(n), "%s.%s", base, part[i]);
    if (rc)
        return rc;
    if (!(*a = alloc_owned(m, (size_t)n)) || !(*b = alloc_owned(m, (size_t)n)))
        return PM_ENOMEM;
    for (int c = 0; c < n; c++) { /* as PyTorch computes it, in float */
        (*a)[c] = 1.0f / sqrtf(v[3][c] + 1e-5f) * v[0][c];
        (*b)[c] = v[1][c] - v[2][c] * (*a)[c];
    }
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
    const float *w, *b;
    char ob[200];
    int rc = get(m, &w, 2, SH(3 * hid, hid), "%s.in_proj_weight", base);
    if (rc || (rc = get(m, &b, 1, SH(3 * hid), "%s.in_proj_bias", base)))
        return rc;
    lin_w *parts[3] = {&a->q, &a->k, &a->v};
    for (int i = 0; i < 3; i++) {
        parts[i]->w = w + (size_t)i * hid * hid;
        parts[i]->b = b + (size_t)i * hid;
        parts[i]->out = parts[i]->in = hid;
    }
    snprintf(ob, sizeof ob, "%s.out_proj", base);
    return get_lin(m, &a->o, hid, hid, ob);
}

/* Convolution weights [oc][ic/groups][k][k] with the bias, `base`.weight and
 * `base`.bias (or, base NULL, the f32 `w` without a bias), in the engine's
 * format for type dt and a typical input of ref x ref. */
static int conv_w(pm_ddcolor *m, pm_nn_weights *out, const float *w, int ic, int oc, int k, int stride, int pad,
                  int groups, int ref, pm_nn_dt dt, const char *base)
{
    const float *b = NULL;
    int rc = base ? get(m, &w, 4, SH(oc, ic / groups, k, k), "%s.weight", base) : 0;
    if (!rc && base)
        rc = get(m, &b, 1, SH(oc), "%s.bias", base);
    pm_nn_conv_desc d = {.ic = ic, .oc = oc, .kh = k, .kw = k, .stride = stride, .pad_t = pad, .pad_l = pad,
                         .pad_b = pad, .pad_r = pad, .dt = dt, .ref_h = ref, .ref_w = ref, .groups = groups};
    if (!rc && !(rc = pm_nn_weights_init(m->ctx, out, &d, w, b)))
        m->owned_bytes += out->bytes;
    return rc;
}

/* --------------------------------------------------- configuration */

static int need(pm_ddcolor *m, const char *name, int ndim, const pm_tensor_ref **out, const char *what)
{
    const pm_tensor_ref *r = pm_ckpt_find(m->ck, name);
    if (!r)
        return pm_errorf(PM_ECHECKPOINT,
                         "checkpoint %s has no tensor %s (it gives %s); give an official DDColor checkpoint "
                         "(.pth with 'params', or pytorch_model.bin)", m->path, name, what);
    if (r->ndim != ndim)
        return pm_errorf(PM_ECHECKPOINT, "checkpoint %s: tensor %s has %d dimensions; expected %d (it gives %s)",
                         m->path, name, r->ndim, ndim, what);
    *out = r;
    return 0;
}

/* Reads the configuration from tensor names and shapes (the checkpoint is
 * opened rooted at DDCOLOR_KEY0: "module." and the like are taken off). */
static int detect_config(pm_ddcolor *m)
{
    if (!pm_ckpt_find(m->ck, DDCOLOR_KEY0)) {
        int n = pm_ckpt_count(m->ck);
        return pm_errorf(PM_ECHECKPOINT,
                         "%s is not a DDColor checkpoint: it has no tensor %s (it holds %d tensors%s%s); give "
                         "ddcolor_paper.pth, ddcolor_paper_tiny.pth or a DDColor pytorch_model.bin",
                         m->path, DDCOLOR_KEY0, n, n ? ", the first is " : "", n ? pm_ckpt_at(m->ck, 0)->name : "");
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
        snprintf(n, sizeof n, "encoder.arch.stages.%d.", i);
        c->depths[i] = pm_ckpt_count_run(m->ck, n, 0, ".gamma");
        if (c->depths[i] == 0)
            return pm_errorf(PM_ECHECKPOINT, "checkpoint %s has no tensor encoder.arch.stages.%d.0.gamma: encoder "
                             "stage %d has no blocks", m->path, i, i);
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
    c->layers = pm_ckpt_count_run(m->ck, "decoder.color_decoder.transformer_ffn_layers.", 0, ".linear1.weight");
    if (c->layers == 0)
        return pm_errorf(PM_ECHECKPOINT, "checkpoint %s has no tensor decoder.color_decoder.transformer_ffn_layers."
                         "0.linear1.weight: the colour decoder has no layers", m->path);
    if ((rc = need(m, "decoder.color_decoder.transformer_ffn_layers.0.linear1.weight", 2, &r, "the FFN width")))
        return rc;
    c->ffn = (int)r->shape[0];
    return 0;
}

/* ------------------------------------------------------------ load */

/* The name `b` made by printf, for the calls below. */
#define N(...) (snprintf(b, sizeof b, __VA_ARGS__), b)

static int load_weights(pm_ddcolor *m)
{
    const pm_ddcolor_config *c = &m->cfg;
    int rc, ref = PM_DDCOLOR_SIZE_DEFAULT;
    char b[200];
    const float *mean, *std;
    if ((rc = get(m, &mean, 4, SH(1, 3, 1, 1), "mean")) || (rc = get(m, &std, 4, SH(1, 3, 1, 1), "std")))
        return rc;
    memcpy(m->mean, mean, sizeof m->mean);
    memcpy(m->std, std, sizeof m->std);

    /* encoder (the stem in f32: 3 input channels) */
    const char *stem = "encoder.arch.downsample_layers.0";
    if ((rc = conv_w(m, &m->stem, NULL, 3, c->dims[0], 4, 4, 0, 1, ref, PM_NN_F32, N("%s.0", stem))) ||
        (rc = get_ln(m, &m->stem_ln, c->dims[0], N("%s.1", stem))))
        return rc;
    for (int i = 0; i < 4; i++) {
        int d = c->dims[i], dp = i ? c->dims[i - 1] : 0;
        if (i > 0 && ((rc = get_ln(m, &m->ds_ln[i], dp, N("encoder.arch.downsample_layers.%d.0", i))) ||
                      (rc = conv_w(m, &m->ds[i], NULL, dp, d, 2, 2, 0, 1, ref >> (1 + i), m->dt,
                                   N("encoder.arch.downsample_layers.%d.1", i)))))
            return rc;
        if ((rc = get_ln(m, &m->feat_ln[i], d, N("encoder.arch.norm%d", i))))
            return rc;
        if (!(m->blocks[i] = pm_calloc((size_t)c->depths[i], sizeof(block_w))))
            return pm_errorf(PM_ENOMEM, "out of memory loading DDColor");
        for (int j = 0; j < c->depths[i]; j++) {
            block_w *k = &m->blocks[i][j];
            if ((rc = conv_w(m, &k->dw, NULL, d, d, 7, 1, 3, d, ref >> (2 + i), m->dt,
                             N("encoder.arch.stages.%d.%d.dwconv", i, j))) ||
                (rc = get(m, &k->gamma, 1, SH(d), "encoder.arch.stages.%d.%d.gamma", i, j)) ||
                (rc = get_ln(m, &k->norm, d, N("encoder.arch.stages.%d.%d.norm", i, j))) ||
                (rc = get_lin(m, &k->pw1, 4 * d, d, N("encoder.arch.stages.%d.%d.pwconv1", i, j))) ||
                (rc = get_lin(m, &k->pw2, d, 4 * d, N("encoder.arch.stages.%d.%d.pwconv2", i, j))))
                return rc;
        }
    }

    /* pixel decoder */
    for (int k = 0; k < 3; k++) {
        unet_w *u = &m->dec[k];
        u->cin = k == 0 ? c->dims[3] : c->nf;
        u->cs = c->dims[2 - k];
        u->n = k < 2 ? c->nf : c->embed;
        float sigma, conv_sigma;
        const float *cw;
        if ((rc = get_sn(m, &u->shuf_w, &sigma, 4, SH(4 * u->n, u->cin, 1, 1),
                         N("decoder.layers.%d.shuf.conv.0", k))) ||
            (rc = get_bn(m, &u->shuf_a, &u->shuf_b, 4 * u->n, N("decoder.layers.%d.shuf.conv.1", k))) ||
            (rc = get_bn(m, &u->skip_a, &u->skip_b, u->cs, N("decoder.layers.%d.bn", k))) ||
            (rc = get_sn(m, &cw, &conv_sigma, 4, SH(u->n, u->n + u->cs, 3, 3), N("decoder.layers.%d.conv.0", k))) ||
            (rc = conv_w(m, &u->conv, cw, u->n + u->cs, u->n, 3, 1, 1, 1, ref >> (4 - k), m->dt, NULL)) ||
            (rc = get_bn(m, &u->bn_a, &u->bn_b, u->n, N("decoder.layers.%d.conv.2", k))))
            return rc;
        for (int o = 0; o < 4 * u->n; o++)
            u->shuf_a[o] /= sigma;
        u->conv_inv_sigma = 1.0f / conv_sigma;
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
    if (!(m->layers = pm_calloc((size_t)c->layers, sizeof(layer_w))))
        return pm_errorf(PM_ENOMEM, "out of memory loading DDColor");
    for (int i = 0; i < c->layers; i++) {
        layer_w *L = &m->layers[i];
        const char *cd = "decoder.color_decoder.transformer";
        if ((rc = get_attn(m, &L->cross, hid, N("%s_cross_attention_layers.%d.multihead_attn", cd, i))) ||
            (rc = get_ln(m, &L->cross.norm, hid, N("%s_cross_attention_layers.%d.norm", cd, i))) ||
            (rc = get_attn(m, &L->self, hid, N("%s_self_attention_layers.%d.self_attn", cd, i))) ||
            (rc = get_ln(m, &L->self.norm, hid, N("%s_self_attention_layers.%d.norm", cd, i))) ||
            (rc = get_lin(m, &L->ffn1, c->ffn, hid, N("%s_ffn_layers.%d.linear1", cd, i))) ||
            (rc = get_lin(m, &L->ffn2, hid, c->ffn, N("%s_ffn_layers.%d.linear2", cd, i))) ||
            (rc = get_ln(m, &L->ffn_norm, hid, N("%s_ffn_layers.%d.norm", cd, i))))
            return rc;
    }
    for (int i = 0; i < 3; i++)
        if ((rc = get_lin(m, &m->ce[i], i < 2 ? hid : e, hid, N("decoder.color_decoder.color_embed.layers.%d", i))))
            return rc;
    if ((rc = get_ln(m, &m->dec_norm, hid, "decoder.color_decoder.decoder_norm")))
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
#undef N

void pm_ddcolor_free(pm_ddcolor *m)
{
    if (!m)
        return;
    pm_nn_plan_free(m->plan);
    pm_nn_weights_free(&m->stem);
    for (int i = 0; i < 4; i++) {
        pm_nn_weights_free(&m->ds[i]);
        for (int j = 0; m->blocks[i] && j < m->cfg.depths[i]; j++)
            pm_nn_weights_free(&m->blocks[i][j].dw);
    }
    for (int k = 0; k < 3; k++)
        pm_nn_weights_free(&m->dec[k].conv);
    pm_nn_ctx_destroy(m->ctx);
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
    int bf16 = opts && opts->precision == PM_PREC_BF16;
    if (bf16 && !pm_nn_cpu_has_bf16())
        return pm_errorf(PM_EUNSUPPORTED, "this CPU has no native bf16 (avx512_bf16 or AMX); use --precision fp32");
    pm_ddcolor *m = pm_calloc(1, sizeof *m);
    if (!m)
        return pm_errorf(PM_ENOMEM, "out of memory loading DDColor");
    pthread_mutex_init(&m->lock, NULL);
    pthread_mutex_init(&m->plan_lock, NULL);
    snprintf(m->path, sizeof m->path, "%s", path);
    m->threads = opts && opts->threads > 0 ? opts->threads : pm_cpu_count();
    m->dt = bf16 ? PM_NN_BF16 : PM_NN_F32;
    int rc = pm_ckpt_open_rooted(path, NULL, DDCOLOR_KEY0, &m->ck);
    if (rc)
        goto free_model;
    pm_ckpt_set_hint(m->ck, "DDColor");
    if ((rc = detect_config(m)) || (rc = pm_nn_ctx_create(&m->ctx)) || (rc = load_weights(m)))
        goto free_model;
    /* Opening and folding read the whole file; let go of those pages: what a
     * run needs is faulted back in by its first use (from the page cache),
     * weights converted for a plan only while it is built, unused tensors never. */
    pm_ckpt_release(m->ck, NULL);
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
