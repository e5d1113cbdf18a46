/* One side of the LaMa benchmark: loads a checkpoint, times forward passes
 * at one size and prints one line of key=value figures (peak RSS of this
 * process included), for bench_lama.py to put next to PyTorch's.
 *
 *   bench_lama CKPT --size N [--runs R] [--threads T] [--bf16] [--winograd] [--band-kb K] [--profile]
 */
#include "base/base.h"
#include "monitor/monitor.h"
#include "models/lama.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* Peak RSS (VmHWM) of this process in MB, 0 if unreadable. */
static double hwm_mb(void)
{
    return (double)pm_read_peak_rss() / (1024.0 * 1024.0);
}

static void rss(const char *when)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double cur = 0, hwm = 0;
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0)
            cur = atof(line + 6) / 1024.0;
        else if (strncmp(line, "VmHWM:", 6) == 0)
            hwm = atof(line + 6) / 1024.0;
    }
    if (f)
        fclose(f);
    fprintf(stderr, "rss %-12s %8.1f MB (peak %8.1f MB)\n", when, cur, hwm);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_lama CKPT --size N [--runs R] [--threads T] [--bf16] [--winograd] [--band-kb K] [--profile]\n");
        return 1;
    }
    pm_lama_opts o = {.threads = 0, .precision = PM_PREC_FP32, .winograd = -1};
    int size = 512, runs = 5, profile = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--size") == 0 && i + 1 < argc)
            size = atoi(argv[++i]);
        else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            o.threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--bf16") == 0)
            o.precision = PM_PREC_BF16;
        else if (strcmp(argv[i], "--winograd") == 0)
            o.winograd = 1;
        else if (strcmp(argv[i], "--band-kb") == 0 && i + 1 < argc)
            o.band_bytes = (size_t)atoi(argv[++i]) << 10;
        else if (strcmp(argv[i], "--profile") == 0)
            profile = 1;
    }
    void *st;
    double t0 = pm_wall_time();
    int rc = pm_lama_load(argv[1], &o, &st);
    if (rc) {
        fprintf(stderr, "load: %s\n", pm_error_detail());
        return 2;
    }
    double load_s = pm_wall_time() - t0;
    rss("after load");
    double load_peak = hwm_mb();
    pm_reset_peak_rss();
    pm_lama_bench_result r;
    rc = pm_lama_bench(st, size, size, runs, profile ? stderr : NULL, &r);
    if (rc) {
        fprintf(stderr, "bench: %s\n", pm_error_detail());
        pm_lama_unload(st);
        return 2;
    }
    rss("after runs");
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("median_s=%.4f min_s=%.4f max_s=%.4f plan_s=%.3f load_s=%.3f gflop=%.1f arena_mb=%.1f weights_mb=%.1f "
           "maxrss_mb=%.1f load_peak_mb=%.1f run_peak_mb=%.1f\n",
           r.median_s, r.min_s, r.max_s, r.plan_s, load_s, r.gflop, r.arena_bytes / 1e6, r.weight_bytes / 1e6,
           ru.ru_maxrss / 1024.0, load_peak, hwm_mb());
    pm_lama_unload(st);
    return 0;
}
