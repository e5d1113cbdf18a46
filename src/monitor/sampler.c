/* The sampler thread: /proc/stat per-core CPU, /proc/self CPU and RSS, host
 * memory, cgroup memory, NVML GPUs; a ring of recent samples. */
#include "monitor/sampler.h"
#include "monitor/monitor.h"
#include "base/base.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct pm_sampler {
    pthread_t thread;
    pthread_mutex_t lock;   /* guards ring, head, count and the previous counters */
    pthread_cond_t wake;
    int stopping;
    int started;
    double period;
    pm_sample *ring;        /* owned */
    int ring_len, head, count;
    pm_sample_fn fn;
    void *user;
    pm_nvml *nvml;          /* owned; NULL without a GPU */
    /* previous readings, for deltas */
    unsigned long long prev_busy[PM_MAX_CPUS], prev_total[PM_MAX_CPUS];
    unsigned long long prev_all_busy, prev_all_total;
    double prev_proc_cpu, prev_time;
    int have_prev;
    pm_sample scratch;      /* filled outside the lock, then copied in */
};

/* Reads /proc/stat into per-CPU busy/total jiffies; returns the CPU count. */
static int read_proc_stat(unsigned long long *busy, unsigned long long *total,
                          unsigned long long *all_busy, unsigned long long *all_total)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return 0;
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "cpu", 3) != 0)
            break;
        unsigned long long v[10] = {0};
        int id = -1;
        const char *p = line + 3;
        if (*p == ' ') {
            id = -1;
        } else if (sscanf(p, "%d", &id) != 1) {
            continue;
        }
        while (*p && *p != ' ')
            p++;
        sscanf(p, "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
               &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]);
        /* user nice system idle iowait irq softirq steal (guest is inside user) */
        unsigned long long idle = v[3] + v[4];
        unsigned long long tot = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
        if (id < 0) {
            *all_busy = tot - idle;
            *all_total = tot;
        } else if (n < PM_MAX_CPUS) {
            busy[n] = tot - idle;
            total[n] = tot;
            n++;
        }
    }
    fclose(f);
    return n;
}

/* CPU seconds used by this process so far. */
static double process_cpu_seconds(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0)
        return 0;
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static float ratio(unsigned long long d_busy, unsigned long long d_total)
{
    return d_total ? (float)(100.0 * (double)d_busy / (double)d_total) : 0.0f;
}

int pm_sampler_poll(pm_sampler *s)
{
    pm_sample *x = &s->scratch;
    memset(x, 0, sizeof *x);
    x->time = pm_wall_time();
    unsigned long long busy[PM_MAX_CPUS], total[PM_MAX_CPUS], all_busy = 0, all_total = 0;
    int n = read_proc_stat(busy, total, &all_busy, &all_total);
    double now = pm_now(), cpu = process_cpu_seconds();
    x->rss = pm_read_rss();
    x->heap = pm_mem_in_use();
    pm_read_meminfo(&x->host_total, &x->host_available);
    pm_read_cgroup_memory(&x->has_cgroup_limit, &x->cgroup_max, &x->cgroup_current);
    if (s->nvml) {
        x->ngpu = pm_nvml_device_count(s->nvml);
        for (int i = 0; i < x->ngpu; i++)
            pm_nvml_read(s->nvml, i, &x->gpu[i]);
    }

    pthread_mutex_lock(&s->lock);
    x->ncpu = n;
    if (s->have_prev) {
        for (int i = 0; i < n; i++)
            x->cpu_percent[i] = ratio(busy[i] - s->prev_busy[i], total[i] - s->prev_total[i]);
        x->cpu_total_percent = ratio(all_busy - s->prev_all_busy, all_total - s->prev_all_total);
        double dt = now - s->prev_time;
        x->process_cpu_percent = dt > 0 ? (float)(100.0 * (cpu - s->prev_proc_cpu) / dt) : 0.0f;
    }
    memcpy(s->prev_busy, busy, sizeof(busy[0]) * (size_t)n);
    memcpy(s->prev_total, total, sizeof(total[0]) * (size_t)n);
    s->prev_all_busy = all_busy;
    s->prev_all_total = all_total;
    s->prev_proc_cpu = cpu;
    s->prev_time = now;
    s->have_prev = 1;
    s->ring[s->head] = *x;
    s->head = (s->head + 1) % s->ring_len;
    if (s->count < s->ring_len)
        s->count++;
    pthread_mutex_unlock(&s->lock);
    if (s->fn)
        s->fn(s->user, x);
    return 0;
}

static void *sampler_main(void *arg)
{
    pm_sampler *s = arg;
    pthread_mutex_lock(&s->lock);
    while (!s->stopping) {
        struct timespec until;
        pm_deadline(&until, s->period);
        int rc = 0;
        while (!s->stopping && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&s->wake, &s->lock, &until);
        if (s->stopping)
            break;
        pthread_mutex_unlock(&s->lock);
        pm_sampler_poll(s);
        pthread_mutex_lock(&s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

int pm_sampler_start(pm_sampler **out, double period, int ring, pm_sample_fn fn, void *user)
{
    *out = NULL;
    if (period <= 0 || ring < 1)
        return pm_errorf(PM_EINVAL, "sampler period must be > 0 and ring >= 1");
    pm_sampler *s = pm_calloc(1, sizeof *s);
    if (!s)
        return PM_ENOMEM;
    s->ring = pm_calloc((size_t)ring, sizeof *s->ring);
    if (!s->ring)
        goto free_struct;
    s->ring_len = ring;
    s->period = period;
    s->fn = fn;
    s->user = user;
    pthread_mutex_init(&s->lock, NULL);
    pm_cond_init_monotonic(&s->wake);
    char why[128];
    if (pm_nvml_open(&s->nvml, why, sizeof why) != 0)
        s->nvml = NULL;
    pm_sampler_poll(s); /* a first reading, so callers have numbers at once */
    if (pthread_create(&s->thread, NULL, sampler_main, s) != 0)
        goto close_nvml;
    s->started = 1;
    *out = s;
    return 0;

close_nvml:
    pm_nvml_close(s->nvml);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->lock);
    pm_free(s->ring);
free_struct:
    pm_free(s);
    return pm_errorf(PM_ENOMEM, "cannot start the resource sampler");
}

void pm_sampler_stop(pm_sampler *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->stopping = 1;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    if (s->started)
        pthread_join(s->thread, NULL);
    pm_nvml_close(s->nvml);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->lock);
    pm_free(s->ring);
    pm_free(s);
}

int pm_sampler_latest(pm_sampler *s, pm_sample *out)
{
    pthread_mutex_lock(&s->lock);
    int rc = 0;
    if (s->count == 0)
        rc = PM_ENOENT;
    else
        *out = s->ring[(s->head + s->ring_len - 1) % s->ring_len];
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int pm_sampler_history(pm_sampler *s, pm_sample *out, int max)
{
    pthread_mutex_lock(&s->lock);
    int n = s->count < max ? s->count : max;
    int first = (s->head + s->ring_len - n) % s->ring_len;
    for (int i = 0; i < n; i++)
        out[i] = s->ring[(first + i) % s->ring_len];
    pthread_mutex_unlock(&s->lock);
    return n;
}

void pm_hist_init(pm_hist *h, const double *bounds, int n)
{
    memset(h, 0, sizeof *h);
    if (n > PM_HIST_MAX_BUCKETS)
        n = PM_HIST_MAX_BUCKETS;
    h->nbuckets = n;
    memcpy(h->bounds, bounds, sizeof(double) * (size_t)n);
}

void pm_hist_observe(pm_hist *h, double v)
{
    int i = 0;
    while (i < h->nbuckets && v > h->bounds[i])
        i++;
    h->counts[i]++;
    h->count++;
    h->sum += v;
}

double pm_hist_quantile(const pm_hist *h, double q)
{
    if (h->count == 0)
        return 0;
    double rank = q * (double)h->count;
    uint64_t cum = 0;
    for (int i = 0; i <= h->nbuckets; i++) {
        uint64_t prev = cum;
        cum += h->counts[i];
        if ((double)cum >= rank && h->counts[i] > 0) {
            if (i == h->nbuckets) /* the +Inf bucket: the best bound known */
                return h->nbuckets ? h->bounds[h->nbuckets - 1] : 0;
            double lo = i == 0 ? 0 : h->bounds[i - 1], hi = h->bounds[i];
            return lo + (hi - lo) * (rank - (double)prev) / (double)h->counts[i];
        }
    }
    return h->nbuckets ? h->bounds[h->nbuckets - 1] : 0;
}
