/* Mask preparation before a model runs: a binary one-channel copy of any
 * mask, grown or shrunk by a disc (the `mask_dilate` job option and
 * `--mask-dilate`). */
#ifndef PM_MASK_H
#define PM_MASK_H

#include "pixmend.h"

/* The largest grow or shrink, in pixels, either way. */
#define PM_MASK_DILATE_MAX 256

/* Grows (`radius` > 0) or shrinks (`radius` < 0) the one-channel mask `mask`
 * in place by a disc of |radius| pixels: after growing, a pixel is set when a
 * set pixel lies within Euclidean distance |radius| (dx*dx + dy*dy <= r*r);
 * after shrinking, a pixel stays set only when no unset pixel lies that near.
 * Pixels outside the image count as neither, so a mask touching the border
 * stays at the border. Non-zero is set on input; the output is 0 or 255.
 * Linear in the pixels whatever the radius (a distance transform: a column
 * pass, then the lower envelope of parabolas along each row); it allocates
 * 2 bytes a pixel plus a few rows, freed before it returns.
 * Errors: PM_EINVAL (not one channel, |radius| > PM_MASK_DILATE_MAX), PM_ENOMEM. */
int pm_mask_dilate(pm_image *mask, int radius);

/* A binary one-channel copy of `mask` (any channel count; its first channel
 * non-zero = fill), grown or shrunk by `dilate` pixels as pm_mask_dilate
 * does (0 = unchanged). *out is the caller's (pm_image_free); *holes
 * (may be NULL) receives how many pixels it selects. */
int pm_mask_prepare(const pm_image *mask, int dilate, pm_image *out, size_t *holes);

#endif
