/* Lowering a graph's ops onto oneDNN primitives and custom steps
 * (see nn_internal.h). */
#include "nn/nn_internal.h"
#include "base/base.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------- lowering */

/* Decides the layout of views (from their parent, which must be nhwc) and
 * of tensors that have views (nhwc). Other tensors are left to producers. */
int pm_nn__resolve(pm_nn_plan *p, int t)
{
    if (t < 0 || p->t[t].fixed)
        return 0;
    nn_tensor x = p->t[t];
    dnnl_memory_desc_t md;
    dnnl_dims_t dims = {1, x.c, x.h, x.w};
    if (x.parent < 0) {
        if (x.force_nhwc) {
            dnnl_memory_desc_init_by_tag(&md, 4, dims, pm_nn__dnnl_dt(x.dt), dnnl_nhwc);
            pm_nn__fix(p, t, &md);
        }
        return 0;
    }
    int rc = pm_nn__resolve(p, x.parent);
    if (rc)
        return rc;
    const nn_tensor *par = &p->t[x.parent];
    pm_nn_view v;
    if (!par->fixed || pm_nn_view_from_md(&v, &par->md) || !(v.blk == 1 && (v.sc == 1 || v.c == 1)))
        return p->err = pm_errorf(PM_EUNSUPPORTED, "a row view needs an nhwc tensor");
    size_t es = x.dt == PM_NN_BF16 ? 2 : 4;
    if (x.c == par->c) {
        dnnl_memory_desc_init_by_tag(&md, 4, dims, pm_nn__dnnl_dt(x.dt), dnnl_nhwc);
    } else { /* channels [c0, c0 + c) of every pixel */
        dnnl_dims_t st = {(dnnl_dim_t)x.h * v.sh, 1, v.sh, v.sw};
        dnnl_memory_desc_init_by_strides(&md, 4, dims, pm_nn__dnnl_dt(x.dt), st);
    }
    size_t off = par->view_off + ((size_t)x.row0 * (size_t)v.sh + (size_t)x.c0) * es;
    pm_nn__fix(p, t, &md);
    p->t[t].view_off = off;
    return 0;
}

static int resolve_op(pm_nn_plan *p, const nn_op *op)
{
    int rc = 0;
    int ids[8] = {op->src, op->dst, op->add, op->b, op->quad[0], op->quad[1], op->quad[2], op->quad[3]};
    for (int i = 0; i < 8 && !rc; i++)
        if (ids[i] >= 0 && (op->kind == OP_INTERLEAVE || i < 4))
            rc = pm_nn__resolve(p, ids[i]);
    return rc;
}

/* Appends argument `kind` to the last step as its argument *n (incremented):
 * tensor `tensor`, or the fixed memory `mem` when tensor < 0. */
void pm_nn__arg(pm_nn_plan *p, int *n, int kind, int tensor, dnnl_memory_t mem)
{
    nn_step *s = &p->steps[p->nsteps - 1];
    s->arg_kind[*n] = kind;
    s->arg_tensor[*n] = tensor;
    s->arg_mem[(*n)++] = mem;
}

/* Gives the last step (the primitive of `pd`) a scratchpad tensor when the
 * primitive wants one, as argument `*n` (incremented). The tensor belongs to
 * the plan's arena. Returns 0, or p->err when the tensor cannot be made. */
int pm_nn__add_scratchpad(pm_nn_plan *p, const_dnnl_primitive_desc_t pd, int *n)
{
    const dnnl_memory_desc_t *sp = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if (!sp || dnnl_memory_desc_get_size(sp) == 0)
        return 0;
    int st = pm_nn__new_tensor(p, 0, 0, 0, PM_NN_F32);
    if (st < 0)
        return p->err;
    pm_nn__fix(p, st, sp);
    pm_nn__arg(p, n, DNNL_ARG_SCRATCHPAD, st, NULL);
    return 0;
}

/* Adds the scratchpad and fixes the argument count n of the last step;
 * destroys pd. Returns p->err. */
int pm_nn__step_done(pm_nn_plan *p, dnnl_primitive_desc_t pd, int n)
{
    if (pd && !p->err && !pm_nn__add_scratchpad(p, pd, &n))
        p->steps[p->nsteps - 1].nargs = n;
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    return p->err;
}

/* A reorder of tensor `src` into tensor `into` (unfixed), or into a new
 * tensor when into < 0, of description `md`. Returns the tensor or -1. */
int pm_nn__add_reorder(pm_nn_plan *p, const char *name, int src, const dnnl_memory_desc_t *md, int into)
{
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_attr_t attr = NULL;
    int d = into >= 0 ? into
                      : pm_nn__new_tensor(p, p->t[src].c, p->t[src].h, p->t[src].w,
                                          md->data_type == dnnl_bf16 ? PM_NN_BF16 : PM_NN_F32);
    if (d < 0)
        return -1;
    pm_nn__fix(p, d, md);
    nn_step *s = NULL;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success ||
        dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) != dnnl_success ||
        dnnl_reorder_primitive_desc_create(&pd, &p->t[src].md, p->ctx->eng, md, p->ctx->eng, attr) != dnnl_success)
        pm_nn__set_err(p, pm_errorf(PM_EINTERNAL, "oneDNN could not create a reorder for %s", name));
    else if (!(s = pm_nn__new_step(p, ST_PRIM, name)) || dnnl_primitive_create(&s->prim, pd) != dnnl_success)
        pm_nn__set_err(p, pm_errorf(PM_ENOMEM, "could not create a reorder for %s", name));
    int n = 0;
    if (s && !p->err) {
        snprintf(s->impl, sizeof s->impl, "reorder");
        pm_nn__arg(p, &n, DNNL_ARG_FROM, src, NULL);
        pm_nn__arg(p, &n, DNNL_ARG_TO, d, NULL);
    }
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    return pm_nn__step_done(p, pd, n) ? -1 : d;
}

dnnl_memory_t pm_nn__fixed_mem(pm_nn_plan *p, const dnnl_memory_desc_t *md, void *data)
{
    dnnl_memory_t m = NULL;
    GROW(p->wmem, p->nwmem, p->cap_wmem, return NULL);
    if (dnnl_memory_create(&m, md, p->ctx->eng, data) != dnnl_success)
        return NULL;
    p->wmem[p->nwmem++] = m;
    return m;
}

static int is_ref(dnnl_primitive_desc_t pd)
{
    const char *impl = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    return impl && strncmp(impl, "ref", 3) == 0;
}

/* The attribute of a primitive: user scratchpad, `flags` (sum, relu,
 * sigmoid) then the list `post` in order (vectors described by vec_md).
 * Caller owns *attr. */
int pm_nn__make_attr(dnnl_primitive_attr_t *attr, unsigned flags, const pm_nn_post *post,
                     const dnnl_memory_desc_t *vec_md)
{
    dnnl_post_ops_t po = NULL;
    *attr = NULL;
    if (dnnl_primitive_attr_create(attr) != dnnl_success || dnnl_post_ops_create(&po) != dnnl_success)
        return PM_ENOMEM;
    dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user);
    dnnl_status_t st = dnnl_success;
    if (flags & PM_NN_SUM)
        st = dnnl_post_ops_append_sum(po, 1.0f);
    if (flags & PM_NN_RELU)
        st = dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f);
    if (flags & PM_NN_SIGMOID)
        st = dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_logistic, 0.0f, 0.0f);
    static const dnnl_alg_kind_t elt[] = {0, dnnl_eltwise_linear, dnnl_eltwise_relu, dnnl_eltwise_gelu_erf};
    for (int i = 0; post && i < post->n && st == dnnl_success; i++) {
        int k = post->op[i].kind;
        if (k == PM_NN_PO_SUM)
            st = dnnl_post_ops_append_sum(po, 1.0f);
        else if (k == PM_NN_PO_MUL || k == PM_NN_PO_ADD)
            st = dnnl_post_ops_append_binary(po, k == PM_NN_PO_MUL ? dnnl_binary_mul : dnnl_binary_add, vec_md);
        else
            st = dnnl_post_ops_append_eltwise(po, 1.0f, elt[k], k == PM_NN_PO_SCALE ? post->op[i].scale : 0.0f, 0.0f);
    }
    if (st == dnnl_success)
        st = dnnl_primitive_attr_set_post_ops(*attr, po);
    dnnl_post_ops_destroy(po);
    return st == dnnl_success ? 0 : PM_EINTERNAL;
}

int pm_nn__post_args(pm_nn_plan *p, nn_step *s, int *n, const pm_nn_post *post, const dnnl_memory_desc_t *vec_md,
                     int base)
{
    for (int i = 0; post && i < post->n; i++) {
        int k = post->op[i].kind;
        if (k != PM_NN_PO_MUL && k != PM_NN_PO_ADD)
            continue;
        dnnl_memory_t m = pm_nn__fixed_mem(p, vec_md, (void *)post->op[i].vec);
        if (!m || *n >= NN_MAX_ARGS)
            return pm_errorf(PM_ENOMEM, "out of memory for %s", s->name);
        s->arg_kind[*n] = DNNL_ARG_ATTR_MULTIPLE_POST_OP(base + i) | DNNL_ARG_SRC_1;
        s->arg_tensor[*n] = -1;
        s->arg_mem[(*n)++] = m;
    }
    return 0;
}

void pm_nn__set_impl(nn_step *s, const_dnnl_primitive_desc_t pd)
{
    const char *impl = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    snprintf(s->impl, sizeof s->impl, "%s", impl ? impl : "?");
}

/* The convolution's primitive description: Winograd when asked and
 * possible, else the plan's layout where a non-reference implementation
 * takes it, else the formats oneDNN prefers. *pd is owned by the caller. */
static int conv_pd(pm_nn_plan *p, const nn_op *op, const pm_nn_conv_desc *d, dnnl_primitive_attr_t attr,
                   dnnl_convolution_desc_t *cd, dnnl_primitive_desc_t *pd)
{
    int src = op->src, dst = op->dst;
    dnnl_memory_desc_t src_any, wei_any, bias_md, dst_md, src_pref, dst_pref;
    dnnl_dims_t sdims = {1, d->ic, p->t[src].h, p->t[src].w}, ddims = {1, d->oc, p->t[dst].h, p->t[dst].w};
    dnnl_dims_t bdims = {d->oc};
    dnnl_memory_desc_init_by_tag(&src_any, 4, sdims, pm_nn__dnnl_dt(d->dt), dnnl_format_tag_any);
    pm_nn__wei_md(&wei_any, d, d->dt, 0);
    dnnl_memory_desc_init_by_tag(&bias_md, 1, bdims, dnnl_f32, dnnl_x);
    if (p->t[dst].fixed)
        dst_md = p->t[dst].md;
    else
        dnnl_memory_desc_init_by_tag(&dst_md, 4, ddims, pm_nn__dnnl_dt(op->out_dt), dnnl_format_tag_any);
    int prefer = p->layout != PM_NN_LAYOUT_ANY;
    if (prefer) {
        if (p->t[src].fixed)
            src_pref = p->t[src].md;
        else
            pm_nn__layout_md(p, &src_pref, d->ic, p->t[src].h, p->t[src].w, p->t[src].dt);
        if (p->t[dst].fixed)
            dst_pref = p->t[dst].md;
        else
            pm_nn__layout_md(p, &dst_pref, d->oc, p->t[dst].h, p->t[dst].w, op->out_dt);
    }
    const dnnl_memory_desc_t *bmd = op->w->bias ? &bias_md : NULL;
    *pd = NULL;
    int wino = (op->flags & PM_NN_WINOGRAD) && d->dt == PM_NN_F32 && d->kh == 3 && d->kw == 3 && d->stride == 1 &&
               !d->transposed && d->groups <= 1;
    if (wino && (pm_nn__conv_desc(cd, d, dnnl_convolution_winograd, &src_any, &wei_any, bmd, &dst_md) != dnnl_success ||
                 dnnl_primitive_desc_create(pd, cd, attr, p->ctx->eng, NULL) != dnnl_success))
        *pd = NULL;
    if (!*pd && prefer) {
        if (pm_nn__conv_desc(cd, d, dnnl_convolution_direct, &src_pref, &wei_any, bmd, &dst_pref) != dnnl_success ||
            dnnl_primitive_desc_create(pd, cd, attr, p->ctx->eng, NULL) != dnnl_success)
            *pd = NULL;
        else if (is_ref(*pd)) {
            dnnl_primitive_desc_destroy(*pd);
            *pd = NULL;
        }
    }
    if (!*pd) {
        dnnl_status_t st = pm_nn__conv_desc(cd, d, dnnl_convolution_direct, &src_any, &wei_any, bmd, &dst_md);
        if (st == dnnl_success)
            st = dnnl_primitive_desc_create(pd, cd, attr, p->ctx->eng, NULL);
        if (st != dnnl_success) {
            *pd = NULL;
            return pm_nn__dnnl_err(st, "a convolution", op->name);
        }
    }
    /* the producer's format as is, unless only a reference implementation takes it */
    const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(*pd, dnnl_query_src_md, 0);
    dnnl_primitive_desc_t pd2 = NULL;
    if (p->t[src].fixed && !dnnl_memory_desc_equal(want, &p->t[src].md)) {
        dnnl_alg_kind_t alg = cd->alg_kind == dnnl_deconvolution_direct ? dnnl_convolution_direct : cd->alg_kind;
        dnnl_convolution_desc_t cd2;
        if (pm_nn__conv_desc(&cd2, d, alg, &p->t[src].md, &wei_any, bmd, &dst_md) == dnnl_success &&
            dnnl_primitive_desc_create(&pd2, &cd2, attr, p->ctx->eng, NULL) == dnnl_success && !is_ref(pd2)) {
            dnnl_primitive_desc_destroy(*pd);
            *pd = pd2;
        } else if (pd2) {
            dnnl_primitive_desc_destroy(pd2);
        }
    }
    return 0;
}

/* The weights argument of a convolution: its stored memory, or a per-run
 * reorder step into the format `wwant` (*wtensor then names its tensor). */
static int conv_weights(pm_nn_plan *p, const nn_op *op, const dnnl_memory_desc_t *wwant, dnnl_memory_t *wm,
                        int *wtensor)
{
    const pm_nn_weights *w = op->w;
    dnnl_memory_t stored = pm_nn__fixed_mem(p, &w->md, w->data);
    *wm = stored;
    *wtensor = -1;
    if (!stored)
        return pm_errorf(PM_ENOMEM, "out of memory for %s", op->name);
    if (dnnl_memory_desc_equal(wwant, &w->md))
        return 0;
    dnnl_primitive_desc_t rpd = NULL;
    *wtensor = pm_nn__new_tensor(p, 0, 0, 0, w->d.dt);
    if (*wtensor < 0)
        return p->err;
    pm_nn__fix(p, *wtensor, wwant);
    char nm[64];
    snprintf(nm, sizeof nm, "%s#w", op->name);
    nn_step *s = pm_nn__new_step(p, ST_PRIM, nm);
    if (!s || dnnl_reorder_primitive_desc_create(&rpd, &w->md, p->ctx->eng, wwant, p->ctx->eng, NULL) != dnnl_success ||
        dnnl_primitive_create(&s->prim, rpd) != dnnl_success) {
        if (rpd)
            dnnl_primitive_desc_destroy(rpd);
        return pm_errorf(PM_EINTERNAL, "oneDNN could not reorder the weights of %s", op->name);
    }
    dnnl_primitive_desc_destroy(rpd);
    snprintf(s->impl, sizeof s->impl, "weights reorder");
    pm_nn__arg(p, &s->nargs, DNNL_ARG_FROM, -1, stored);
    pm_nn__arg(p, &s->nargs, DNNL_ARG_TO, *wtensor, NULL);
    *wm = NULL;
    return 0;
}

/* The bias memory of a convolution, scaled by op->scale when that is not 1. */
static dnnl_memory_t conv_bias(pm_nn_plan *p, const nn_op *op, const dnnl_memory_desc_t *bias_md)
{
    int oc = op->w->d.oc;
    float *b = op->w->bias;
    if (op->scale != 1.0f) {
        GROW(p->owned, p->nowned, p->cap_owned, return NULL);
        if (!(b = pm_malloc((size_t)oc * sizeof(float))))
            return NULL;
        p->owned[p->nowned++] = b;
        for (int i = 0; i < oc; i++)
            b[i] = op->w->bias[i] * op->scale;
    }
    return pm_nn__fixed_mem(p, bias_md, b);
}

static int lower_conv(pm_nn_plan *p, const nn_op *op)
{
    const pm_nn_weights *w = op->w;
    pm_nn_conv_desc dd = w->d;
    if (op->pad_over) {
        dd.pad_t = op->pad_t;
        dd.pad_b = op->pad_b;
    }
    const pm_nn_conv_desc *d = &dd;
    int src = op->src, dst = op->dst, rc = 0;
    dnnl_memory_desc_t bias_md, vec_md;
    dnnl_dims_t bdims = {d->oc}, vdims = {1, d->oc, 1, 1};
    dnnl_memory_desc_init_by_tag(&bias_md, 1, bdims, dnnl_f32, dnnl_x);
    dnnl_memory_desc_init_by_tag(&vec_md, 4, vdims, dnnl_f32, dnnl_nchw);
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_convolution_desc_t cd;
    if ((rc = pm_nn__make_attr(&attr, op->flags, &op->post, &vec_md))) {
        rc = pm_errorf(rc, "oneDNN could not describe the post-operations of %s", op->name);
        goto release;
    }
    if ((rc = conv_pd(p, op, d, attr, &cd, &pd)))
        goto release;
    const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    if (!p->t[src].fixed) {
        pm_nn__fix(p, src, want);
    } else if (!dnnl_memory_desc_equal(want, &p->t[src].md)) {
        char nm[64];
        snprintf(nm, sizeof nm, "%s#in", op->name);
        if ((src = pm_nn__add_reorder(p, nm, src, want, -1)) < 0) {
            rc = p->err ? p->err : PM_EINTERNAL;
            goto release;
        }
    }
    if (!p->t[dst].fixed)
        pm_nn__fix(p, dst, dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0));
    dnnl_memory_t wm;
    int wtensor;
    if ((rc = conv_weights(p, op, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), &wm, &wtensor)))
        goto release;
    nn_step *s = pm_nn__new_step(p, ST_PRIM, op->name);
    if (!s || dnnl_primitive_create(&s->prim, pd) != dnnl_success) {
        rc = pm_errorf(PM_ENOMEM, "oneDNN could not create the primitive of %s", op->name);
        goto release;
    }
    pm_nn__set_impl(s, pd);
    int n = 0;
    pm_nn__arg(p, &n, DNNL_ARG_SRC, src, NULL);
    pm_nn__arg(p, &n, DNNL_ARG_WEIGHTS, wtensor, wm);
    if (w->bias) {
        dnnl_memory_t bm = conv_bias(p, op, &bias_md);
        if (!bm) {
            rc = pm_errorf(PM_ENOMEM, "out of memory");
            goto release;
        }
        pm_nn__arg(p, &n, DNNL_ARG_BIAS, -1, bm);
    }
    pm_nn__arg(p, &n, DNNL_ARG_DST, dst, NULL);
    if ((rc = pm_nn__add_scratchpad(p, pd, &n)))
        goto release;
    s = &p->steps[p->nsteps - 1];
    int nflags = !!(op->flags & PM_NN_SUM) + !!(op->flags & PM_NN_RELU) + !!(op->flags & PM_NN_SIGMOID);
    if ((rc = pm_nn__post_args(p, s, &n, &op->post, &vec_md, nflags)))
        goto release;
    s = &p->steps[p->nsteps - 1];
    s->nargs = n;
    int ih = p->t[op->src].h, iw = p->t[op->src].w;
    double pix = d->transposed ? (double)ih * iw : (double)p->t[dst].h * p->t[dst].w;
    s->flops = 2.0 * d->ic * d->oc * d->kh * d->kw * pix / (d->groups > 1 ? d->groups : 1);
release:
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    if (rc)
        pm_nn__set_err(p, rc);
    return rc;
}

/* Makes tensor t available in the layout of `like` (same family), adding a
 * reorder when it differs; returns the tensor id to use. */
static int as_layout_of(pm_nn_plan *p, int t, int like, const char *name)
{
    dnnl_memory_desc_t md;
    if (pm_nn__md_like(&md, &p->t[like].md, p->t[t].c, p->t[t].h, p->t[t].w, p->t[t].dt))
        return -1;
    if (!p->t[t].fixed)
        pm_nn__fix(p, t, &md);
    if (dnnl_memory_desc_equal(&md, &p->t[t].md))
        return t;
    char nm[64];
    snprintf(nm, sizeof nm, "%s#in", name);
    return pm_nn__add_reorder(p, nm, t, &md, -1);
}

/* Fixes an undecided tensor to the plan's layout (nchw when it has none). */
void pm_nn__fix_default(pm_nn_plan *p, int t)
{
    if (p->t[t].fixed)
        return;
    dnnl_memory_desc_t md;
    if (p->layout != PM_NN_LAYOUT_ANY)
        pm_nn__layout_md(p, &md, p->t[t].c, p->t[t].h, p->t[t].w, p->t[t].dt);
    else
        pm_nn__md_like(&md, NULL, p->t[t].c, p->t[t].h, p->t[t].w, p->t[t].dt);
    pm_nn__fix(p, t, &md);
}

static int lower_pad(pm_nn_plan *p, const nn_op *op)
{
    pm_nn__fix_default(p, op->src);
    pm_nn_view v;
    if (pm_nn_view_from_md(&v, &p->t[op->src].md)) {
        /* a layout the copy loops do not know: go through nchw */
        dnnl_memory_desc_t md;
        pm_nn__md_like(&md, NULL, p->t[op->src].c, p->t[op->src].h, p->t[op->src].w, p->t[op->src].dt);
        if (op->add >= 0) {
            pm_nn__set_err(p, pm_errorf(PM_EUNSUPPORTED, "%s: layout not supported for an in-place sum", op->name));
            return p->err;
        }
        int r = pm_nn__add_reorder(p, op->name, op->src, &md, -1);
        if (r < 0)
            return p->err;
        nn_op o2 = *op;
        o2.src = r;
        return lower_pad(p, &o2);
    }
    int add = -1;
    if (op->add >= 0) {
        add = as_layout_of(p, op->add, op->src, op->name);
        if (add < 0)
            return p->err ? p->err : PM_EINTERNAL;
    }
    int src = op->src;
    dnnl_memory_desc_t md;
    if (p->t[op->dst].fixed) {
        /* the output's layout is imposed (it has row views): bring src to it */
        if (pm_nn__md_like(&md, &p->t[op->dst].md, p->t[src].c, p->t[src].h, p->t[src].w, p->t[src].dt))
            return p->err = PM_EINTERNAL;
        if (!dnnl_memory_desc_equal(&md, &p->t[src].md)) {
            if (add >= 0)
                return p->err = pm_errorf(PM_EUNSUPPORTED, "%s: layouts of an in-place sum disagree", op->name);
            src = pm_nn__add_reorder(p, op->name, src, &md, -1);
            if (src < 0)
                return p->err;
        }
    } else {
        if (pm_nn__md_like(&md, &p->t[src].md, p->t[op->dst].c, p->t[op->dst].h, p->t[op->dst].w, p->t[src].dt))
            return p->err = PM_EINTERNAL;
        pm_nn__fix(p, op->dst, &md);
    }
    nn_step *s = pm_nn__new_step(p, ST_PAD, op->name);
    if (!s)
        return p->err = pm_errorf(PM_ENOMEM, "out of memory");
    snprintf(s->impl, sizeof s->impl, "reflect pad%s", add >= 0 ? " + add" : "");
    s->t_src = src;
    s->t_dst = op->dst;
    s->t_add = add;
    s->pad = op->pad;
    s->row0 = op->row0;
    s->full_h = op->full_h;
    s->win0 = op->win0;
    return 0;
}

static int lower_add(pm_nn_plan *p, const nn_op *op)
{
    pm_nn__fix_default(p, op->dst);
    int src = as_layout_of(p, op->src, op->dst, op->name);
    if (src < 0)
        return p->err ? p->err : PM_EINTERNAL;
    if (p->t[src].dt != p->t[op->dst].dt) {
        dnnl_memory_desc_t md = p->t[op->dst].md;
        src = pm_nn__add_reorder(p, op->name, src, &md, -1);
        if (src < 0)
            return p->err;
    }
    nn_step *s = pm_nn__new_step(p, ST_ADD, op->name);
    if (!s)
        return p->err = pm_errorf(PM_ENOMEM, "out of memory");
    snprintf(s->impl, sizeof s->impl, "add");
    s->t_src = src;
    s->t_dst = op->dst;
    return 0;
}

static int lower_concat(pm_nn_plan *p, const nn_op *op)
{
    pm_nn__fix_default(p, op->src);
    pm_nn__fix_default(p, op->b);
    dnnl_memory_desc_t mds[2] = {p->t[op->src].md, p->t[op->b].md};
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_attr_create(&attr);
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    dnnl_status_t st = dnnl_concat_primitive_desc_create(&pd, NULL, 2, 1, mds, attr, p->ctx->eng);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success)
        return p->err = pm_errorf(PM_EINTERNAL, "oneDNN could not create a concatenation for %s", op->name);
    pm_nn__fix(p, op->dst, dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0));
    nn_step *s = pm_nn__new_step(p, ST_PRIM, op->name);
    int n = 0;
    if (!s || dnnl_primitive_create(&s->prim, pd) != dnnl_success) {
        pm_nn__set_err(p, pm_errorf(PM_ENOMEM, "could not create the concatenation for %s", op->name));
    } else {
        pm_nn__set_impl(s, pd);
        pm_nn__arg(p, &n, DNNL_ARG_MULTIPLE_SRC, op->src, NULL);
        pm_nn__arg(p, &n, DNNL_ARG_MULTIPLE_SRC + 1, op->b, NULL);
        pm_nn__arg(p, &n, DNNL_ARG_DST, op->dst, NULL);
    }
    return pm_nn__step_done(p, pd, n);
}

static void use(pm_nn_plan *p, int t, int step)
{
    for (; t >= 0; t = p->t[t].parent) {
        nn_tensor *x = &p->t[t];
        if (x->first < 0 || step < x->first)
            x->first = step;
        if (step > x->last)
            x->last = step;
    }
}

typedef struct { size_t off, end; } span;

static int cmp_span(const void *a, const void *b)
{
    const span *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

static int cmp_size_desc(const void *a, const void *b, void *ctx)
{
    const nn_tensor *t = ctx;
    size_t x = t[*(const int *)a].bytes, y = t[*(const int *)b].bytes;
    if (x != y)
        return x > y ? -1 : 1;
    return *(const int *)a - *(const int *)b;
}

/* insertion sort (qsort has no context argument in C11) */
static void sort_by_size(int *idx, int n, const nn_tensor *t)
{
    for (int i = 1; i < n; i++) {
        int v = idx[i], j = i - 1;
        while (j >= 0 && cmp_size_desc(&idx[j], &v, (void *)t) > 0) {
            idx[j + 1] = idx[j];
            j--;
        }
        idx[j + 1] = v;
    }
}

/* Places every used tensor in the arena: largest first, at the lowest
 * offset not overlapping a placed tensor whose lifetime intersects. */
static int layout_arena(pm_nn_plan *p)
{
    int n = 0, rc = 0;
    int *idx = pm_malloc((size_t)(p->nt + 1) * sizeof *idx);
    int *placed = pm_malloc((size_t)(p->nt + 1) * sizeof *placed);
    span *sp = pm_malloc((size_t)(p->nt + 1) * sizeof *sp);
    if (!idx || !placed || !sp) {
        rc = pm_errorf(PM_ENOMEM, "out of memory laying out a plan");
        goto release;
    }
    for (int i = 0; i < p->nt; i++)
        if (p->t[i].first >= 0 && p->t[i].bytes > 0 && p->t[i].parent < 0)
            idx[n++] = i;
    sort_by_size(idx, n, p->t);
    int np = 0;
    size_t total = 0;
    for (int k = 0; k < n; k++) {
        nn_tensor *t = &p->t[idx[k]];
        size_t size = (t->bytes + 63) & ~(size_t)63;
        int ns = 0;
        for (int j = 0; j < np; j++) {
            nn_tensor *u = &p->t[placed[j]];
            if (u->first <= t->last && t->first <= u->last) {
                sp[ns].off = u->off;
                sp[ns].end = u->off + ((u->bytes + 63) & ~(size_t)63);
                ns++;
            }
        }
        qsort(sp, (size_t)ns, sizeof *sp, cmp_span);
        size_t off = 0;
        for (int j = 0; j < ns; j++) {
            if (sp[j].off >= off + size)
                break;
            if (sp[j].end > off)
                off = sp[j].end;
        }
        t->off = off;
        if (off + size > total)
            total = off + size;
        placed[np++] = idx[k];
    }
    p->arena_bytes = total;
    for (int i = 0; i < p->nt; i++)
        if (p->t[i].parent >= 0)
            p->t[i].off = p->t[pm_nn__root(p, i)].off + p->t[i].view_off;
release:
    pm_free(idx);
    pm_free(placed);
    pm_free(sp);
    return rc;
}

static int lower_cast(pm_nn_plan *p, const nn_op *op)
{
    pm_nn__fix_default(p, op->src);
    dnnl_memory_desc_t md;
    pm_nn__md_like(&md, &p->t[op->src].md, p->t[op->dst].c, p->t[op->dst].h, p->t[op->dst].w, op->out_dt);
    return pm_nn__add_reorder(p, op->name, op->src, &md, op->dst) < 0 ? p->err : 0;
}

static int lower_mark(pm_nn_plan *p, const nn_op *op)
{
    nn_step *s = pm_nn__new_step(p, ST_MARK, "mark");
    if (!s)
        return p->err = pm_errorf(PM_ENOMEM, "out of memory");
    s->value = op->value;
    return 0;
}

/* The lowering of each op kind (nn_op_kind). */
static int (*const lowerings[])(pm_nn_plan *p, const nn_op *op) = {
    [OP_CONV] = lower_conv, [OP_PAD] = lower_pad, [OP_ADD] = lower_add, [OP_CONCAT] = lower_concat,
    [OP_RFFT] = pm_nn__lower_fft, [OP_IRFFT] = pm_nn__lower_ifft, [OP_MARK] = lower_mark,
    [OP_INTERLEAVE] = pm_nn__lower_interleave, [OP_BORDER] = pm_nn__lower_border,
    [OP_SMALLCONV] = pm_nn__lower_smallconv, [OP_MATMUL] = pm_nn__lower_matmul, [OP_LNORM] = pm_nn__lower_lnorm,
    [OP_SOFTMAX] = pm_nn__lower_softmax, [OP_CAST] = lower_cast, [OP_ELT] = pm_nn__lower_elt,
};
_Static_assert(sizeof lowerings / sizeof *lowerings == OP_KINDS, "every op kind has a lowering");

int pm_nn_plan_finish(pm_nn_plan *p)
{
    if (p->err)
        return p->err;
    if (p->finished)
        return 0;
    if (p->output < 0)
        return p->err = pm_errorf(PM_EINTERNAL, "plan has no output");
    for (int i = 0; i < p->nops && !p->err; i++) {
        const nn_op *op = &p->ops[i];
        if (resolve_op(p, op))
            break;
        lowerings[op->kind](p, op);
    }
    if (p->err)
        return p->err;
    for (int i = 0; i < p->nsteps; i++) {
        nn_step *s = &p->steps[i];
        for (int a = 0; a < s->nargs; a++)
            use(p, s->arg_tensor[a], i);
        use(p, s->t_src, i);
        use(p, s->t_dst, i);
        use(p, s->t_add, i);
        use(p, s->t_tmp, i);
        if (s->kind == ST_INTERLEAVE)
            for (int q = 0; q < 4; q++)
                use(p, s->t_quad[q], i);
    }
    for (int i = 0; i < p->nt; i++) {
        nn_tensor *t = &p->t[i];
        if (t->is_input && t->first >= 0)
            t->first = 0;
        if (t->is_output) {
            if (t->first < 0)
                t->first = 0;
            t->last = p->nsteps;
        }
    }
    if (!p->t[p->output].fixed)
        return p->err = pm_errorf(PM_EINTERNAL, "plan output is never produced");
    int rc = layout_arena(p);
    if (rc)
        return p->err = rc;
    for (int i = 0; i < p->nt; i++) {
        nn_tensor *t = &p->t[i];
        if (t->first < 0 || !t->fixed)
            continue;
        if (dnnl_memory_create(&t->mem, &t->md, p->ctx->eng, DNNL_MEMORY_NONE) != dnnl_success)
            return p->err = pm_errorf(PM_ENOMEM, "out of memory creating plan tensors");
    }
    for (int i = 0; i < p->nsteps; i++) {
        nn_step *s = &p->steps[i];
        for (int a = 0; a < s->nargs; a++) {
            s->exec[a].arg = s->arg_kind[a];
            s->exec[a].memory = s->arg_tensor[a] >= 0 ? p->t[s->arg_tensor[a]].mem : s->arg_mem[a];
        }
    }
    p->finished = 1;
    return 0;
}

size_t pm_nn_plan_arena_bytes(const pm_nn_plan *p)
{
    return p->arena_bytes;
}
