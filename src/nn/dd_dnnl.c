/* oneDNN primitives and the OpenMP runtime for DDColor (see dd_dnnl.h). */
#define _GNU_SOURCE /* RTLD_DEFAULT */
#include "nn/dd_dnnl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>
#include <string.h>

#include <dnnl_debug.h>

#include "base/base.h"

static int dnnl_fail(dnnl_status_t st, const char *what)
{
    int code = st == dnnl_unimplemented ? PM_EUNSUPPORTED : st == dnnl_out_of_memory ? PM_ENOMEM : PM_EINTERNAL;
    return pm_errorf(code, "oneDNN could not %s (%s)", what, dnnl_status2str(st));
}

int dd_engine_init(dd_engine *e)
{
    memset(e, 0, sizeof *e);
    dnnl_status_t st = dnnl_engine_create(&e->eng, dnnl_cpu, 0);
    if (st != dnnl_success)
        return dnnl_fail(st, "create a CPU engine");
    st = dnnl_stream_create(&e->strm, e->eng, dnnl_stream_default_flags);
    if (st != dnnl_success) {
        dnnl_engine_destroy(e->eng);
        e->eng = NULL;
        return dnnl_fail(st, "create a stream");
    }
    return 0;
}

void dd_engine_free(dd_engine *e)
{
    if (e->strm)
        dnnl_stream_destroy(e->strm);
    if (e->eng)
        dnnl_engine_destroy(e->eng);
    memset(e, 0, sizeof *e);
}

int dd_prim_run(const dd_engine *e, const dd_prim *p)
{
    dnnl_status_t st = dnnl_primitive_execute(p->prim, e->strm, p->nargs, p->args);
    if (st == dnnl_success)
        st = dnnl_stream_wait(e->strm);
    return st == dnnl_success ? 0 : dnnl_fail(st, "execute a primitive");
}

void dd_prim_free(dd_prim *p)
{
    for (int i = 0; i < p->nargs; i++)
        if (p->args[i].memory)
            dnnl_memory_destroy(p->args[i].memory);
    if (p->prim)
        dnnl_primitive_destroy(p->prim);
    memset(p, 0, sizeof *p);
}

static int add_arg(const dd_engine *e, dd_prim *p, int arg, const dnnl_memory_desc_t *md, const void *ptr);

int dd_prim_set_scratchpad(const dd_engine *e, dd_prim *p, void *buf)
{
    if (p->scratch_bytes == 0)
        return 0;
    return add_arg(e, p, DNNL_ARG_SCRATCHPAD, &p->scratch_md, buf);
}

dd_view dd_rows(float *p, int64_t rows, int64_t cols)
{
    dd_view v = {p, rows, cols, cols, 1, 1, 0};
    return v;
}

dd_view dd_linear_weight(const float *w, int64_t n, int64_t k, int64_t ldw)
{
    dd_view v = {(float *)w, k, n, 1, ldw, 1, 0};
    return v;
}

/* Binds `ptr` as argument `arg` of p with descriptor md. */
static int add_arg(const dd_engine *e, dd_prim *p, int arg, const dnnl_memory_desc_t *md, const void *ptr)
{
    if (p->nargs >= DD_MAX_ARGS)
        return pm_errorf(PM_EINTERNAL, "too many arguments for one oneDNN primitive");
    dnnl_memory_t m;
    dnnl_status_t st = dnnl_memory_create(&m, md, e->eng, (void *)ptr);
    if (st != dnnl_success)
        return dnnl_fail(st, "create a memory object");
    p->args[p->nargs].arg = arg;
    p->args[p->nargs].memory = m;
    p->nargs++;
    return 0;
}

static void md_strided(dnnl_memory_desc_t *md, int ndims, const int64_t *dims, const int64_t *strides)
{
    dnnl_dims_t d, s;
    for (int i = 0; i < ndims; i++) {
        d[i] = dims[i];
        s[i] = strides[i];
    }
    dnnl_memory_desc_init_by_strides(md, ndims, d, dnnl_f32, s);
}

static void md_tag(dnnl_memory_desc_t *md, int ndims, const int64_t *dims, dnnl_format_tag_t tag)
{
    dnnl_dims_t d;
    for (int i = 0; i < ndims; i++)
        d[i] = dims[i];
    dnnl_memory_desc_init_by_tag(md, ndims, d, dnnl_f32, tag);
}

/* Post-ops of po as an attribute; the per-channel vectors are described by
 * vec_md (shape of a broadcast channel vector for this op). *attr is owned by
 * the caller (dnnl_primitive_attr_destroy). */
static int make_attr(const dd_post *po, const dnnl_memory_desc_t *vec_md, dnnl_primitive_attr_t *attr)
{
    *attr = NULL;
    dnnl_status_t st = dnnl_primitive_attr_create(attr);
    if (st == dnnl_success)
        st = dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user);
    if (st != dnnl_success)
        return dnnl_fail(st, "create primitive attributes");
    if (!po || po->n == 0)
        return 0;
    dnnl_post_ops_t ops;
    st = dnnl_post_ops_create(&ops);
    if (st != dnnl_success)
        return dnnl_fail(st, "create post-ops");
    for (int i = 0; i < po->n && st == dnnl_success; i++) {
        const dd_postop *o = &po->op[i];
        switch (o->kind) {
        case DD_PO_SCALE:
            st = dnnl_post_ops_append_eltwise(ops, 1.0f, dnnl_eltwise_linear, o->scale, 0.0f);
            break;
        case DD_PO_RELU:
            st = dnnl_post_ops_append_eltwise(ops, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f);
            break;
        case DD_PO_GELU:
            st = dnnl_post_ops_append_eltwise(ops, 1.0f, dnnl_eltwise_gelu_erf, 0.0f, 0.0f);
            break;
        case DD_PO_MULVEC:
            st = dnnl_post_ops_append_binary(ops, dnnl_binary_mul, vec_md);
            break;
        case DD_PO_ADDVEC:
            st = dnnl_post_ops_append_binary(ops, dnnl_binary_add, vec_md);
            break;
        case DD_PO_SUM:
            st = dnnl_post_ops_append_sum(ops, 1.0f);
            break;
        }
    }
    if (st == dnnl_success)
        st = dnnl_primitive_attr_set_post_ops(*attr, ops);
    dnnl_post_ops_destroy(ops);
    return st == dnnl_success ? 0 : dnnl_fail(st, "set up fused post-operations");
}

/* Binds the per-channel vectors of po at their post-op positions. */
static int add_post_args(const dd_engine *e, dd_prim *p, const dd_post *po, const dnnl_memory_desc_t *vec_md)
{
    for (int i = 0; po && i < po->n; i++) {
        const dd_postop *o = &po->op[i];
        if (o->kind == DD_PO_MULVEC || o->kind == DD_PO_ADDVEC) {
            int rc = add_arg(e, p, DNNL_ARG_ATTR_MULTIPLE_POST_OP(i) | DNNL_ARG_SRC_1, vec_md, o->vec);
            if (rc)
                return rc;
        }
    }
    return 0;
}

static int has_vec(const dd_post *po)
{
    for (int i = 0; po && i < po->n; i++)
        if (po->op[i].kind == DD_PO_MULVEC || po->op[i].kind == DD_PO_ADDVEC)
            return 1;
    return 0;
}

/* Creates p->prim from an op descriptor; the descriptor's pd is destroyed here. */
static int create_prim(const dd_engine *e, const void *op_desc, dnnl_primitive_attr_t attr, dd_prim *p,
                       dnnl_primitive_desc_t *pd_out, const char *what)
{
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, op_desc, attr, e->eng, NULL);
    if (st != dnnl_success)
        return dnnl_fail(st, what);
    st = dnnl_primitive_create(&p->prim, pd);
    if (st != dnnl_success) {
        dnnl_primitive_desc_destroy(pd);
        return dnnl_fail(st, what);
    }
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if (smd) {
        p->scratch_md = *smd;
        p->scratch_bytes = dnnl_memory_desc_get_size(smd);
    }
    if (pd_out)
        *pd_out = pd;
    else
        dnnl_primitive_desc_destroy(pd);
    return 0;
}

int dd_matmul(const dd_engine *e, dd_prim *out, dd_view src, dd_view wei, const float *bias, dd_view dst,
              const dd_post *po)
{
    memset(out, 0, sizeof *out);
    if (src.cols != wei.rows || src.rows != dst.rows || wei.cols != dst.cols)
        return pm_errorf(PM_EINTERNAL, "matmul of %lldx%lld by %lldx%lld into %lldx%lld", (long long)src.rows,
                         (long long)src.cols, (long long)wei.rows, (long long)wei.cols, (long long)dst.rows,
                         (long long)dst.cols);
    dnnl_memory_desc_t smd, wmd, bmd, dmd, vmd;
    int64_t d[3], s[3];
    if (src.batch > 1 || wei.batch > 1 || dst.batch > 1) {
        if (src.batch != wei.batch || src.batch != dst.batch || bias || has_vec(po))
            return pm_errorf(PM_EINTERNAL, "batched matmul with mismatched batches or vector post-ops");
        d[0] = src.batch, d[1] = src.rows, d[2] = src.cols, s[0] = src.bs, s[1] = src.rs, s[2] = src.cs;
        md_strided(&smd, 3, d, s);
        d[0] = wei.batch, d[1] = wei.rows, d[2] = wei.cols, s[0] = wei.bs, s[1] = wei.rs, s[2] = wei.cs;
        md_strided(&wmd, 3, d, s);
        d[0] = dst.batch, d[1] = dst.rows, d[2] = dst.cols, s[0] = dst.bs, s[1] = dst.rs, s[2] = dst.cs;
        md_strided(&dmd, 3, d, s);
    } else {
        d[0] = src.rows, d[1] = src.cols, s[0] = src.rs, s[1] = src.cs;
        md_strided(&smd, 2, d, s);
        d[0] = wei.rows, d[1] = wei.cols, s[0] = wei.rs, s[1] = wei.cs;
        md_strided(&wmd, 2, d, s);
        d[0] = dst.rows, d[1] = dst.cols, s[0] = dst.rs, s[1] = dst.cs;
        md_strided(&dmd, 2, d, s);
    }
    d[0] = 1, d[1] = dst.cols;
    md_tag(&bmd, 2, d, dnnl_ab);
    vmd = bmd;
    dnnl_matmul_desc_t md;
    dnnl_status_t st = dnnl_matmul_desc_init(&md, &smd, &wmd, bias ? &bmd : NULL, &dmd);
    if (st != dnnl_success)
        return dnnl_fail(st, "describe a matmul");
    dnnl_primitive_attr_t attr;
    int rc = make_attr(po, &vmd, &attr);
    if (!rc)
        rc = create_prim(e, &md, attr, out, NULL, "create a matmul primitive");
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    if (!rc)
        rc = add_arg(e, out, DNNL_ARG_SRC, &smd, src.p);
    if (!rc)
        rc = add_arg(e, out, DNNL_ARG_WEIGHTS, &wmd, wei.p);
    if (!rc && bias)
        rc = add_arg(e, out, DNNL_ARG_BIAS, &bmd, bias);
    if (!rc)
        rc = add_arg(e, out, DNNL_ARG_DST, &dmd, dst.p);
    if (!rc)
        rc = add_post_args(e, out, po, &vmd);
    if (rc)
        dd_prim_free(out);
    return rc;
}

int dd_conv_out_h(const dd_conv_shape *s)
{
    return (s->ih + s->pad_t + s->pad_b - s->kh) / s->stride + 1;
}

int dd_conv_out_w(const dd_conv_shape *s)
{
    return (s->iw + s->pad_l + s->pad_r - s->kw) / s->stride + 1;
}

/* Reorders user weights (md umd at uptr) into a new buffer of layout wmd. */
static int reorder_weights(const dd_engine *e, const dnnl_memory_desc_t *umd, const float *uptr,
                           const dnnl_memory_desc_t *wmd, float **owned)
{
    size_t bytes = dnnl_memory_desc_get_size(wmd);
    float *buf = pm_malloc_aligned(bytes ? bytes : 64);
    if (!buf)
        return pm_errorf(PM_ENOMEM, "out of memory for %zu bytes of convolution weights", bytes);
    dd_prim r;
    memset(&r, 0, sizeof r);
    dnnl_primitive_desc_t pd;
    dnnl_status_t st = dnnl_reorder_primitive_desc_create(&pd, umd, e->eng, wmd, e->eng, NULL);
    int rc = 0;
    if (st != dnnl_success) {
        rc = dnnl_fail(st, "describe a weight reorder");
        goto free_buf;
    }
    st = dnnl_primitive_create(&r.prim, pd);
    dnnl_primitive_desc_destroy(pd);
    if (st != dnnl_success) {
        rc = dnnl_fail(st, "create a weight reorder");
        goto free_buf;
    }
    rc = add_arg(e, &r, DNNL_ARG_FROM, umd, uptr);
    if (!rc)
        rc = add_arg(e, &r, DNNL_ARG_TO, wmd, buf);
    if (!rc)
        rc = dd_prim_run(e, &r);
    dd_prim_free(&r);
    if (rc)
        goto free_buf;
    *owned = buf;
    return 0;
free_buf:
    dd_prim_free(&r);
    pm_free_aligned(buf);
    return rc;
}

int dd_conv(const dd_engine *e, dd_prim *out, const dd_conv_shape *s, const float *src, const float *wei,
            const float *bias, float *dst, const dd_post *po, float **wei_owned)
{
    memset(out, 0, sizeof *out);
    *wei_owned = NULL;
    int oh = dd_conv_out_h(s), ow = dd_conv_out_w(s);
    int g = s->groups > 1 ? s->groups : 1;
    dnnl_memory_desc_t smd, dmd, wmd_any, umd, bmd, vmd;
    int64_t d[5];
    d[0] = 1, d[1] = s->ic, d[2] = s->ih, d[3] = s->iw;
    md_tag(&smd, 4, d, dnnl_nhwc);
    d[0] = 1, d[1] = s->oc, d[2] = oh, d[3] = ow;
    md_tag(&dmd, 4, d, dnnl_nhwc);
    if (g == 1) {
        d[0] = s->oc, d[1] = s->ic, d[2] = s->kh, d[3] = s->kw;
        md_tag(&wmd_any, 4, d, dnnl_format_tag_any);
        md_tag(&umd, 4, d, dnnl_oihw);
    } else {
        d[0] = g, d[1] = s->oc / g, d[2] = s->ic / g, d[3] = s->kh, d[4] = s->kw;
        md_tag(&wmd_any, 5, d, dnnl_format_tag_any);
        md_tag(&umd, 5, d, dnnl_goihw);
    }
    d[0] = s->oc;
    md_tag(&bmd, 1, d, dnnl_a);
    d[0] = 1, d[1] = s->oc, d[2] = 1, d[3] = 1;
    md_tag(&vmd, 4, d, dnnl_nchw);
    dnnl_convolution_desc_t cd;
    dnnl_dims_t strides = {s->stride, s->stride}, pl = {s->pad_t, s->pad_l}, pr = {s->pad_b, s->pad_r};
    dnnl_status_t st = dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct,
                                                          &smd, &wmd_any, bias ? &bmd : NULL, &dmd, strides, pl, pr);
    if (st != dnnl_success)
        return dnnl_fail(st, "describe a convolution");
    dnnl_primitive_attr_t attr;
    dnnl_primitive_desc_t pd = NULL;
    int rc = make_attr(po, &vmd, &attr);
    if (!rc)
        rc = create_prim(e, &cd, attr, out, &pd, "create a convolution primitive");
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    if (rc)
        return rc;
    const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    rc = reorder_weights(e, &umd, wei, wmd, wei_owned);
    if (!rc)
        rc = add_arg(e, out, DNNL_ARG_SRC, &smd, src);
    if (!rc)
        rc = add_arg(e, out, DNNL_ARG_WEIGHTS, wmd, *wei_owned);
    if (!rc && bias)
        rc = add_arg(e, out, DNNL_ARG_BIAS, &bmd, bias);
    if (!rc)
        rc = add_arg(e, out, DNNL_ARG_DST, &dmd, dst);
    if (!rc)
        rc = add_post_args(e, out, po, &vmd);
    dnnl_primitive_desc_destroy(pd);
    if (rc) {
        dd_prim_free(out);
        pm_free_aligned(*wei_owned);
        *wei_owned = NULL;
    }
    return rc;
}

void dd_release_pages(const void *p, size_t n)
{
#ifdef MADV_PAGEOUT
    long pg = sysconf(_SC_PAGESIZE);
    if (pg <= 0 || !p)
        return;
    uintptr_t b = ((uintptr_t)p + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
    uintptr_t e = ((uintptr_t)p + n) & ~((uintptr_t)pg - 1);
    if (e > b)
        (void)madvise((void *)b, e - b, MADV_PAGEOUT);
#else
    (void)p;
    (void)n;
#endif
}

int dd_layernorm(const dd_engine *e, dd_prim *out, int64_t rows, int64_t c, const float *src, float *dst,
                 const float *scale, const float *shift, float eps)
{
    memset(out, 0, sizeof *out);
    dnnl_memory_desc_t dmd, cmd;
    int64_t d[2] = {rows, c};
    md_tag(&dmd, 2, d, dnnl_ab);
    md_tag(&cmd, 1, &c, dnnl_a);
    dnnl_layer_normalization_desc_t ld;
    dnnl_status_t st = dnnl_layer_normalization_forward_desc_init(&ld, dnnl_forward_inference, &dmd, NULL, eps,
                                                                  dnnl_use_scale | dnnl_use_shift);
    if (st != dnnl_success)
        return dnnl_fail(st, "describe a layer normalisation");
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_attr_t attr;
    int rc = make_attr(NULL, NULL, &attr);
    if (!rc)
        rc = create_prim(e, &ld, attr, out, &pd, "create a layer normalisation primitive");
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    if (rc)
        return rc;
    rc = add_arg(e, out, DNNL_ARG_SRC, &dmd, src);
    if (!rc)
        rc = add_arg(e, out, DNNL_ARG_DST, &dmd, dst);
    if (!rc)
        rc = add_arg(e, out, DNNL_ARG_SCALE, &cmd, scale);
    if (!rc)
        rc = add_arg(e, out, DNNL_ARG_SHIFT, &cmd, shift);
    dnnl_primitive_desc_destroy(pd);
    if (rc)
        dd_prim_free(out);
    return rc;
}

int dd_softmax(const dd_engine *e, dd_prim *out, int64_t rows, int64_t cols, int64_t ld, float *data)
{
    memset(out, 0, sizeof *out);
    dnnl_memory_desc_t md;
    int64_t d[2] = {rows, cols}, s[2] = {ld, 1};
    md_strided(&md, 2, d, s);
    dnnl_softmax_desc_t sd;
    dnnl_status_t st = dnnl_softmax_forward_desc_init(&sd, dnnl_forward_inference, &md, 1);
    if (st != dnnl_success)
        return dnnl_fail(st, "describe a softmax");
    dnnl_primitive_attr_t attr;
    int rc = make_attr(NULL, NULL, &attr);
    if (!rc)
        rc = create_prim(e, &sd, attr, out, NULL, "create a softmax primitive");
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    if (!rc)
        rc = add_arg(e, out, DNNL_ARG_SRC, &md, data);
    if (!rc)
        rc = add_arg(e, out, DNNL_ARG_DST, &md, data);
    if (rc)
        dd_prim_free(out);
    return rc;
}

/* ------------------------------------------------------------- threads */

/* oneDNN here runs on libgomp; its entry points are looked up at run time
 * (libpixmend is not compiled with -fopenmp). Without them, dd_parallel
 * falls back to pm_parallel_for. */
typedef void (*gomp_parallel_fn)(void (*fn)(void *), void *data, unsigned nthreads, unsigned flags);
typedef int (*omp_int_fn)(void);
typedef void (*omp_set_fn)(int);

static struct {
    pthread_once_t once;
    gomp_parallel_fn parallel;
    omp_int_fn thread_num, num_threads, max_threads;
    omp_set_fn set_num_threads;
} omp = {PTHREAD_ONCE_INIT, NULL, NULL, NULL, NULL, NULL};

static void *sym(const char *name)
{
    return dlsym(RTLD_DEFAULT, name);
}

static void omp_lookup(void)
{
    void *p;
    if ((p = sym("GOMP_parallel")))
        memcpy(&omp.parallel, &p, sizeof p);
    if ((p = sym("omp_get_thread_num")))
        memcpy(&omp.thread_num, &p, sizeof p);
    if ((p = sym("omp_get_num_threads")))
        memcpy(&omp.num_threads, &p, sizeof p);
    if ((p = sym("omp_get_max_threads")))
        memcpy(&omp.max_threads, &p, sizeof p);
    if ((p = sym("omp_set_num_threads")))
        memcpy(&omp.set_num_threads, &p, sizeof p);
    if (!omp.thread_num || !omp.num_threads || !omp.max_threads)
        omp.parallel = NULL;
}

static _Thread_local int fallback_threads;

void dd_set_threads(int n)
{
    pthread_once(&omp.once, omp_lookup);
    if (n <= 0)
        n = pm_cpu_count();
    fallback_threads = n;
    if (omp.set_num_threads)
        omp.set_num_threads(n);
}

struct par_job {
    dd_range_fn fn;
    void *user;
    int64_t n;
};

static void par_body(void *arg)
{
    struct par_job *j = arg;
    int64_t t = omp.thread_num(), nt = omp.num_threads();
    int64_t b = j->n * t / nt, e = j->n * (t + 1) / nt;
    if (e > b)
        j->fn(j->user, b, e);
}

struct pf_job {
    struct par_job j;
    int parts;
};

static int pf_body(void *arg, int i)
{
    struct pf_job *p = arg;
    int64_t b = p->j.n * i / p->parts, e = p->j.n * (i + 1) / p->parts;
    if (e > b)
        p->j.fn(p->j.user, b, e);
    return 0;
}

void dd_parallel(int64_t n, int64_t grain, dd_range_fn fn, void *user)
{
    pthread_once(&omp.once, omp_lookup);
    if (n <= 0)
        return;
    if (grain < 1)
        grain = 1;
    if (n < 2 * grain) {
        fn(user, 0, n);
        return;
    }
    struct par_job j = {fn, user, n};
    if (omp.parallel) {
        int nt = omp.max_threads();
        if ((int64_t)nt > n / grain)
            nt = (int)(n / grain);
        omp.parallel(par_body, &j, (unsigned)(nt > 0 ? nt : 1), 0);
        return;
    }
    int nt = fallback_threads > 0 ? fallback_threads : pm_cpu_count();
    struct pf_job p = {j, nt};
    pm_parallel_for(nt, nt, pf_body, &p);
}
