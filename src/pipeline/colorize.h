/* Colorization with DDColor, as its reference pipeline does it
 * (ddcolor/pipeline.py with OpenCV 4.x), to within 1 LSB:
 *   1. 8-bit RGB (grey expanded, alpha set aside) / 255 as float;
 *   2. L of the original image (OpenCV's table-driven float RGB->Lab);
 *   3. bilinear resize to S x S (half-pixel centres, no anti-aliasing), its L,
 *      back to RGB from (L, 0, 0): the network's input;
 *   4. the predicted ab upsampled to the original size (nearest, PyTorch's
 *      float32 index rule; bilinear as an option);
 *   5. (original L, ab) -> RGB, x 255, rounded half to even; alpha restored. */
#ifndef PM_PIPELINE_COLORIZE_H
#define PM_PIPELINE_COLORIZE_H

#include "pixmend.h"
#include "models/ddcolor.h"
#include "models/model.h"

#define PM_COLORIZE_SIZE_DEFAULT PM_DDCOLOR_SIZE_DEFAULT
#define PM_COLORIZE_SIZE_PORTRAIT 512   /* deployments use 460-680 for portraits */
#define PM_COLORIZE_SIZE_BUILDING 1024  /* and 960-1280 for buildings */
#define PM_COLORIZE_SIZE_MIN 64
#define PM_COLORIZE_SIZE_MAX 2048
#define PM_COLORIZE_SIZE_STEP 32        /* the network's patch grid: sizes are multiples of it */

typedef enum pm_upsample {
    PM_UPSAMPLE_NEAREST = 0, /* as the reference does */
    PM_UPSAMPLE_BILINEAR,    /* smoother colour edges */
} pm_upsample;

typedef struct pm_colorize_opts {
    int input_size;      /* S: the network's square input, PM_COLORIZE_SIZE_MIN..MAX, a multiple of
                          * PM_COLORIZE_SIZE_STEP; default PM_COLORIZE_SIZE_DEFAULT. Parsed from
                          * text (and presets) by the option table, sched/options.h. */
    pm_upsample upsample;
} pm_colorize_opts;

pm_colorize_opts pm_colorize_default_opts(void);

/* "nearest" / "bilinear" -> pm_upsample; -1 if unknown. */
int pm_upsample_parse(const char *s);
const char *pm_upsample_name(pm_upsample u);

/* Colorizes `in` (1, 3 or 4 channels) with a colorization model (its desc
 * and loaded state, from the registry). *out is a new image of the same size
 * with 3 channels, or 4 when `in` has alpha (copied unchanged); caller owns it
 * (pm_image_free). Errors: PM_EINVAL (bad image or options, or a model that
 * does not colorize), PM_ENOMEM, PM_ECANCELLED, the network's errors. The
 * job's memory estimate is the model's mem_estimate (model.h). */
int pm_colorize_run(const pm_model_desc *model, void *state, const pm_image *in, const pm_colorize_opts *opts,
                    pm_image *out, const pm_run_ctx *ctx);

/* OpenCV's INTER_LINEAR resize of float images (cv::resize, no anti-alias):
 * ch interleaved channels; buffers belong to the caller. Returns 0, or
 * PM_ENOMEM when its small work area cannot be allocated. */
int pm_resize_linear_f32(const float *src, int sw, int sh, int ch, float *dst, int dw, int dh);


#endif
