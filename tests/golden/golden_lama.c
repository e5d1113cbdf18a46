/* C side of the LaMa golden tests: loads a checkpoint and runs either the
 * network on a raw float input or the whole 8-bit inpainting, writing raw
 * outputs for lama_golden.py to compare with PyTorch.
 *
 *   golden_lama net CKPT IN.f32 OUT.f32 W H [--bf16] [--threads N] [--winograd] [--band-kb K]
 *       IN: 4 x H x W float32 planar; OUT: 3 x H x W float32 planar
 *   golden_lama inpaint CKPT RGB.u8 MASK.u8 OUT.u8 W H [--bf16] [--threads N]
 *       RGB/OUT: H x W x 3 bytes; MASK: H x W bytes
 *   golden_lama load CKPT        (load only: prints the configuration or the error)
 *   golden_lama progress CKPT W H (progress reports, then a cancelled run; prints what it saw)
 *   golden_lama crop CKPT        (a 2560x1920 photo, small masks, strategy auto = crop: the
 *                                 heap peak follows the mask's box; prints the figures)
 *
 * Exit status 0 on success; on failure the error detail is printed to stderr.
 */
#include "models/lama.h"
#include "nn/nn.h"
#include "pipeline/pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *read_all(const char *path, size_t want)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return NULL;
    }
    void *b = malloc(want);
    size_t n = b ? fread(b, 1, want, f) : 0;
    fclose(f);
    if (n != want) {
        fprintf(stderr, "%s: expected %zu bytes, read %zu\n", path, want, n);
        free(b);
        return NULL;
    }
    return b;
}

static int write_all(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n) {
        fprintf(stderr, "cannot write %s\n", path);
        if (f)
            fclose(f);
        return 1;
    }
    return fclose(f) != 0;
}

typedef struct seen {
    int n, last, max, bad, cancel_at;
} seen;

/* Records progress reports; asks to stop at cancel_at (if > 0). */
static int on_progress(void *user, int value, int max)
{
    seen *s = user;
    if (value != s->last + 1 && !(s->n == 0 && value == 0))
        s->bad++;
    s->last = value;
    s->max = max;
    s->n++;
    return s->cancel_at > 0 && value >= s->cancel_at;
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "%s failed: %s: %s\n", what, pm_strerror(rc), pm_error_detail());
    return 2;
}

/* One auto-strategy inpaint of a 2560x1920 photo with a box of bw x bh
 * masked at (x0, y0): *used receives the heap peak above the start, *est the
 * pipeline's estimate for it. Checks that pixels outside the box are kept. */
static int crop_run(void *st, const pm_image *rgb, int x0, int y0, int bw, int bh, size_t *used, uint64_t *est,
                    uint64_t *whole)
{
    pm_image mask = {0}, out = {0};
    int rc = pm_image_alloc(&mask, rgb->width, rgb->height, 1);
    if (rc)
        return rc;
    memset(mask.data, 0, (size_t)rgb->width * rgb->height);
    for (int y = y0; y < y0 + bh; y++)
        memset(mask.data + (size_t)y * rgb->width + x0, 255, (size_t)bw);
    pm_inpaint_opts o = pm_inpaint_default_opts();
    *est = pm_inpaint_mem_estimate(&pm_model_lama, st, rgb, &mask, &o);
    pm_inpaint_opts whole_o = o;
    whole_o.strategy = PM_HD_ORIGINAL;
    *whole = pm_inpaint_mem_estimate(&pm_model_lama, st, rgb, &mask, &whole_o);
    size_t before = pm_mem_in_use();
    pm_mem_reset_peak();
    rc = pm_inpaint_run(&pm_model_lama, st, rgb, &mask, &o, &out, NULL);
    *used = pm_mem_peak() - before;
    if (!rc) {
        size_t n = (size_t)rgb->width * rgb->height, changed = 0;
        for (size_t i = 0; i < n; i++) {
            int in_mask = mask.data[i] != 0;
            int same = memcmp(out.data + 3 * i, rgb->data + 3 * i, 3) == 0;
            if (!in_mask && !same) {
                fprintf(stderr, "pixel %zu outside the mask changed\n", i);
                rc = PM_EINTERNAL;
                break;
            }
            changed += in_mask && !same;
        }
        if (!rc && changed < (size_t)bw * bh / 4) {
            fprintf(stderr, "only %zu of %d masked pixels changed\n", changed, bw * bh);
            rc = PM_EINTERNAL;
        }
    }
    pm_image_free(&out);
    pm_image_free(&mask);
    return rc;
}

static int crop_case(void *st)
{
    pm_image rgb = {0};
    int rc = pm_image_alloc(&rgb, 2560, 1920, 3);
    if (rc)
        return fail("alloc", rc);
    for (int y = 0; y < rgb.height; y++)
        for (int x = 0; x < rgb.width; x++) {
            uint8_t *p = rgb.data + ((size_t)y * rgb.width + x) * 3;
            p[0] = (uint8_t)(x / 10), p[1] = (uint8_t)(y / 8), p[2] = (uint8_t)((x / 16 + y / 16) % 2 ? 200 : 60);
        }
    size_t small, large;
    uint64_t est_small, est_large, whole;
    rc = crop_run(st, &rgb, 1500, 900, 40, 30, &small, &est_small, &whole);
    if (!rc)
        rc = crop_run(st, &rgb, 300, 400, 600, 450, &large, &est_large, &whole);
    pm_image_free(&rgb);
    if (rc)
        return fail("crop inpaint", rc);
    printf("2560x1920, 40x30 box: heap peak %.1f MB (estimate %.1f MB); 600x450 box: %.1f MB (estimate %.1f MB); "
           "the whole photo would be %.1f MB\n",
           small / 1e6, est_small / 1e6, large / 1e6, est_large / 1e6, whole / 1e6);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: see the comment at the top of golden_lama.c\n");
        return 1;
    }
    const char *mode = argv[1];
    pm_lama_opts o = {.threads = 0, .precision = PM_PREC_FP32, .winograd = -1};
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--bf16") == 0)
            o.precision = PM_PREC_BF16;
        else if (strcmp(argv[i], "--winograd") == 0)
            o.winograd = 1;
        else if (strcmp(argv[i], "--band-kb") == 0 && i + 1 < argc)
            o.band_bytes = (size_t)atoi(argv[++i]) << 10;
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            o.threads = atoi(argv[++i]);
    }
    void *st = NULL;
    int rc = pm_lama_load(argv[2], &o, &st);
    if (rc)
        return fail("load", rc);
    int ngf, blocks;
    pm_lama_config(st, &ngf, &blocks);
    if (strcmp(mode, "load") == 0) {
        printf("ngf %d blocks %d\n", ngf, blocks);
        pm_lama_unload(st);
        return 0;
    }
    int status = 1;
    if (strcmp(mode, "net") == 0 && argc >= 7) {
        int w = atoi(argv[5]), h = atoi(argv[6]);
        size_t n = (size_t)w * h;
        float *in = read_all(argv[3], 4 * n * sizeof(float));
        float *out = malloc(3 * n * sizeof(float));
        if (in && out) {
            rc = pm_lama_forward(st, in, w, h, out, NULL);
            status = rc ? fail("forward", rc) : write_all(argv[4], out, 3 * n * sizeof(float));
        }
        free(in);
        free(out);
    } else if (strcmp(mode, "inpaint") == 0 && argc >= 8) {
        int w = atoi(argv[6]), h = atoi(argv[7]);
        size_t n = (size_t)w * h;
        pm_image rgb = {w, h, 3, read_all(argv[3], 3 * n)};
        pm_image mask = {w, h, 1, read_all(argv[4], n)};
        if (rgb.data && mask.data) {
            pm_image out = {0};
            /* the first run builds (and caches) the plan for this size */
            rc = pm_model_lama.inpaint(st, &rgb, &mask, &out, NULL);
            pm_image_free(&out);
            size_t before = pm_mem_in_use();
            pm_mem_reset_peak();
            if (!rc)
                rc = pm_model_lama.inpaint(st, &rgb, &mask, &out, NULL);
            size_t used = pm_mem_peak() - before;
            uint64_t est = pm_model_lama.mem_estimate(st, w, h, 0);
            if (!rc && used > est) {
                fprintf(stderr, "an inpaint of %dx%d used %zu bytes; the estimate was %llu\n", w, h, used,
                        (unsigned long long)est);
                rc = PM_EINTERNAL;
            }
            if (rc) {
                status = fail("inpaint", rc);
            } else {
                status = write_all(argv[5], out.data, 3 * n);
                pm_image_free(&out);
                /* working memory returns to its baseline after a job */
                if (pm_mem_in_use() != before) {
                    fprintf(stderr, "memory in use grew from %zu to %zu bytes across one inpaint\n", before,
                            pm_mem_in_use());
                    status = 3;
                }
            }
        }
        free(rgb.data);
        free(mask.data);
    } else if (strcmp(mode, "progress") == 0 && argc >= 5) {
        int w = atoi(argv[3]), h = atoi(argv[4]);
        pm_image rgb = {0}, mask = {0}, out = {0};
        if (pm_image_alloc(&rgb, w, h, 3) || pm_image_alloc(&mask, w, h, 1))
            return fail("alloc", PM_ENOMEM);
        for (int i = 0; i < w * h; i++) {
            rgb.data[3 * i] = (uint8_t)(i * 7);
            mask.data[i] = (uint8_t)((i % w) > w / 2 ? 255 : 0);
        }
        seen a = {.last = -1};
        pm_run_ctx ctx = {.progress = on_progress, .progress_user = &a};
        rc = pm_model_lama.inpaint(st, &rgb, &mask, &out, &ctx);
        printf("full run: rc %d, %d reports, last %d of %d, %d out of order\n", rc, a.n, a.last, a.max, a.bad);
        pm_image_free(&out);
        seen b = {.last = -1, .cancel_at = 2};
        ctx.progress_user = &b;
        size_t before = pm_mem_in_use();
        rc = pm_model_lama.inpaint(st, &rgb, &mask, &out, &ctx);
        printf("cancelled run: rc %d (%s), %d reports, output %s, memory %s\n", rc, pm_strerror(rc), b.n,
               out.data ? "kept" : "none", pm_mem_in_use() == before ? "back to baseline" : "GREW");
        status = 0;
        pm_image_free(&rgb);
        pm_image_free(&mask);
    } else if (strcmp(mode, "crop") == 0) {
        status = crop_case(st);
    } else {
        fprintf(stderr, "bad arguments\n");
    }
    pm_lama_unload(st);
    return status;
}
