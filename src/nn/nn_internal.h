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

enum nn_op_kind { OP_CONV, OP_PAD, OP_ADD, OP_CONCAT, OP_RFFT, OP_IRFFT, OP_MARK, OP_INTERLEAVE, OP_BORDER, OP_SMALLCONV };

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
} nn_tensor;

enum nn_step_kind { ST_PRIM, ST_PAD, ST_ADD, ST_RFFT, ST_IRFFT, ST_MARK, ST_INTERLEAVE, ST_BORDER, ST_SMALLCONV };

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
};

/* nn.c */
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

/* Shared between nn.c and nn_lower.c. */
int pm_nn__dnnl_err(dnnl_status_t s, const char *what, const char *name);
dnnl_status_t pm_nn__conv_desc(dnnl_convolution_desc_t *cd, const pm_nn_conv_desc *d, dnnl_alg_kind_t alg,
                               const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *wei,
                               const dnnl_memory_desc_t *bias, const dnnl_memory_desc_t *dst);
void pm_nn__set_err(pm_nn_plan *p, int rc);

#endif
