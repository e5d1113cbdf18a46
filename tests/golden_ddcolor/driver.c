/* Runs pixmend's DDColor on raw files for golden_ddcolor.py (and the bench).
 *
 *   driver info CKPT
 *   driver ab CKPT IN.f32 SIZE OUT.f32 [THREADS] [REPEAT]
 *   driver pipe CKPT IN.raw W H C SIZE nearest|bilinear OUT.raw [THREADS]
 *   driver cancel CKPT SIZE STEP
 *
 * IN.f32: 3 x SIZE x SIZE float32 planar RGB in [0,1]; OUT.f32: 2 planes (a, b).
 * IN.raw: W x H x C 8-bit pixels; OUT.raw: W x H x (3 or 4).
 * On failure prints "error: <code name>: <detail>" and exits 1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "models/ddcolor.h"
#include "pipeline/colorize.h"

static int fail(int rc)
{
    fprintf(stderr, "error: %s: %s\n", pm_strerror(rc), pm_error_detail());
    return 1;
}

static void *read_all(const char *path, size_t want)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    void *p = malloc(want ? want : 1);
    if (p && fread(p, 1, want, f) != want) {
        free(p);
        p = NULL;
    }
    fclose(f);
    return p;
}

static int write_all(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int ok = fwrite(p, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static pm_ddcolor *load(const char *path, int threads)
{
    /* PM_DRIVER_PRECISION=bf16 loads the model in bf16 (the bf16 part) */
    const char *prec = getenv("PM_DRIVER_PRECISION");
    pm_model_opts o = {threads, prec && strcmp(prec, "bf16") == 0 ? PM_PREC_BF16 : PM_PREC_FP32, 0};
    pm_ddcolor *m;
    int rc = pm_ddcolor_load(path, &o, &m);
    if (rc) {
        fail(rc);
        return NULL;
    }
    return m;
}

typedef struct cancel_state {
    int at, seen, max;
} cancel_state;

static int cancel_cb(void *user, int value, int max)
{
    cancel_state *c = user;
    c->seen = value;
    c->max = max;
    return value >= c->at;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: see the comment at the top of driver.c\n");
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "info") == 0) {
        pm_ddcolor *m = load(argv[2], 0);
        if (!m)
            return 1;
        const pm_ddcolor_config *c = pm_ddcolor_config_of(m);
        printf("depths %d %d %d %d dims %d %d %d %d nf %d embed %d hidden %d queries %d scales %d layers %d ffn %d "
               "heads %d steps %d weight_bytes %llu\n",
               c->depths[0], c->depths[1], c->depths[2], c->depths[3], c->dims[0], c->dims[1], c->dims[2], c->dims[3],
               c->nf, c->embed, c->hidden, c->queries, c->scales, c->layers, c->ffn, c->heads,
               pm_ddcolor_progress_steps(m), (unsigned long long)pm_ddcolor_weight_bytes(m));
        pm_ddcolor_free(m);
        return 0;
    }
    if (strcmp(cmd, "ab") == 0 && argc >= 6) {
        int size = atoi(argv[4]), threads = argc > 6 ? atoi(argv[6]) : 0, repeat = argc > 7 ? atoi(argv[7]) : 1;
        size_t plane = (size_t)size * size;
        float *in = read_all(argv[3], plane * 3 * sizeof(float));
        float *ab = malloc(plane * 2 * sizeof(float));
        if (!in || !ab) {
            fprintf(stderr, "error: cannot read %s as 3x%dx%d floats\n", argv[3], size, size);
            free(in);
            free(ab);
            return 1;
        }
        double t0 = pm_now();
        pm_ddcolor *m = load(argv[2], threads);
        if (!m) {
            free(in);
            free(ab);
            return 1;
        }
        double t1 = pm_now();
        for (int r = 0; r < (repeat > 0 ? repeat : 1); r++) {
            double s = pm_now();
            int rc = pm_ddcolor_predict(m, in, size, ab, NULL);
            if (rc) {
                pm_ddcolor_free(m);
                free(in);
                free(ab);
                return fail(rc);
            }
            fprintf(stderr, "run %d: %.3f s\n", r, pm_now() - s);
        }
        fprintf(stderr, "load %.3f s, workspace %.1f MB, weights %.1f MB\n", t1 - t0,
                pm_ddcolor_workspace_bytes(m, size) / 1048576.0, pm_ddcolor_weight_bytes(m) / 1048576.0);
        if (write_all(argv[5], ab, plane * 2 * sizeof(float))) {
            fprintf(stderr, "error: cannot write %s\n", argv[5]);
            return 1;
        }
        pm_ddcolor_free(m);
        free(in);
        free(ab);
        return 0;
    }
    if (strcmp(cmd, "pipe") == 0 && argc >= 10) {
        pm_image img = {atoi(argv[4]), atoi(argv[5]), atoi(argv[6]), NULL};
        size_t n = (size_t)img.width * img.height * img.channels;
        img.data = read_all(argv[3], n);
        if (!img.data) {
            fprintf(stderr, "error: cannot read %s as %dx%dx%d bytes\n", argv[3], img.width, img.height, img.channels);
            return 1;
        }
        pm_colorize_opts o = pm_colorize_default_opts();
        o.input_size = atoi(argv[7]);
        int up = pm_upsample_parse(argv[8]);
        if (up < 0) {
            fprintf(stderr, "error: unknown upsampling '%s'\n", argv[8]);
            return 1;
        }
        o.upsample = (pm_upsample)up;
        pm_ddcolor *m = load(argv[2], argc > 10 ? atoi(argv[10]) : 0);
        if (!m)
            return 1;
        pm_image out;
        int rc = pm_colorize_run(&pm_model_ddcolor, m, &img, &o, &out, NULL);
        if (rc)
            return fail(rc);
        if (write_all(argv[9], out.data, (size_t)out.width * out.height * out.channels)) {
            fprintf(stderr, "error: cannot write %s\n", argv[9]);
            return 1;
        }
        printf("channels %d\n", out.channels);
        pm_image_free(&out);
        pm_ddcolor_free(m);
        free(img.data);
        return 0;
    }
    if (strcmp(cmd, "cancel") == 0 && argc >= 5) {
        int size = atoi(argv[3]);
        size_t plane = (size_t)size * size;
        float *in = calloc(plane * 3, sizeof(float)), *ab = calloc(plane * 2, sizeof(float));
        pm_ddcolor *m = load(argv[2], 0);
        if (!m || !in || !ab)
            return 1;
        cancel_state cs = {atoi(argv[4]), 0, 0};
        pm_run_ctx ctx = {cancel_cb, &cs};
        int rc = pm_ddcolor_predict(m, in, size, ab, &ctx);
        printf("rc %s seen %d max %d\n", rc == PM_ECANCELLED ? "cancelled" : rc ? pm_strerror(rc) : "ok", cs.seen,
               cs.max);
        /* the model stays usable after a cancel */
        cs.at = 1 << 30;
        rc = pm_ddcolor_predict(m, in, size, ab, &ctx);
        printf("again %s seen %d max %d\n", rc ? pm_strerror(rc) : "ok", cs.seen, cs.max);
        pm_ddcolor_free(m);
        free(in);
        free(ab);
        return 0;
    }
    fprintf(stderr, "usage: see the comment at the top of driver.c\n");
    return 2;
}
