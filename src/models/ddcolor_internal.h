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
#include "nn/nn.h"

#define SH(...) ((const int64_t[]){__VA_ARGS__})

typedef struct lin_w {
    const float *w, *b; /* PyTorch Linear layout [out, in]; b may be NULL */
    int out, in;
} lin_w;

typedef struct ln_w {
    const float *w, *b;
} ln_w;

typedef struct block_w {
    pm_nn_weights dw; /* depthwise 7x7 with its bias */
    const float *gamma;
    ln_w norm;
    lin_w pw1, pw2;
} block_w;

typedef struct unet_w {
    int cin, cs, n;
    const float *shuf_w;      /* [4n, cin] weight_orig, in place */
    float *shuf_a, *shuf_b;   /* its BatchNorm as x*a + b, a divided by the spectral norm */
    float *skip_a, *skip_b;   /* BatchNorm of the skip input as x*a + b */
    pm_nn_weights conv;       /* 3x3 [n, n+cs] weight_orig (not yet divided by its norm) */
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

struct pm_ddcolor {
    pm_ddcolor_config cfg;
    char path[512];
    pm_ckpt *ck;
    int threads;
    pm_nn_dt dt;  /* of the encoder and the pixel decoder (the colour decoder is f32) */
    void **owned; /* pm_malloc'd weight buffers */
    int nowned, cowned;
    uint64_t owned_bytes, mapped_bytes;

    pm_nn_weights stem, ds[4];
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

    pm_nn_ctx *ctx;
    pm_nn_plan *plan;            /* under lock */
    int ticks;                   /* progress steps of a run */
    pthread_mutex_t lock;        /* held while a run uses or replaces the plan */
    /* The current plan's size and bytes, for pm_ddcolor_workspace_bytes
     * (admission asks while a run holds `lock`). plan_lock is a leaf: nothing
     * else is taken while it is held, so any thread may take it under its own
     * locks. */
    pthread_mutex_t plan_lock;
    int plan_size;
    uint64_t plan_bytes;
};

#endif
