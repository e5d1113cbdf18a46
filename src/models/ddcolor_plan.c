/* DDColor's graph on the engine (nn/nn.h): built once per input size, run
 * with the model's input and output callbacks (ddcolor_internal.h). */
#include "models/ddcolor_internal.h"

/* Attention scores of several heads are computed at once up to this many
 * floats. */
#define SMALL_SCORES (4 << 20)
/* Keys and values are projected a group of heads at a time, so that each
 * projection holds at most this many floats (at input 512: 2 of the 8 heads
 * for the 16384 keys of the largest scale, all 8 for the others). */
#define KV_FLOATS (1 << 20)
/* Pixels per tile of the last shuffle conv (16 x embed floats each). */
#define LAST_TILE 1024

/* The graph being built. */
typedef struct gb {
    pm_ddcolor *m;
    pm_nn_plan *p;
    int tick;
} gb;

static const pm_nn_post PO_RELU = {1, {{PM_NN_PO_RELU, 0, NULL}}};
static const pm_nn_post PO_GELU = {1, {{PM_NN_PO_GELU, 0, NULL}}};
static const pm_nn_post PO_SUM = {1, {{PM_NN_PO_SUM, 0, NULL}}};

/* A rows x cols matrix tensor. */
static pm_nn_t mat(gb *g, int64_t rows, int64_t cols, pm_nn_dt dt)
{
    return pm_nn_new(g->p, (int)cols, 1, (int)rows, dt);
}

static pm_nn_mat of(gb *g, pm_nn_t t)
{
    return pm_nn_mat_of(g->p, t);
}

/* Rows [r0, r0 + n) of m. */
static pm_nn_mat rows(pm_nn_mat m, int64_t r0, int64_t n)
{
    m.off += r0 * m.rs;
    m.rows = n;
    return m;
}

/* A strided (stack of) matrix over tensor t. */
static pm_nn_mat sub(pm_nn_t t, int64_t off, int64_t r, int64_t c, int64_t rs, int64_t cs, int64_t nb, int64_t bs)
{
    return (pm_nn_mat){t, NULL, off, r, c, rs, cs, nb, bs};
}

/* y = post(x W^T + b) for a Linear. */
static void linear(gb *g, const char *name, const lin_w *l, pm_nn_mat x, pm_nn_mat y, const pm_nn_post *po)
{
    pm_nn_matmul(g->p, name, x, pm_nn_mat_linear(l->w, l->out, l->in, l->in), l->b, y, po);
}

static void tick(gb *g)
{
    pm_nn_mark(g->p, ++g->tick);
}

/* Heads per key/value projection for nk keys (a divisor of the head count). */
static int64_t kv_heads(const pm_ddcolor_config *c, int64_t nk)
{
    int64_t ng = c->heads;
    while (ng > 1 && (ng * (c->hidden / c->heads) * nk > KV_FLOATS || c->heads % ng))
        ng--;
    return ng;
}

/* out = LN(out + MHA(qsrc, ksrc, vsrc)) with nk keys; with `sine`, the keys
 * are ksrc + its sine positions (made again for each group of heads: never
 * kept between layers). */
static void attention(gb *g, const char *tag, const attn_w *a, pm_nn_t qsrc, pm_nn_t ksrc, int sine, pm_nn_t vsrc,
                      int64_t nk, pm_nn_t out)
{
    const pm_ddcolor_config *c = &g->m->cfg;
    pm_nn_plan *p = g->p;
    int64_t Q = c->queries, hid = c->hidden, hd = hid / c->heads;
    char n[5][40];
    const char *what[5] = {"q", "kv", "scores", "softmax", "values"};
    for (int i = 0; i < 5; i++)
        snprintf(n[i], sizeof n[i], "%s@%s", tag, what[i]);
    pm_nn_post qscale = {1, {{PM_NN_PO_SCALE, 1.0f / sqrtf((float)hd), NULL}}};
    /* cross-attention: queries and keys in the model's type (scores, softmax
     * and values f32: oneDNN's bf16 product of scores by values is slower);
     * self-attention, on 100 f32 queries, all f32 */
    pm_nn_dt dt = ksrc == qsrc ? PM_NN_F32 : g->m->dt;
    pm_nn_t qm = mat(g, Q, hid, PM_NN_F32), att = mat(g, Q, hid, PM_NN_F32);
    linear(g, n[0], &a->q, of(g, qsrc), of(g, qm), &qscale);
    if (dt != PM_NN_F32)
        qm = pm_nn_cast(p, n[0], qm, dt);
    int64_t ng = kv_heads(c, nk), w = ng * hd;
    for (int64_t h0 = 0; h0 < c->heads; h0 += ng) {
        lin_w kh = {a->k.w + h0 * hd * hid, a->k.b + h0 * hd, (int)w, (int)hid};
        lin_w vh = {a->v.w + h0 * hd * hid, a->v.b + h0 * hd, (int)w, (int)hid};
        pm_nn_t km = mat(g, nk, w, dt), vm = mat(g, nk, w, PM_NN_F32), kin = ksrc;
        if (sine) {
            int ch, kh_, kw_;
            pm_nn_shape(p, ksrc, &ch, &kh_, &kw_);
            pm_nn_add_sine_pos(p, "cd@pos", ksrc, kin = pm_nn_new(p, ch, kh_, kw_, g->m->dt));
        }
        linear(g, n[1], &kh, of(g, kin), of(g, km), NULL);
        linear(g, n[1], &vh, of(g, vsrc), of(g, vm), NULL);
        /* the group's heads in one batched product when their scores fit SMALL_SCORES */
        int64_t nb = ng * Q * nk <= SMALL_SCORES ? ng : 1;
        for (int64_t h = 0; h < ng; h += nb) {
            pm_nn_t sc = mat(g, nb * Q, nk, PM_NN_F32);
            pm_nn_mat scm = sub(sc, 0, Q, nk, nk, 1, nb, Q * nk);
            pm_nn_matmul(p, n[2], sub(qm, (h0 + h) * hd, Q, hd, hid, 1, nb, hd), sub(km, h * hd, hd, nk, 1, w, nb, hd),
                         NULL, scm, NULL);
            pm_nn_softmax(p, n[3], of(g, sc));
            pm_nn_matmul(p, n[4], scm, sub(vm, h * hd, nk, hd, w, 1, nb, hd), NULL,
                         sub(att, (h0 + h) * hd, Q, hd, hid, 1, nb, hd), NULL);
        }
    }
    snprintf(n[0], sizeof n[0], "%s@out", tag);
    linear(g, n[0], &a->o, of(g, att), of(g, out), &PO_SUM);
    snprintf(n[0], sizeof n[0], "%s@norm", tag);
    pm_nn_layernorm(p, n[0], out, out, a->norm.w, a->norm.b, 1e-5f);
}

/* The ConvNeXt encoder: the input's normalised features at strides 4..32. */
static void encoder(gb *g, pm_nn_t in, pm_nn_t feat[4])
{
    pm_ddcolor *m = g->m;
    const pm_ddcolor_config *c = &m->cfg;
    pm_nn_plan *p = g->p;
    /* the stem in f32 (3 input channels), the rest in the model's type */
    pm_nn_t x = pm_nn_conv_post(p, "stem@conv", in, &m->stem, NULL, PM_NN_F32);
    pm_nn_layernorm(p, "stem@norm", x, x, m->stem_ln.w, m->stem_ln.b, 1e-6f);
    if (m->dt != PM_NN_F32)
        x = pm_nn_cast(p, "stem@cast", x, m->dt);
    tick(g);
    for (int i = 0; i < 4; i++) {
        int d = c->dims[i], ch, hw;
        char n[4][32];
        for (int k = 0; k < 4; k++)
            snprintf(n[k], sizeof n[k], "s%d@%s", i, (const char *const[]){"dwconv", "norm", "pwconv1", "pwconv2"}[k]);
        if (i > 0)
            x = pm_nn_conv_post(p, "down@conv", pm_nn_layernorm(p, "down@norm", x, -1, m->ds_ln[i].w, m->ds_ln[i].b, 1e-6f),
                                &m->ds[i], NULL, m->dt);
        pm_nn_shape(p, x, &ch, &hw, &hw);
        int64_t px = (int64_t)hw * hw, chunk = ((int64_t)1 << 21) / (4 * d);
        chunk = chunk < 1024 ? 1024 : chunk;
        for (int j = 0; j < c->depths[i]; j++) {
            const block_w *k = &m->blocks[i][j];
            pm_nn_t t = pm_nn_conv_post(p, n[0], x, &k->dw, NULL, m->dt);
            pm_nn_layernorm(p, n[1], t, t, k->norm.w, k->norm.b, 1e-6f);
            /* the 4d-wide hidden layer a chunk of pixels at a time */
            for (int64_t r0 = 0; r0 < px; r0 += chunk) {
                int64_t nr = px - r0 < chunk ? px - r0 : chunk;
                pm_nn_post po2 = {2, {{PM_NN_PO_MUL, 0, k->gamma}, {PM_NN_PO_SUM, 0, NULL}}};
                pm_nn_t hb = mat(g, nr, 4 * d, m->dt);
                linear(g, n[2], &k->pw1, rows(of(g, t), r0, nr), of(g, hb), &PO_GELU);
                linear(g, n[3], &k->pw2, of(g, hb), rows(of(g, x), r0, nr), &po2);
            }
            tick(g);
        }
        feat[i] = pm_nn_layernorm(p, "feat@norm", x, -1, m->feat_ln[i].w, m->feat_ln[i].b, 1e-6f);
    }
}

/* The pixel decoder: its three outputs (strides 16, 8, 4). */
static void pixel_decoder(gb *g, const pm_nn_t feat[4], pm_nn_t dout[3])
{
    pm_ddcolor *m = g->m;
    pm_nn_plan *p = g->p;
    pm_nn_t din = feat[3];
    for (int k = 0; k < 3; k++) {
        const unet_w *u = &m->dec[k];
        int c, h, w;
        pm_nn_shape(p, din, &c, &h, &w);
        lin_w sl = {u->shuf_w, NULL, 4 * u->n, u->cin};
        pm_nn_post pos = {3, {{PM_NN_PO_MUL, 0, u->shuf_a}, {PM_NN_PO_ADD, 0, u->shuf_b}, {PM_NN_PO_RELU, 0, NULL}}};
        pm_nn_post po = {4, {{PM_NN_PO_SCALE, u->conv_inv_sigma, NULL}, {PM_NN_PO_RELU, 0, NULL},
                             {PM_NN_PO_MUL, 0, u->bn_a}, {PM_NN_PO_ADD, 0, u->bn_b}}};
        pm_nn_t t = pm_nn_new(p, 4 * u->n, h, w, m->dt), cat = pm_nn_new(p, u->n + u->cs, 2 * h, 2 * w, m->dt);
        /* the skip input first: the encoder's feature is then freed */
        pm_nn_affine(p, "dec@skip", feat[2 - k], u->skip_a, u->skip_b, 1, pm_nn_channels(p, cat, u->n, u->n + u->cs));
        linear(g, "dec@shuf", &sl, of(g, din), of(g, t), &pos);
        pm_nn_shuffle_blur(p, "dec@shuffle", t, 2, pm_nn_channels(p, cat, 0, u->n));
        dout[k] = din = pm_nn_conv_post(p, "dec@conv", cat, &u->conv, &po, m->dt);
        tick(g);
    }
}

/* The colour decoder: the colour embeddings (queries x embed). */
static pm_nn_t colour_decoder(gb *g, const pm_nn_t dout[3])
{
    pm_ddcolor *m = g->m;
    const pm_ddcolor_config *c = &m->cfg;
    pm_nn_plan *p = g->p;
    int64_t Q = c->queries, hid = c->hidden;
    pm_nn_t src[3];
    int npx[3];
    for (int l = 0; l < c->scales; l++) {
        int ch, h, w;
        pm_nn_shape(p, dout[l], &ch, &h, &w);
        npx[l] = h * w;
        pm_nn_post le = {1, {{PM_NN_PO_ADD, 0, m->level_embed + l * hid}}};
        /* the memory in the model's type: its key and value projections
         * (the largest products of the decoder) then run in it too */
        src[l] = pm_nn_new(p, (int)hid, h, w, m->dt);
        linear(g, "cd@proj", &m->proj[l], of(g, dout[l]), of(g, src[l]), &le);
    }
    pm_nn_t out = mat(g, Q, hid, PM_NN_F32);
    pm_nn_add_const(p, "cd@query", -1, m->query_feat, out);
    for (int i = 0; i < c->layers; i++) {
        const layer_w *L = &m->layers[i];
        int l = i % c->scales;
        pm_nn_t q1 = mat(g, Q, hid, PM_NN_F32), q2 = mat(g, Q, hid, PM_NN_F32), fh = mat(g, Q, c->ffn, PM_NN_F32);
        pm_nn_add_const(p, "cd@qpos", out, m->query_embed, q1);
        attention(g, "cross", &L->cross, q1, src[l], 1, src[l], npx[l], out);
        pm_nn_add_const(p, "cd@qpos", out, m->query_embed, q2);
        attention(g, "self", &L->self, q2, q2, 0, out, Q, out);
        linear(g, "ffn@1", &L->ffn1, of(g, out), of(g, fh), &PO_RELU);
        linear(g, "ffn@2", &L->ffn2, of(g, fh), of(g, out), &PO_SUM);
        pm_nn_layernorm(p, "ffn@norm", out, out, L->ffn_norm.w, L->ffn_norm.b, 1e-5f);
        tick(g);
    }
    pm_nn_t dn = pm_nn_layernorm(p, "cd@norm", out, -1, m->dec_norm.w, m->dec_norm.b, 1e-5f);
    pm_nn_t e1 = mat(g, Q, hid, PM_NN_F32), e2 = mat(g, Q, hid, PM_NN_F32), ce = mat(g, Q, c->embed, PM_NN_F32);
    linear(g, "cd@embed", &m->ce[0], of(g, dn), of(g, e1), &PO_RELU);
    linear(g, "cd@embed", &m->ce[1], of(g, e1), of(g, e2), &PO_RELU);
    linear(g, "cd@embed", &m->ce[2], of(g, e2), of(g, ce), NULL);
    return ce;
}

/* A converted weight's pages go back when they are the checkpoint's. */
static void release_weights(void *ck, const void *data, size_t n)
{
    pm_ckpt_release_bytes(ck, data, n);
}

/* The whole network on an S x S input.
 *
 * Two places compute the reference's result in another order, with the same
 * value up to float rounding:
 *   - BatchNorms are folded (into the 1x1 conv before them, into fused
 *     post-ops after a 3x3 conv, into an affine step on the skip input);
 *   - the refine conv is linear in the einsum's maps, the einsum is linear in
 *     the blurred full-resolution features, and the blur is linear too: so
 *     the refine weights are applied to the colour embeddings first (2 x E),
 *     then to each pixel-shuffle sub-position of the last conv's output, and
 *     the blur is done on those 2 channels. The E-channel full-resolution
 *     features are never materialised. */
static int plan_build(pm_ddcolor *m, int S, pm_nn_plan **out)
{
    const pm_ddcolor_config *c = &m->cfg;
    gb g = {m, NULL, 0};
    int rc = pm_nn_plan_begin(m->ctx, m->threads, &g.p);
    if (rc)
        return rc;
    pm_nn_plan *p = g.p;
    pm_nn_plan_set_layout(p, PM_NN_LAYOUT_NHWC);
    pm_nn_plan_release_constants(p, release_weights, m->ck);
    pm_nn_t in = pm_nn_input(p, 3, S, S, PM_NN_F32), feat[4], dout[3];
    encoder(&g, in, feat);
    pixel_decoder(&g, feat, dout);
    pm_nn_t ce = colour_decoder(&g, dout);
    int64_t Q = c->queries, e = c->embed, w2 = S / 4;
    /* refine weights x colour embeddings: 2 x E */
    pm_nn_t mm2 = mat(&g, 2, e, PM_NN_F32);
    pm_nn_matmul(p, "refine@fold", (pm_nn_mat){-1, m->ref_w, 0, 2, Q, Q + 3, 1, 1, 0}, of(&g, ce), NULL, of(&g, mm2),
                 NULL);
    /* the last shuffle conv by tiles of about LAST_TILE pixels, each reduced to
     * 2 x 16 values per pixel at once */
    lin_w ls = {m->ls_w, NULL, 16 * (int)e, (int)e};
    pm_nn_post lpo = {3, {{PM_NN_PO_SCALE, m->ls_inv_sigma, NULL}, {PM_NN_PO_ADD, 0, m->ls_b}, {PM_NN_PO_RELU, 0, NULL}}};
    pm_nn_t g32 = pm_nn_new(p, 32, (int)w2, (int)w2, PM_NN_F32), ab = pm_nn_new(p, 2, S, S, PM_NN_F32);
    int trows = LAST_TILE / w2 < 1 ? 1 : LAST_TILE / w2 > w2 ? (int)w2 : (int)(LAST_TILE / w2);
    for (int64_t r0 = 0; r0 < w2; r0 += trows) {
        int64_t np = (w2 - r0 < trows ? w2 - r0 : trows) * w2;
        pm_nn_t rt = mat(&g, np, 16 * e, PM_NN_F32);
        linear(&g, "refine@last_shuf", &ls, rows(of(&g, dout[2]), r0 * w2, np), of(&g, rt), &lpo);
        pm_nn_matmul(p, "refine@reduce", sub(mm2, 0, 2, e, e, 1, 1, 0), sub(rt, 0, e, 16, 16, 1, np, 16 * e), NULL,
                     sub(g32, r0 * w2 * 32, 2, 16, 16, 1, np, 32), NULL);
    }
    /* blur of the shuffled 2 channels, plus the refine weights of the input */
    pm_nn_shuffle_blur(p, "refine@blur", g32, 4, ab);
    pm_nn_matmul(p, "refine@input", of(&g, in), pm_nn_mat_linear(m->ref_w + Q, 2, 3, (int)Q + 3), m->ref_b,
                 of(&g, ab), &PO_SUM);
    pm_nn_output(p, ab);
    tick(&g);
    if ((rc = pm_nn_plan_finish(p))) {
        pm_nn_plan_free(p);
        return rc;
    }
    m->ticks = g.tick;
    *out = p;
    return 0;
}

/* -------------------------------------------------------- execution */

typedef struct dd_io {
    const pm_ddcolor *m;
    const float *rgb; /* planar, 3 x S x S */
    float *ab;        /* planar, 2 x S x S */
} dd_io;

/* The input, normalised by the model's mean and std. */
static int fill_input(void *user, const pm_nn_view *v)
{
    const dd_io *io = user;
    size_t plane = (size_t)v->h * v->w;
    for (int y = 0; y < v->h; y++)
        for (int x = 0; x < v->w; x++)
            for (int c = 0; c < 3; c++)
                ((float *)v->data)[pm_nn_view_off(v, c, y, x)] =
                    (io->rgb[c * plane + (size_t)y * v->w + x] - io->m->mean[c]) / io->m->std[c];
    return 0;
}

static int read_ab(void *user, const pm_nn_view *v)
{
    const dd_io *io = user;
    size_t plane = (size_t)v->h * v->w;
    for (int c = 0; c < 2; c++)
        for (int y = 0; y < v->h; y++)
            for (int x = 0; x < v->w; x++)
                io->ab[c * plane + (size_t)y * v->w + x] = ((const float *)v->data)[pm_nn_view_off(v, c, y, x)];
    return 0;
}

/* Replaces the cached plan (called with m->lock held; p is then m's) and
 * sets its size and bytes for pm_ddcolor_workspace_bytes. */
static void set_plan(pm_ddcolor *m, pm_nn_plan *p, int size)
{
    pm_nn_plan_free(m->plan);
    m->plan = p;
    pthread_mutex_lock(&m->plan_lock);
    m->plan_size = p ? size : 0;
    m->plan_bytes = p ? pm_nn_plan_arena_bytes(p) + pm_nn_plan_weight_bytes(p) : 0;
    pthread_mutex_unlock(&m->plan_lock);
}

int pm_ddcolor_predict(pm_ddcolor *m, const float *rgb, int size, float *ab, const pm_run_ctx *ctx)
{
    if (size < 32 || size % 32)
        return pm_errorf(PM_EINVAL, "DDColor input size %d is not a multiple of 32 (use 512, or e.g. 256, 1024)",
                         size);
    pthread_mutex_lock(&m->lock);
    int rc = 0;
    if (!m->plan || m->plan_size != size) {
        pm_nn_plan *p = NULL;
        set_plan(m, NULL, 0); /* the old plan's memory goes before the new one is built */
        rc = plan_build(m, size, &p);
        /* a bf16 plan converted the weights it multiplies: the file's pages
         * are not needed any more */
        if (!rc && m->dt != PM_NN_F32)
            pm_ckpt_release(m->ck, NULL);
        set_plan(m, p, size);
        if (rc)
            goto unlock;
    }
    dd_io io = {m, rgb, ab};
    pm_nn_run_io rio = {fill_input, read_ab, &io, ctx ? ctx->progress : NULL, ctx ? ctx->progress_user : NULL,
                        m->ticks};
    rc = pm_nn_plan_run(m->plan, &rio);
    if (rc == PM_ECANCELLED)
        rc = pm_errorf(PM_ECANCELLED, "colorization cancelled");
unlock:
    pthread_mutex_unlock(&m->lock);
    return rc;
}

void pm_ddcolor_trim(pm_ddcolor *m)
{
    pthread_mutex_lock(&m->lock);
    set_plan(m, NULL, 0);
    pthread_mutex_unlock(&m->lock);
}

double pm_ddcolor_gflop(const pm_ddcolor *m)
{
    pm_ddcolor *mm = (pm_ddcolor *)m;
    pthread_mutex_lock(&mm->lock);
    double g = m->plan ? pm_nn_plan_gflop(m->plan) : 0;
    pthread_mutex_unlock(&mm->lock);
    return g;
}

void pm_ddcolor_profile(pm_ddcolor *m, void *file)
{
    pthread_mutex_lock(&m->lock);
    if (m->plan && file) {
        pm_nn_plan_profile_print(m->plan, file);
        pm_nn_plan_describe(m->plan, file, 0);
    }
    if (m->plan)
        pm_nn_plan_profile(m->plan, file == NULL);
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
    int64_t SP = px[2] * hid, kvn = Q * hid, scn = 0; /* the memory, and one scale's sine positions */
    for (int l = 0; l < c->scales; l++) {
        SP += px[2 - l] * hid;
        int64_t ng = kv_heads(c, px[2 - l]), kv = px[2 - l] * ng * (hid / c->heads);
        kvn = kv > kvn ? kv : kvn;
        int64_t v = ng * Q * px[2 - l] <= SMALL_SCORES ? ng * Q * px[2 - l] : Q * px[2 - l];
        scn = v > scn ? v : scn;
    }
    int64_t scr = 2 * F + t + hb;
    if (F + dec > scr)
        scr = F + dec;
    if (SP + 2 * kvn + scn > scr)
        scr = SP + 2 * kvn + scn;
    int64_t last = (int64_t)(LAST_TILE / (S / 4) < 1 ? 1 : LAST_TILE / (S / 4)) * (S / 4) * 16 * c->embed;
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
