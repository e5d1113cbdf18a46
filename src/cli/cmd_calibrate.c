/* pixmend calibrate: measures a model's peak memory at a few image sizes,
 * fits its memory law (peak = a + b x pixels) and stores it in
 * DATA/memlaw.json, where `pixmend serve` reads it for admission. */
#include "cli/cli.h"
#include "sched/memlaw.h"
#include "pipeline/pipeline.h"
#include "sched/sched.h"

#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const pm_optdef opts[] = {
    {"model", 'm', 1},
    {"sizes", 0, 1},
    {"data-dir", 'd', 1},
    {"threads", 't', 1},
    {0},
};

#define MAX_SIZES 8
#define MAX_LAWS 16

/* Parses "256,512,1024" into sizes (ascending order kept as given); returns the count or -1. */
static int parse_sizes(const char *s, int *sizes)
{
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || v < 32 || v > 4096 || n == MAX_SIZES)
            return -1;
        sizes[n++] = (int)v;
        if (*end == ',')
            end++;
        else if (*end)
            return -1;
        p = end;
    }
    return n;
}

/* A structured test picture (gradients and stripes) and, for inpainting, a
 * mask of two centred bands, one across and one down, each an eighth of the
 * side wide (about a quarter of the area), both PNG-encoded. The bands reach
 * every border, so the mask's box is the whole image: an engine whose work
 * follows the box (PatchMatch's fields do) is measured at its largest. The caller
 * owns *image and *mask (pm_free). */
static int make_inputs(int size, int with_mask, uint8_t **image, size_t *image_len, uint8_t **mask, size_t *mask_len)
{
    pm_image img = {0}, msk = {0};
    *image = *mask = NULL;
    *image_len = *mask_len = 0;
    int rc = pm_image_alloc(&img, size, size, 3);
    if (rc)
        return rc;
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            uint8_t *px = img.data + ((size_t)y * (size_t)size + (size_t)x) * 3;
            px[0] = (uint8_t)(x * 255 / size);
            px[1] = (uint8_t)(y * 255 / size);
            px[2] = (uint8_t)((x / 8 + y / 8) % 2 ? 200 : 40);
        }
    pm_encode_opts eo = pm_default_encode_opts(PM_FMT_PNG);
    if ((rc = pm_image_encode(&img, &eo, image, image_len)))
        goto free_images;
    if (with_mask) {
        if ((rc = pm_image_alloc(&msk, size, size, 1)))
            goto free_encoded;
        int b0 = size / 2 - size / 16, b1 = b0 + size / 8;
        for (int y = 0; y < size; y++) {
            uint8_t *row = msk.data + (size_t)y * (size_t)size;
            if (y >= b0 && y < b1)
                memset(row, 255, (size_t)size);
            else
                memset(row + b0, 255, (size_t)(b1 - b0));
        }
        if ((rc = pm_image_encode(&msk, &eo, mask, mask_len)))
            goto free_encoded;
    }
    goto free_images;

free_encoded:
    pm_free(*image);
    *image = NULL;
free_images:
    pm_image_free(&msk);
    pm_image_free(&img);
    return rc;
}

static double mib(double b)
{
    return b / (1024.0 * 1024.0);
}

/* One calibration: what the command line asked for and what was measured. */
typedef struct calibration {
    const pm_model_desc *d;
    char name[32];
    const char *file;     /* weights, NULL when the model needs none */
    const char *data_dir;
    pm_model_opts mo;
    int sizes[MAX_SIZES], nsizes;
    double px[MAX_SIZES], peak[MAX_SIZES], secs[MAX_SIZES];
    uint64_t heap[MAX_SIZES], rss[MAX_SIZES];
} calibration;

/* Fills *c from the command line; returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, calibration *c)
{
    pm_args a;
    int rc = pm_cli_parse(&pm_cmd_calibrate, opts, 0, 0, argc, argv, &a);
    if (rc)
        return rc == 1 ? 0 : rc;
    const char *model_arg = pm_cli_get(opts, &a, "model");
    const char *sizes_arg = pm_cli_get(opts, &a, "sizes");
    c->data_dir = pm_cli_get(opts, &a, "data-dir");
    if (!model_arg)
        model_arg = "patchmatch";
    if (!c->data_dir)
        c->data_dir = "pixmend-data";
    static const int default_sizes[] = {256, 512, 1024};
    memcpy(c->sizes, default_sizes, sizeof default_sizes);
    c->nsizes = 3;
    if (sizes_arg && (c->nsizes = parse_sizes(sizes_arg, c->sizes)) < 1) {
        pm_cli_error(&pm_cmd_calibrate, "--sizes must be 1 to %d square sides from 32 to 4096, such as 256,512,1024; "
                                        "not '%s'", MAX_SIZES, sizes_arg);
        return 2;
    }
    long threads = 0;
    const char *t = pm_cli_get(opts, &a, "threads");
    if (t && pm_cli_int(&pm_cmd_calibrate, "threads", t, 0, 1024, &threads))
        return 2;
    const char *eq = strchr(model_arg, '=');
    c->file = eq ? eq + 1 : NULL;
    snprintf(c->name, sizeof c->name, "%.*s", (int)(eq ? eq - model_arg : (long)strlen(model_arg)), model_arg);
    c->d = pm_model_find(c->name);
    if (!c->d) {
        pm_cli_error(&pm_cmd_calibrate, "unknown model '%s' (known: patchmatch, lama, ddcolor)", c->name);
        return 2;
    }
    if (c->d->needs_file && (!c->file || !*c->file)) {
        pm_cli_error(&pm_cmd_calibrate, "model %s needs its weights file: --model %s=FILE", c->name, c->name);
        return 2;
    }
    if (!c->d->needs_file)
        c->file = NULL;
    c->mo = (pm_model_opts){.threads = (int)threads, .precision = PM_PREC_FP32, .seed = 1};
    return -1;
}

/* Runs the model once at each size, each on a freshly loaded model: the
 * first job of a worker (plans, caches and workspaces the engine keeps
 * afterwards are built inside it) is the peak that admission must cover.
 * Fills c's measurements; 0, or 1 after printing why not. */
static int measure_sizes(calibration *c)
{
    const pm_model_desc *d = c->d;
    pm_limits lim = pm_default_limits();
    pm_job_spec spec;
    pm_job_spec_default(&spec);
    spec.task = d->task;
    snprintf(spec.model, sizeof spec.model, "%s", c->name);
    /* The whole image processed: the law is the worst case of the strategies
     * (crop and resize work on less than the image). */
    spec.hd_strategy = PM_HD_ORIGINAL;
    for (int i = 0; i < c->nsizes; i++) {
        int size = c->sizes[i];
        uint8_t *image, *mask;
        size_t image_len, mask_len;
        void *state = NULL;
        if (make_inputs(size, d->task == PM_TASK_INPAINT, &image, &image_len, &mask, &mask_len)) {
            pm_cli_error(&pm_cmd_calibrate, "cannot make a %dx%d test image: %s", size, size, pm_error_detail());
            return 1;
        }
        uint64_t h = 0, r = 0;
        double sec = 0;
        if (d->load(c->file, &c->mo, &state)) {
            pm_free(image);
            pm_free(mask);
            pm_cli_error(&pm_cmd_calibrate, "cannot load model %s: %s", c->name, pm_error_detail());
            return 1;
        }
        int rc = pm_job_measure(d, state, &spec, &lim, image, image_len, mask, mask_len, &h, &r, &sec);
        d->unload(state);
#ifdef __GLIBC__
        malloc_trim(0); /* the next size starts from memory given back, not from free lists */
#endif
        pm_free(image);
        pm_free(mask);
        if (rc) {
            pm_cli_error(&pm_cmd_calibrate, "model %s failed at %dx%d: %s", c->name, size, size, pm_error_detail());
            return 1;
        }
        c->heap[i] = h;
        c->rss[i] = r;
        c->secs[i] = sec;
        c->px[i] = (double)size * size;
        c->peak[i] = (double)(h > r ? h : r);
    }
    return 0;
}

/* The table of measurements against the fitted law and the engine's seed. */
static void print_fit(const calibration *c, const pm_memlaw *law, const pm_memlaw *seed)
{
    printf("\n%9s %10s %11s %11s %11s %11s %8s %11s %8s\n", "size", "pixels", "heap MiB", "VmHWM MiB",
           "peak MiB", "law MiB", "error", "seed MiB", "seed err");
    double worst = 0;
    for (int i = 0; i < c->nsizes; i++) {
        double pred = (double)pm_memlaw_predict(law, (uint64_t)c->px[i]);
        double sp = (double)pm_memlaw_predict(seed, (uint64_t)c->px[i]);
        double err = (pred - c->peak[i]) / c->peak[i] * 100, serr = (sp - c->peak[i]) / c->peak[i] * 100;
        if (fabs(err) > worst)
            worst = fabs(err);
        printf("%4dx%-4d %10.0f %11.1f %11.1f %11.1f %11.1f %+7.1f%% %11.1f %+7.1f%%  (%.2f s)\n", c->sizes[i],
               c->sizes[i], c->px[i], mib((double)c->heap[i]), mib((double)c->rss[i]), mib(c->peak[i]), mib(pred),
               err, mib(sp), serr, c->secs[i]);
    }
    printf("\nlaw: peak_bytes = %.0f + %.3f x pixels   (seed from the engine's estimate: %.0f + %.3f x pixels)\n",
           law->a, law->b, seed->a, seed->b);
    printf("largest prediction error: %.1f %% (goal: within 15 %%)%s\n", worst,
           worst <= 15 ? "" : "; the law stays above every measurement, so admission stays safe");
    if (law->held_by_seed && worst > 15)
        printf("note: the engine's own estimate held the law up (a law may not predict more than %.0f %% below "
               "it from 256x256 up)\n",
               PM_MEMLAW_MARGIN * 100);
}

/* Stores `law` in DATA_DIR/memlaw.json, keeping the other models' laws;
 * 0, or 1 after printing why not. */
static int store_law(const char *data_dir, const char *name, const pm_memlaw *law)
{
    char path[4096];
    if (mkdir(data_dir, 0755) != 0 && errno != EEXIST) {
        pm_cli_error(&pm_cmd_calibrate, "cannot create %s: %s; pick a writable --data-dir", data_dir, strerror(errno));
        return 1;
    }
    snprintf(path, sizeof path, "%s/" PM_MEMLAW_FILE, data_dir);
    pm_memlaw laws[MAX_LAWS];
    int n = 0;
    int rc = pm_memlaw_load(path, laws, MAX_LAWS - 1, &n);
    if (rc && rc != PM_ENOENT) {
        pm_cli_error(&pm_cmd_calibrate, "%s", pm_error_detail());
        return 1;
    }
    if (rc == PM_ENOENT)
        n = 0;
    int k = 0;
    while (k < n && strcmp(laws[k].model, name) != 0)
        k++;
    laws[k] = *law;
    if (k == n)
        n++;
    if (pm_memlaw_save(path, laws, n)) {
        pm_cli_error(&pm_cmd_calibrate, "%s", pm_error_detail());
        return 1;
    }
    printf("stored in %s (pixmend serve --data-dir %s reads it at start)\n", path, data_dir);
    return 0;
}

static int run(int argc, char **argv)
{
    calibration c;
    memset(&c, 0, sizeof c);
    int rc = parse_args(argc, argv, &c);
    if (rc >= 0)
        return rc;
    /* The engine's own estimate seeds the law (and bounds it below). */
    void *state = NULL;
    if (c.d->load(c.file, &c.mo, &state)) {
        pm_cli_error(&pm_cmd_calibrate, "cannot load model %s: %s", c.name, pm_error_detail());
        return 1;
    }
    pm_memlaw law;
    pm_memlaw_seed(&law, c.d, state);
    pm_memlaw seed = law;
    c.d->unload(state);
    printf("calibrating %s at %d size(s); peak = bytes above the start of each run (max of pm_* heap and VmHWM)\n",
           c.name, c.nsizes);
    if (measure_sizes(&c))
        return 1;
    if (pm_memlaw_fit(&law, c.px, c.peak, c.nsizes)) {
        pm_cli_error(&pm_cmd_calibrate, "%s", pm_error_detail());
        return 1;
    }
    print_fit(&c, &law, &seed);
    return store_law(c.data_dir, c.name, &law);
}

const pm_command pm_cmd_calibrate = {
    "calibrate",
    "measure a model's peak memory and store its memory law for admission",
    "usage: pixmend calibrate [--model NAME[=FILE]] [--sizes 256,512,1024] [--data-dir DIR] [--threads N]\n"
    "\n"
    "Runs the model on a synthetic image at each size (squares; the model is\n"
    "loaded afresh for each, so that what an engine builds in its first run and\n"
    "keeps is counted), measures the peak memory of each run above its start (the\n"
    "larger of the pm_* heap peak and the growth of VmHWM, reset through\n"
    "/proc/self/clear_refs), fits peak = a + b x pixels by least squares, keeps\n"
    "it within 25 % of the engine's own estimate and above every measurement,\n"
    "prints the law and its error at each size, and stores it in\n"
    "DIR/memlaw.json, which `pixmend serve --data-dir DIR` reads at start.\n"
    "\n"
    "  -m, --model NAME[=FILE]   the model (default patchmatch); lama and ddcolor need their file\n"
    "      --sizes LIST          square sides, comma-separated (default 256,512,1024)\n"
    "  -d, --data-dir DIR        where the law is stored (default ./pixmend-data)\n"
    "  -t, --threads N           engine threads (default 0 = all cores)\n",
    run,
};
