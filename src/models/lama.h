/* LaMa "big-lama" inpainting (the FFC ResNet generator) on the nn layer.
 *
 * Loading reads every generator tensor from a checkpoint (prefix
 * "generator."), checks name, shape and type, infers the width (ngf) and the
 * number of residual blocks from the shapes, folds every BatchNorm into the
 * convolution before it and keeps the weights in the formats oneDNN wants.
 * A plan is built per working size (a multiple of 8) and cached; a run's
 * activations live in one arena allocated for that run only.
 *
 * One loaded state runs one image at a time (runs are serialised by a lock);
 * load it twice for concurrent runs.
 */
#ifndef PM_MODELS_LAMA_H
#define PM_MODELS_LAMA_H

#include "pixmend.h"
#include "models/model.h"

#include <stdio.h>

/* The registry description: "lama", inpaint, needs a checkpoint file. */
extern const pm_model_desc pm_model_lama;

typedef struct pm_lama_opts {
    int threads;                 /* compute threads; <= 0 = all cores */
    enum pm_precision precision; /* PM_PREC_FP32 (default) or PM_PREC_BF16 */
    int winograd;                /* fp32 only: 1 = Winograd 3x3 convolutions in the
                                    residual blocks (their weights are transformed
                                    on every run: slower here, see bench/lama);
                                    0 or -1 (default) = direct */
    size_t band_bytes;           /* size of one row band of the full-resolution
                                    layers (memory vs. per-band overhead);
                                    0 = default (4 MB) */
} pm_lama_opts;

/* Loads big-lama from `path` (PyTorch Lightning .ckpt or any checkpoint the
 * ckpt layer reads). On success *state is owned by the caller
 * (pm_lama_unload). Errors: PM_ENOENT/PM_EIO/PM_ECHECKPOINT from the file,
 * naming the tensor that is missing or has the wrong shape or type;
 * PM_EUNSUPPORTED for bf16 on a CPU without AVX512-BF16; PM_ENOMEM. */
int pm_lama_load(const char *path, const pm_lama_opts *opts, void **state);
void pm_lama_unload(void *state);

/* Width and residual blocks found in the checkpoint. */
void pm_lama_config(const void *state, int *ngf, int *blocks);

/* The network alone: `in` is 4 x h x w float (planar: RGB with the hole
 * zeroed, then the mask), h and w multiples of 8 and at least 16; writes the
 * 3 x h x w sigmoid output to `out` (planar). Caller owns both buffers. */
int pm_lama_forward(void *state, const float *in, int w, int h, float *out, const pm_run_ctx *ctx);

typedef struct pm_lama_bench_result {
    double median_s, min_s, max_s; /* forward pass (plan already built) */
    double plan_s, first_s;        /* building the plan for this size; its first (untimed) run */
    double gflop;                  /* convolution work of one forward (its plan's) */
    size_t arena_bytes;            /* activations + scratch of one run */
    size_t weight_bytes;           /* loaded weights */
} pm_lama_bench_result;

/* Times `runs` forward passes of a w x h random input (after one warm-up)
 * and fills *res. With `profile` non-NULL a per-layer table (time, share,
 * GFLOP/s) of the timed runs is written there. For `pixmend bench lama`. */
int pm_lama_bench(void *state, int w, int h, int runs, FILE *profile, pm_lama_bench_result *res);

#endif
