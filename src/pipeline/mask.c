/* Growing and shrinking a mask by a disc through an exact Euclidean distance
 * transform (see mask.h). For each pixel the question is whether a "target"
 * pixel (a set one when growing, an unset one when shrinking) lies within
 * distance r. The column pass finds each pixel's vertical distance to the
 * nearest target in its column, capped at r + 1 (anything farther cannot
 * matter, and the cap keeps it in 16 bits); the row pass takes, along each
 * row, the lower envelope of the parabolas (x - q)^2 + v(q)^2 of the columns
 * q whose vertical distance is at most r (Felzenszwalb and Huttenlocher's
 * method), which gives the squared distance to the nearest target exactly
 * wherever it is <= r^2. Both passes are linear in the pixels. */
#include "pipeline/mask.h"

#include <math.h>

/* Work buffers of one transform; allocated once per call. */
typedef struct dt_work {
    uint16_t *vd; /* w*h vertical distances, capped at r + 1 */
    int *site;    /* w: columns of the envelope's parabolas */
    double *cut;  /* w + 1: where each parabola starts to be the lowest */
} dt_work;

/* vd[y*w+x] = distance from (x, y) to the nearest pixel of its column whose
 * "set" state equals `target`, or cap when none is nearer than cap. Row by
 * row (down, then up), so that memory is read in order. */
static void column_pass(const pm_image *m, int target, uint16_t cap, uint16_t *vd)
{
    int w = m->width, h = m->height;
    for (int y = 0; y < h; y++) {
        const uint8_t *row = m->data + (size_t)y * w;
        uint16_t *d = vd + (size_t)y * w;
        const uint16_t *above = y ? d - w : NULL;
        for (int x = 0; x < w; x++) {
            if ((row[x] != 0) == target)
                d[x] = 0;
            else
                d[x] = above && above[x] < cap ? (uint16_t)(above[x] + 1) : cap;
        }
    }
    for (int y = h - 2; y >= 0; y--) {
        uint16_t *d = vd + (size_t)y * w;
        const uint16_t *below = d + w;
        for (int x = 0; x < w; x++)
            if (below[x] + 1 < d[x])
                d[x] = (uint16_t)(below[x] + 1);
    }
}

/* For one row of vertical distances `v` (w entries, capped at r + 1), sets
 * hit[x] = 1 where some target lies within distance r of (x, row), else 0. */
static void row_pass(const uint16_t *v, int w, int r, dt_work *wk, uint8_t *hit)
{
    int k = -1;
    long long r2 = (long long)r * r;
    for (int q = 0; q < w; q++) {
        if (v[q] > r)
            continue;
        double fq = (double)v[q] * v[q] + (double)q * q;
        if (k < 0) {
            k = 0;
            wk->site[0] = q;
            wk->cut[0] = -HUGE_VAL;
            wk->cut[1] = HUGE_VAL;
            continue;
        }
        /* Drop the parabolas the new one hides; cut[0] is -inf, so this stops at 0. */
        double s;
        for (;;) {
            int p = wk->site[k];
            double fp = (double)v[p] * v[p] + (double)p * p;
            s = (fq - fp) / (2.0 * (q - p));
            if (s > wk->cut[k])
                break;
            k--;
        }
        k++;
        wk->site[k] = q;
        wk->cut[k] = s;
        wk->cut[k + 1] = HUGE_VAL;
    }
    if (k < 0) {
        for (int x = 0; x < w; x++)
            hit[x] = 0;
        return;
    }
    int j = 0;
    for (int x = 0; x < w; x++) {
        while (wk->cut[j + 1] < x)
            j++;
        long long dx = x - wk->site[j];
        long long dv = v[wk->site[j]];
        hit[x] = dx * dx + dv * dv <= r2;
    }
}

/* Caller keeps `mask`; nothing is returned but the mask rewritten. */
int pm_mask_dilate(pm_image *mask, int radius)
{
    if (!mask || mask->channels != 1)
        return pm_errorf(PM_EINVAL, "pm_mask_dilate works on one-channel masks");
    if (radius < -PM_MASK_DILATE_MAX || radius > PM_MASK_DILATE_MAX)
        return pm_errorf(PM_EINVAL,
                         "the mask can grow or shrink by at most %d pixels (mask_dilate from -%d to %d), not %d",
                         PM_MASK_DILATE_MAX, PM_MASK_DILATE_MAX, PM_MASK_DILATE_MAX, radius);
    int w = mask->width, h = mask->height;
    size_t n = (size_t)w * h;
    if (radius == 0 || n == 0) {
        for (size_t i = 0; i < n; i++)
            mask->data[i] = mask->data[i] ? 255 : 0;
        return 0;
    }
    int grow = radius > 0, r = grow ? radius : -radius;
    int rc = 0;
    dt_work wk = {0};
    uint8_t *hit = NULL;
    wk.vd = pm_malloc(n * sizeof *wk.vd);
    wk.site = pm_malloc((size_t)w * sizeof *wk.site);
    wk.cut = pm_malloc(((size_t)w + 1) * sizeof *wk.cut);
    hit = pm_malloc((size_t)w);
    if (!wk.vd || !wk.site || !wk.cut || !hit) {
        rc = pm_errorf(PM_ENOMEM, "out of memory growing or shrinking a %dx%d mask", w, h);
        goto free_work;
    }
    /* Growing looks for set pixels near each pixel, shrinking for unset ones. */
    column_pass(mask, grow, (uint16_t)(r + 1), wk.vd);
    for (int y = 0; y < h; y++) {
        uint8_t *row = mask->data + (size_t)y * w;
        row_pass(wk.vd + (size_t)y * w, w, r, &wk, hit);
        for (int x = 0; x < w; x++)
            row[x] = grow ? (hit[x] ? 255 : 0) : (row[x] && !hit[x] ? 255 : 0);
    }
free_work:
    pm_free(hit);
    pm_free(wk.cut);
    pm_free(wk.site);
    pm_free(wk.vd);
    return rc;
}

/* Caller owns *out. */
int pm_mask_prepare(const pm_image *mask, int dilate, pm_image *out, size_t *holes)
{
    int rc = pm_image_alloc(out, mask->width, mask->height, 1);
    if (rc)
        return rc;
    size_t n = (size_t)mask->width * mask->height;
    for (size_t i = 0; i < n; i++)
        out->data[i] = mask->data[i * (size_t)mask->channels] ? 255 : 0;
    if (dilate && (rc = pm_mask_dilate(out, dilate))) {
        pm_image_free(out);
        return rc;
    }
    if (holes) {
        size_t c = 0;
        for (size_t i = 0; i < n; i++)
            c += out->data[i] != 0;
        *holes = c;
    }
    return 0;
}
