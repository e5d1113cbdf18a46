/* DDColor benchmark program, driven by run_bench.py (see there).
 *
 *   pm_bench_ddcolor ab CKPT IN.f32 SIZE THREADS RUNS OUT.f32
 *       loads the checkpoint, runs the network RUNS+1 times on IN.f32
 *       (3 x SIZE x SIZE planar float RGB), the first run being a warm-up
 *       (it builds the plan), writes the last ab to OUT.f32.
 *   pm_bench_ddcolor pipe CKPT W H SIZE THREADS
 *       colorizes one synthetic W x H RGB image through pm_colorize_run,
 *       after a warm-up at input size 64 (weights resident) and dropping
 *       that plan (pm_ddcolor_trim); reports the
 *       run's RSS high-water mark and the RSS before it.
 *
 * Prints "key value" lines: load_s, warmup_s, run_s (one per run),
 * workspace_bytes, weight_bytes, heap_peak_bytes, rss_hwm_bytes,
 * mem_estimate_bytes (pipe). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "monitor/monitor.h"
#include "models/ddcolor.h"
#include "pipeline/colorize.h"

static int fail(int rc)
{
    fprintf(stderr, "error: %s: %s\n", pm_strerror(rc), pm_error_detail());
    return 1;
}

/* PM_BENCH_PRECISION=bf16 (run_bench.py --precision bf16) loads in bf16. */
static pm_ddcolor *load(const char *path, int threads, double *secs)
{
    const char *prec = getenv("PM_BENCH_PRECISION");
    pm_model_opts o = {threads, prec && strcmp(prec, "bf16") == 0 ? PM_PREC_BF16 : PM_PREC_FP32, 0};
    pm_ddcolor *m;
    double t = pm_now();
    int rc = pm_ddcolor_load(path, &o, &m);
    *secs = pm_now() - t;
    if (rc) {
        fail(rc);
        return NULL;
    }
    return m;
}

static int cmd_ab(int argc, char **argv)
{
    if (argc < 8)
        return 2;
    int size = atoi(argv[4]), threads = atoi(argv[5]), runs = atoi(argv[6]);
    size_t plane = (size_t)size * size;
    float *in = malloc(plane * 3 * sizeof(float)), *ab = malloc(plane * 2 * sizeof(float));
    FILE *f = fopen(argv[3], "rb");
    if (!in || !ab || !f || fread(in, sizeof(float), plane * 3, f) != plane * 3) {
        fprintf(stderr, "error: cannot read %s as 3x%dx%d floats\n", argv[3], size, size);
        return 1;
    }
    fclose(f);
    double secs;
    pm_ddcolor *m = load(argv[2], threads, &secs);
    if (!m)
        return 1;
    printf("load_s %.4f\n", secs);
    printf("load_rss_hwm_bytes %lld\n", (long long)pm_read_peak_rss());
    for (int r = 0; r <= runs; r++) {
        double t = pm_now();
        int rc = pm_ddcolor_predict(m, in, size, ab, NULL);
        if (rc)
            return fail(rc);
        printf("%s %.4f\n", r == 0 ? "warmup_s" : "run_s", pm_now() - t);
        fflush(stdout);
    }
    printf("workspace_bytes %llu\n", (unsigned long long)pm_ddcolor_workspace_bytes(m, size));
    printf("weight_bytes %llu\n", (unsigned long long)pm_ddcolor_weight_bytes(m));
    printf("heap_peak_bytes %llu\n", (unsigned long long)pm_mem_peak());
    printf("rss_hwm_bytes %lld\n", (long long)pm_read_peak_rss());
    f = fopen(argv[7], "wb");
    if (!f || fwrite(ab, sizeof(float), plane * 2, f) != plane * 2) {
        fprintf(stderr, "error: cannot write %s\n", argv[7]);
        return 1;
    }
    fclose(f);
    pm_ddcolor_free(m);
    free(in);
    free(ab);
    return 0;
}

static int cmd_pipe(int argc, char **argv)
{
    if (argc < 7)
        return 2;
    int w = atoi(argv[3]), h = atoi(argv[4]), size = atoi(argv[5]), threads = atoi(argv[6]);
    double secs;
    pm_ddcolor *m = load(argv[2], threads, &secs);
    if (!m)
        return 1;
    pm_image img, out;
    int rc = pm_image_alloc(&img, w, h, 3);
    if (rc)
        return fail(rc);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = img.data + ((size_t)y * w + x) * 3;
            int v = (int)(127.5 + 100.0 * sin(x * 0.01) * cos(y * 0.013));
            p[0] = p[1] = p[2] = (uint8_t)v;
        }
    /* Warm up at input size 64 so that the weights (released after loading,
     * faulted back in by the first run) are resident, then reset the RSS
     * high-water mark: what is measured is the run's working memory. */
    pm_image small;
    pm_colorize_opts wo = pm_colorize_default_opts();
    wo.input_size = 64;
    if ((rc = pm_image_alloc(&small, 64, 64, 3)) || (rc = pm_colorize_run(&pm_model_ddcolor, m, &small, &wo, &out, NULL)))
        return fail(rc);
    pm_image_free(&out);
    pm_image_free(&small);
    pm_ddcolor_trim(m); /* the measured run builds its plan, as a first job at a size does */
    if (!pm_reset_peak_rss()) {
        fprintf(stderr, "error: cannot reset the RSS high-water mark (/proc/self/clear_refs)\n");
        return 1;
    }
    long long before = (long long)pm_read_rss();
    size_t heap_before = pm_mem_in_use();
    pm_mem_reset_peak();
    pm_colorize_opts o = pm_colorize_default_opts();
    o.input_size = size;
    double t = pm_now();
    rc = pm_colorize_run(&pm_model_ddcolor, m, &img, &o, &out, NULL);
    if (rc)
        return fail(rc);
    printf("pipe_s %.4f\n", pm_now() - t);
    printf("rss_before_bytes %lld\n", before);
    printf("rss_hwm_bytes %lld\n", (long long)pm_read_peak_rss());
    printf("heap_run_peak_bytes %llu\n", (unsigned long long)(pm_mem_peak() - heap_before));
    printf("input_bytes %llu\n", (unsigned long long)w * h * 3);
    printf("mem_estimate_bytes %llu\n", (unsigned long long)pm_model_ddcolor.mem_estimate(m, w, h, size));
    pm_image_free(&out);
    pm_image_free(&img);
    pm_ddcolor_free(m);
    return 0;
}

int main(int argc, char **argv)
{
    int rc = 2;
    if (argc > 1 && strcmp(argv[1], "ab") == 0)
        rc = cmd_ab(argc, argv);
    else if (argc > 1 && strcmp(argv[1], "pipe") == 0)
        rc = cmd_pipe(argc, argv);
    if (rc == 2)
        fprintf(stderr, "usage: see the comment at the top of pm_bench_ddcolor.c\n");
    return rc;
}
