/* DDColor's plan: built once per input size (oneDNN primitives and dd_ops
 * steps, every buffer allocated up front), and its run (ddcolor_internal.h). */
#include "models/ddcolor_internal.h"

/* ------------------------------------------------------- plan build */

void pm_dd__plan_free(dd_plan *p)
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
    pm_dd__plan_free(p);
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
            pm_dd__plan_free(m->plan);
        m->plan = NULL;
        rc = plan_build(m, size, &m->plan);
        pm_dd__publish_plan(m);
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
        pm_dd__plan_free(m->plan);
    m->plan = NULL;
    pm_dd__publish_plan(m);
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
