/* The ops of transformer-like models (nn.h): matrix products over views of
 * tensors, layer normalisation, softmax, type casts, channel views, and the
 * element-wise steps (affine, shuffle + blur, constants, sine positions). */
#include "nn/nn_internal.h"

#include "base/base.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------ building */

void pm_nn_plan_release_constants(pm_nn_plan *p, void (*release)(void *user, const void *data, size_t n), void *user)
{
    p->release = release;
    p->release_user = user;
}

pm_nn_mat pm_nn_mat_of(const pm_nn_plan *p, pm_nn_t t)
{
    int c, h, w;
    pm_nn_shape(p, t, &c, &h, &w);
    return (pm_nn_mat){t, NULL, 0, (int64_t)h * w, c, c, 1, 1, 0};
}

pm_nn_mat pm_nn_mat_linear(const float *w, int n, int k, int ld)
{
    return (pm_nn_mat){-1, w, 0, k, n, 1, ld, 1, 0};
}

static int mat_ok(pm_nn_plan *p, const pm_nn_mat *m, const char *name)
{
    if (m->t < 0 ? !m->data : !pm_nn__valid(p, m->t, name))
        return pm_nn__set_err(p, pm_errorf(PM_EINTERNAL, "%s: matrix without data", name)), 0;
    return 1;
}

void pm_nn_matmul(pm_nn_plan *p, const char *name, pm_nn_mat src, pm_nn_mat wei, const float *bias, pm_nn_mat dst,
                  const pm_nn_post *po)
{
    nn_op *o = pm_nn__new_op(p, OP_MATMUL, name);
    if (!o || !mat_ok(p, &src, name) || !mat_ok(p, &wei, name) || !mat_ok(p, &dst, name))
        return;
    int64_t nb = src.batch > wei.batch ? src.batch : wei.batch;
    if (dst.t < 0 || src.cols != wei.rows || src.rows != dst.rows || wei.cols != dst.cols || dst.batch != nb ||
        (src.batch != nb && src.batch != 1) || (wei.batch != nb && wei.batch != 1)) {
        pm_nn__set_err(p, pm_errorf(PM_EINTERNAL, "%s: product of %lldx%lld by %lldx%lld into %lldx%lld", name,
                                    (long long)src.rows, (long long)src.cols, (long long)wei.rows,
                                    (long long)wei.cols, (long long)dst.rows, (long long)dst.cols));
        return;
    }
    o->m[0] = src;
    o->m[1] = wei;
    o->m[2] = dst;
    o->k0 = bias;
    if (po)
        o->post = *po;
}

/* A new op of `kind` from src to dst; dst < 0: a new tensor of src's shape
 * and type dt (dt < 0: src's type). NULL after recording an error. */
static nn_op *unary_op(pm_nn_plan *p, int kind, const char *name, pm_nn_t src, pm_nn_t dst, int dt)
{
    nn_op *o = pm_nn__new_op(p, kind, name);
    if (!o || !pm_nn__valid(p, src, name))
        return NULL;
    dt = dt < 0 ? (int)p->t[src].dt : dt;
    if (dst < 0 && (dst = pm_nn__new_tensor(p, p->t[src].c, p->t[src].h, p->t[src].w, (pm_nn_dt)dt)) < 0)
        return NULL;
    o->src = src;
    o->dst = dst;
    o->out_dt = (pm_nn_dt)dt;
    return o;
}

pm_nn_t pm_nn_layernorm(pm_nn_plan *p, const char *name, pm_nn_t src, pm_nn_t dst, const float *scale,
                        const float *shift, float eps)
{
    nn_op *o = unary_op(p, OP_LNORM, name, src, dst, -1);
    if (!o)
        return -1;
    o->k0 = scale;
    o->k1 = shift;
    o->eps = eps;
    return o->dst;
}

void pm_nn_softmax(pm_nn_plan *p, const char *name, pm_nn_mat m)
{
    nn_op *o = pm_nn__new_op(p, OP_SOFTMAX, name);
    if (o && mat_ok(p, &m, name))
        o->m[0] = m;
}

pm_nn_t pm_nn_cast(pm_nn_plan *p, const char *name, pm_nn_t src, pm_nn_dt dt)
{
    nn_op *o = unary_op(p, OP_CAST, name, src, -1, dt);
    return o ? o->dst : -1;
}

pm_nn_t pm_nn_channels(pm_nn_plan *p, pm_nn_t t, int c0, int c1)
{
    if (p->err || !pm_nn__valid(p, t, "a channel view"))
        return -1;
    nn_tensor s = p->t[t];
    if (c0 < 0 || c1 > s.c || c0 >= c1 || s.parent >= 0)
        return pm_nn__set_err(p, pm_errorf(PM_EINTERNAL, "channel view [%d, %d) of a tensor of %d channels", c0, c1,
                                           s.c));
    int v = pm_nn__new_tensor(p, c1 - c0, s.h, s.w, s.dt);
    if (v < 0)
        return -1;
    p->t[v].parent = t;
    p->t[v].c0 = c0;
    p->t[t].force_nhwc = 1;
    return v;
}

static nn_op *elt_op(pm_nn_plan *p, const char *name, int kind, pm_nn_t src, pm_nn_t dst)
{
    nn_op *o = pm_nn__new_op(p, OP_ELT, name);
    if (!o || (src >= 0 && !pm_nn__valid(p, src, name)) || !pm_nn__valid(p, dst, name))
        return NULL;
    o->elt = kind;
    o->src = src;
    o->dst = dst;
    return o;
}

static int same_shape(pm_nn_plan *p, pm_nn_t a, pm_nn_t b, const char *name)
{
    if (p->t[a].c == p->t[b].c && p->t[a].h == p->t[b].h && p->t[a].w == p->t[b].w)
        return 1;
    pm_nn__set_err(p, pm_errorf(PM_EINTERNAL, "%s: shapes differ", name));
    return 0;
}

void pm_nn_affine(pm_nn_plan *p, const char *name, pm_nn_t src, const float *scale, const float *shift, int relu,
                  pm_nn_t dst)
{
    nn_op *o = elt_op(p, name, ELT_AFFINE, src, dst);
    if (o && same_shape(p, src, dst, name)) {
        o->k0 = scale;
        o->k1 = shift;
        o->flags = relu ? PM_NN_RELU : 0;
    }
}

void pm_nn_shuffle_blur(pm_nn_plan *p, const char *name, pm_nn_t src, int r, pm_nn_t dst)
{
    nn_op *o = elt_op(p, name, ELT_SHUFBLUR, src, dst);
    if (!o)
        return;
    const nn_tensor *s = &p->t[src], *d = &p->t[dst];
    if (r < 1 || s->c != r * r * d->c || d->h != r * s->h || d->w != r * s->w)
        pm_nn__set_err(p, pm_errorf(PM_EINTERNAL, "%s: shuffle by %d of %dx%dx%d into %dx%dx%d", name, r, s->c, s->h,
                                    s->w, d->c, d->h, d->w));
    o->pad = r;
}

void pm_nn_add_const(pm_nn_plan *p, const char *name, pm_nn_t src, const float *k, pm_nn_t dst)
{
    nn_op *o = elt_op(p, name, ELT_ADDCONST, src, dst);
    if (o && (src < 0 || same_shape(p, src, dst, name)))
        o->k0 = k;
}

void pm_nn_add_sine_pos(pm_nn_plan *p, const char *name, pm_nn_t src, pm_nn_t dst)
{
    nn_op *o = elt_op(p, name, ELT_SINEPOS, src, dst);
    if (o && same_shape(p, src, dst, name) && p->t[dst].c % 2)
        pm_nn__set_err(p, pm_errorf(PM_EINTERNAL, "%s: %d channels (an even number)", name, p->t[dst].c));
}

/* ------------------------------------------------------------ lowering */

static size_t esize(pm_nn_dt dt)
{
    return dt == PM_NN_BF16 ? 2 : 4;
}

static int dense_nhwc(const nn_tensor *t)
{
    pm_nn_view v;
    return t->fixed && pm_nn_view_from_md(&v, &t->md) == 0 && v.blk == 1 && (v.sc == 1 || v.c == 1) &&
           v.sw == v.c && v.sh == (ptrdiff_t)v.w * v.c;
}

/* Tensor t in dense nhwc: fixed so when undecided; a reordered copy when
 * it is read (write 0) in another layout. Returns the tensor or -1. */
static int as_nhwc(pm_nn_plan *p, int t, int write, const char *name)
{
    if (pm_nn__resolve(p, t))
        return -1;
    nn_tensor x = p->t[t];
    dnnl_memory_desc_t md;
    dnnl_dims_t dims = {1, x.c, x.h, x.w};
    dnnl_memory_desc_init_by_tag(&md, 4, dims, pm_nn__dnnl_dt(x.dt), dnnl_nhwc);
    if (!x.fixed) {
        pm_nn__fix(p, t, &md);
        return t;
    }
    if (dense_nhwc(&x))
        return t;
    if (write || x.parent >= 0)
        return pm_nn__set_err(p, pm_errorf(PM_EUNSUPPORTED, "%s: a matrix needs a dense nhwc tensor", name));
    char nm[64];
    snprintf(nm, sizeof nm, "%s#in", name);
    return pm_nn__add_reorder(p, nm, t, &md, -1);
}

/* The memory of matrix m as an nd-dimensional (2 or 3) strided description
 * *md of type dt: a view tensor (*tensor) over m.t, or constant data (*mem). */
static int mat_arg(pm_nn_plan *p, const char *name, const pm_nn_mat *m, pm_nn_dt dt, int write, int nd,
                   dnnl_memory_desc_t *md, int *tensor, dnnl_memory_t *mem)
{
    int64_t bs = m->batch > 1 ? m->bs : m->rows * m->rs + m->cols * m->cs;
    dnnl_dims_t d3 = {m->batch, m->rows, m->cols}, s3 = {bs, m->rs, m->cs};
    dnnl_dims_t d2 = {m->rows, m->cols}, s2 = {m->rs, m->cs};
    dnnl_memory_desc_init_by_strides(md, nd, nd == 3 ? d3 : d2, pm_nn__dnnl_dt(dt), nd == 3 ? s3 : s2);
    *tensor = -1;
    *mem = NULL;
    if (m->t < 0) {
        if (!(*mem = pm_nn__fixed_mem(p, md, (void *)(m->data + m->off))))
            return p->err = pm_errorf(PM_ENOMEM, "out of memory for %s", name);
        return 0;
    }
    int t = as_nhwc(p, m->t, write, name);
    if (t < 0)
        return p->err ? p->err : PM_EINTERNAL;
    if (p->t[t].dt != dt)
        return p->err = pm_errorf(PM_EINTERNAL, "%s: operand types differ", name);
    int v = pm_nn__new_tensor(p, 0, 0, 0, dt);
    if (v < 0)
        return p->err;
    p->t[v].parent = t;
    p->t[v].view_off = p->t[t].view_off + (size_t)m->off * esize(dt);
    pm_nn__fix(p, v, md);
    *tensor = v;
    return 0;
}

/* A buffer of `bytes` the plan owns (freed with it); NULL when out of memory. */
static void *plan_alloc(pm_nn_plan *p, size_t bytes)
{
    GROW(p->owned, p->nowned, p->cap_owned, return NULL);
    float *buf = pm_malloc(bytes ? bytes : 4);
    if (buf) {
        p->owned[p->nowned++] = buf;
        p->owned_bytes += bytes;
    }
    return buf;
}

/* A plan-owned copy of constant weights in the format the product wants. */
static dnnl_memory_t own_weights(pm_nn_plan *p, const dnnl_memory_desc_t *from, const float *data,
                                 const dnnl_memory_desc_t *want)
{
    void *buf = plan_alloc(p, dnnl_memory_desc_get_size(want));
    if (!buf || pm_nn__exec_reorder(p->ctx, from, (void *)data, want, buf))
        return NULL;
    if (p->release) /* read once: its owner may give the pages back */
        p->release(p->release_user, data, dnnl_memory_desc_get_size(from));
    return pm_nn__fixed_mem(p, want, buf);
}

/* The step of a primitive from an op description (st: its status): the
 * attribute with `post` (vectors described by vec_md), on one thread when
 * `work` is small. *pd (the caller destroys it) answers queries; the caller
 * adds the arguments and calls step_done. NULL after recording an error. */
static nn_step *desc_step(pm_nn_plan *p, const char *name, const void *desc, dnnl_status_t st, const pm_nn_post *post,
                          const dnnl_memory_desc_t *vec_md, double work, dnnl_primitive_desc_t *pd)
{
    dnnl_primitive_attr_t attr = NULL;
    nn_step *s = NULL;
    int one = work < NN_SMALL_WORK;
    *pd = NULL;
    pm_nn_set_threads(one ? 1 : p->threads);
    if (pm_nn__make_attr(&attr, 0, post, vec_md))
        st = dnnl_out_of_memory;
    if (st == dnnl_success)
        st = dnnl_primitive_desc_create(pd, desc, attr, p->ctx->eng, NULL);
    if (st != dnnl_success)
        pm_nn__set_err(p, pm_nn__dnnl_err(st, "a primitive", name));
    else if (!(s = pm_nn__new_step(p, ST_PRIM, name)) || dnnl_primitive_create(&s->prim, *pd) != dnnl_success) {
        pm_nn__set_err(p, pm_errorf(PM_ENOMEM, "oneDNN could not create the primitive of %s", name));
        s = NULL;
    }
    if (s) {
        s->one_thread = one;
        pm_nn__set_impl(s, *pd);
    }
    pm_nn_set_threads(p->threads);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    return s;
}

int pm_nn__lower_matmul(pm_nn_plan *p, const nn_op *op)
{
    const pm_nn_mat *a = &op->m[0], *b = &op->m[1], *c = &op->m[2];
    int nd = a->batch > 1 || b->batch > 1 ? 3 : 2;
    pm_nn_dt adt = a->t >= 0 ? p->t[a->t].dt : b->t >= 0 ? p->t[b->t].dt : PM_NN_F32;
    pm_nn_dt bdt = b->t >= 0 ? p->t[b->t].dt : adt;
    int own = b->t < 0 && bdt != PM_NN_F32; /* constant weights, converted */
    dnnl_memory_desc_t amd, bmd, cmd, bany, bias_md;
    int at, bt, ct, rc;
    dnnl_memory_t am, bm, cm;
    if ((rc = mat_arg(p, op->name, a, adt, 0, nd, &amd, &at, &am)) ||
        (rc = mat_arg(p, op->name, b, own ? PM_NN_F32 : bdt, 0, nd, &bmd, &bt, &bm)) ||
        (rc = mat_arg(p, op->name, c, p->t[c->t].dt, 1, nd, &cmd, &ct, &cm)))
        return rc;
    dnnl_dims_t vd = {1, 1, c->cols}, vd2 = {1, c->cols}, bd = {b->batch, b->rows, b->cols}, bd2 = {b->rows, b->cols};
    dnnl_memory_desc_init_by_tag(&bias_md, nd, nd == 3 ? vd : vd2, dnnl_f32, nd == 3 ? dnnl_abc : dnnl_ab);
    dnnl_memory_desc_init_by_tag(&bany, nd, nd == 3 ? bd : bd2, pm_nn__dnnl_dt(bdt), dnnl_format_tag_any);
    dnnl_matmul_desc_t md;
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = dnnl_matmul_desc_init(&md, &amd, own ? &bany : &bmd, op->k0 ? &bias_md : NULL, &cmd);
    double flops = 2.0 * (double)c->batch * (double)c->rows * (double)c->cols * (double)a->cols;
    nn_step *s = desc_step(p, op->name, &md, st, &op->post, &bias_md, flops / 2, &pd);
    int n = 0;
    if (s && own &&
        !(bm = own_weights(p, &bmd, b->data + b->off, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0))))
        pm_nn__set_err(p, pm_errorf(PM_ENOMEM, "out of memory for the weights of %s", op->name));
    if (s && !p->err) {
        s->flops = flops;
        pm_nn__arg(p, &n, DNNL_ARG_SRC, at, am);
        pm_nn__arg(p, &n, DNNL_ARG_WEIGHTS, own ? -1 : bt, bm);
        if (op->k0)
            pm_nn__arg(p, &n, DNNL_ARG_BIAS, -1, pm_nn__fixed_mem(p, &bias_md, (void *)op->k0));
        pm_nn__arg(p, &n, DNNL_ARG_DST, ct, cm);
        if ((rc = pm_nn__post_args(p, &p->steps[p->nsteps - 1], &n, &op->post, &bias_md, 0)))
            pm_nn__set_err(p, rc);
    }
    return pm_nn__step_done(p, pd, n);
}

int pm_nn__lower_lnorm(pm_nn_plan *p, const nn_op *op)
{
    nn_tensor x = p->t[op->src];
    pm_nn_mat ms = pm_nn_mat_of(p, op->src), md_ = pm_nn_mat_of(p, op->dst);
    dnnl_memory_desc_t smd, dmd, cmd;
    int st_, dt_, rc;
    dnnl_memory_t sm, dm;
    if ((rc = mat_arg(p, op->name, &ms, x.dt, 0, 2, &smd, &st_, &sm)) ||
        (rc = mat_arg(p, op->name, &md_, p->t[op->dst].dt, 1, 2, &dmd, &dt_, &dm)))
        return rc;
    dnnl_dims_t cd = {x.c};
    dnnl_memory_desc_init_by_tag(&cmd, 1, cd, dnnl_f32, dnnl_a);
    dnnl_layer_normalization_desc_t ld;
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = dnnl_layer_normalization_forward_desc_init(&ld, dnnl_forward_inference, &smd, NULL, op->eps,
                                                                  dnnl_use_scale | dnnl_use_shift);
    int n = 0;
    if (desc_step(p, op->name, &ld, st, NULL, NULL, (double)x.c * x.h * x.w, &pd)) {
        pm_nn__arg(p, &n, DNNL_ARG_SRC, st_, sm);
        pm_nn__arg(p, &n, DNNL_ARG_DST, dt_, dm);
        pm_nn__arg(p, &n, DNNL_ARG_SCALE, -1, pm_nn__fixed_mem(p, &cmd, (void *)op->k0));
        pm_nn__arg(p, &n, DNNL_ARG_SHIFT, -1, pm_nn__fixed_mem(p, &cmd, (void *)op->k1));
    }
    return pm_nn__step_done(p, pd, n);
}

int pm_nn__lower_softmax(pm_nn_plan *p, const nn_op *op)
{
    dnnl_memory_desc_t md;
    int t, rc;
    dnnl_memory_t m;
    if ((rc = mat_arg(p, op->name, &op->m[0], PM_NN_F32, 1, 2, &md, &t, &m)))
        return rc;
    dnnl_softmax_desc_t sd;
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = dnnl_softmax_forward_desc_init(&sd, dnnl_forward_inference, &md, 1);
    int n = 0;
    if (desc_step(p, op->name, &sd, st, NULL, NULL, (double)op->m[0].rows * op->m[0].cols, &pd)) {
        pm_nn__arg(p, &n, DNNL_ARG_SRC, t, NULL);
        pm_nn__arg(p, &n, DNNL_ARG_DST, t, NULL);
    }
    return pm_nn__step_done(p, pd, n);
}

/* Element-wise steps read and write non-blocked layouts (nhwc, nchw, views). */
int pm_nn__lower_elt(pm_nn_plan *p, const nn_op *op)
{
    int src = op->src;
    if (src >= 0) {
        pm_nn__fix_default(p, src);
        pm_nn_view v;
        if (pm_nn_view_from_md(&v, &p->t[src].md) || v.blk != 1)
            src = as_nhwc(p, src, 0, op->name);
        if (src < 0)
            return p->err;
    }
    if (!p->t[op->dst].fixed) {
        dnnl_memory_desc_t md;
        const nn_tensor *d = &p->t[op->dst];
        pm_nn__md_like(&md, src >= 0 && p->t[src].c > 1 ? &p->t[src].md : NULL, d->c, d->h, d->w, d->dt);
        if (src < 0 || p->t[src].c == 1)
            pm_nn__layout_md(p, &md, d->c, d->h, d->w, d->dt);
        pm_nn__fix(p, op->dst, &md);
    }
    pm_nn_view v;
    if (pm_nn_view_from_md(&v, &p->t[op->dst].md) || v.blk != 1)
        return p->err = pm_errorf(PM_EUNSUPPORTED, "%s: output layout not supported", op->name);
    static const char *const names[] = {"affine", "shuffle + blur", "add constant", "sine positions"};
    nn_step *s = pm_nn__new_step(p, ST_ELT, op->name);
    if (!s)
        return p->err = pm_errorf(PM_ENOMEM, "out of memory");
    snprintf(s->impl, sizeof s->impl, "%s", names[op->elt]);
    s->elt = op->elt;
    s->t_src = src;
    s->t_dst = op->dst;
    s->k0 = op->k0;
    s->k1 = op->k1;
    s->flags = op->flags;
    s->pad = op->pad;
    if (op->elt == ELT_SINEPOS) { /* the terms of each row, then of each column */
        const nn_tensor *d = &p->t[op->dst];
        int npf = d->c / 2;
        float *tab = plan_alloc(p, (size_t)(d->h + d->w) * npf * sizeof(float));
        if (!tab)
            return p->err = pm_errorf(PM_ENOMEM, "out of memory for %s", op->name);
        for (int i = 0; i < d->h + d->w; i++) {
            int n = i < d->h ? d->h : d->w, j = i < d->h ? i : i - d->h;
            float pos = (float)(j + 1) / ((float)n + 1e-6f) * (float)(2.0 * M_PI);
            for (int k = 0; k < npf; k++) {
                float a = pos / powf(10000.0f, 2.0f * (float)(k / 2) / (float)npf);
                tab[(size_t)i * npf + k] = k % 2 ? cosf(a) : sinf(a);
            }
        }
        s->k0 = tab;
    }
    return 0;
}

/* ---------------------------------------------------------------- runs */

/* One output row y of an element-wise step. */
static void elt_row(const nn_step *s, const pm_nn_view *vs, const pm_nn_view *vd, int y)
{
    int C = vd->c, W = vd->w;
    for (int x = 0; x < W; x++) {
        ptrdiff_t o = (ptrdiff_t)y * vd->sh + (ptrdiff_t)x * vd->sw, i = (ptrdiff_t)y * vs->sh + (ptrdiff_t)x * vs->sw;
        switch (s->elt) {
        case ELT_AFFINE:
            for (int c = 0; c < C; c++) {
                float v = pm_nn_ld(vs, i + c * vs->sc) * s->k0[c] + s->k1[c];
                pm_nn_st(vd, o + c * vd->sc, (s->flags & PM_NN_RELU) && v < 0.0f ? 0.0f : v);
            }
            break;
        case ELT_ADDCONST: {
            const float *k = s->k0 + ((size_t)y * W + x) * C;
            for (int c = 0; c < C; c++)
                pm_nn_st(vd, o + c * vd->sc, (vs->data ? pm_nn_ld(vs, i + c * vs->sc) : 0.0f) + k[c]);
            break;
        }
        case ELT_SINEPOS: { /* k0: the terms of each row, then of each column */
            int npf = C / 2;
            const float *ty = s->k0 + (size_t)y * npf, *tx = s->k0 + (size_t)(vd->h + x) * npf;
            for (int k = 0; k < npf; k++) {
                pm_nn_st(vd, o + k * vd->sc, pm_nn_ld(vs, i + k * vs->sc) + ty[k]);
                pm_nn_st(vd, o + (npf + k) * vd->sc, pm_nn_ld(vs, i + (npf + k) * vs->sc) + tx[k]);
            }
            break;
        }
        default: { /* ELT_SHUFBLUR */
            int r = s->pad, r2 = r * r;
            int ya = y > 0 ? y - 1 : 0, xa = x > 0 ? x - 1 : 0;
            ptrdiff_t q[4];
            int yy[4] = {ya, ya, y, y}, xx[4] = {xa, x, xa, x};
            for (int j = 0; j < 4; j++)
                q[j] = (ptrdiff_t)(yy[j] / r) * vs->sh + (ptrdiff_t)(xx[j] / r) * vs->sw +
                       (ptrdiff_t)((yy[j] % r) * r + xx[j] % r) * vs->sc;
            for (int c = 0; c < C; c++) {
                ptrdiff_t k = (ptrdiff_t)c * r2 * vs->sc;
                float sum = ((pm_nn_ld(vs, q[0] + k) + pm_nn_ld(vs, q[1] + k)) + pm_nn_ld(vs, q[2] + k)) +
                            pm_nn_ld(vs, q[3] + k);
                pm_nn_st(vd, o + c * vd->sc, sum * 0.25f);
            }
            break;
        }
        }
    }
}

int pm_nn__run_elt(pm_nn_plan *p, nn_step *s, uint8_t *arena)
{
    pm_nn_view vs = {0}, vd;
    int rc = pm_nn_view_from_md(&vd, &p->t[s->t_dst].md);
    if (!rc && s->t_src >= 0)
        rc = pm_nn_view_from_md(&vs, &p->t[s->t_src].md);
    if (rc)
        return rc;
    vd.data = arena + p->t[s->t_dst].off;
    if (s->t_src >= 0)
        vs.data = arena + p->t[s->t_src].off;
    int H = vd.h, nt = (double)vd.c * vd.h * vd.w < NN_SMALL_WORK ? 1 : p->threads;
    PM_OMP_FOR(nt)
    for (int y = 0; y < H; y++)
        elt_row(s, &vs, &vd, y);
    return 0;
}
