/* pm_bench_submit: times the checks a submission runs on its inputs
 * (pm_job_check_inputs: the image's header, the mask decoded) against the
 * same checks plus a whole decode of the image, which is what submission did
 * before it read only the header, in the same run on the same files.
 *
 *   pm_bench_submit [WIDTH HEIGHT]      (default 4000 3000, 12 MP)
 *
 * Prints, for a JPEG and a PNG image with a PNG mask of a box, the median of
 * 7 runs of both and their ratio. */
#include "sched/sched_internal.h"
#include "base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RUNS 7

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* A photo-like picture: gradients, stripes and some noise. Caller owns *out. */
static int make_image(pm_image *out, int w, int h)
{
    int rc = pm_image_alloc(out, w, h, 3);
    if (rc)
        return rc;
    uint32_t s = 1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            s = s * 1103515245u + 12345u;
            uint8_t *p = out->data + ((size_t)y * (size_t)w + (size_t)x) * 3;
            int n = (int)((s >> 16) & 15);
            p[0] = (uint8_t)((x * 255 / w + n) & 255);
            p[1] = (uint8_t)((y * 255 / h + n) & 255);
            p[2] = (uint8_t)(((x / 16 + y / 16) % 2 ? 180 : 60) + n);
        }
    return 0;
}

/* Median milliseconds of RUNS checks; with `decode_too`, each also decodes the image. */
static double time_checks(const uint8_t *img, size_t ilen, const uint8_t *msk, size_t mlen, int decode_too)
{
    double t[RUNS];
    pm_limits lim = pm_default_limits();
    lim.max_pixels = 100000000;
    pm_job_spec spec;
    pm_job_spec_default(&spec);
    for (int i = 0; i < RUNS; i++) {
        int w, h;
        uint64_t work;
        double t0 = pm_now();
        if (decode_too) {
            pm_image full = {0};
            if (pm_image_decode(img, ilen, &lim, NULL, &full)) {
                fprintf(stderr, "decode failed: %s\n", pm_error_detail());
                exit(1);
            }
            pm_image_free(&full);
        }
        if (pm_job_check_inputs(&spec, &lim, img, ilen, NULL, msk, mlen, NULL, &w, &h, &work)) {
            fprintf(stderr, "check failed: %s\n", pm_error_detail());
            exit(1);
        }
        t[i] = (pm_now() - t0) * 1e3;
    }
    qsort(t, RUNS, sizeof t[0], cmp_double);
    return t[RUNS / 2];
}

int main(int argc, char **argv)
{
    int w = argc > 2 ? atoi(argv[1]) : 4000, h = argc > 2 ? atoi(argv[2]) : 3000;
    if (w < 64 || h < 64) {
        fprintf(stderr, "usage: pm_bench_submit [WIDTH HEIGHT] (64 or more each)\n");
        return 2;
    }
    pm_image img = {0}, msk = {0};
    if (make_image(&img, w, h) || pm_image_alloc(&msk, w, h, 1)) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    for (int y = h / 3; y < h / 2; y++)
        memset(msk.data + (size_t)y * (size_t)w + w / 3, 255, (size_t)(w / 6));
    uint8_t *mask_png, *jpg, *png;
    size_t mlen, jlen, plen;
    pm_encode_opts po = pm_default_encode_opts(PM_FMT_PNG), jo = pm_default_encode_opts(PM_FMT_JPEG);
    if (pm_image_encode(&msk, &po, &mask_png, &mlen) || pm_image_encode(&img, &jo, &jpg, &jlen) ||
        pm_image_encode(&img, &po, &png, &plen)) {
        fprintf(stderr, "encode failed: %s\n", pm_error_detail());
        return 1;
    }
    printf("%dx%d, mask %zu KB PNG; median of %d runs\n", w, h, mlen / 1000, RUNS);
    const struct {
        const char *name;
        const uint8_t *data;
        size_t len;
    } in[] = {{"JPEG", jpg, jlen}, {"PNG", png, plen}};
    for (int i = 0; i < 2; i++) {
        double now = time_checks(in[i].data, in[i].len, mask_png, mlen, 0);
        double before = time_checks(in[i].data, in[i].len, mask_png, mlen, 1);
        printf("%-4s image (%.1f MB): header + mask %.1f ms, with the image decoded too %.1f ms (%.1fx)\n",
               in[i].name, (double)in[i].len / 1e6, now, before, before / now);
    }
    pm_free(mask_png);
    pm_free(jpg);
    pm_free(png);
    pm_image_free(&msk);
    pm_image_free(&img);
    return 0;
}
