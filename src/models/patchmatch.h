/* The built-in exemplar-based inpainter: multi-scale PatchMatch (Barnes et al.
 * 2009) with EM-style voting (Wexler et al. 2007), tuned for a textured,
 * coherent fill rather than a smooth one. Needs no model file.
 *
 * Outline: every pixel carries R, G, B and a texture feature (the local mean
 * of the luminance gradient's magnitude; Newson et al. 2014) that the patch
 * distance counts like a fourth channel. Straight edges that cross the hole
 * (coherent edges on its border whose straight continuation leaves it with
 * the same profile across) are found at full size and painted as bands into
 * every level's starting estimate, so the search carries them across (the
 * structure term; Criminisi et al. 2004 carry isophotes by fill order).
 * PatchMatch runs from the coarsest level of the pyramid whose hole is still
 * thicker than a patch radius (shorter side >= min_size) down to full size;
 * that level starts from a smooth (membrane) fill and a random field, every
 * finer one from the coarser field (matches scaled by two) and its vote. At
 * each level a nearest-neighbour field maps each target patch (one that
 * overlaps the hole) to a source patch fully outside it, improved by
 * propagation and random search; every target patch then votes for the
 * pixels it covers (weighted by similarity and by distance to the border).
 * The votes at full size take the dominant mode of the votes, which keeps
 * the texture, and a gradient-domain seam correction (a membrane
 * carrying the mismatch between the border and what the copied sources have
 * there) removes the seam at the hole's edge.
 *
 * Determinism: for a given seed the result does not depend on the number of
 * threads. Rows are cut into bands of fixed height that depend on the image
 * only; each band draws its random numbers from (seed, level, iteration,
 * band) and, during a propagation pass, reads neighbours outside itself from
 * the field as it was when the pass started.
 */
#ifndef PM_MODELS_PATCHMATCH_H
#define PM_MODELS_PATCHMATCH_H

#include "pixmend.h"
#include "models/model.h"

#include <stdint.h>

typedef struct pm_patchmatch_params {
    int patch_size; /* side of a square patch, odd, 3..15; default 7 */
    int em_iters;   /* EM iterations (search + vote) per level, the finest level
                       running a quarter as many, rounded up; 1..100, default 8 */
    int pm_iters;   /* PatchMatch passes per EM iteration; default 2 */
    int min_size;   /* the coarsest level keeps its shorter side >= this; default 32 */
    uint64_t seed;  /* random seed; same seed, same result */
    int threads;    /* compute threads; <= 0 = all cores */
} pm_patchmatch_params;

/* The defaults documented above. */
pm_patchmatch_params pm_patchmatch_default_params(void);

/* Fills the hole of `rgb` (3 channels) marked by `mask` (1 channel, same
 * size, non-zero = hole). `p` NULL = defaults; `ctx` may be NULL (no progress,
 * no cancellation). On success *out is a new RGB image of the same size that
 * the caller owns (pm_image_free); pixels outside the hole are copied
 * unchanged. Errors: PM_EINVAL (bad image, channels or parameters),
 * PM_EMISMATCH (mask size), PM_ENOSOURCE (nothing outside the hole to copy
 * from), PM_ECANCELLED (progress callback asked to stop), PM_ENOMEM. On
 * failure *out is left zeroed. */
int pm_patchmatch_inpaint(const pm_image *rgb, const pm_image *mask, const pm_patchmatch_params *p,
                          pm_image *out, const pm_run_ctx *ctx);

/* The registry description ("patchmatch", inpaint, no model file). */
extern const pm_model_desc pm_model_patchmatch;

/* ------------------------------------------------------------------------
 * Building blocks, exposed for unit tests. Coordinates of a patch are those of
 * its centre; with r = patch_size / 2 a patch centred at (x, y) covers
 * [x - r, x + r] x [y - r, y + r] and lies inside the layer iff
 * r <= x < w - r and r <= y < h - r.
 */

/* One pyramid level: the working image and what is known about the hole. */
typedef struct pm_pmatch_layer {
    int w, h;
    int patch_size;
    uint8_t *px;        /* w*h*4: R, G, B and the texture feature */
    uint8_t *hole;      /* w*h: 1 = to be filled */
    uint8_t *src_ok;    /* w*h: 1 = a patch centred here lies inside and fully outside the hole */
    int32_t *src_list;  /* the n_src indices (y*w + x) where src_ok is 1, in raster order */
    int n_src;
    float *hole_dist;   /* w*h: distance from a hole pixel to the nearest known pixel; 0 outside */
} pm_pmatch_layer;

/* Allocates a w x h layer for patches of side `patch_size` (all buffers
 * zeroed). The caller owns the buffers and releases them with
 * pm_pmatch_layer_free. Returns 0, PM_EINVAL or PM_ENOMEM. */
int pm_pmatch_layer_alloc(pm_pmatch_layer *L, int w, int h, int patch_size);
/* Frees the buffers and zeroes the struct; safe on a zeroed struct. */
void pm_pmatch_layer_free(pm_pmatch_layer *L);
/* Computes src_ok, src_list, n_src and hole_dist from L->hole. */
void pm_pmatch_layer_analyse(pm_pmatch_layer *L);
/* Builds a layer from an RGB image and a mask of the same size (non-zero =
 * hole); hole pixels are zeroed (their content is forgotten), known pixels
 * get their texture feature, and the layer is analysed. The caller owns *L
 * (pm_pmatch_layer_free). */
int pm_pmatch_layer_from_image(pm_pmatch_layer *L, const pm_image *rgb, const pm_image *mask, int patch_size);

/* Sum of squared differences over R, G, B and the texture feature between the
 * patch centred at (tx, ty) and the one centred at (sx, sy), both inside the
 * layer. The sum is accumulated row by row and returned as soon as it reaches
 * `limit`, so a result >= limit only means "not better than limit"; pass
 * INT32_MAX for the exact value. */
int32_t pm_patch_distance(const pm_pmatch_layer *L, int tx, int ty, int sx, int sy, int32_t limit);

typedef struct pm_nnf_entry {
    int32_t sx, sy; /* centre of the source patch */
    int32_t d;      /* pm_patch_distance(target, source), exact */
} pm_nnf_entry;

/* The nearest-neighbour field of one layer. Targets are the patches inside the
 * layer that contain at least one hole pixel; the field covers their bounding
 * box [x0, x0 + w) x [y0, y0 + h). */
typedef struct pm_nnf {
    int x0, y0, w, h;
    int n_targets;
    uint8_t *is_target;   /* w*h */
    pm_nnf_entry *e;      /* w*h; meaningful where is_target */
    pm_nnf_entry *snap;   /* w*h; the field as a pass started (read across bands) */
} pm_nnf;

/* Allocates the field for the targets of layer L (which must be analysed).
 * The caller owns it (pm_nnf_free). Returns 0 or PM_ENOMEM; a layer without
 * hole gives an empty field (n_targets 0). */
int pm_nnf_alloc(pm_nnf *f, const pm_pmatch_layer *L);
void pm_nnf_free(pm_nnf *f);
/* Points every target at a source drawn uniformly from L->src_list, from
 * `seed`, and stores the exact distance. Needs L->n_src > 0. */
void pm_nnf_init_random(pm_nnf *f, const pm_pmatch_layer *L, uint64_t seed, int threads);
/* Recomputes every stored distance from the current pixels of L (after the
 * pixels changed). */
void pm_nnf_refresh(pm_nnf *f, const pm_pmatch_layer *L, int threads);
/* One PatchMatch pass: propagation (from the left and upper neighbours when
 * `pass` is even, right and lower when odd) and random search around the
 * current match plus one candidate drawn from the whole source list. A
 * candidate replaces the current match only when strictly better, so no
 * distance increases. Random numbers come from (seed, pass, band); the result
 * does not depend on `threads`. Returns 0 (it cannot fail). */
int pm_nnf_pass(pm_nnf *f, const pm_pmatch_layer *L, int pass, uint64_t seed, int threads);

#endif
