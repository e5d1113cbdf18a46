/* The oneDNN pieces DDColor's execution plan is built from: matmul (with
 * bias and fused post-ops), convolution on NHWC activations, layer
 * normalisation over the last dimension, softmax over rows; plus the
 * OpenMP runtime that oneDNN runs on (thread count, a parallel loop).
 *
 * Every primitive is created once, when a plan is built for an input size,
 * with its memory objects bound to buffers that live as long as the plan;
 * running a plan only executes primitives. All functions that can fail return
 * 0 or a negative PM_E* code with a detail message. */
#ifndef PM_NN_DD_DNNL_H
#define PM_NN_DD_DNNL_H

#include <stddef.h>
#include <stdint.h>

#include <dnnl.h>

#include "pixmend.h"

typedef struct dd_engine {
    dnnl_engine_t eng;
    dnnl_stream_t strm;
} dd_engine;

/* Creates the CPU engine and an in-order stream; caller owns (dd_engine_free). */
int dd_engine_init(dd_engine *e);
void dd_engine_free(dd_engine *e);

#define DD_MAX_ARGS 12

/* A primitive and its execution arguments. The memory objects in args are
 * owned by the dd_prim (they only point at buffers owned elsewhere).
 * Primitives use a caller-provided scratchpad (oneDNN's user mode), so that
 * the primitives of a plan, which run one after the other, share one buffer
 * instead of each keeping its own: scratch_bytes says how much this one
 * needs; bind it with dd_prim_set_scratchpad before running. */
typedef struct dd_prim {
    dnnl_primitive_t prim;
    int nargs;
    dnnl_exec_arg_t args[DD_MAX_ARGS];
    size_t scratch_bytes;
    dnnl_memory_desc_t scratch_md;
} dd_prim;

/* Binds a scratchpad of at least p->scratch_bytes (owned by the caller, to
 * outlive the primitive); nothing to do when the primitive needs none. */
int dd_prim_set_scratchpad(const dd_engine *e, dd_prim *p, void *buf);

int dd_prim_run(const dd_engine *e, const dd_prim *p);
/* Destroys the primitive and its memory objects; safe on a zeroed dd_prim. */
void dd_prim_free(dd_prim *p);

/* A strided 2-D float view: element (r, c) is p[r * rs + c * cs]; with
 * batch > 1, a stack of such matrices, bs floats apart. */
typedef struct dd_view {
    float *p;
    int64_t rows, cols;
    int64_t rs, cs;
    int64_t batch, bs;
} dd_view;

/* A dense row-major rows x cols view. */
dd_view dd_rows(float *p, int64_t rows, int64_t cols);
/* The K x N weight view of a PyTorch Linear weight stored [N, K] row-major
 * (ldw floats between rows; ldw >= K): W^T without copying. */
dd_view dd_linear_weight(const float *w, int64_t n, int64_t k, int64_t ldw);

/* Post-operations applied, in the order given, to an op's result (after
 * the bias, when there is one). */
enum dd_po_kind {
    DD_PO_SCALE = 1, /* multiply by `scale` */
    DD_PO_RELU,
    DD_PO_GELU,      /* exact (erf) GELU */
    DD_PO_MULVEC,    /* multiply by vec[channel] */
    DD_PO_ADDVEC,    /* add vec[channel] */
    DD_PO_SUM,       /* add the destination's previous content */
};
typedef struct dd_postop {
    enum dd_po_kind kind;
    float scale;
    const float *vec; /* per output channel (column); owned by the caller */
} dd_postop;
#define DD_MAX_POST 6
typedef struct dd_post {
    int n;
    dd_postop op[DD_MAX_POST];
} dd_post;

/* dst = post(src x wei + bias), src M x K, wei K x N, dst M x N; bias (N
 * floats) and po may be NULL. With batch > 1 (the same for src, wei and dst)
 * a batched product, without bias or vector post-ops. All buffers belong to
 * the caller and must outlive the primitive. */
int dd_matmul(const dd_engine *e, dd_prim *out, dd_view src, dd_view wei, const float *bias, dd_view dst,
              const dd_post *po);

/* 2-D convolution of one NHWC image (dense) into a dense NHWC output.
 * wei is PyTorch's [oc, ic/groups, kh, kw]; it is reordered once into the
 * layout the chosen implementation wants, in a new buffer stored to
 * *wei_owned (caller frees it with pm_free_aligned after the primitive). */
typedef struct dd_conv_shape {
    int ic, ih, iw, oc, kh, kw, stride, pad_t, pad_l, pad_b, pad_r, groups;
} dd_conv_shape;
int dd_conv_out_h(const dd_conv_shape *s);
int dd_conv_out_w(const dd_conv_shape *s);
int dd_conv(const dd_engine *e, dd_prim *out, const dd_conv_shape *s, const float *src, const float *wei,
            const float *bias, float *dst, const dd_post *po, float **wei_owned);

/* Asks the kernel to drop the resident pages lying wholly inside [p, p+n)
 * from this process: for weights in a read-only file mapping that are only
 * read while a plan is built (they are reordered into the plan's own
 * buffers). The content stays valid; a later read faults it back in. Memory
 * that cannot be reclaimed this way (anonymous, without swap) is unaffected. */
void dd_release_pages(const void *p, size_t n);

/* LayerNorm over the last dimension of a rows x c dense matrix (src may equal
 * dst), with per-channel scale and shift. */
int dd_layernorm(const dd_engine *e, dd_prim *out, int64_t rows, int64_t c, const float *src, float *dst,
                 const float *scale, const float *shift, float eps);

/* In-place softmax along each row of a rows x cols matrix, ld floats apart. */
int dd_softmax(const dd_engine *e, dd_prim *out, int64_t rows, int64_t cols, int64_t ld, float *data);

/* ------------------------------------------------------------- threads */

/* Sets the OpenMP thread count oneDNN (and dd_parallel) use from the calling
 * thread on; n <= 0 means all cores. A primitive plans its work for the count
 * in effect when it is created. */
void dd_set_threads(int n);

/* Runs fn(user, begin, end) over [0, n) split into contiguous ranges, one per
 * OpenMP thread (in the calling thread only when n < 2 * grain). */
typedef void (*dd_range_fn)(void *user, int64_t begin, int64_t end);
void dd_parallel(int64_t n, int64_t grain, dd_range_fn fn, void *user);

#endif
