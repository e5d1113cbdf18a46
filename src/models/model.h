/* The model registry: every engine (PatchMatch, LaMa, DDColor) is described by
 * one pm_model_desc and driven through the same calls. */
#ifndef PM_MODELS_MODEL_H
#define PM_MODELS_MODEL_H

#include "pixmend.h"

enum pm_task { PM_TASK_INPAINT = 0, PM_TASK_COLORIZE = 1 };

enum pm_precision { PM_PREC_FP32 = 0, PM_PREC_BF16 = 1 };

/* Options given when a model is loaded. */
typedef struct pm_model_opts {
    int threads;                 /* compute threads; 0 = all cores */
    enum pm_precision precision; /* fp32 default */
    uint64_t seed;               /* for stochastic engines (PatchMatch) */
} pm_model_opts;

/* Per-call context: progress and cancellation. */
typedef struct pm_run_ctx {
    pm_progress_fn progress; /* may be NULL; returning non-zero cancels */
    void *progress_user;
} pm_run_ctx;

typedef struct pm_model_desc {
    const char *name;   /* "patchmatch", "lama", "ddcolor" */
    enum pm_task task;
    int needs_file;     /* 1 if load() needs a weights file */
    /* Loads the model. `path` is the weights file (NULL when !needs_file).
     * On success *state is owned by the caller and released with unload(). */
    int (*load)(const char *path, const pm_model_opts *opts, void **state);
    void (*unload)(void *state);
    /* Inpainting. rgb: 3 channels; mask: 1 channel, same size, non-zero = fill.
     * Writes a new RGB image of the same size to *out (caller owns). Pixels
     * outside the mask are copied unchanged. */
    int (*inpaint)(void *state, const pm_image *rgb, const pm_image *mask, pm_image *out,
                   const pm_run_ctx *ctx);
    /* Colorization network: `rgb` is the size x size network input, planar
     * RGB in [0,1] (3 planes); writes Lab a and b (raw units), planar (2
     * planes), to `ab`. Both buffers belong to the caller. The image pipeline
     * around it (Lab, resize, merge with the original lightness) is
     * pipeline/colorize.h's pm_colorize_run. */
    int (*colorize)(void *state, const float *rgb, int size, float *ab, const pm_run_ctx *ctx);
    /* Predicted peak memory in bytes of a whole job on a working image of
     * w x h, above the process with the model loaded: the engine's work
     * memory (including what a loaded model's first run lays out, such as
     * weights reordered for the backend) and the job's own buffers (decoded
     * image and mask, result, its encoding). input_size is a colorization
     * network's square input (0 = the model's default); inpainting engines
     * ignore it. Admission starts from it until `pixmend calibrate` or
     * measured jobs give a law (fitted at the default input size), and adds
     * estimate(input_size) - estimate(default) for a job that asks another
     * size; so it must not fall below a real job's peak, whatever the mask
     * or input size. Safe to call from any thread while the model runs. */
    uint64_t (*mem_estimate)(const void *state, int w, int h, int input_size);
} pm_model_desc;

/* The registered descriptions, NULL-terminated; and lookup by name (NULL if unknown). */
extern const pm_model_desc *const pm_models[];
const pm_model_desc *pm_model_find(const char *name);

#endif
