/* pm_bench_mask: times pm_mask_dilate on a mask with scattered strokes and
 * compares it with the direct method (stamp a disc of radius r on every set
 * pixel, r^2 work each) in the same run, on the same mask.
 *
 *   pm_bench_mask [WIDTH HEIGHT]      (default 4000 3000, 12 MP)
 *
 * Prints one line per radius: milliseconds of both, their ratio, and whether
 * the two masks are identical. */
#include "pipeline/mask.h"
#include "base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Strokes: short horizontal and vertical bars, about 2 % of the pixels. */
static void make_mask(pm_image *m)
{
    uint32_t s = 7;
    memset(m->data, 0, (size_t)m->width * m->height);
    long bars = (long)m->width * m->height / 1500;
    for (long i = 0; i < bars; i++) {
        s = s * 1103515245u + 12345u;
        int x = (int)((s >> 8) % (uint32_t)m->width);
        s = s * 1103515245u + 12345u;
        int y = (int)((s >> 8) % (uint32_t)m->height);
        int horizontal = (s >> 4) & 1;
        for (int k = 0; k < 30; k++) {
            int X = horizontal ? x + k : x, Y = horizontal ? y : y + k;
            if (X < m->width && Y < m->height)
                m->data[(size_t)Y * m->width + X] = 255;
        }
    }
}

/* The direct method: every set pixel stamps its disc into `out`. */
static void stamp(const pm_image *in, uint8_t *out, int r)
{
    int w = in->width, h = in->height;
    memset(out, 0, (size_t)w * h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            if (!in->data[(size_t)y * w + x])
                continue;
            for (int dy = -r; dy <= r; dy++) {
                int Y = y + dy;
                if (Y < 0 || Y >= h)
                    continue;
                for (int dx = -r; dx <= r; dx++) {
                    int X = x + dx;
                    if (X >= 0 && X < w && dx * dx + dy * dy <= r * r)
                        out[(size_t)Y * w + X] = 255;
                }
            }
        }
}

int main(int argc, char **argv)
{
    int w = argc > 2 ? atoi(argv[1]) : 4000, h = argc > 2 ? atoi(argv[2]) : 3000;
    pm_image src = {0}, m = {0};
    if (w < 1 || h < 1 || pm_image_alloc(&src, w, h, 1) || pm_image_alloc(&m, w, h, 1)) {
        fprintf(stderr, "pm_bench_mask: cannot make a %dx%d mask\n", w, h);
        return 1;
    }
    uint8_t *ref = malloc((size_t)w * h);
    if (!ref)
        return 1;
    make_mask(&src);
    printf("mask %dx%d (%.1f MP)\n", w, h, (double)w * h / 1e6);
    printf("%8s %14s %14s %8s %s\n", "radius", "transform ms", "direct ms", "ratio", "same");
    static const int radii[] = {2, 8, 32, 64};
    for (size_t i = 0; i < sizeof radii / sizeof radii[0]; i++) {
        int r = radii[i];
        memcpy(m.data, src.data, (size_t)w * h);
        double t0 = pm_now();
        if (pm_mask_dilate(&m, r)) {
            fprintf(stderr, "pm_bench_mask: %s\n", pm_error_detail());
            return 1;
        }
        double t1 = pm_now();
        stamp(&src, ref, r);
        double t2 = pm_now();
        int same = memcmp(m.data, ref, (size_t)w * h) == 0;
        printf("%8d %14.1f %14.1f %7.1fx %s\n", r, (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t2 - t1) / (t1 - t0),
               same ? "yes" : "NO");
    }
    for (int r = 128; r <= 256; r *= 2) {
        memcpy(m.data, src.data, (size_t)w * h);
        double t0 = pm_now();
        pm_mask_dilate(&m, -r);
        double t1 = pm_now();
        printf("%8d %14.1f %14s (shrink)\n", -r, (t1 - t0) * 1e3, "-");
    }
    free(ref);
    pm_image_free(&m);
    pm_image_free(&src);
    return 0;
}
