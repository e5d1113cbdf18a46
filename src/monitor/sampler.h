/* The sampler: a thread that reads CPU, memory, cgroup and GPU figures every
 * period and keeps a ring of recent samples for charts and for admission. */
#ifndef PM_MONITOR_SAMPLER_H
#define PM_MONITOR_SAMPLER_H

#include "pixmend.h"

#define PM_MAX_CPUS 256

typedef struct pm_sample {
    double time;                   /* wall clock, seconds since the epoch */
    int ncpu;
    float cpu_percent[PM_MAX_CPUS]; /* per logical CPU, busy share over the last period */
    float cpu_total_percent;        /* all CPUs together, 0..100 */
    float process_cpu_percent;      /* this process, in % of one CPU (200 = two cores busy) */
    uint64_t rss;                   /* this process's resident memory */
    uint64_t heap;                  /* pm_mem_in_use() */
    uint64_t host_total, host_available;
    int has_cgroup_limit;
    uint64_t cgroup_max, cgroup_current;
    int ngpu;
    pm_gpu_info gpu[PM_MAX_GPUS];
} pm_sample;

typedef struct pm_sampler pm_sampler;

/* Called on the sampler thread after each sample; must be quick. */
typedef void (*pm_sample_fn)(void *user, const pm_sample *s);

/* Starts the sampler thread: one sample every `period` seconds, the last
 * `ring` samples kept. `fn` (may be NULL) sees every sample. Caller owns
 * *out and stops it with pm_sampler_stop. */
int pm_sampler_start(pm_sampler **out, double period, int ring, pm_sample_fn fn, void *user);
/* Stops the thread and frees everything. Safe on NULL. */
void pm_sampler_stop(pm_sampler *s);
/* Takes one sample now (also done by the thread); useful at start and in tests. */
int pm_sampler_poll(pm_sampler *s);
/* Copies the newest sample; PM_ENOENT before the first. */
int pm_sampler_latest(pm_sampler *s, pm_sample *out);
/* Copies up to `max` samples, oldest first; returns how many. */
int pm_sampler_history(pm_sampler *s, pm_sample *out, int max);

/* A fixed-bucket histogram for Prometheus (cumulative counts are derived). */
#define PM_HIST_MAX_BUCKETS 24
typedef struct pm_hist {
    int nbuckets;
    double bounds[PM_HIST_MAX_BUCKETS]; /* upper bounds, ascending; +Inf is implicit */
    uint64_t counts[PM_HIST_MAX_BUCKETS + 1];
    uint64_t count;
    double sum;
} pm_hist;

/* Initialises with the given upper bounds (at most PM_HIST_MAX_BUCKETS). */
void pm_hist_init(pm_hist *h, const double *bounds, int n);
/* Adds one observation. Not thread-safe: callers hold their own lock. */
void pm_hist_observe(pm_hist *h, double v);
/* Estimated quantile q (0..1) by linear interpolation inside the bucket. */
double pm_hist_quantile(const pm_hist *h, double q);

#endif
