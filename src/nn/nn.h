/* The neural-network layer: float tensors and the ops the models need, on
 * oneDNN (convolution, deconvolution, reorder, concat) and FFTW3f (rfft2 /
 * irfft2), driven by plans.
 *
 * A plan is built once per input shape: the model describes its forward pass
 * as a list of steps on tensor ids; pm_nn_plan_finish() creates every oneDNN
 * primitive and FFTW plan, lets primitives pick their memory formats (format
 * tag "any"; a reorder is inserted only where a consumer wants a different
 * format than its producer gave), and places every activation, scratchpad
 * and temporary in one arena by lifetime. pm_nn_plan_run() allocates that
 * arena, runs the steps and frees it again, so memory returns to its
 * baseline after each run.
 *
 * Tensors are 4-D with batch 1 (C x H x W at the API). Inside, they stay in
 * oneDNN layouts between layers; pm_nn_view describes a layout for code
 * that reads or writes elements directly.
 */
#ifndef PM_NN_H
#define PM_NN_H

#include "pixmend.h"

#include <dnnl.h>
#include <stddef.h>
#include <stdint.h>

typedef enum pm_nn_dt { PM_NN_F32 = 0, PM_NN_BF16 = 1 } pm_nn_dt;

/* Element (c, h, w) of a batch-1 tensor lives at element offset
 * (c / blk) * sc + (c % blk) + h * sh + w * sw from `data`.
 * nchw: blk 1, sc H*W; nhwc: blk 1, sc 1; nChw16c: blk 16, sc 16*H*W. */
typedef struct pm_nn_view {
    void *data;      /* not owned */
    pm_nn_dt dt;
    int c, h, w;
    int blk;
    ptrdiff_t sc, sh, sw;
} pm_nn_view;

static inline ptrdiff_t pm_nn_view_off(const pm_nn_view *v, int c, int h, int w)
{
    return (ptrdiff_t)(c / v->blk) * v->sc + c % v->blk + (ptrdiff_t)h * v->sh + (ptrdiff_t)w * v->sw;
}

/* bf16 <-> f32 (round to nearest even). */
static inline uint16_t pm_nn_f32_to_bf16(float f)
{
    union { float f; uint32_t u; } x = {.f = f};
    if ((x.u & 0x7f800000u) == 0x7f800000u && (x.u & 0x7fffffu))
        return (uint16_t)((x.u >> 16) | 0x40); /* quiet NaN */
    x.u += 0x7fffu + ((x.u >> 16) & 1u);
    return (uint16_t)(x.u >> 16);
}
static inline float pm_nn_bf16_to_f32(uint16_t b)
{
    union { uint32_t u; float f; } x = {.u = (uint32_t)b << 16};
    return x.f;
}

/* Element i (an offset, pm_nn_view_off) of a view's f32 or bf16 data, as a
 * float; and storing one there (rounded to bf16 in a bf16 view). */
static inline float pm_nn_ld(const pm_nn_view *v, ptrdiff_t i)
{
    return v->dt == PM_NN_BF16 ? pm_nn_bf16_to_f32(((const uint16_t *)v->data)[i]) : ((const float *)v->data)[i];
}
static inline void pm_nn_st(const pm_nn_view *v, ptrdiff_t i, float x)
{
    if (v->dt == PM_NN_BF16)
        ((uint16_t *)v->data)[i] = pm_nn_f32_to_bf16(x);
    else
        ((float *)v->data)[i] = x;
}

/* ------------------------------------------------------------ context */

/* A oneDNN CPU engine and stream. Caller owns *out (pm_nn_ctx_destroy). */
typedef struct pm_nn_ctx pm_nn_ctx;
int pm_nn_ctx_create(pm_nn_ctx **out);
void pm_nn_ctx_destroy(pm_nn_ctx *ctx);

/* 1 if oneDNN runs bf16 convolutions natively here (avx512_bf16 or newer). */
int pm_nn_cpu_has_bf16(void);

/* Sets the compute threads of the calling thread (OpenMP, used by oneDNN and
 * by the FFT and copy ops); threads <= 0 means all cores. */
void pm_nn_set_threads(int threads);

/* ------------------------------------------------------------ weights */

/* Describes a convolution (or a transposed convolution) for its weights. */
typedef struct pm_nn_conv_desc {
    int ic, oc;        /* input and output channels */
    int kh, kw;        /* kernel size */
    int stride;
    int transposed;    /* 1: deconvolution, weights given as [ic][oc][kh][kw] */
    int pad_t, pad_l, pad_b, pad_r; /* zero padding of the sides; deconvolution:
                          output = (in - 1) * stride + k - pad_t - pad_b (rows) */
    pm_nn_dt dt;       /* weights and activations type */
    int ref_h, ref_w;  /* a typical input size, to choose the stored format */
    int winograd;      /* 1: weights for a Winograd convolution; stored plain
                          (oihw), which its per-run transform reads */
    int groups;        /* channel groups (0 or 1: none; ic = oc = groups:
                          depthwise); plain weights [oc][ic/groups][kh][kw] */
} pm_nn_conv_desc;

/* Weights of one convolution with BatchNorm already folded in, stored in the
 * format a direct convolution of the reference size prefers. */
typedef struct pm_nn_weights {
    pm_nn_conv_desc d;
    dnnl_memory_desc_t md; /* stored format */
    void *data;            /* owned (pm_malloc_aligned) */
    float *bias;           /* owned, oc floats, or NULL */
    size_t bytes;          /* of data + bias */
} pm_nn_weights;

/* Initialises *w from plain float weights (oihw, or iohw when transposed)
 * and an optional bias (oc floats). Copies both; the caller keeps its buffers.
 * On success the caller owns *w (pm_nn_weights_free). */
int pm_nn_weights_init(pm_nn_ctx *ctx, pm_nn_weights *w, const pm_nn_conv_desc *d,
                       const float *plain, const float *bias);
void pm_nn_weights_free(pm_nn_weights *w);

/* Folds an inference BatchNorm (y = (x - mean) / sqrt(var + eps) * gamma + beta)
 * that follows a convolution into its weights and bias: weights are scaled
 * per output channel; bias (oc floats; may start as zeros) becomes
 * bias * s + t. `wt` is oihw ([oc][ic][kk]) or, when transposed, iohw
 * ([ic][oc][kk]), kk = kernel elements. `add_shift` 0 folds only the scale
 * (for a second convolution summed before the same BatchNorm). */
void pm_nn_fold_bn(float *wt, float *bias, int oc, int ic, int kk, int transposed,
                   const float *gamma, const float *beta, const float *mean, const float *var,
                   float eps, int add_shift);

/* Weights of a convolution with few output channels (1..4), such as a
 * network's RGB output layer, where oneDNN's kernels use a small part of
 * the vector width: pm_nn_conv_small runs them with its own kernel. */
typedef struct pm_nn_small_weights {
    int ic, oc, k;
    float *w;      /* owned: [k*k][ic/8 rounded up][oc][8] */
    float bias[4];
} pm_nn_small_weights;

/* From plain oihw float weights and an optional bias; copies both. The
 * caller owns *w (pm_nn_small_weights_free). */
int pm_nn_small_weights_init(pm_nn_small_weights *w, int ic, int oc, int k, const float *plain, const float *bias);
void pm_nn_small_weights_free(pm_nn_small_weights *w);

/* -------------------------------------------------------------- plans */

typedef struct pm_nn_plan pm_nn_plan;
typedef int pm_nn_t; /* a tensor id in a plan; negative = none */

enum pm_nn_flags {
    PM_NN_SUM = 1u << 0,     /* accumulate into the given dst before the activation */
    PM_NN_RELU = 1u << 1,
    PM_NN_SIGMOID = 1u << 2,
    PM_NN_WINOGRAD = 1u << 3, /* allow Winograd (f32, 3x3, stride 1) */
    PM_NN_INTO = 1u << 4      /* write into the given dst (e.g. a row view) */
};

/* Starts a plan; threads is the compute thread count of its runs (<= 0: all
 * cores). Caller owns *out (pm_nn_plan_free). The building calls below record
 * the first error in the plan; pm_nn_plan_finish returns it. */
int pm_nn_plan_begin(pm_nn_ctx *ctx, int threads, pm_nn_plan **out);
void pm_nn_plan_free(pm_nn_plan *p);

/* Activation layout the plan prefers between layers. PM_NN_LAYOUT_ANY lets
 * each primitive choose (a reorder is added where neighbours disagree);
 * NHWC / BLOCKED16 are taken wherever a non-reference implementation
 * accepts them, so that the layers of a network agree without reorders. */
enum pm_nn_layout { PM_NN_LAYOUT_ANY = 0, PM_NN_LAYOUT_NHWC, PM_NN_LAYOUT_BLOCKED16 };
void pm_nn_plan_set_layout(pm_nn_plan *p, enum pm_nn_layout layout);

/* The plan's input, C x H x W of type dt; its layout is the one its first
 * consumer prefers. Filled by the run's fill callback. */
pm_nn_t pm_nn_input(pm_nn_plan *p, int c, int h, int w, pm_nn_dt dt);
/* A tensor with no producer, to be written through row views (PM_NN_INTO,
 * pm_nn_interleave2 with a dst). */
pm_nn_t pm_nn_new(pm_nn_plan *p, int c, int h, int w, pm_nn_dt dt);

/* Marks a tensor as the plan's output, read by the run's read callback. */
void pm_nn_output(pm_nn_plan *p, pm_nn_t t);

/* Convolution (or deconvolution, by w->d.transposed) of src with w, plus
 * bias, then post-ops: PM_NN_SUM adds the previous contents of `dst`
 * (which must then be given), then PM_NN_RELU or PM_NN_SIGMOID. dst < 0:
 * a new tensor of type out_dt. bias_scale multiplies the bias (1 normally).
 * Returns the dst id. */
pm_nn_t pm_nn_conv(pm_nn_plan *p, const char *name, pm_nn_t src, const pm_nn_weights *w,
                   unsigned flags, pm_nn_t dst, pm_nn_dt out_dt, float bias_scale);

/* As pm_nn_conv, with the top and bottom zero padding of the weights'
 * description replaced (for row bands: only the band at the image's edge is
 * padded). */
pm_nn_t pm_nn_conv_pad(pm_nn_plan *p, const char *name, pm_nn_t src, const pm_nn_weights *w, unsigned flags,
                       pm_nn_t dst, pm_nn_dt out_dt, int pad_t, int pad_b);

/* A k x k convolution (stride 1, no padding) with small weights: src
 * C x H x W (f32 or bf16; taken in nhwc) -> f32 oc x (H-k+1) x (W-k+1), plus
 * bias, then PM_NN_SIGMOID if asked. PM_NN_INTO writes into dst. */
pm_nn_t pm_nn_conv_small(pm_nn_plan *p, const char *name, pm_nn_t src, const pm_nn_small_weights *w,
                         unsigned flags, pm_nn_t dst);

/* A view of rows [r0, r1) of tensor t (all channels and columns). Tensors
 * with views are laid out nhwc, where a row range is contiguous; reading
 * and writing the view reads and writes t. Views of views are allowed. */
pm_nn_t pm_nn_rows(pm_nn_plan *p, pm_nn_t t, int r0, int r1);

/* Fills the borders of t in place by reflection: the first `top` rows
 * mirror the rows after row `top` (row top-1-j := row top+1+j), the last
 * `bottom` rows likewise, and columns `left` / `right` the same way (columns
 * first, then whole rows). */
void pm_nn_reflect_border(pm_nn_plan *p, const char *name, pm_nn_t t, int top, int bottom, int left, int right);

/* A window of a reflect-padded image, from a band of it: src holds rows
 * [src_row0, src_row0 + src.h) of an image `full_h` rows high; the result has
 * rows r0 .. r1-1 of the image reflect-padded vertically (r0 may be negative,
 * r1 may pass full_h) and the columns reflect-padded by `pad_cols`. Every
 * reflected row must lie inside the band. */
pm_nn_t pm_nn_pad_window(pm_nn_plan *p, const char *name, pm_nn_t src, int src_row0, int full_h, int r0, int r1,
                         int pad_cols);

/* Reflect padding by `pad` on all four sides. When add >= 0, src += add is
 * done first, in place, and the padded copy is of the sum. Returns the new tensor. */
pm_nn_t pm_nn_pad_reflect(pm_nn_plan *p, const char *name, pm_nn_t src, int pad, pm_nn_t add);

/* dst += src (same shape), in place. */
void pm_nn_add(pm_nn_plan *p, const char *name, pm_nn_t dst, pm_nn_t src);

/* Depth-to-space of four C x H x W tensors t[py * 2 + px] into one
 * C x 2H x 2W tensor: out(c, 2y + py, 2x + px) = t[py * 2 + px](c, y, x).
 * (The sub-pixel form of a stride-2 transposed convolution.) dst < 0: a new
 * tensor; else written into dst (e.g. a row view). */
pm_nn_t pm_nn_interleave2(pm_nn_plan *p, const char *name, const pm_nn_t t[4], pm_nn_t dst);

/* Channel concatenation [a; b]. */
pm_nn_t pm_nn_concat(pm_nn_plan *p, const char *name, pm_nn_t a, pm_nn_t b);

/* 2-D real FFT over (H, W) of an f32 tensor, unnormalised: returns an f32
 * tensor of 2C channels, H x (W/2 + 1), channel 2c = Re F_c, 2c+1 = Im F_c. */
pm_nn_t pm_nn_rfft2(pm_nn_plan *p, const char *name, pm_nn_t src);

/* Inverse of pm_nn_rfft2 (complex-to-real, output H x W where W = the
 * original width `w`), times `scale`, plus `add` (C x H x W): returns a new
 * tensor add + scale * irfft2(freq) of type out_dt. freq is destroyed. */
pm_nn_t pm_nn_irfft2_add(pm_nn_plan *p, const char *name, pm_nn_t freq, int w, float scale,
                         pm_nn_t add, pm_nn_dt out_dt);

/* ------------------------------------------- ops of transformer-like models */

/* Post-operations applied in order to an op's result (after its bias):
 * PM_NN_PO_MUL / PM_NN_PO_ADD take a vector of one float per output channel
 * (not owned; it must outlive the plan), PM_NN_PO_SCALE a factor, PM_NN_PO_SUM
 * adds the destination's previous content. */
enum pm_nn_po_kind { PM_NN_PO_SCALE = 1, PM_NN_PO_RELU, PM_NN_PO_GELU, PM_NN_PO_MUL, PM_NN_PO_ADD, PM_NN_PO_SUM };
#define PM_NN_MAX_POST 4
typedef struct pm_nn_post {
    int n;
    struct { int kind; float scale; const float *vec; } op[PM_NN_MAX_POST];
} pm_nn_post;

/* A matrix, or a stack of `batch` matrices, over the elements of a tensor in
 * nhwc order (pixel-major, channels contiguous; the tensor is brought to that
 * layout), or over constant f32 data when t < 0: element (b, r, c) lies at
 * off + b * bs + r * rs + c * cs. Constant data is not owned; it must outlive
 * the plan (a bf16 product copies it at plan time). */
typedef struct pm_nn_mat {
    pm_nn_t t;
    const float *data;
    int64_t off, rows, cols, rs, cs, batch, bs;
} pm_nn_mat;
/* A tensor C x H x W as an (H*W) x C matrix. */
pm_nn_mat pm_nn_mat_of(const pm_nn_plan *p, pm_nn_t t);
/* The K x N operand of a PyTorch Linear weight stored [N][ld] (ld >= K). */
pm_nn_mat pm_nn_mat_linear(const float *w, int n, int k, int ld);

/* Constant weights a product converts at plan time (bf16) are read once
 * there: after converting, the plan calls release(user, data, bytes), so that
 * their owner can give the pages back (a checkpoint: pm_ckpt_release_bytes). */
void pm_nn_plan_release_constants(pm_nn_plan *p, void (*release)(void *user, const void *data, size_t n), void *user);

/* dst = post(src x wei + bias): src M x K, wei K x N, dst M x N, bias N floats
 * or NULL (not owned); batched when a batch is > 1 (a batch of 1 broadcasts;
 * no bias or vector post-op then). src and wei have one type (a constant wei
 * takes src's), dst f32 or bf16. dst must be a tensor. */
void pm_nn_matmul(pm_nn_plan *p, const char *name, pm_nn_mat src, pm_nn_mat wei, const float *bias, pm_nn_mat dst,
                  const pm_nn_post *po);

/* A convolution with a post-op list (see pm_nn_conv); returns the new dst. */
pm_nn_t pm_nn_conv_post(pm_nn_plan *p, const char *name, pm_nn_t src, const pm_nn_weights *w,
                        const pm_nn_post *po, pm_nn_dt out_dt);

/* Layer normalisation over the channels of each pixel, with per-channel
 * scale and shift (C floats, not owned). dst < 0: a new tensor; dst == src:
 * in place. Returns dst. */
pm_nn_t pm_nn_layernorm(pm_nn_plan *p, const char *name, pm_nn_t src, pm_nn_t dst, const float *scale,
                        const float *shift, float eps);

/* Softmax along each row of a matrix, in place (f32). */
void pm_nn_softmax(pm_nn_plan *p, const char *name, pm_nn_mat m);

/* The same tensor in another type (a reorder). */
pm_nn_t pm_nn_cast(pm_nn_plan *p, const char *name, pm_nn_t src, pm_nn_dt dt);

/* A view of channels [c0, c1) of tensor t (all pixels), to be written by the
 * element-wise ops below (e.g. the two halves of a concatenation). */
pm_nn_t pm_nn_channels(pm_nn_plan *p, pm_nn_t t, int c0, int c1);

/* dst = max(0, src * scale[c] + shift[c]) (relu 1) or without the max
 * (relu 0); vectors of C floats, not owned. dst same shape; may be a view. */
void pm_nn_affine(pm_nn_plan *p, const char *name, pm_nn_t src, const float *scale, const float *shift, int relu,
                  pm_nn_t dst);

/* Pixel shuffle by r, replication pad (left 1, top 1) and 2x2 average pool
 * with stride 1, in one pass: src r*r*n x h x w -> dst n x rh x rw, output
 * channel c at sub-position (i, j) from input channel c*r*r + i*r + j. */
void pm_nn_shuffle_blur(pm_nn_plan *p, const char *name, pm_nn_t src, int r, pm_nn_t dst);

/* dst = src + k, or dst = k when src < 0; k is constant f32 data in nhwc
 * order of dst's shape (not owned). dst may equal src. */
void pm_nn_add_const(pm_nn_plan *p, const char *name, pm_nn_t src, const float *k, pm_nn_t dst);

/* dst = src + DETR sine positions (C channels per pixel: the first C/2
 * encode y, the rest x, as (sin, cos) pairs of pos / 10000^(2j/(C/2)), pos =
 * (1..H) / (H + 1e-6) * 2 pi). */
void pm_nn_add_sine_pos(pm_nn_plan *p, const char *name, pm_nn_t src, pm_nn_t dst);

/* A progress point: when the run reaches it, progress(user, value, max) is
 * called (see pm_nn_run_io). */
void pm_nn_mark(pm_nn_plan *p, int value);

/* Creates the primitives and FFT plans and lays out the arena. */
int pm_nn_plan_finish(pm_nn_plan *p);

/* Bytes of the arena a run allocates (valid after finish). */
size_t pm_nn_plan_arena_bytes(const pm_nn_plan *p);

/* Bytes of constant data the plan made and holds: weights converted for
 * bf16 products, the tables of sine-position steps. */
size_t pm_nn_plan_weight_bytes(const pm_nn_plan *p);

/* Tensor shape (valid during building). */
void pm_nn_shape(const pm_nn_plan *p, pm_nn_t t, int *c, int *h, int *w);

typedef struct pm_nn_run_io {
    /* Writes the input; `in` describes its layout in the arena. */
    int (*fill)(void *user, const pm_nn_view *in);
    /* Reads the output. */
    int (*read)(void *user, const pm_nn_view *out);
    void *user;
    pm_progress_fn progress; /* may be NULL; non-zero return cancels */
    void *progress_user;
    int progress_max;
} pm_nn_run_io;

/* One forward pass. The arena is allocated at the start and freed before
 * returning. Returns 0, PM_ECANCELLED, PM_ENOMEM or an error of a callback. */
int pm_nn_plan_run(pm_nn_plan *p, const pm_nn_run_io *io);

/* Per-step timing: when enabled, runs accumulate each step's time; the
 * report prints steps grouped by name prefix up to the first '#'. */
void pm_nn_plan_profile(pm_nn_plan *p, int enable);
/* Work of one run of a finished plan: the convolutions and matrix products. */
double pm_nn_plan_gflop(const pm_nn_plan *p);

/* The machine's ceiling: the median speed (GFLOP/s) over `runs` runs of one
 * convolution of the dominant shape (3x3, 384 -> 384 channels, 64x64, nhwc)
 * in type dt on `threads` threads, timed alone. */
int pm_nn_ceiling(pm_nn_ctx *ctx, pm_nn_dt dt, int threads, int runs, double *gflops);

/* Writes a per-step table (name, primitive implementation, calls, ms, GFLOP/s). */
void pm_nn_plan_profile_print(const pm_nn_plan *p, void *file /* FILE* */);
/* Describes the plan: arena size and the step with the most live bytes;
 * detail >= 1 also lists every step and its implementation, detail >= 2 the
 * live bytes at every step. */
void pm_nn_plan_describe(const pm_nn_plan *p, void *file /* FILE* */, int detail);

#endif
