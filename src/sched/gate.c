/* Hysteresis gate over measured memory usage. */
#include "sched/gate.h"

#include <stdio.h>

int pm_gate_init(pm_gate *g, double high, double low)
{
    if (!(low > 0 && low < high && high <= 1.0))
        return pm_errorf(PM_EINVAL, "the resume mark (%.0f %%) must be above 0 and below the pause mark (%.0f %%), "
                                    "which must be at most 100 %%", low * 100, high * 100);
    *g = (pm_gate){.high = high, .low = low, .source = "host"};
    return 0;
}

double pm_gate_usage(const pm_sample *s, const char **source)
{
    static const char *const gpu_names[PM_MAX_GPUS] = {"gpu0", "gpu1", "gpu2", "gpu3", "gpu4", "gpu5",
                                                       "gpu6", "gpu7", "gpu8", "gpu9", "gpu10", "gpu11",
                                                       "gpu12", "gpu13", "gpu14", "gpu15"};
    double best = 0;
    const char *src = "host";
    if (s->host_total > 0) {
        uint64_t avail = s->host_available < s->host_total ? s->host_available : s->host_total;
        best = (double)(s->host_total - avail) / (double)s->host_total;
    }
    if (s->has_cgroup_limit && s->cgroup_max > 0) {
        double u = (double)s->cgroup_current / (double)s->cgroup_max;
        if (u > best) {
            best = u;
            src = "cgroup";
        }
    }
    for (int i = 0; i < s->ngpu && i < PM_MAX_GPUS; i++) {
        if (s->gpu[i].mem_total == 0)
            continue;
        double u = (double)s->gpu[i].mem_used / (double)s->gpu[i].mem_total;
        if (u > best) {
            best = u;
            src = gpu_names[i];
        }
    }
    if (source)
        *source = src;
    return best;
}

int pm_gate_update(pm_gate *g, double usage, const char *source)
{
    g->usage = usage;
    g->source = source ? source : g->source;
    if (!g->paused && usage >= g->high) {
        g->paused = 1;
        g->pauses++;
        return 1;
    }
    if (g->paused && usage < g->low) {
        g->paused = 0;
        g->resumes++;
        return -1;
    }
    return 0;
}
