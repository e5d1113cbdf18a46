/* Resampling used by the pipelines. Each writes a new image to *dst (caller owns). */
#ifndef PM_RESAMPLE_H
#define PM_RESAMPLE_H

#include "pixmend.h"

/* Box-filter (area average) shrink or any resize; any channel count. */
int pm_resize_area(pm_image *dst, const pm_image *src, int w, int h);
/* Bilinear with half-pixel centres; any channel count. */
int pm_resize_bilinear(pm_image *dst, const pm_image *src, int w, int h);
/* Nearest neighbour with half-pixel centres; any channel count. */
int pm_resize_nearest(pm_image *dst, const pm_image *src, int w, int h);
/* 1-channel mask resize: a destination pixel is 255 if any source pixel it
 * covers is non-zero, so a shrunk mask never loses a thin stroke. */
int pm_resize_mask_any(pm_image *dst, const pm_image *src, int w, int h);

#endif
