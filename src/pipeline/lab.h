/* sRGB <-> CIE L*a*b* (D65) on float pixels, computed the way OpenCV 4.x's
 * cvtColor does it for CV_32F images, so that a pipeline written against
 * OpenCV (DDColor's) can be matched to the last bit:
 *   - RGB -> Lab clips each channel to [0,1], rounds it to a step of 1/16384
 *     and interpolates trilinearly, in fixed point, in a 33x33x33 table of Lab
 *     values built from the formulas (sRGB gamma, D65 white);
 *   - Lab -> RGB uses the formulas, clips linear RGB to [0,1] and applies the
 *     sRGB curve through a 1024-segment cubic spline.
 * The textbook RGB->Lab formula differs from OpenCV's by up to 0.25 in L.
 * Tables are built once, on first use, and are shared by all threads. */
#ifndef PM_PIPELINE_LAB_H
#define PM_PIPELINE_LAB_H

#include <stddef.h>

/* Builds the tables now (otherwise the first conversion does). Thread-safe. */
void pm_lab_init(void);

/* n pixels of R,G,B floats `in_step` floats apart (3 for RGB, 4 for RGBA)
 * -> L, a, b written `out_step` floats apart (3 = interleaved). Both buffers
 * belong to the caller. L in [0,100], a and b in raw units. */
void pm_rgb_to_lab_f32(const float *rgb, int in_step, float *lab, int out_step, size_t n);

/* Like pm_rgb_to_lab_f32 but writes only L, one float per pixel, to l. */
void pm_rgb_to_l_f32(const float *rgb, int in_step, float *l, size_t n);

/* n pixels of L, a, b read from three (possibly interleaved) arrays with a
 * common element step `in_step` -> R,G,B in [0,1] written `out_step` floats
 * apart. Buffers belong to the caller. */
void pm_lab_to_rgb_f32(const float *l, const float *a, const float *b, int in_step,
                       float *rgb, int out_step, size_t n);

#endif
