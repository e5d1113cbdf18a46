/* Plans of oneDNN primitives and custom steps: building, format choice,
 * arena layout by lifetime, runs, per-step profile. */
#include "nn/nn_internal.h"

#include "base/base.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ helpers */

dnnl_data_type_t pm_nn__dnnl_dt(pm_nn_dt dt)
{
    return dt == PM_NN_BF16 ? dnnl_bf16 : dnnl_f32;
}

int pm_nn__dnnl_err(dnnl_status_t s, const char *what, const char *name)
{
    if (s == dnnl_out_of_memory)
        return pm_errorf(PM_ENOMEM, "out of memory creating %s for %s", what, name);
    return pm_errorf(PM_EINTERNAL, "oneDNN could not create %s for %s (status %d)", what, name, (int)s);
}

int pm_nn_view_from_md(pm_nn_view *v, const dnnl_memory_desc_t *md)
{
    memset(v, 0, sizeof *v);
    if (md->ndims != 4 || md->format_kind != dnnl_blocked || md->dims[0] != 1)
        return pm_errorf(PM_EUNSUPPORTED, "tensor layout is not a 4-D blocked layout of batch 1");
    const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
    if (b->inner_nblks > 1 || (b->inner_nblks == 1 && b->inner_idxs[0] != 1))
        return pm_errorf(PM_EUNSUPPORTED, "tensor layout blocks a dimension other than channels");
    if (md->offset0 != 0)
        return pm_errorf(PM_EUNSUPPORTED, "tensor layout has an offset");
    v->dt = md->data_type == dnnl_bf16 ? PM_NN_BF16 : PM_NN_F32;
    if (md->data_type != dnnl_bf16 && md->data_type != dnnl_f32)
        return pm_errorf(PM_EUNSUPPORTED, "tensor type is neither f32 nor bf16");
    v->c = (int)md->dims[1];
    v->h = (int)md->dims[2];
    v->w = (int)md->dims[3];
    v->blk = b->inner_nblks ? (int)b->inner_blks[0] : 1;
    v->sc = (ptrdiff_t)b->strides[1];
    v->sh = (ptrdiff_t)b->strides[2];
    v->sw = (ptrdiff_t)b->strides[3];
    return 0;
}

/* A description of shape c x h x w with the layout family of `like`
 * (nChw{4,8,16}c, nhwc or nchw). */
int pm_nn__md_like(dnnl_memory_desc_t *md, const dnnl_memory_desc_t *like, int c, int h, int w, pm_nn_dt dt)
{
    dnnl_format_tag_t tag = dnnl_nchw;
    pm_nn_view v;
    if (like && pm_nn_view_from_md(&v, like) == 0) {
        if (v.blk == 16)
            tag = dnnl_nChw16c;
        else if (v.blk == 8)
            tag = dnnl_nChw8c;
        else if (v.blk == 4)
            tag = dnnl_nChw4c;
        else if (v.blk == 1 && v.sc == 1 && v.c > 1)
            tag = dnnl_nhwc;
        else
            tag = dnnl_nchw;
    }
    pm_error_clear();
    dnnl_dims_t dims = {1, c, h, w};
    if (dnnl_memory_desc_init_by_tag(md, 4, dims, pm_nn__dnnl_dt(dt), tag) != dnnl_success)
        return pm_errorf(PM_EINTERNAL, "cannot describe a %dx%dx%d tensor", c, h, w);
    return 0;
}

/* ------------------------------------------------------------ context */

int pm_nn_ctx_create(pm_nn_ctx **out)
{
    *out = NULL;
    pm_nn_ctx *c = pm_calloc(1, sizeof *c);
    if (!c)
        return pm_errorf(PM_ENOMEM, "out of memory creating the compute context");
    if (dnnl_engine_create(&c->eng, dnnl_cpu, 0) != dnnl_success) {
        pm_free(c);
        return pm_errorf(PM_EINTERNAL, "oneDNN could not create a CPU engine");
    }
    if (dnnl_stream_create(&c->stream, c->eng, dnnl_stream_default_flags) != dnnl_success) {
        dnnl_engine_destroy(c->eng);
        pm_free(c);
        return pm_errorf(PM_EINTERNAL, "oneDNN could not create a CPU stream");
    }
    *out = c;
    return 0;
}

void pm_nn_ctx_destroy(pm_nn_ctx *c)
{
    if (!c)
        return;
    dnnl_stream_destroy(c->stream);
    dnnl_engine_destroy(c->eng);
    pm_free(c);
}

int pm_nn_cpu_has_bf16(void)
{
    unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
    return (isa & (unsigned)dnnl_cpu_isa_avx512_core_bf16) == (unsigned)dnnl_cpu_isa_avx512_core_bf16;
}

void pm_nn_set_threads(int threads)
{
    if (threads <= 0)
        threads = pm_cpu_count();
#ifdef _OPENMP
    omp_set_num_threads(threads);
#else
    (void)threads;
#endif
}

/* ------------------------------------------------------------ weights */

void pm_nn_fold_bn(float *wt, float *bias, int oc, int ic, int kk_, int transposed,
                   const float *gamma, const float *beta, const float *mean, const float *var,
                   float eps, int add_shift)
{
    size_t kk = (size_t)kk_;
    for (int o = 0; o < oc; o++) {
        float s = gamma[o] / sqrtf(var[o] + eps);
        if (!transposed) {
            float *row = wt + (size_t)o * ic * kk;
            for (size_t i = 0; i < (size_t)ic * kk; i++)
                row[i] *= s;
        } else {
            for (int i = 0; i < ic; i++) {
                float *q = wt + ((size_t)i * oc + o) * kk;
                for (size_t j = 0; j < kk; j++)
                    q[j] *= s;
            }
        }
        if (bias)
            bias[o] = bias[o] * s + (add_shift ? beta[o] - mean[o] * s : 0.0f);
    }
}

/* Initialises the op description of a convolution with the given memory
 * descriptions. */
dnnl_status_t pm_nn__conv_desc(dnnl_convolution_desc_t *cd, const pm_nn_conv_desc *d, dnnl_alg_kind_t alg,
                               const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *wei,
                               const dnnl_memory_desc_t *bias, const dnnl_memory_desc_t *dst)
{
    dnnl_dims_t strides = {d->stride, d->stride};
    dnnl_dims_t pl = {d->pad_t, d->pad_l}, pr = {d->pad_b, d->pad_r};
    if (d->transposed)
        return dnnl_deconvolution_forward_desc_init(cd, dnnl_forward_inference,
                                                    alg == dnnl_convolution_winograd ? dnnl_deconvolution_winograd
                                                                                     : dnnl_deconvolution_direct,
                                                    src, wei, bias, dst, strides, pl, pr);
    return dnnl_convolution_forward_desc_init(cd, dnnl_forward_inference, alg, src, wei, bias, dst, strides, pl, pr);
}

/* The weights of d as oneDNN sees them: [oc][ic][kh][kw], grouped
 * [g][oc/g][ic/g][kh][kw]; `plain` 1: PyTorch's layout, 0: any. */
void pm_nn__wei_md(dnnl_memory_desc_t *md, const pm_nn_conv_desc *d, pm_nn_dt dt, int plain)
{
    int g = d->groups > 1 ? d->groups : 1;
    dnnl_dims_t w4 = {d->oc, d->ic, d->kh, d->kw}, w5 = {g, d->oc / g, d->ic / g, d->kh, d->kw};
    if (g > 1)
        dnnl_memory_desc_init_by_tag(md, 5, w5, pm_nn__dnnl_dt(dt), plain ? dnnl_goihw : dnnl_format_tag_any);
    else
        dnnl_memory_desc_init_by_tag(md, 4, w4, pm_nn__dnnl_dt(dt),
                                     !plain ? dnnl_format_tag_any : d->transposed ? dnnl_iohw : dnnl_oihw);
}

static void out_size(const pm_nn_conv_desc *d, int h, int w, int *oh, int *ow)
{
    if (d->transposed) {
        *oh = (h - 1) * d->stride + d->kh - d->pad_t - d->pad_b;
        *ow = (w - 1) * d->stride + d->kw - d->pad_l - d->pad_r;
    } else {
        *oh = (h + d->pad_t + d->pad_b - d->kh) / d->stride + 1;
        *ow = (w + d->pad_l + d->pad_r - d->kw) / d->stride + 1;
    }
}

int pm_nn__exec_reorder(pm_nn_ctx *ctx, const dnnl_memory_desc_t *smd, void *src, const dnnl_memory_desc_t *dmd,
                        void *dst)
{
    int rc = 0;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t prim = NULL;
    dnnl_memory_t ms = NULL, md = NULL;
    if (dnnl_reorder_primitive_desc_create(&pd, smd, ctx->eng, dmd, ctx->eng, NULL) != dnnl_success ||
        dnnl_primitive_create(&prim, pd) != dnnl_success ||
        dnnl_memory_create(&ms, smd, ctx->eng, src) != dnnl_success ||
        dnnl_memory_create(&md, dmd, ctx->eng, dst) != dnnl_success) {
        rc = pm_errorf(PM_EINTERNAL, "oneDNN could not reorder weights");
        goto release;
    }
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, ms}, {DNNL_ARG_TO, md}};
    if (dnnl_primitive_execute(prim, ctx->stream, 2, args) != dnnl_success ||
        dnnl_stream_wait(ctx->stream) != dnnl_success)
        rc = pm_errorf(PM_EINTERNAL, "oneDNN failed to reorder weights");
release:
    if (ms)
        dnnl_memory_destroy(ms);
    if (md)
        dnnl_memory_destroy(md);
    if (prim)
        dnnl_primitive_destroy(prim);
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    return rc;
}

int pm_nn_weights_init(pm_nn_ctx *ctx, pm_nn_weights *w, const pm_nn_conv_desc *d, const float *plain,
                       const float *bias)
{
    memset(w, 0, sizeof *w);
    w->d = *d;
    int rc = 0;
    dnnl_memory_desc_t src_any, wei_any, bias_md, dst_any, plain_md;
    dnnl_dims_t sdims = {1, d->ic, d->ref_h, d->ref_w};
    int oh, ow;
    out_size(d, d->ref_h, d->ref_w, &oh, &ow);
    dnnl_dims_t ddims = {1, d->oc, oh, ow};
    dnnl_dims_t bdims = {d->oc};
    dnnl_data_type_t dt = pm_nn__dnnl_dt(d->dt);
    if (oh < 1 || ow < 1)
        return pm_errorf(PM_EINVAL, "reference size %dx%d too small for a %dx%d kernel", d->ref_w, d->ref_h, d->kw, d->kh);
    dnnl_memory_desc_init_by_tag(&src_any, 4, sdims, dt, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&dst_any, 4, ddims, dt, dnnl_format_tag_any);
    pm_nn__wei_md(&wei_any, d, d->dt, 0);
    dnnl_memory_desc_init_by_tag(&bias_md, 1, bdims, dnnl_f32, dnnl_x);
    pm_nn__wei_md(&plain_md, d, PM_NN_F32, 1);

    dnnl_convolution_desc_t cd;
    dnnl_primitive_desc_t pd = NULL;
    if (d->winograd && !d->transposed) {
        pm_nn__wei_md(&w->md, d, d->dt, 1);
    } else {
        if (pm_nn__conv_desc(&cd, d, dnnl_convolution_direct, &src_any, &wei_any, bias ? &bias_md : NULL, &dst_any) !=
                dnnl_success ||
            dnnl_primitive_desc_create(&pd, &cd, NULL, ctx->eng, NULL) != dnnl_success)
            return pm_errorf(PM_EINTERNAL, "oneDNN has no %s %dx%d %d->%d for these weights",
                             d->transposed ? "deconvolution" : "convolution", d->kw, d->kh, d->ic, d->oc);
        w->md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        dnnl_primitive_desc_destroy(pd);
    }

    size_t wbytes = dnnl_memory_desc_get_size(&w->md);
    w->data = pm_malloc_aligned(wbytes);
    if (!w->data)
        return pm_errorf(PM_ENOMEM, "out of memory for %zu bytes of weights", wbytes);
    rc = pm_nn__exec_reorder(ctx, &plain_md, (void *)plain, &w->md, w->data);
    if (rc)
        goto free_data;
    w->bytes = wbytes;
    if (bias) {
        w->bias = pm_malloc((size_t)d->oc * sizeof(float));
        if (!w->bias) {
            rc = pm_errorf(PM_ENOMEM, "out of memory for a bias");
            goto free_data;
        }
        memcpy(w->bias, bias, (size_t)d->oc * sizeof(float));
        w->bytes += (size_t)d->oc * sizeof(float);
    }
    return 0;
free_data:
    pm_free_aligned(w->data);
    w->data = NULL;
    return rc;
}

void pm_nn_weights_free(pm_nn_weights *w)
{
    if (!w)
        return;
    pm_free_aligned(w->data);
    pm_free(w->bias);
    memset(w, 0, sizeof *w);
}

/* -------------------------------------------------------------- plans */

int pm_nn__set_err(pm_nn_plan *p, int rc)
{
    if (!p->err)
        p->err = rc;
    return -1;
}

int pm_nn_plan_begin(pm_nn_ctx *ctx, int threads, pm_nn_plan **out)
{
    *out = NULL;
    pm_nn_plan *p = pm_calloc(1, sizeof *p);
    if (!p)
        return pm_errorf(PM_ENOMEM, "out of memory for a plan");
    p->ctx = ctx;
    p->threads = threads > 0 ? threads : pm_cpu_count();
    p->output = -1;
    *out = p;
    return 0;
}

void pm_nn_plan_free(pm_nn_plan *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->nsteps; i++) {
        nn_step *s = &p->steps[i];
        if (s->prim)
            dnnl_primitive_destroy(s->prim);
        pm_nn__free_custom(s);
    }
    for (int i = 0; i < p->nt; i++)
        if (p->t[i].mem)
            dnnl_memory_destroy(p->t[i].mem);
    for (int i = 0; i < p->nwmem; i++)
        dnnl_memory_destroy(p->wmem[i]);
    for (int i = 0; i < p->nowned; i++)
        pm_free(p->owned[i]);
    pm_free(p->owned);
    pm_free(p->wmem);
    pm_free(p->steps);
    pm_free(p->t);
    pm_free(p->ops);
    pm_free(p);
}

int pm_nn__new_tensor(pm_nn_plan *p, int c, int h, int w, pm_nn_dt dt)
{
    GROW(p->t, p->nt, p->cap_t, pm_nn__set_err(p, pm_errorf(PM_ENOMEM, "out of memory building a plan")); return -1);
    nn_tensor *t = &p->t[p->nt];
    memset(t, 0, sizeof *t);
    t->c = c;
    t->h = h;
    t->w = w;
    t->dt = dt;
    t->first = -1;
    t->last = -1;
    t->parent = -1;
    return p->nt++;
}

void pm_nn__fix(pm_nn_plan *p, int t, const dnnl_memory_desc_t *md)
{
    p->t[t].md = *md;
    p->t[t].fixed = 1;
    p->t[t].bytes = dnnl_memory_desc_get_size(md);
}

nn_step *pm_nn__new_step(pm_nn_plan *p, enum nn_step_kind kind, const char *name)
{
    GROW(p->steps, p->nsteps, p->cap_steps, return NULL);
    nn_step *s = &p->steps[p->nsteps++];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->t_src = s->t_dst = s->t_add = s->t_tmp = -1;
    for (int q = 0; q < 4; q++)
        s->t_quad[q] = -1;
    snprintf(s->name, sizeof s->name, "%s", name);
    return s;
}

nn_op *pm_nn__new_op(pm_nn_plan *p, enum nn_op_kind kind, const char *name)
{
    if (p->err)
        return NULL;
    if (p->finished) {
        pm_nn__set_err(p, pm_errorf(PM_EINTERNAL, "plan already finished"));
        return NULL;
    }
    GROW(p->ops, p->nops, p->cap_ops, pm_nn__set_err(p, pm_errorf(PM_ENOMEM, "out of memory building a plan")); return NULL);
    nn_op *o = &p->ops[p->nops++];
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->src = o->dst = o->add = o->b = -1;
    o->scale = 1.0f;
    snprintf(o->name, sizeof o->name, "%s", name ? name : "");
    return o;
}

int pm_nn__valid(pm_nn_plan *p, pm_nn_t t, const char *what)
{
    if (t < 0 || t >= p->nt) {
        pm_nn__set_err(p, pm_errorf(PM_EINTERNAL, "invalid tensor for %s", what));
        return 0;
    }
    return 1;
}

pm_nn_t pm_nn_input(pm_nn_plan *p, int c, int h, int w, pm_nn_dt dt)
{
    if (p->err)
        return -1;
    int t = pm_nn__new_tensor(p, c, h, w, dt);
    if (t >= 0)
        p->t[t].is_input = 1;
    return t;
}

pm_nn_t pm_nn_new(pm_nn_plan *p, int c, int h, int w, pm_nn_dt dt)
{
    if (p->err)
        return -1;
    if (c < 1 || h < 1 || w < 1)
        return pm_nn__set_err(p, pm_errorf(PM_EINTERNAL, "tensor of %dx%dx%d", c, h, w));
    return pm_nn__new_tensor(p, c, h, w, dt);
}

void pm_nn_output(pm_nn_plan *p, pm_nn_t t)
{
    if (p->err || !pm_nn__valid(p, t, "output"))
        return;
    p->t[t].is_output = 1;
    p->output = t;
}

void pm_nn_shape(const pm_nn_plan *p, pm_nn_t t, int *c, int *h, int *w)
{
    if (t < 0 || t >= p->nt) {
        *c = *h = *w = 0;
        return;
    }
    *c = p->t[t].c;
    *h = p->t[t].h;
    *w = p->t[t].w;
}

static pm_nn_t conv_op(pm_nn_plan *p, const char *name, pm_nn_t src, const pm_nn_weights *w, unsigned flags,
                       pm_nn_t dst, pm_nn_dt out_dt, float bias_scale, int pad_over, int pad_t, int pad_b)
{
    nn_op *o = pm_nn__new_op(p, OP_CONV, name);
    if (!o || !pm_nn__valid(p, src, name))
        return -1;
    const nn_tensor *s = &p->t[src];
    if (s->c != w->d.ic)
        return pm_nn__set_err(p, pm_errorf(PM_EINTERNAL, "%s: input has %d channels, weights expect %d", name, s->c,
                                           w->d.ic));
    pm_nn_conv_desc d = w->d;
    if (pad_over) {
        d.pad_t = pad_t;
        d.pad_b = pad_b;
    }
    int oh, ow;
    out_size(&d, s->h, s->w, &oh, &ow);
    if (oh < 1 || ow < 1)
        return pm_nn__set_err(p, pm_errorf(PM_EINVAL, "%s: input %dx%d too small", name, s->w, s->h));
    if (flags & (PM_NN_SUM | PM_NN_INTO)) {
        if (!pm_nn__valid(p, dst, name))
            return -1;
        const nn_tensor *t = &p->t[dst];
        if (t->c != w->d.oc || t->h != oh || t->w != ow)
            return pm_nn__set_err(p, pm_errorf(PM_EINTERNAL, "%s: target is %dx%dx%d, the convolution gives %dx%dx%d",
                                               name, t->c, t->h, t->w, w->d.oc, oh, ow));
    } else {
        dst = pm_nn__new_tensor(p, w->d.oc, oh, ow, out_dt);
        if (dst < 0)
            return -1;
    }
    o->src = src;
    o->w = w;
    o->flags = flags;
    o->dst = dst;
    o->out_dt = (flags & (PM_NN_SUM | PM_NN_INTO)) ? p->t[dst].dt : out_dt;
    o->scale = bias_scale;
    o->pad_over = pad_over;
    o->pad_t = pad_t;
    o->pad_b = pad_b;
    return dst;
}

pm_nn_t pm_nn_conv(pm_nn_plan *p, const char *name, pm_nn_t src, const pm_nn_weights *w, unsigned flags,
                   pm_nn_t dst, pm_nn_dt out_dt, float bias_scale)
{
    return conv_op(p, name, src, w, flags, dst, out_dt, bias_scale, 0, 0, 0);
}

pm_nn_t pm_nn_conv_post(pm_nn_plan *p, const char *name, pm_nn_t src, const pm_nn_weights *w,
                        const pm_nn_post *po, pm_nn_dt out_dt)
{
    pm_nn_t d = conv_op(p, name, src, w, 0, -1, out_dt, 1.0f, 0, 0, 0);
    if (d >= 0 && po)
        p->ops[p->nops - 1].post = *po;
    return d;
}

pm_nn_t pm_nn_conv_pad(pm_nn_plan *p, const char *name, pm_nn_t src, const pm_nn_weights *w, unsigned flags,
                       pm_nn_t dst, pm_nn_dt out_dt, int pad_t, int pad_b)
{
    return conv_op(p, name, src, w, flags, dst, out_dt, 1.0f, 1, pad_t, pad_b);
}

pm_nn_t pm_nn_conv_small(pm_nn_plan *p, const char *name, pm_nn_t src, const pm_nn_small_weights *w,
                         unsigned flags, pm_nn_t dst)
{
    nn_op *o = pm_nn__new_op(p, OP_SMALLCONV, name);
    if (!o || !pm_nn__valid(p, src, name))
        return -1;
    const nn_tensor *s = &p->t[src];
    int oh = s->h - w->k + 1, ow = s->w - w->k + 1;
    if (s->c != w->ic || oh < 1 || ow < 1)
        return pm_nn__set_err(p, pm_errorf(PM_EINTERNAL, "%s: input %dx%dx%d does not fit the weights", name, s->c,
                                           s->h, s->w));
    if (flags & PM_NN_INTO) {
        if (!pm_nn__valid(p, dst, name))
            return -1;
        if (p->t[dst].c != w->oc || p->t[dst].h != oh || p->t[dst].w != ow || p->t[dst].dt != PM_NN_F32)
            return pm_nn__set_err(p, pm_errorf(PM_EINTERNAL, "%s: target has the wrong shape", name));
    } else {
        dst = pm_nn__new_tensor(p, w->oc, oh, ow, PM_NN_F32);
        if (dst < 0)
            return -1;
    }
    o->src = src;
    o->dst = dst;
    o->sw = w;
    o->flags = flags;
    return dst;
}

int pm_nn__root(const pm_nn_plan *p, int t)
{
    while (t >= 0 && p->t[t].parent >= 0)
        t = p->t[t].parent;
    return t;
}

pm_nn_t pm_nn_rows(pm_nn_plan *p, pm_nn_t t, int r0, int r1)
{
    if (p->err || !pm_nn__valid(p, t, "a row view"))
        return -1;
    nn_tensor s = p->t[t];
    if (r0 < 0 || r1 > s.h || r0 >= r1)
        return pm_nn__set_err(p, pm_errorf(PM_EINTERNAL, "row view [%d, %d) of a tensor of %d rows", r0, r1, s.h));
    int v = pm_nn__new_tensor(p, s.c, r1 - r0, s.w, s.dt);
    if (v < 0)
        return -1;
    p->t[v].parent = t;
    p->t[v].row0 = r0;
    p->t[pm_nn__root(p, t)].force_nhwc = 1;
    return v;
}

void pm_nn_reflect_border(pm_nn_plan *p, const char *name, pm_nn_t t, int top, int bottom, int left, int right)
{
    nn_op *o = pm_nn__new_op(p, OP_BORDER, name);
    if (!o || !pm_nn__valid(p, t, name))
        return;
    const nn_tensor *x = &p->t[t];
    if (top < 0 || bottom < 0 || left < 0 || right < 0 || 2 * top >= x->h || 2 * bottom >= x->h ||
        2 * left >= x->w || 2 * right >= x->w) {
        pm_nn__set_err(p, pm_errorf(PM_EINTERNAL, "%s: borders too wide for a %dx%d tensor", name, x->w, x->h));
        return;
    }
    o->dst = t;
    o->border[0] = top;
    o->border[1] = bottom;
    o->border[2] = left;
    o->border[3] = right;
}

static int reflect_index(int i, int n)
{
    return i < 0 ? -i : i >= n ? 2 * n - 2 - i : i;
}

pm_nn_t pm_nn_pad_window(pm_nn_plan *p, const char *name, pm_nn_t src, int src_row0, int full_h, int r0, int r1,
                         int pad_cols)
{
    nn_op *o = pm_nn__new_op(p, OP_PAD, name);
    if (!o || !pm_nn__valid(p, src, name))
        return -1;
    nn_tensor s = p->t[src];
    if (pad_cols < 0 || pad_cols >= s.w || r1 <= r0 || -r0 >= full_h || r1 - 1 >= 2 * full_h - 1)
        return pm_nn__set_err(p,
                              pm_errorf(PM_EINVAL, "%s: padding window does not fit a %dx%d image", name, s.w, full_h));
    for (int r = r0; r < r1; r++) {
        int q = reflect_index(r, full_h) - src_row0;
        if (q < 0 || q >= s.h)
            return pm_nn__set_err(p, pm_errorf(PM_EINTERNAL, "%s: row %d reflects to %d, outside the band [%d, %d)",
                                               name, r, q + src_row0, src_row0, src_row0 + s.h));
    }
    int d = pm_nn__new_tensor(p, s.c, r1 - r0, s.w + 2 * pad_cols, s.dt);
    if (d < 0)
        return -1;
    o->src = src;
    o->dst = d;
    o->pad = pad_cols;
    o->row0 = src_row0;
    o->full_h = full_h;
    o->win0 = r0;
    return d;
}

pm_nn_t pm_nn_pad_reflect(pm_nn_plan *p, const char *name, pm_nn_t src, int pad, pm_nn_t add)
{
    nn_op *o = pm_nn__new_op(p, OP_PAD, name);
    if (!o || !pm_nn__valid(p, src, name))
        return -1;
    nn_tensor s = p->t[src];
    if (pad < 0 || pad >= s.h || pad >= s.w)
        return pm_nn__set_err(p, pm_errorf(PM_EINVAL, "%s: reflect padding %d needs a tensor larger than %dx%d", name,
                                           pad, s.w, s.h));
    if (add >= 0 && (!pm_nn__valid(p, add, name) || p->t[add].c != s.c || p->t[add].h != s.h || p->t[add].w != s.w))
        return pm_nn__set_err(p, pm_errorf(PM_EINTERNAL, "%s: added tensor has the wrong shape", name));
    int d = pm_nn__new_tensor(p, s.c, s.h + 2 * pad, s.w + 2 * pad, s.dt);
    if (d < 0)
        return -1;
    o->src = src;
    o->add = add;
    o->pad = pad;
    o->dst = d;
    o->row0 = 0;
    o->full_h = s.h;
    o->win0 = -pad;
    return d;
}

void pm_nn_add(pm_nn_plan *p, const char *name, pm_nn_t dst, pm_nn_t src)
{
    nn_op *o = pm_nn__new_op(p, OP_ADD, name);
    if (!o || !pm_nn__valid(p, src, name) || !pm_nn__valid(p, dst, name))
        return;
    if (p->t[dst].c != p->t[src].c || p->t[dst].h != p->t[src].h || p->t[dst].w != p->t[src].w) {
        pm_nn__set_err(p, pm_errorf(PM_EINTERNAL, "%s: shapes differ", name));
        return;
    }
    o->dst = dst;
    o->src = src;
}

pm_nn_t pm_nn_concat(pm_nn_plan *p, const char *name, pm_nn_t a, pm_nn_t b)
{
    nn_op *o = pm_nn__new_op(p, OP_CONCAT, name);
    if (!o || !pm_nn__valid(p, a, name) || !pm_nn__valid(p, b, name))
        return -1;
    nn_tensor ta = p->t[a], tb = p->t[b];
    if (ta.h != tb.h || ta.w != tb.w || ta.dt != tb.dt)
        return pm_nn__set_err(p, pm_errorf(PM_EINTERNAL, "%s: concatenated tensors differ in size or type", name));
    int d = pm_nn__new_tensor(p, ta.c + tb.c, ta.h, ta.w, ta.dt);
    if (d < 0)
        return -1;
    o->src = a;
    o->b = b;
    o->dst = d;
    return d;
}

pm_nn_t pm_nn_rfft2(pm_nn_plan *p, const char *name, pm_nn_t src)
{
    nn_op *o = pm_nn__new_op(p, OP_RFFT, name);
    if (!o || !pm_nn__valid(p, src, name))
        return -1;
    nn_tensor s = p->t[src];
    if (s.dt != PM_NN_F32)
        return pm_nn__set_err(p, pm_errorf(PM_EINTERNAL, "%s: FFT input must be f32", name));
    int d = pm_nn__new_tensor(p, 2 * s.c, s.h, s.w / 2 + 1, PM_NN_F32);
    if (d < 0)
        return -1;
    o->src = src;
    o->dst = d;
    return d;
}

pm_nn_t pm_nn_irfft2_add(pm_nn_plan *p, const char *name, pm_nn_t freq, int w, float scale, pm_nn_t add,
                         pm_nn_dt out_dt)
{
    nn_op *o = pm_nn__new_op(p, OP_IRFFT, name);
    if (!o || !pm_nn__valid(p, freq, name) || !pm_nn__valid(p, add, name))
        return -1;
    nn_tensor f = p->t[freq], a = p->t[add];
    if (f.dt != PM_NN_F32 || f.c != 2 * a.c || f.h != a.h || a.w != w || f.w != w / 2 + 1)
        return pm_nn__set_err(p, pm_errorf(PM_EINTERNAL, "%s: spectrum and addend shapes disagree", name));
    int d = pm_nn__new_tensor(p, a.c, a.h, a.w, out_dt);
    if (d < 0)
        return -1;
    o->src = freq;
    o->add = add;
    o->dst = d;
    o->pad = w;
    o->scale = scale;
    o->out_dt = out_dt;
    return d;
}

void pm_nn_plan_set_layout(pm_nn_plan *p, enum pm_nn_layout layout)
{
    p->layout = layout;
}

int pm_nn__layout_md(const pm_nn_plan *p, dnnl_memory_desc_t *md, int c, int h, int w, pm_nn_dt dt)
{
    dnnl_format_tag_t tag = p->layout == PM_NN_LAYOUT_BLOCKED16 ? dnnl_nChw16c
                            : p->layout == PM_NN_LAYOUT_NHWC    ? dnnl_nhwc
                                                                : dnnl_nchw;
    dnnl_dims_t dims = {1, c, h, w};
    if (dnnl_memory_desc_init_by_tag(md, 4, dims, pm_nn__dnnl_dt(dt), tag) != dnnl_success)
        return pm_errorf(PM_EINTERNAL, "cannot describe a %dx%dx%d tensor", c, h, w);
    return 0;
}

pm_nn_t pm_nn_interleave2(pm_nn_plan *p, const char *name, const pm_nn_t t[4], pm_nn_t dst)
{
    nn_op *o = pm_nn__new_op(p, OP_INTERLEAVE, name);
    if (!o)
        return -1;
    for (int i = 0; i < 4; i++) {
        if (!pm_nn__valid(p, t[i], name))
            return -1;
        if (p->t[t[i]].c != p->t[t[0]].c || p->t[t[i]].h != p->t[t[0]].h || p->t[t[i]].w != p->t[t[0]].w ||
            p->t[t[i]].dt != p->t[t[0]].dt)
            return pm_nn__set_err(p, pm_errorf(PM_EINTERNAL, "%s: the four inputs differ in shape", name));
    }
    nn_tensor a = p->t[t[0]];
    int d = dst;
    if (d >= 0) {
        if (!pm_nn__valid(p, d, name))
            return -1;
        if (p->t[d].c != a.c || p->t[d].h != 2 * a.h || p->t[d].w != 2 * a.w || p->t[d].dt != a.dt)
            return pm_nn__set_err(p, pm_errorf(PM_EINTERNAL, "%s: target has the wrong shape", name));
    } else {
        d = pm_nn__new_tensor(p, a.c, 2 * a.h, 2 * a.w, a.dt);
        if (d < 0)
            return -1;
    }
    for (int i = 0; i < 4; i++)
        o->quad[i] = t[i];
    o->dst = d;
    return d;
}

void pm_nn_mark(pm_nn_plan *p, int value)
{
    nn_op *o = pm_nn__new_op(p, OP_MARK, "mark");
    if (o)
        o->value = value;
}

/* --------------------------------------------------------------- runs */

static int tensor_view(pm_nn_plan *p, int t, uint8_t *arena, pm_nn_view *v)
{
    int rc = pm_nn_view_from_md(v, &p->t[t].md);
    if (rc)
        return rc;
    v->data = arena + p->t[t].off;
    return 0;
}

int pm_nn_plan_run(pm_nn_plan *p, const pm_nn_run_io *io)
{
    if (!p->finished)
        return pm_errorf(PM_EINTERNAL, "plan run before it was finished");
    int rc = 0;
    pm_nn_set_threads(p->threads);
    /* The arena is fresh for every run: memory returns to its baseline
     * after a job. (Transparent huge pages for it made no difference here.) */
    uint8_t *arena = pm_malloc_aligned(p->arena_bytes ? p->arena_bytes : 64);
    if (!arena)
        return pm_errorf(PM_ENOMEM, "cannot allocate the %.1f MB work area of this image; try a smaller image",
                         (double)p->arena_bytes / 1e6);
    for (int i = 0; i < p->nt; i++)
        if (p->t[i].mem)
            dnnl_memory_set_data_handle(p->t[i].mem, arena + p->t[i].off);
    for (int i = 0; i < p->nt; i++) {
        nn_tensor *t = &p->t[i];
        if (!t->is_input || !t->mem)
            continue;
        pm_nn_view v;
        if ((rc = tensor_view(p, i, arena, &v)) != 0)
            goto free_arena;
        memset(v.data, 0, t->bytes);
        if (io && io->fill && (rc = io->fill(io->user, &v)) != 0)
            goto free_arena;
    }
    int one = 0;
    for (int i = 0; i < p->nsteps; i++) {
        nn_step *s = &p->steps[i];
        uint64_t t0 = p->profile ? pm_now_ns() : 0;
        switch (s->kind) {
        case ST_PRIM:
            if (s->one_thread != one) /* small ops on one thread */
                pm_nn_set_threads((one = s->one_thread) ? 1 : p->threads);
            if (dnnl_primitive_execute(s->prim, p->ctx->stream, s->nargs, s->exec) != dnnl_success) {
                rc = pm_errorf(PM_EINTERNAL, "oneDNN failed to run %s", s->name);
                goto free_arena;
            }
            if (p->profile)
                dnnl_stream_wait(p->ctx->stream);
            break;
        case ST_MARK:
            dnnl_stream_wait(p->ctx->stream);
            if (io && io->progress && io->progress(io->progress_user, s->value, io->progress_max)) {
                rc = pm_errorf(PM_ECANCELLED, "cancelled");
                goto free_arena;
            }
            break;
        default:
            dnnl_stream_wait(p->ctx->stream);
            if ((rc = pm_nn__run_custom(p, s, arena)) != 0)
                goto free_arena;
            break;
        }
        if (p->profile) {
            s->seconds += (double)(pm_now_ns() - t0) * 1e-9;
            s->calls++;
        }
    }
    dnnl_stream_wait(p->ctx->stream);
    if (one)
        pm_nn_set_threads(p->threads);
    if (io && io->read) {
        pm_nn_view v;
        if ((rc = tensor_view(p, p->output, arena, &v)) != 0)
            goto free_arena;
        rc = io->read(io->user, &v);
    }
free_arena:
    pm_free_aligned(arena);
    return rc;
}

/* ------------------------------------------------------------ profile */

void pm_nn_plan_profile(pm_nn_plan *p, int enable)
{
    p->profile = enable;
    for (int i = 0; i < p->nsteps; i++) {
        p->steps[i].seconds = 0;
        p->steps[i].calls = 0;
    }
}

/* The group of a step name "instance@kind": "block@kind" for residual
 * blocks (instance "bNN..."), the name itself otherwise; without "#..." */
static void group_of(const char *name, char *out, size_t n)
{
    snprintf(out, n, "%s", name);
    out[strcspn(out, "#~")] = 0;
    char *at = strchr(out, '@');
    if (at && out[0] == 'b' && out[1] >= '0' && out[1] <= '9') {
        char kind[40];
        snprintf(kind, sizeof kind, "%.39s", at + 1);
        snprintf(out, n, "block@%.39s", kind);
    }
}

void pm_nn_plan_profile_print(const pm_nn_plan *p, void *file)
{
    FILE *f = file;
    typedef struct { char name[48]; char impl[48]; double sec, flops; long calls; } row;
    row *rows = pm_calloc((size_t)p->nsteps + 1, sizeof *rows);
    if (!rows)
        return;
    int nr = 0;
    double total = 0;
    for (int i = 0; i < p->nsteps; i++) {
        const nn_step *s = &p->steps[i];
        if (s->kind == ST_MARK)
            continue;
        char g[48];
        group_of(s->name, g, sizeof g);
        if (strchr(s->name, '#'))
            snprintf(g + strlen(g), sizeof g - strlen(g), "%s", strchr(s->name, '#'));
        int r = 0;
        while (r < nr && (strcmp(rows[r].name, g) != 0 || strcmp(rows[r].impl, s->impl) != 0))
            r++;
        if (r == nr) {
            snprintf(rows[r].name, sizeof rows[r].name, "%s", g);
            snprintf(rows[r].impl, sizeof rows[r].impl, "%s", s->impl);
            nr++;
        }
        rows[r].sec += s->seconds;
        rows[r].flops += s->flops * (double)s->calls;
        rows[r].calls += s->calls;
        total += s->seconds;
    }
    fprintf(f, "%-28s %-30s %7s %10s %6s %8s\n", "layer", "implementation", "calls", "ms/run", "share", "GFLOP/s");
    long runs = 0;
    for (int i = 0; i < p->nsteps; i++)
        if (p->steps[i].calls > runs)
            runs = p->steps[i].calls;
    if (runs == 0)
        runs = 1;
    for (int r = 0; r < nr; r++) {
        double gf = rows[r].sec > 0 && rows[r].flops > 0 ? rows[r].flops / rows[r].sec / 1e9 : 0;
        fprintf(f, "%-28s %-30s %7ld %10.2f %5.1f%% ", rows[r].name, rows[r].impl, rows[r].calls / runs,
                rows[r].sec * 1e3 / (double)runs, total > 0 ? 100.0 * rows[r].sec / total : 0.0);
        if (gf > 0)
            fprintf(f, "%8.1f\n", gf);
        else
            fprintf(f, "%8s\n", "-");
    }
    fprintf(f, "%-28s %-30s %7s %10.2f\n", "total", "", "", total * 1e3 / (double)runs);
    pm_free(rows);
}

void pm_nn_plan_describe(const pm_nn_plan *p, void *file, int detail)
{
    FILE *f = file;
    for (int i = 0; i < p->nsteps && detail >= 1; i++) {
        const nn_step *s = &p->steps[i];
        if (s->kind == ST_MARK)
            continue;
        fprintf(f, "%4d %-30s %s\n", i, s->name, s->impl);
    }
    fprintf(f, "arena %.1f MB, %d tensors, %d steps\n", (double)p->arena_bytes / 1e6, p->nt, p->nsteps);
    /* the step with the most live bytes, and what is live there */
    int best = 0;
    double most = 0;
    for (int i = 0; i < p->nsteps; i++) {
        double live = 0;
        for (int t = 0; t < p->nt; t++)
            if (p->t[t].first >= 0 && p->t[t].first <= i && i <= p->t[t].last)
                live += (double)p->t[t].bytes;
        if (live > most) {
            most = live;
            best = i;
        }
    }
    if (detail >= 2) {
        for (int i = 0; i < p->nsteps; i++) {
            double live = 0;
            for (int t = 0; t < p->nt; t++)
                if (p->t[t].parent < 0 && p->t[t].first >= 0 && p->t[t].first <= i && i <= p->t[t].last)
                    live += (double)p->t[t].bytes;
            fprintf(f, "live %d %s %.1f\n", i, p->steps[i].name, live / 1e6);
        }
    }
    fprintf(f, "most live: %.1f MB at step %d (%s):", most / 1e6, best, p->nsteps ? p->steps[best].name : "");
    for (int t = 0; t < p->nt; t++)
        if (p->t[t].first >= 0 && p->t[t].first <= best && best <= p->t[t].last && p->t[t].bytes > (1u << 20))
            fprintf(f, " [%dx%dx%d %.1f MB]", p->t[t].c, p->t[t].h, p->t[t].w, (double)p->t[t].bytes / 1e6);
    fprintf(f, "\n");
}
