/* Task logic around a model: the large-image strategies for inpainting
 * (original / resize / crop, as users know them from IOPaint) and channel
 * handling (gray, alpha) so that engines only ever see RGB + a binary mask. */
#ifndef PM_PIPELINE_H
#define PM_PIPELINE_H

#include "pixmend.h"
#include "models/model.h"

typedef enum pm_hd_strategy {
    PM_HD_AUTO = 0,  /* crop when the long side exceeds crop_trigger, else original */
    PM_HD_ORIGINAL,  /* run the model on the whole image */
    PM_HD_RESIZE,    /* shrink the long side to resize_limit, paste back masked pixels only */
    PM_HD_CROP,      /* each mask region's box + margin, inpainted separately */
} pm_hd_strategy;

typedef struct pm_inpaint_opts {
    pm_hd_strategy strategy;
    int resize_limit;  /* long side for PM_HD_RESIZE; default 1280 */
    int crop_trigger;  /* PM_HD_AUTO crops above this long side; default 800 */
    int crop_margin;   /* pixels around each region's box; default 128 */
    int mask_dilate;   /* grow (> 0) or shrink (< 0) the mask by a disc of this many
                          pixels before the model runs (pipeline/mask.h); default 0 */
} pm_inpaint_opts;

pm_inpaint_opts pm_inpaint_default_opts(void);
/* "auto", "original", "resize", "crop" -> strategy; -1 if unknown. */
int pm_hd_strategy_parse(const char *s);
/* The inverse: the strategy's name ("auto" for values out of range). A static string. */
const char *pm_hd_strategy_name(int s);

/* Inpaints `img` (1, 3 or 4 channels) where `mask` (1, 3 or 4 channels, same
 * size; any non-zero first channel = fill) says, with model `m` whose loaded
 * state is `state`. *out is a new image with img's channel count (alpha kept
 * as it was); caller owns it. Pixels outside the mask are unchanged.
 * The mask is first grown or shrunk by opts->mask_dilate pixels.
 * Errors: PM_EMISMATCH (sizes differ), PM_EINVAL, the model's errors. An empty
 * mask (also one shrunk to nothing) returns a copy of the image. */
int pm_inpaint_run(const pm_model_desc *m, void *state, const pm_image *img, const pm_image *mask,
                   const pm_inpaint_opts *opts, pm_image *out, const pm_run_ctx *ctx);

/* Pixels the model works on at once when pm_inpaint_run fills `mask` (one
 * channel or more, non-zero = fill) of an image of the mask's size: the whole
 * image (original), the shrunk image (resize), or the largest region's box
 * with its margin (crop); 0 when nothing is masked. The memory law of
 * admission is applied to this count. */
uint64_t pm_inpaint_work_pixels(const pm_image *mask, const pm_inpaint_opts *opts);

/* Predicted peak working memory (bytes) of pm_inpaint_run for this image and mask,
 * using the model's mem_estimate on the region the strategy would process. */
uint64_t pm_inpaint_mem_estimate(const pm_model_desc *m, const void *state, const pm_image *img,
                                 const pm_image *mask, const pm_inpaint_opts *opts);

#endif
