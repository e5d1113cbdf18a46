/* pixmend bench lama: time LaMa forward passes on this machine and, with
 * --torch, the same passes in PyTorch on the same weights and thread count,
 * printed side by side as ratios. */
#include "cli/cli.h"
#include "base/base.h"
#include "monitor/monitor.h"
#include "models/ddcolor.h"
#include "models/lama.h"
#include "nn/nn.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const pm_optdef opts[] = {
    {"size", 's', 1},  {"model", 'm', 1}, {"threads", 't', 1}, {"precision", 'p', 1},
    {"runs", 'r', 1},  {"profile", 0, 0}, {"no-torch", 0, 0},   {"python", 0, 1},
    {0},
};

/* Peak RSS (VmHWM) of this process in MB, 0 if unreadable. */
static double hwm_mb(void)
{
    return (double)pm_read_peak_rss() / (1024.0 * 1024.0);
}

typedef struct torch_fig {
    double median_s, min_s, max_s, load_peak_mb, run_peak_mb;
} torch_fig;

/* Runs the PyTorch side (bench/lama/bench_lama.py --torch-side) and parses
 * its key=value line into *t. Returns 0; 1 when the source tree is not there
 * (a line says the comparison was skipped); 2 after a one-line error. */
static int run_torch(const pm_command *cmd, const char *python, const char *ckpt, int size, int threads,
                     int runs, torch_fig *t)
{
    char script[4096];
    snprintf(script, sizeof script, "%s/bench/lama/bench_lama.py", PM_SOURCE_DIR);
    if (access(script, R_OK) != 0) {
        printf("pytorch  skipped: the comparison needs the pixmend source tree (%s is missing)\n", script);
        return 1;
    }
    char args[5][32];
    snprintf(args[0], sizeof args[0], "%d", size);
    snprintf(args[1], sizeof args[1], "%d", threads);
    snprintf(args[2], sizeof args[2], "%d", size >= 1024 ? (runs < 2 ? runs : 2) : runs);
    snprintf(args[3], sizeof args[3], "%d", size >= 1024 ? 0 : 1);
    int fd[2];
    if (pipe(fd) != 0) {
        pm_cli_error(cmd, "cannot start PyTorch: %s", strerror(errno));
        return 2;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        pm_cli_error(cmd, "cannot start PyTorch: %s", strerror(errno));
        return 2;
    }
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execl(python, python, script, "--torch-side", ckpt, args[0], args[1], args[2], args[3], (char *)NULL);
        fprintf(stderr, "pixmend bench: cannot run %s: %s\n", python, strerror(errno));
        _exit(127);
    }
    close(fd[1]);
    FILE *f = fdopen(fd[0], "r");
    char line[512], last[512] = "";
    while (f && fgets(line, sizeof line, f))
        snprintf(last, sizeof last, "%s", line);
    if (f)
        fclose(f);
    else
        close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    double load_s = 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 ||
        sscanf(last, "median_s=%lf min_s=%lf max_s=%lf load_s=%lf load_peak_mb=%lf run_peak_mb=%lf",
               &t->median_s, &t->min_s, &t->max_s, &load_s, &t->load_peak_mb, &t->run_peak_mb) != 6) {
        pm_cli_error(cmd, "the PyTorch side failed (%s with python3-torch); see its messages above", python);
        return 2;
    }
    return 0;
}

/* The machine's ceiling in fp32 and (where oneDNN runs it natively) bf16:
 * one convolution of the dominant shape alone. Prints one line; 0 or -1. */
static int ceiling(int threads, double *f32, double *bf16)
{
    pm_nn_ctx *ctx;
    *f32 = *bf16 = 0;
    if (pm_nn_ctx_create(&ctx) || pm_nn_ceiling(ctx, PM_NN_F32, threads, 9, f32) ||
        (pm_nn_cpu_has_bf16() && pm_nn_ceiling(ctx, PM_NN_BF16, threads, 9, bf16))) {
        pm_nn_ctx_destroy(ctx);
        return -1;
    }
    pm_nn_ctx_destroy(ctx);
    double la[3] = {0};
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf %lf %lf", &la[0], &la[1], &la[2]) != 3)
            la[0] = la[1] = la[2] = 0;
        fclose(f);
    }
    printf("ceiling  one 3x3 conv 384->384 on 64x64, alone: fp32 %.0f GFLOP/s, bf16 %s%.0f GFLOP/s%s"
           "  (load average %.2f %.2f %.2f)\n", *f32, *bf16 > 0 ? "" : "n/a ", *bf16,
           *bf16 > 0 ? "" : " (no native bf16 here)", la[0], la[1], la[2]);
    return 0;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One DDColor precision: load, a warm-up run (the plan), `runs` timed runs.
 * *median_s gets the median. Returns 0 or 1 after a one-line error. */
static int ddcolor_one(const pm_command *cmd, const pm_args *a, const char *model, int size, int threads, int runs,
                       enum pm_precision prec, double ceil, double *median_s)
{
    size_t plane = (size_t)size * size;
    float *in = pm_malloc(plane * 5 * sizeof(float)), *ab = in ? in + plane * 3 : NULL;
    double t[64];
    if (!in) {
        pm_cli_error(cmd, "out of memory for a %dx%d input", size, size);
        return 1;
    }
    for (size_t i = 0; i < plane * 3; i++)
        in[i] = 0.5f + 0.3f * sinf((float)(i % (size_t)size) * 0.05f) * cosf((float)(i / (size_t)size) * 0.07f);
    pm_model_opts o = {threads, prec, 0};
    pm_ddcolor *m = NULL;
    pm_reset_peak_rss(); /* each precision's own peak (the fp32 model is freed first) */
    double t0 = pm_wall_time();
    int rc = pm_ddcolor_load(model, &o, &m);
    double load_s = pm_wall_time() - t0, warm_s = 0;
    if (!rc) {
        t0 = pm_wall_time();
        rc = pm_ddcolor_predict(m, in, size, ab, NULL);
        warm_s = pm_wall_time() - t0;
    }
    if (!rc && pm_cli_get(opts, a, "profile"))
        pm_ddcolor_profile(m, NULL);
    for (int i = 0; i < runs && !rc; i++) {
        t0 = pm_wall_time();
        rc = pm_ddcolor_predict(m, in, size, ab, NULL);
        t[i] = pm_wall_time() - t0;
    }
    if (rc) {
        pm_cli_error(cmd, "%s", pm_error_detail());
        pm_ddcolor_free(m);
        pm_free(in);
        return 1;
    }
    if (pm_cli_get(opts, a, "profile"))
        pm_ddcolor_profile(m, stderr);
    qsort(t, (size_t)runs, sizeof *t, cmp_d);
    *median_s = runs % 2 ? t[runs / 2] : 0.5 * (t[runs / 2 - 1] + t[runs / 2]);
    double gf = pm_ddcolor_gflop(m);
    /* set-up: what a one-shot process pays over one planned run */
    printf("pixmend  %s median %8.3f s (min %.3f, max %.3f)  load %.2f s, first run %.2f s (set-up %.2f s), "
           "workspace %.0f MB, peak RSS %.0f MB, %.1f GFLOP, %.0f GFLOP/s",
           prec == PM_PREC_BF16 ? "bf16" : "fp32", *median_s, t[0], t[runs - 1], load_s, warm_s,
           load_s + warm_s - *median_s,
           (double)pm_ddcolor_workspace_bytes(m, size) / 1e6, hwm_mb(), gf, gf / *median_s);
    if (ceil > 0)
        printf(", efficiency %.2f of the %s ceiling", gf / *median_s / ceil, prec == PM_PREC_BF16 ? "bf16" : "fp32");
    printf("\n");
    fflush(stdout);
    pm_ddcolor_free(m);
    pm_free(in);
    return 0;
}

/* pixmend bench ddcolor: fp32, bf16 or both side by side. */
static int bench_ddcolor(const pm_command *cmd, const pm_args *a)
{
    const char *model = pm_cli_get(opts, a, "model"), *v;
    if (!model) {
        pm_cli_error(cmd, "--model FILE is required: a DDColor checkpoint (ddcolor_paper.pth, ...)");
        return 2;
    }
    long size = PM_DDCOLOR_SIZE_DEFAULT, threads = 0, runs = 3;
    if ((v = pm_cli_get(opts, a, "size")) && pm_cli_int(cmd, "size", v, 32, 4096, &size))
        return 2;
    if (size % 32) {
        pm_cli_error(cmd, "--size %ld is not a multiple of 32 (DDColor works on multiples of 32)", size);
        return 2;
    }
    if (((v = pm_cli_get(opts, a, "threads")) && pm_cli_int(cmd, "threads", v, 1, 1024, &threads)) ||
        ((v = pm_cli_get(opts, a, "runs")) && pm_cli_int(cmd, "runs", v, 1, 64, &runs)))
        return 2;
    int both = 0;
    enum pm_precision prec = PM_PREC_FP32;
    if ((v = pm_cli_get(opts, a, "precision"))) {
        both = strcmp(v, "both") == 0;
        prec = strcmp(v, "bf16") == 0 ? PM_PREC_BF16 : PM_PREC_FP32;
        if (!both && strcmp(v, "bf16") != 0 && strcmp(v, "fp32") != 0) {
            pm_cli_error(cmd, "--precision must be fp32, bf16 or both, not '%s'", v);
            return 2;
        }
    }
    int nthreads = threads > 0 ? (int)threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    printf("DDColor %ldx%ld, %d threads, %ld timed runs\n", size, size, nthreads, runs);
    double cf = 0, cb = 0, tf = 0, tb = 0;
    ceiling(nthreads, &cf, &cb);
    if ((both || prec == PM_PREC_FP32) &&
        ddcolor_one(cmd, a, model, (int)size, nthreads, (int)runs, PM_PREC_FP32, cf, &tf))
        return 1;
    if ((both || prec == PM_PREC_BF16) &&
        ddcolor_one(cmd, a, model, (int)size, nthreads, (int)runs, PM_PREC_BF16, cb, &tb))
        return 1;
    if (both)
        printf("ratio    bf16 is %.2fx faster than fp32 (median)\n", tf / tb);
    return 0;
}

static int run(int argc, char **argv)
{
    const pm_command *cmd = &pm_cmd_bench;
    pm_args a;
    int rc = pm_cli_parse(cmd, opts, 1, 1, argc, argv, &a);
    if (rc)
        return rc == 1 ? 0 : 2;
    if (strcmp(a.pos[0], "ddcolor") == 0)
        return bench_ddcolor(cmd, &a);
    if (strcmp(a.pos[0], "lama") != 0) {
        pm_cli_error(cmd, "unknown benchmark '%s'; the ones available are 'lama' and 'ddcolor'", a.pos[0]);
        return 2;
    }
    const char *model = pm_cli_get(opts, &a, "model");
    if (!model) {
        pm_cli_error(cmd, "--model FILE is required: a big-lama checkpoint (big-lama/models/best.ckpt)");
        return 2;
    }
    long size = 512, threads = 0, runs = 3;
    const char *v;
    if ((v = pm_cli_get(opts, &a, "size")) && pm_cli_int(cmd, "size", v, 16, 8192, &size))
        return 2;
    if (size % 8) {
        pm_cli_error(cmd, "--size %ld is not a multiple of 8 (LaMa works on multiples of 8)", size);
        return 2;
    }
    if ((v = pm_cli_get(opts, &a, "threads")) && pm_cli_int(cmd, "threads", v, 1, 1024, &threads))
        return 2;
    if ((v = pm_cli_get(opts, &a, "runs")) && pm_cli_int(cmd, "runs", v, 1, 1000, &runs))
        return 2;
    pm_lama_opts o = {.threads = (int)threads, .precision = PM_PREC_FP32, .winograd = -1};
    if ((v = pm_cli_get(opts, &a, "precision"))) {
        if (strcmp(v, "bf16") == 0)
            o.precision = PM_PREC_BF16;
        else if (strcmp(v, "fp32") != 0) {
            pm_cli_error(cmd, "--precision must be fp32 or bf16, not '%s'", v);
            return 2;
        }
    }
    const char *python = pm_cli_get(opts, &a, "python");
    if (!python)
        python = "/usr/bin/python3";
    int nthreads = threads > 0 ? (int)threads : (int)sysconf(_SC_NPROCESSORS_ONLN);

    void *st = NULL;
    double t0 = pm_wall_time();
    if (pm_lama_load(model, &o, &st) != 0) {
        pm_cli_error(cmd, "%s", pm_error_detail());
        return 1;
    }
    double load_s = pm_wall_time() - t0, load_peak = hwm_mb();
    int ngf = 0, blocks = 0;
    pm_lama_config(st, &ngf, &blocks);
    printf("LaMa %ldx%ld, %s, %d threads, checkpoint ngf %d / %d blocks, %ld timed runs\n", size, size,
           o.precision == PM_PREC_BF16 ? "bf16" : "fp32", nthreads, ngf, blocks, runs);
    fflush(stdout);
    pm_reset_peak_rss();
    pm_lama_bench_result r;
    rc = pm_lama_bench(st, (int)size, (int)size, (int)runs, pm_cli_get(opts, &a, "profile") ? stderr : NULL, &r);
    double run_peak = hwm_mb();
    pm_lama_unload(st);
    if (rc) {
        pm_cli_error(cmd, "%s", pm_error_detail());
        return 1;
    }
    double peak = load_peak > run_peak ? load_peak : run_peak;
    printf("pixmend  median %8.3f s (min %.3f, max %.3f)  peak RSS %7.1f MB (loading %.1f, forward %.1f)"
           "  load %.2f s, plan %.2f s, %.1f GFLOP, %.0f GFLOP/s\n",
           r.median_s, r.min_s, r.max_s, peak, load_peak, run_peak, load_s, r.plan_s, r.gflop,
           r.gflop / r.median_s);
    double cf, cb;
    if (ceiling(nthreads, &cf, &cb) == 0) {
        double c = o.precision == PM_PREC_BF16 ? cb : cf;
        double once = load_s + r.plan_s + r.first_s;
        if (c > 0)
            printf("efficiency %.2f of the %s ceiling (%.0f of %.0f GFLOP/s); one-shot (load %.2f + plan %.2f + "
                   "first run %.2f = %.2f s) %.2f\n",
                   r.gflop / r.median_s / c, o.precision == PM_PREC_BF16 ? "bf16" : "fp32", r.gflop / r.median_s, c,
                   load_s, r.plan_s, r.first_s, once, r.gflop / once / c);
    }
    fflush(stdout);
    if (pm_cli_get(opts, &a, "no-torch"))
        return 0;
    torch_fig t;
    rc = run_torch(cmd, python, model, (int)size, nthreads, (int)runs, &t);
    if (rc)
        return rc == 1 ? 0 : 2;
    double tpeak = t.load_peak_mb > t.run_peak_mb ? t.load_peak_mb : t.run_peak_mb;
    printf("pytorch  median %8.3f s (min %.3f, max %.3f)  peak RSS %7.1f MB (loading %.1f, forward %.1f)\n",
           t.median_s, t.min_s, t.max_s, tpeak, t.load_peak_mb, t.run_peak_mb);
    printf("ratio    pixmend is %.2fx faster (median); peak RSS %.2fx PyTorch's (%.2fx for the forward passes alone)\n",
           t.median_s / r.median_s, peak / tpeak, run_peak / t.run_peak_mb);
    return 0;
}

const pm_command pm_cmd_bench = {
    "bench", "measure LaMa and DDColor on this machine (time, peak RSS, share of the machine's ceiling)",
    "usage: pixmend bench lama --model FILE [--size N] [options]\n"
    "       pixmend bench ddcolor --model FILE [--size N] [--precision fp32|bf16|both] [options]\n\n"
    "Loads a big-lama checkpoint, times forward passes of a random N x N input (after\n"
    "one warm-up) and reports the median time and the peak RSS of loading and of the\n"
    "passes. Then the same checkpoint runs in PyTorch (python3-torch, through\n"
    "bench/lama/bench_lama.py of the source tree) with the same thread count and\n"
    "input, and the ratios are printed. `ddcolor` times DDColor (L or tiny) the same way,\n"
    "both precisions side by side with --precision both (the PyTorch comparison of\n"
    "DDColor is bench/ddcolor/run_bench.py). Both print the machine's ceiling: one\n"
    "3x3 convolution 384->384 on 64x64 timed alone in fp32 and bf16, and each\n"
    "model's speed as a share of it. LaMa's line also gives a one-shot process's\n"
    "share (load + plan + first run, what `pixmend inpaint` pays besides the image);\n"
    "DDColor's the set-up a one-shot process pays over a planned run (load + first\n"
    "run - the median).\n\n"
    "  -m, --model FILE      big-lama checkpoint (best.ckpt or safetensors), or DDColor's\n"
    "  -s, --size N          square input side, a multiple of 8 (DDColor: 32; default 512)\n"
    "  -t, --threads N       compute threads (default: all cores)\n"
    "  -p, --precision P     fp32 (default) or bf16 (CPUs with AVX512-BF16)\n"
    "  -r, --runs R          timed passes (default 3)\n"
    "  --profile             a per-layer table (time, share, GFLOP/s) on stderr\n"
    "  --no-torch            pixmend only, no PyTorch comparison\n"
    "  --python PATH         the interpreter with torch (default /usr/bin/python3)\n",
    run,
};
