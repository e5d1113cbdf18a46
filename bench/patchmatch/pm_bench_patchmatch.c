/* pm_bench_patchmatch: runs the built-in PatchMatch inpainter on one image.
 *
 *   pm_bench_patchmatch IMAGE.ppm MASK.pgm OUT.ppm [options]
 *     --seed N      random seed (default: the library default)
 *     --threads N   compute threads (default 0 = all cores)
 *     --repeat N    run N times and report every time and the median (default 1)
 *     --patch N --em N --pm N --min-size N   algorithm parameters
 *
 * Images are exchanged with the driver (run_bench.py) as binary PPM (P6, RGB)
 * and PGM (P5, mask; non-zero = hole), maxval 255, read and written here.
 * Prints one JSON line: {"width":..,"height":..,"hole":..,"times_ms":[..],"median_ms":..}.
 */
#include "models/patchmatch.h"
#include "base/base.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Skips blanks and '#' comments in a PNM header. */
static int pnm_skip(FILE *f)
{
    int c;
    for (;;) {
        c = fgetc(f);
        if (c == '#') {
            while (c != '\n' && c != EOF)
                c = fgetc(f);
        } else if (!isspace(c)) {
            break;
        }
    }
    if (c == EOF)
        return -1;
    ungetc(c, f);
    return 0;
}

static int pnm_int(FILE *f, int *v)
{
    if (pnm_skip(f) || fscanf(f, "%d", v) != 1)
        return -1;
    return 0;
}

/* Reads a P6 (channels 3) or P5 (channels 1) file into *img (caller owns). */
static int pnm_read(const char *path, int channels, pm_image *img)
{
    memset(img, 0, sizeof *img);
    FILE *f = fopen(path, "rb");
    if (!f)
        return pm_errorf(PM_ENOENT, "cannot open %s", path);
    int rc = 0, w, h, maxv;
    char magic[3] = {0};
    if (fread(magic, 1, 2, f) != 2 || magic[0] != 'P' || magic[1] != (channels == 3 ? '6' : '5')) {
        rc = pm_errorf(PM_EFORMAT, "%s is not a binary %s file", path, channels == 3 ? "PPM (P6)" : "PGM (P5)");
        goto close_file;
    }
    if (pnm_int(f, &w) || pnm_int(f, &h) || pnm_int(f, &maxv) || maxv != 255 || w <= 0 || h <= 0) {
        rc = pm_errorf(PM_EFORMAT, "%s: bad header (need maxval 255)", path);
        goto close_file;
    }
    fgetc(f); /* the single blank after maxval */
    if ((rc = pm_image_alloc(img, w, h, channels)) != 0)
        goto close_file;
    size_t n = (size_t)w * h * channels;
    if (fread(img->data, 1, n, f) != n) {
        pm_image_free(img);
        rc = pm_errorf(PM_ETRUNCATED, "%s ends early", path);
    }
close_file:
    fclose(f);
    return rc;
}

static int ppm_write(const char *path, const pm_image *img)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return pm_errorf(PM_EIO, "cannot write %s", path);
    fprintf(f, "P6\n%d %d\n255\n", img->width, img->height);
    size_t n = (size_t)img->width * img->height * 3;
    int rc = fwrite(img->data, 1, n, f) == n ? 0 : pm_errorf(PM_EIO, "cannot write %s", path);
    if (fclose(f) != 0 && rc == 0)
        rc = pm_errorf(PM_EIO, "cannot write %s", path);
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s IMAGE.ppm MASK.pgm OUT.ppm [--seed N] [--threads N] [--repeat N] "
                        "[--patch N] [--em N] [--pm N] [--min-size N]\n", argv[0]);
        return 2;
    }
    pm_patchmatch_params p = pm_patchmatch_default_params();
    int repeat = 1;
    for (int i = 4; i + 1 < argc; i += 2) {
        long v = strtol(argv[i + 1], NULL, 0);
        if (!strcmp(argv[i], "--seed"))
            p.seed = (uint64_t)strtoull(argv[i + 1], NULL, 0);
        else if (!strcmp(argv[i], "--threads"))
            p.threads = (int)v;
        else if (!strcmp(argv[i], "--repeat"))
            repeat = v < 1 ? 1 : v > 100 ? 100 : (int)v;
        else if (!strcmp(argv[i], "--patch"))
            p.patch_size = (int)v;
        else if (!strcmp(argv[i], "--em"))
            p.em_iters = (int)v;
        else if (!strcmp(argv[i], "--pm"))
            p.pm_iters = (int)v;
        else if (!strcmp(argv[i], "--min-size"))
            p.min_size = (int)v;
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    pm_image img, mask, out;
    int rc = pnm_read(argv[1], 3, &img);
    if (rc) {
        fprintf(stderr, "error: %s\n", pm_error_detail());
        return 1;
    }
    rc = pnm_read(argv[2], 1, &mask);
    if (rc) {
        fprintf(stderr, "error: %s\n", pm_error_detail());
        pm_image_free(&img);
        return 1;
    }
    size_t hole = 0, n = (size_t)mask.width * mask.height;
    for (size_t i = 0; i < n; i++)
        hole += mask.data[i] != 0;
    double times[100];
    memset(&out, 0, sizeof out);
    for (int k = 0; k < repeat && rc == 0; k++) {
        pm_image_free(&out);
        double t0 = pm_now();
        rc = pm_patchmatch_inpaint(&img, &mask, &p, &out, NULL);
        times[k] = (pm_now() - t0) * 1e3;
    }
    if (rc == 0)
        rc = ppm_write(argv[3], &out);
    if (rc) {
        fprintf(stderr, "error: %s: %s\n", pm_strerror(rc), pm_error_detail());
    } else {
        printf("{\"width\":%d,\"height\":%d,\"hole\":%zu,\"threads\":%d,\"times_ms\":[", img.width, img.height,
               hole, p.threads > 0 ? p.threads : pm_cpu_count());
        for (int k = 0; k < repeat; k++)
            printf("%s%.2f", k ? "," : "", times[k]);
        qsort(times, (size_t)repeat, sizeof times[0], cmp_double);
        double med = repeat % 2 ? times[repeat / 2] : 0.5 * (times[repeat / 2 - 1] + times[repeat / 2]);
        printf("],\"median_ms\":%.2f,\"peak_bytes\":%zu}\n", med, pm_mem_peak());
    }
    pm_image_free(&out);
    pm_image_free(&mask);
    pm_image_free(&img);
    return rc ? 1 : 0;
}
