/* DDColor's element-wise and data-movement operations that oneDNN does not
 * provide, on NHWC float buffers (pixel-major, channels contiguous). None of
 * them allocates; buffers belong to the caller. Each runs on the OpenMP
 * threads set with dd_set_threads(). */
#ifndef PM_NN_DD_OPS_H
#define PM_NN_DD_OPS_H

#include <stdint.h>

/* (x - mean[c]) / std[c] from planar CHW (3 x s x s) to NHWC (s x s x 3). */
void dd_normalize_input(const float *chw, int s, const float *mean, const float *std, float *nhwc);

/* Pixel shuffle by r, replication pad (left 1, top 1), 2x2 average pool with
 * stride 1, as one pass. t: h x w pixels of r*r*n channels, where output
 * channel c at sub-position (i, j) comes from channel c*r*r + i*r + j.
 * Writes (r*h) x (r*w) pixels of n channels to dst, pixels ldd floats apart. */
void dd_shuffle_blur(const float *t, int h, int w, int r, int n, float *dst, int ldd);

/* dst[p*ldd + c] = max(0, x[p*nc + c] * s[c] + t[c]) for npix pixels. */
void dd_affine_relu(const float *x, int64_t npix, int nc, const float *s, const float *t, float *dst, int ldd);

/* PyTorch's inference BatchNorm as x*alpha + beta: alpha = w / sqrt(var + eps),
 * beta = b - mean*alpha (computed as PyTorch does, in float). */
void dd_bn_fold(const float *w, const float *b, const float *mean, const float *var, int n, float eps,
                float *alpha, float *beta);

/* dst = a + b, n floats (dst may alias a or b). */
void dd_add(const float *a, const float *b, float *dst, int64_t n);

/* dst = src + DETR sine positions for an h x w map (hidden channels per pixel,
 * row-major pixels): the first hidden/2 channels encode y, the rest x, each as
 * (sin, cos) pairs of p / 10000^(2j/(hidden/2)) with p = (1..h) / (h + 1e-6) * 2pi. */
void dd_add_sine_pos(const float *src, int h, int w, int hidden, float *dst);

/* g[p][k][s] = sum_e m[k][e] * r[p][e*r2 + s] for k < 2, s < r2: the refine
 * weights applied to each sub-position of a pixel-shuffle input. */
void dd_reduce2(const float *r, int64_t npix, int e, int r2, const float *m, float *g);

/* The colour output: ab[k][y][x] (planar, 2 x (rh) x (rw)) = blur of the
 * shuffled g (see dd_shuffle_blur) + wx[k] . xin[y][x] + bias[k], where xin
 * is the normalised NHWC input (3 channels) and wx is 2 x 3. */
void dd_final_ab(const float *g, int h, int w, int r, const float *xin, const float *wx, const float *bias,
                 float *ab);

#endif
