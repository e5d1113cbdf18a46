/* Internals of DDColor shared by ddcolor.c (weights, configuration, load,
 * the registry entry) and ddcolor_plan.c (the plan: its build and its run). */
#ifndef PM_MODELS_DDCOLOR_INTERNAL_H
#define PM_MODELS_DDCOLOR_INTERNAL_H

#include "models/ddcolor.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "ckpt/ckpt.h"
#include "nn/dd_dnnl.h"
#include "nn/dd_ops.h"

#define SH(...) ((const int64_t[]){__VA_ARGS__})

typedef struct lin_w {
    const float *w, *b; /* PyTorch Linear layout [out, in]; b may be NULL */
    int out, in;
} lin_w;

typedef struct ln_w {
    const float *w, *b;
} ln_w;

typedef struct block_w {
    const float *dw_w, *dw_b, *gamma;
    ln_w norm;
    lin_w pw1, pw2;
} block_w;

typedef struct unet_w {
    int cin, cs, n;
    const float *shuf_w;      /* [4n, cin] weight_orig, in place */
    float *shuf_a, *shuf_b;   /* its BatchNorm as x*a + b, a divided by the spectral norm */
    float *skip_a, *skip_b;   /* BatchNorm of the skip input as x*a + b */
    const float *conv_w;      /* [n, n+cs, 3, 3] weight_orig, in place */
    float conv_inv_sigma;     /* 1 / its spectral norm */
    float *bn_a, *bn_b;       /* BatchNorm after the conv's ReLU */
} unet_w;

typedef struct attn_w {
    lin_w q, k, v, o; /* views into in_proj_weight / out_proj */
    ln_w norm;
} attn_w;

typedef struct layer_w {
    attn_w cross, self;
    lin_w ffn1, ffn2;
    ln_w ffn_norm;
} layer_w;

/* ------------------------------------------------------------- plan */

enum op_kind { OP_NORMALIZE, OP_SHUFBLUR, OP_AFFRELU, OP_ADD, OP_POS, OP_COPY, OP_FOLDREF, OP_REDUCE, OP_FINAL };

typedef struct op_arg {
    enum op_kind kind;
    const float *a, *b, *c, *d;
    float *out;
    int64_t n;
    int i0, i1, i2, i3;
} op_arg;

typedef struct dd_step {
    dd_prim prim; /* used when prim.prim != NULL */
    op_arg op;
    int nthr;     /* OpenMP threads it runs on (1 for tiny ops: waking threads costs more) */
    int tick;     /* a progress step ends here */
} dd_step;

/* Rounds a float count up to 64 bytes. */
#define A16(x) (((x) + 15) & ~(int64_t)15)

/* Below these sizes an op runs on one thread. */
#define SMALL_MACS (8 << 20)
#define SMALL_ELEMS (256 << 10)

typedef struct dd_plan {
    int size;
    int threads; /* the model's thread count */
    dd_step *steps;
    int nsteps, cap;
    void **bufs; /* pm_malloc_aligned buffers owned by the plan */
    int nbufs, bcap;
    uint64_t bytes;
    int ticks;
    const float *io_rgb; /* set for each run */
    float *io_ab;
} dd_plan;

struct pm_ddcolor {
    pm_ddcolor_config cfg;
    char path[512];
    char prefix[128];
    pm_ckpt *ck;
    int threads;
    void **owned; /* pm_malloc'd weight buffers */
    int nowned, cowned;
    uint64_t owned_bytes, mapped_bytes;

    const float *stem_w, *stem_b, *ds_w[4], *ds_b[4];
    ln_w stem_ln, ds_ln[4], feat_ln[4];
    block_w *blocks[4];
    unet_w dec[3];
    const float *ls_w, *ls_b; /* last_shuf weight_orig [16E, E] in place, bias */
    float ls_inv_sigma;
    lin_w proj[3];
    const float *level_embed, *query_feat, *query_embed;
    layer_w *layers;
    ln_w dec_norm;
    lin_w ce[3];
    float *ref_w;
    const float *ref_b;
    float mean[3], std[3];

    dd_engine eng;
    dd_plan *plan;               /* under lock */
    pthread_mutex_t lock;        /* held while a run uses or replaces the plan */
    /* The current plan's size and bytes, for pm_ddcolor_workspace_bytes
     * (admission asks while a run holds `lock`). plan_lock is a leaf: nothing
     * else is taken while it is held, so any thread may take it under its own
     * locks. */
    pthread_mutex_t plan_lock;
    int plan_size;
    uint64_t plan_bytes;
};

/* Shared between ddcolor.c and ddcolor_plan.c. */
/* Frees a plan's primitives and buffers, and the plan. */
void pm_dd__plan_free(dd_plan *p);
/* With m->lock held: publishes the plan's size and bytes (0 when none). */
void pm_dd__publish_plan(pm_ddcolor *m);

#endif
