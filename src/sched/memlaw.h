/* The memory law of a model: predicted peak bytes = a + b x working pixels.
 *
 * Seeded from the engine's own estimate (pm_model_desc.mem_estimate, which
 * each engine calibrates), replaced by `pixmend calibrate` (a least-squares
 * fit of measured peaks), and raised by serve whenever a job's measured peak
 * exceeds its prediction. A law is never allowed below its seed by more than
 * PM_MEMLAW_MARGIN: b >= (1 - margin) x seed_b, and the prediction for
 * PM_MEMLAW_REF_PIXELS (hence for any larger image) >= (1 - margin) x the
 * seed's; a >= 0.
 * Laws are kept in DATA/memlaw.json, one model per line.
 *
 * Plain values: no locking, no allocation; callers serialise access. */
#ifndef PM_SCHED_MEMLAW_H
#define PM_SCHED_MEMLAW_H

#include "models/model.h"

#include <stdint.h>

#define PM_MEMLAW_MAX_PAIRS 16
#define PM_MEMLAW_MARGIN 0.25
#define PM_MEMLAW_REF_PIXELS 65536.0 /* 256 x 256: the margin holds from this size up */
#define PM_MEMLAW_FILE "memlaw.json"
/* Bytes a pixel of the whole image that a worker holds beside the model when
 * the model works on part of it (decoded input 3 and mask 1, output 3, the
 * encoded result about 2): outside the law, added to its prediction. */
#define PM_MEMLAW_FULL_IMAGE_BYTES 9

typedef struct pm_memlaw {
    char model[32];
    double a, b;                 /* the law in use: bytes, bytes per pixel */
    double seed_a, seed_b;       /* from the engine's mem_estimate */
    char source[16];             /* "seed", "calibrate", "measured", "file" */
    double max_ratio;            /* highest measured / predicted seen by serve (1 = none above) */
    int held_by_seed;            /* pm_memlaw_fit: the margin to the seed raised the fitted law */
    int npairs;                  /* calibration measurements kept with the law */
    double px[PM_MEMLAW_MAX_PAIRS], peak[PM_MEMLAW_MAX_PAIRS];
} pm_memlaw;

/* A law from the engine's estimate at two sizes (512 and 1024 squares). */
void pm_memlaw_seed(pm_memlaw *l, const pm_model_desc *d, const void *state);

/* Predicted peak in bytes for `pixels` working pixels (rounded up). */
uint64_t pm_memlaw_predict(const pm_memlaw *l, uint64_t pixels);

/* Fits a and b to n (pixels, peak) pairs: candidates are the least-squares
 * line (one pair: the seed's slope through it) and the line through each
 * pair of measurements; each is kept within the margin of the seed and
 * raised so that no measurement is above it; the one whose largest relative
 * error is smallest wins. Stores the pairs (at most
 * PM_MEMLAW_MAX_PAIRS) and sets source "calibrate". PM_EINVAL when n < 1 or
 * a value is not positive. */
int pm_memlaw_fit(pm_memlaw *l, const double *px, const double *peak, int n);

/* A job's measurement: when `peak` exceeds the prediction for `pixels`, both
 * coefficients are scaled up by the ratio. Returns 1 when the law was raised. */
int pm_memlaw_observe(pm_memlaw *l, uint64_t pixels, uint64_t peak);

/* Keeps the law within the margin of the seed (see above); returns 1 if it had to raise it. */
int pm_memlaw_clamp(pm_memlaw *l);

/* The most working pixels whose prediction fits in `budget` (0 if none). */
uint64_t pm_memlaw_max_pixels(const pm_memlaw *l, uint64_t budget);

/* The largest w x h with the aspect of the given size whose prediction fits
 * in `budget`; *fw = *fh = 0 when even one pixel does not fit. */
void pm_memlaw_fit_size(const pm_memlaw *l, uint64_t budget, int w, int h, int *fw, int *fh);

/* Writes the laws to `path` atomically (one model per line). */
int pm_memlaw_save(const char *path, const pm_memlaw *laws, int n);

/* Reads laws from `path` into laws[0..max) (*n of them); seeds are not read
 * (callers keep theirs). PM_ENOENT when the file does not exist, PM_ECORRUPT
 * with the line number when a line cannot be read. */
int pm_memlaw_load(const char *path, pm_memlaw *laws, int max, int *n);

#endif
