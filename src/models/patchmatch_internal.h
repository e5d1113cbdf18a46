/* Internal pieces of the PatchMatch inpainter shared by patchmatch.c (voting,
 * driver, registry), patchmatch_field.c (layers, patch distance, the
 * nearest-neighbour field) and patchmatch_fill.c (smooth fill, resampling,
 * texture features). Not part of the library's interface. */
#ifndef PM_MODELS_PATCHMATCH_INTERNAL_H
#define PM_MODELS_PATCHMATCH_INTERNAL_H

#include "models/patchmatch.h"

#include <stddef.h>
#include <stdint.h>

/* Rows per band: the unit of parallel work and of random streams. Fixed, so
 * that the result does not depend on how many threads run the bands. */
#define PM_BAND_ROWS 16

static inline int pm_pmatch_n_bands(int h)
{
    return (h + PM_BAND_ROWS - 1) / PM_BAND_ROWS;
}

/* ------------------------------------------------------------ random numbers */

static inline uint64_t pm_mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A seed derived from a parent seed and one more number. */
static inline uint64_t pm_seed2(uint64_t seed, uint64_t k)
{
    return pm_mix64(seed ^ pm_mix64(k + 0x632BE59BD9B4E019ull));
}

typedef struct pm_rng {
    uint64_t s;
} pm_rng;

/* SplitMix64: the state advances by the constant pm_mix64 adds. */
static inline uint64_t pm_rng_next(pm_rng *g)
{
    uint64_t z = pm_mix64(g->s);
    g->s += 0x9E3779B97F4A7C15ull;
    return z;
}

/* Uniform in [0, n), n >= 1. */
static inline uint32_t pm_rng_below(pm_rng *g, uint32_t n)
{
    return (uint32_t)(((pm_rng_next(g) >> 32) * (uint64_t)n) >> 32);
}

/* --------------------------------------------------------- patchmatch_field.c */

/* Half-size level C of F (C allocated at ((F->w + 1) / 2) x ((F->h + 1) / 2)):
 * hole where any pixel of the 2x2 block is, known pixels the block's mean. */
void pm_pmatch_downsample(const pm_pmatch_layer *F, pm_pmatch_layer *C);
/* Two-pass chamfer distance (1, sqrt 2) D of every pixel to the nearest one
 * where hole is 0; with v (4 floats a pixel) non-NULL, every hole pixel also
 * takes the v of the known pixel its distance comes from. */
void pm_pmatch_chamfer(const uint8_t *hole, int w, int h, float *D, float *v);
/* A PatchMatch pass whose random search starts at `max_radius`. */
int pm_nnf_pass_radius(pm_nnf *f, const pm_pmatch_layer *L, int pass, uint64_t seed, int threads, int max_radius);
/* Field f of layer L from the coarser field fc of layer C (matches scaled by
 * two); a random source where that is not valid. */
void pm_nnf_upsample(pm_nnf *f, const pm_pmatch_layer *L, const pm_nnf *fc, const pm_pmatch_layer *C, uint64_t seed,
                     int threads);

/* ---------------------------------------------------------- patchmatch_fill.c */

/* Scratch of the smooth fill, sized for the finest level and allocated once
 * per run; freed before the search starts. */
typedef struct pm_fill_work {
    float *v;       /* 4 floats per pixel: R, G, B and the texture feature */
    int32_t *list;  /* hole pixel indices */
    uint8_t *ring;  /* per pixel, seam correction: 1 = a hole pixel with a known 4-neighbour */
    float *dist;    /* per pixel: distance to the nearest known pixel */
} pm_fill_work;

/* Bytes of pm_fill_work per pixel (for the memory estimate). */
#define PM_FILL_WORK_BYTES_PER_PX (5 * sizeof(float) + sizeof(int32_t) + 1)

/* Allocates the smooth-fill scratch for up to n pixels; the caller owns *F
 * and releases it with pm_pmatch_fill_work_free. Returns 0 or PM_ENOMEM. */
int pm_pmatch_fill_work_alloc(pm_fill_work *F, size_t n);
void pm_pmatch_fill_work_free(pm_fill_work *F);
/* Smooth (membrane) fill of the hole of L, all four bytes of a pixel; from
 * the nearest known pixel's value when C is NULL, else from the
 * coarser level C upsampled. */
void pm_pmatch_fill_smooth(pm_pmatch_layer *L, const pm_pmatch_layer *C, pm_fill_work *F, int iters, int threads);
/* Hole pixels of the fine level F from the coarse estimate C (bilinear, all
 * four bytes). */
void pm_pmatch_upsample_pixels(pm_pmatch_layer *F, const pm_pmatch_layer *C);
/* Texture feature (fourth byte of px) of every known pixel of L: the local
 * mean of the luminance gradient's magnitude, from known pixels only. Hole
 * pixels keep theirs (they are estimated with the colours). */
void pm_pmatch_texture_features(pm_pmatch_layer *L);
/* Gradient-domain seam correction of the hole of L (level 0), after the
 * final vote copied hole pixel p from source pixel src[p] (-1: none): adds
 * to the hole the membrane whose boundary value at each known pixel next to
 * the hole is the mean difference between it and what the neighbouring hole
 * pixels' sources have at the same offset. The fill keeps its own detail
 * (the correction is smooth inside) while its steps across the border
 * become the source's own. */
void pm_pmatch_seam_correct(pm_pmatch_layer *L, const int32_t *src, pm_fill_work *F, int iters, int threads);

/* A straight edge that crosses the hole of level 0: it enters at known pixel
 * (bx, by), runs along (ux, uy) and leaves at the known pixel len further. */
typedef struct pm_pmatch_line {
    float bx, by, ux, uy, len;
} pm_pmatch_line;

#define PM_LINE_WIN 3            /* structure tensor window radius */
#define PM_LINE_R 3              /* half-width of the painted band */
#define PM_LINE_COHERENCE 0.5f  /* (l1 - l2) / (l1 + l2) of the tensor */
#define PM_LINE_MIN_ENERGY 300.0f /* mean squared central difference */
#define PM_LINE_MIN_STEP 24      /* luminance range across the line */
#define PM_LINE_COS 0.995f       /* directions agree within about 6 degrees */
#define PM_MAX_LINES 64

/* Finds up to `max` straight edges crossing the hole of L (level 0): coherent
 * edges on the hole's border whose straight continuation leaves the hole at
 * a known pixel with the same orientation and the same profile across. */
int pm_pmatch_find_lines(const pm_pmatch_layer *L, pm_pmatch_line *out, int max);
/* Paints line l into the hole of level `level` of the pyramid (see
 * patchmatch_fill.c); a starting estimate that carries the edge across. */
void pm_pmatch_paint_line(pm_pmatch_layer *L, const pm_pmatch_line *l, int level);

#endif
