/* Internals shared by the files of the nn layer. */
#ifndef PM_NN_INTERNAL_H
#define PM_NN_INTERNAL_H

#include "nn/nn.h"

#include <fftw3.h>

#ifdef _OPENMP
#include <omp.h>
#define PM_OMP_FOR(nt) _Pragma("omp parallel for schedule(static) num_threads(nt)")
#define PM_OMP_FOR_DYN(nt) _Pragma("omp parallel for schedule(dynamic, 1) num_threads(nt)")
#else
/* without OpenMP the loops run on the calling thread */
#define PM_OMP_FOR(nt) (void)(nt);
#define PM_OMP_FOR_DYN(nt) (void)(nt);
#endif

struct pm_nn_ctx {
    dnnl_engine_t eng;
    dnnl_stream_t stream;
};

enum nn_op_kind { OP_CONV, OP_PAD, OP_ADD, OP_CONCAT, OP_RFFT, OP_IRFFT, OP_MARK, OP_INTERLEAVE, OP_BORDER, OP_SMALLCONV,
                  OP_MATMUL, OP_LNORM, OP_SOFTMAX, OP_CAST, OP_ELT, OP_KINDS };
/* element-wise ops (OP_ELT, ST_ELT) */
enum nn_elt_kind { ELT_AFFINE, ELT_SHUFBLUR, ELT_ADDCONST, ELT_SINEPOS };

typedef struct nn_op {
    enum nn_op_kind kind;
    char name[48];
    pm_nn_t src, dst, add, b;
    pm_nn_t quad[4];  /* interleave inputs */
    const pm_nn_weights *w;
    const pm_nn_small_weights *sw;
    unsigned flags;
    pm_nn_dt out_dt;
    float scale; /* bias scale (conv), output scale (irfft) */
    int pad;     /* pad; width of the real signal (irfft) */
    int value;   /* mark */
    int pad_over, pad_t, pad_b;       /* conv: top/bottom padding override */
    int row0, full_h, win0, border[4]; /* pad window; reflect border t, b, l, r */
    pm_nn_post post;  /* conv, matmul */
    pm_nn_mat m[3];   /* matmul src, wei, dst; softmax m[0] */
    const float *k0, *k1; /* constants: bias / scale, shift / added data */
    float eps;
    int elt;          /* nn_elt_kind */
} nn_op;

typedef struct nn_tensor {
    int c, h, w;
    pm_nn_dt dt;
    int fixed;              /* md decided */
    dnnl_memory_desc_t md;
    size_t bytes;
    int first, last;        /* lifetime in steps */
    size_t off;             /* arena offset */
    dnnl_memory_t mem;      /* created at finish; handle set per run */
    int is_input, is_output;
    int parent;             /* view of rows of this tensor, or -1 */
    int row0;               /* first row in the parent */
    size_t view_off;        /* byte offset in the root (resolved) */
    int force_nhwc;         /* has views: must be nhwc */
    int c0;                 /* first channel in the parent (channel views) */
} nn_tensor;

enum nn_step_kind { ST_PRIM, ST_PAD, ST_ADD, ST_RFFT, ST_IRFFT, ST_MARK, ST_INTERLEAVE, ST_BORDER, ST_SMALLCONV, ST_ELT };

#define NN_MAX_ARGS 8

typedef struct nn_step {
    enum nn_step_kind kind;
    char name[48];
    char impl[48];
    dnnl_primitive_t prim;
    int nargs;
    int arg_kind[NN_MAX_ARGS];      /* DNNL_ARG_* */
    int arg_tensor[NN_MAX_ARGS];    /* tensor id, or -1 when arg_mem is fixed */
    dnnl_memory_t arg_mem[NN_MAX_ARGS];
    dnnl_exec_arg_t exec[NN_MAX_ARGS];
    /* custom ops */
    int t_src, t_dst, t_add, t_tmp;
    int t_quad[4];
    int pad;
    int row0, full_h, win0; /* pad window: source band start, image height, first row */
    int border[4];
    const pm_nn_small_weights *sw;
    unsigned flags;
    float scale;
    fftwf_plan fplan;
    int groups, gsize;   /* FFT channel groups of gsize channels */
    int value;           /* mark */
    int elt;             /* nn_elt_kind */
    const float *k0, *k1;
    int one_thread;      /* a small op: runs (and was planned) on one thread */
    /* profile */
    double flops;
    double seconds;
    long calls;
} nn_step;

struct pm_nn_plan {
    pm_nn_ctx *ctx;
    int threads;
    int err;            /* first building error */
    int finished;
    nn_op *ops;
    int nops, cap_ops;
    nn_tensor *t;
    int nt, cap_t;
    nn_step *steps;
    int nsteps, cap_steps;
    pm_nn_t output;
    size_t arena_bytes;
    int profile;
    enum pm_nn_layout layout;
    /* plan-owned memory objects of weights and biases, and scaled biases */
    dnnl_memory_t *wmem;
    int nwmem, cap_wmem;
    float **owned;
    int nowned, cap_owned;
    size_t owned_bytes;  /* of weights converted at plan time */
    void (*release)(void *user, const void *data, size_t n); /* converted constants (not owned) */
    void *release_user;
};

/* nn.c */
/* Fills *v from a oneDNN memory description of a 4-D batch-1 tensor; data is
 * left NULL. Returns PM_EUNSUPPORTED for layouts it cannot express. */
int pm_nn_view_from_md(pm_nn_view *v, const dnnl_memory_desc_t *md);
nn_op *pm_nn__new_op(pm_nn_plan *p, enum nn_op_kind kind, const char *name);
int pm_nn__valid(pm_nn_plan *p, pm_nn_t t, const char *what);
int pm_nn__exec_reorder(pm_nn_ctx *ctx, const dnnl_memory_desc_t *smd, void *src, const dnnl_memory_desc_t *dmd,
                        void *dst);
int pm_nn__new_tensor(pm_nn_plan *p, int c, int h, int w, pm_nn_dt dt);
nn_step *pm_nn__new_step(pm_nn_plan *p, enum nn_step_kind kind, const char *name);
int pm_nn__md_like(dnnl_memory_desc_t *md, const dnnl_memory_desc_t *like, int c, int h, int w, pm_nn_dt dt);
void pm_nn__fix(pm_nn_plan *p, int t, const dnnl_memory_desc_t *md);
dnnl_data_type_t pm_nn__dnnl_dt(pm_nn_dt dt);

/* nn_ops.c: custom steps */
int pm_nn__lower_fft(pm_nn_plan *p, const nn_op *op);
int pm_nn__lower_interleave(pm_nn_plan *p, const nn_op *op);
int pm_nn__lower_border(pm_nn_plan *p, const nn_op *op);
int pm_nn__lower_smallconv(pm_nn_plan *p, const nn_op *op);
int pm_nn__run_smallconv(pm_nn_plan *p, nn_step *s, uint8_t *arena);
int pm_nn__root(const pm_nn_plan *p, int t);
int pm_nn__layout_md(const pm_nn_plan *p, dnnl_memory_desc_t *md, int c, int h, int w, pm_nn_dt dt);
int pm_nn__lower_ifft(pm_nn_plan *p, const nn_op *op);
int pm_nn__run_custom(pm_nn_plan *p, nn_step *s, uint8_t *arena);
void pm_nn__free_custom(nn_step *s);

/* Appends room to a growing array (doubling, from 64); runs `fail` when out of memory. */
#define GROW(arr, n, cap, fail)                                                     \
    do {                                                                            \
        if ((n) == (cap)) {                                                         \
            int nc_ = (cap) ? (cap) * 2 : 64;                                       \
            void *q_ = pm_realloc((arr), (size_t)nc_ * sizeof *(arr));              \
            if (!q_) {                                                              \
                fail;                                                               \
            }                                                                       \
            (arr) = q_;                                                             \
            (cap) = nc_;                                                            \
        }                                                                           \
    } while (0)

/* nn_lower.c, for nn_graph.c */
int pm_nn__add_reorder(pm_nn_plan *p, const char *name, int src, const dnnl_memory_desc_t *md, int into);
void pm_nn__arg(pm_nn_plan *p, int *n, int kind, int tensor, dnnl_memory_t mem);
int pm_nn__step_done(pm_nn_plan *p, dnnl_primitive_desc_t pd, int n);
int pm_nn__add_scratchpad(pm_nn_plan *p, const_dnnl_primitive_desc_t pd, int *n);
dnnl_memory_t pm_nn__fixed_mem(pm_nn_plan *p, const dnnl_memory_desc_t *md, void *data);
int pm_nn__resolve(pm_nn_plan *p, int t);
void pm_nn__fix_default(pm_nn_plan *p, int t);
int pm_nn__make_attr(dnnl_primitive_attr_t *attr, unsigned flags, const pm_nn_post *post,
                     const dnnl_memory_desc_t *vec_md);
int pm_nn__post_args(pm_nn_plan *p, nn_step *s, int *n, const pm_nn_post *post, const dnnl_memory_desc_t *vec_md,
                     int base);
void pm_nn__set_impl(nn_step *s, const_dnnl_primitive_desc_t pd);

/* Below this much work (multiply-adds or elements) an op runs on one
 * thread: waking the others costs more. */
#define NN_SMALL_WORK (256 << 10)

/* nn_graph.c */
int pm_nn__lower_matmul(pm_nn_plan *p, const nn_op *op);
int pm_nn__lower_lnorm(pm_nn_plan *p, const nn_op *op);
int pm_nn__lower_softmax(pm_nn_plan *p, const nn_op *op);
int pm_nn__lower_elt(pm_nn_plan *p, const nn_op *op);
int pm_nn__run_elt(pm_nn_plan *p, nn_step *s, uint8_t *arena);

/* Shared between nn.c and nn_lower.c. */
int pm_nn__dnnl_err(dnnl_status_t s, const char *what, const char *name);
dnnl_status_t pm_nn__conv_desc(dnnl_convolution_desc_t *cd, const pm_nn_conv_desc *d, dnnl_alg_kind_t alg,
                               const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *wei,
                               const dnnl_memory_desc_t *bias, const dnnl_memory_desc_t *dst);
/* Records rc as the plan's first error; returns -1 (no tensor). */
int pm_nn__set_err(pm_nn_plan *p, int rc);
void pm_nn__wei_md(dnnl_memory_desc_t *md, const pm_nn_conv_desc *d, pm_nn_dt dt, int plain);

#endif
