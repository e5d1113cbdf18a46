/* Prometheus exposition (see metrics.h). */
#include "server/metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const reject_names[PM_REJECT_COUNT] = {
    "invalid", "too_large", "unsupported_media", "mask_mismatch", "unknown_model", "queue_full", "unavailable",
};

void pm_metrics_init(pm_metrics *m)
{
    for (int i = 0; i < 6; i++)
        atomic_init(&m->http_responses[i], 0);
    for (int i = 0; i < PM_REJECT_COUNT; i++)
        atomic_init(&m->rejected[i], 0);
    atomic_init(&m->upload_bytes, 0);
}

void pm_metrics_count_response(pm_metrics *m, int status)
{
    int cls = status / 100;
    if (cls >= 1 && cls <= 5)
        atomic_fetch_add(&m->http_responses[cls], 1);
}

void pm_metrics_count_rejected(pm_metrics *m, pm_reject_reason r)
{
    if ((unsigned)r < PM_REJECT_COUNT)
        atomic_fetch_add(&m->rejected[r], 1);
}

uint64_t pm_metrics_rejected_total(pm_metrics *m)
{
    uint64_t t = 0;
    for (int i = 0; i < PM_REJECT_COUNT; i++)
        t += atomic_load(&m->rejected[i]);
    return t;
}

static void header(pm_sb *sb, const char *name, const char *type, const char *help)
{
    pm_sb_printf(sb, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A metric without labels: its HELP and TYPE lines and one sample, whose
 * value `fmt` formats (one conversion). */
static void scalar(pm_sb *sb, const char *name, const char *type, const char *help, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void scalar(pm_sb *sb, const char *name, const char *type, const char *help, const char *fmt, ...)
{
    char value[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(value, sizeof value, fmt, ap);
    va_end(ap);
    header(sb, name, type, help);
    pm_sb_printf(sb, "%s %s\n", name, value);
}

static void histogram(pm_sb *sb, const char *name, const char *help, const pm_hist *h)
{
    header(sb, name, "histogram", help);
    uint64_t cum = 0;
    for (int i = 0; i < h->nbuckets; i++) {
        cum += h->counts[i];
        pm_sb_printf(sb, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[i], (unsigned long long)cum);
    }
    pm_sb_printf(sb, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)h->count);
    pm_sb_printf(sb, "%s_sum %.6f\n%s_count %llu\n", name, h->sum, name, (unsigned long long)h->count);
}

/* A label value with \, " and newlines escaped. */
static void label_value(pm_sb *sb, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            pm_sb_printf(sb, "\\%c", *v);
        else if (*v == '\n')
            pm_sb_puts(sb, "\\n");
        else
            pm_sb_printf(sb, "%c", *v);
    }
}

enum gpu_field { GPU_MEM_USED, GPU_MEM_TOTAL, GPU_UTIL };

/* A gauge with one sample per GPU of x, labelled with its index and name. */
static void gpu_series(pm_sb *sb, const pm_sample *x, const char *name, const char *help, enum gpu_field f)
{
    header(sb, name, "gauge", help);
    for (int i = 0; i < x->ngpu; i++) {
        pm_sb_printf(sb, "%s{gpu=\"%d\",name=\"", name, i);
        label_value(sb, x->gpu[i].name);
        if (f == GPU_UTIL)
            pm_sb_printf(sb, "\"} %.4f\n", x->gpu[i].util_percent / 100.0);
        else
            pm_sb_printf(sb, "\"} %llu\n",
                         (unsigned long long)(f == GPU_MEM_USED ? x->gpu[i].mem_used : x->gpu[i].mem_total));
    }
}

/* A front of a fleet (serve --redis): the shared queue and the workers' reports. */
static void render_fleet(pm_sb *sb, const pm_sched_stats *s)
{
    static const char *const lanes[2] = {"fast", "normal"};
    header(sb, "pixmend_fleet_queue_depth", "gauge", "Jobs waiting in the fleet's streams, by lane (not yet taken).");
    for (int l = 0; l < 2; l++)
        pm_sb_printf(sb, "pixmend_fleet_queue_depth{lane=\"%s\"} %d\n", lanes[l], s->lane_depth[l]);
    scalar(sb, "pixmend_fleet_redis_up", "gauge", "1 while the fleet's Redis answers, 0 while it cannot be reached.",
           "%d", s->fleet_down[0] ? 0 : 1);
    scalar(sb, "pixmend_fleet_pending", "gauge", "Entries taken by a worker and not acknowledged yet.", "%d",
           s->fleet_pending);
    scalar(sb, "pixmend_fleet_reclaimed_total", "counter", "Jobs taken over from a stopped worker (XAUTOCLAIM).",
           "%llu", (unsigned long long)s->fleet_reclaimed);
    scalar(sb, "pixmend_fleet_workers", "gauge", "Workers that reported within the last 15 s.", "%d",
           s->fleet_nworkers);
    header(sb, "pixmend_fleet_worker_running_jobs", "gauge", "Jobs each worker runs now (its last report).");
    for (int i = 0; i < s->fleet_nworkers && i < 16; i++) {
        pm_sb_puts(sb, "pixmend_fleet_worker_running_jobs{worker=\"");
        label_value(sb, s->fleet_workers[i].name);
        pm_sb_printf(sb, "\"} %d\n", s->fleet_workers[i].running);
    }
    header(sb, "pixmend_fleet_worker_budget_bytes", "gauge", "Each worker's memory budget (--mem-budget).");
    for (int i = 0; i < s->fleet_nworkers && i < 16; i++) {
        pm_sb_puts(sb, "pixmend_fleet_worker_budget_bytes{worker=\"");
        label_value(sb, s->fleet_workers[i].name);
        pm_sb_printf(sb, "\"} %llu\n", (unsigned long long)s->fleet_workers[i].budget);
    }
}

void pm_metrics_render(pm_sb *sb, pm_metrics *m, const pm_metrics_view *v)
{
    const pm_sched_stats *s = v->sched;
    static const char *const lanes[2] = {"fast", "normal"};

    header(sb, "pixmend_jobs_total", "counter",
           "Jobs by task, model and outcome: done, failed, cancelled, or rejected (never queued; task and model \"any\").");
    for (int i = 0; i < s->nmodels; i++) {
        const char *task = pm_task_name(s->models[i].task), *model = s->models[i].name;
        pm_sb_printf(sb, "pixmend_jobs_total{task=\"%s\",model=\"%s\",outcome=\"done\"} %llu\n", task, model,
                     (unsigned long long)s->models[i].done);
        pm_sb_printf(sb, "pixmend_jobs_total{task=\"%s\",model=\"%s\",outcome=\"failed\"} %llu\n", task, model,
                     (unsigned long long)s->models[i].failed);
        pm_sb_printf(sb, "pixmend_jobs_total{task=\"%s\",model=\"%s\",outcome=\"cancelled\"} %llu\n", task, model,
                     (unsigned long long)s->models[i].cancelled);
    }
    pm_sb_printf(sb, "pixmend_jobs_total{task=\"any\",model=\"any\",outcome=\"rejected\"} %llu\n",
                 (unsigned long long)pm_metrics_rejected_total(m));

    header(sb, "pixmend_jobs_rejected_total", "counter", "Submissions refused, by reason.");
    for (int i = 0; i < PM_REJECT_COUNT; i++)
        pm_sb_printf(sb, "pixmend_jobs_rejected_total{reason=\"%s\"} %llu\n", reject_names[i],
                     (unsigned long long)atomic_load(&m->rejected[i]));

    scalar(sb, "pixmend_jobs_submitted_total", "counter", "Jobs accepted into the queue since start.",
           "%llu", (unsigned long long)s->submitted);
    scalar(sb, "pixmend_jobs_timed_out_total", "counter", "Jobs failed for running past --job-timeout.",
           "%llu", (unsigned long long)s->timed_out);
    scalar(sb, "pixmend_jobs_recovered_total", "counter", "Jobs queued again from the journal at start.",
           "%llu", (unsigned long long)s->recovered);

    header(sb, "pixmend_queue_depth", "gauge", "Jobs waiting in the queue, by lane (fast: small images).");
    for (int l = 0; l < 2; l++)
        pm_sb_printf(sb, "pixmend_queue_depth{lane=\"%s\"} %d\n", lanes[l], s->lane_depth[l]);
    scalar(sb, "pixmend_queue_capacity", "gauge", "The queue's bound (--queue-max).",
           "%d", s->queue_max);
    scalar(sb, "pixmend_queue_drain_rate", "gauge", "Jobs per second the queue drains at while busy (0 = not measured yet).",
           "%.6f", s->drain_rate);
    scalar(sb, "pixmend_jobs_running", "gauge", "Jobs running now.",
           "%d", s->running);
    if (s->fleet)
        render_fleet(sb, s);
    scalar(sb, "pixmend_workers", "gauge", "Compute workers.",
           "%d", s->workers);
    scalar(sb, "pixmend_job_run_seconds_avg", "gauge", "Moving average of a finished job's run time.",
           "%.6f", s->avg_run_seconds);

    histogram(sb, "pixmend_queue_wait_seconds", "Seconds jobs waited in the queue before a worker started them.",
              &s->queue_wait);
    histogram(sb, "pixmend_job_duration_seconds", "Seconds from a job's start to its end (done, failed or cancelled).",
              &s->run_seconds);
    histogram(sb, "pixmend_job_run_seconds", "The same as pixmend_job_duration_seconds (older name).", &s->run_seconds);
    histogram(sb, "pixmend_disk_write_seconds", "Seconds to write, fsync and rename one result file.", &s->disk_write);

    scalar(sb, "pixmend_admission_paused", "gauge", "1 while intake is paused by the memory gauge.",
           "%d", s->paused);
    scalar(sb, "pixmend_admission_pauses_total", "counter", "Times intake paused (the gauge reached the pause mark).",
           "%llu", (unsigned long long)s->pauses);
    scalar(sb, "pixmend_admission_resumes_total", "counter", "Times intake resumed (the gauge fell below the resume mark).",
           "%llu", (unsigned long long)s->resumes);
    scalar(sb, "pixmend_admission_usage_ratio", "gauge", "The gauge: the highest of host, cgroup and GPU memory in use, as a fraction.",
           "%.6f", s->gauge);
    scalar(sb, "pixmend_admission_high_mark_ratio", "gauge", "The pause mark (--pause-at).",
           "%.4f", s->high_mark);
    scalar(sb, "pixmend_admission_low_mark_ratio", "gauge", "The resume mark (--resume-below).",
           "%.4f", s->low_mark);
    scalar(sb, "pixmend_memory_budget_bytes", "gauge", "The memory budget of running jobs (--mem-budget; 0 = none).",
           "%llu", (unsigned long long)s->mem_budget);
    scalar(sb, "pixmend_memory_reserved_bytes", "gauge", "Predicted peak memory of the running jobs together.",
           "%llu", (unsigned long long)s->mem_reserved);
    header(sb, "pixmend_memory_law_constant_bytes", "gauge", "Memory law per model: the constant a of peak = a + b x pixels.");
    for (int i = 0; i < s->nmodels; i++)
        pm_sb_printf(sb, "pixmend_memory_law_constant_bytes{model=\"%s\"} %.0f\n", s->models[i].name, s->models[i].law.a);
    header(sb, "pixmend_memory_law_slope_bytes_per_pixel", "gauge", "Memory law per model: the slope b of peak = a + b x pixels.");
    for (int i = 0; i < s->nmodels; i++)
        pm_sb_printf(sb, "pixmend_memory_law_slope_bytes_per_pixel{model=\"%s\"} %.6f\n", s->models[i].name,
                     s->models[i].law.b);

    scalar(sb, "pixmend_results_bytes", "gauge", "Bytes of stored result files.",
           "%llu", (unsigned long long)s->results_bytes);
    scalar(sb, "pixmend_results_files", "gauge", "Stored result files.",
           "%llu", (unsigned long long)s->results_count);

    header(sb, "pixmend_http_responses_total", "counter", "HTTP responses by status class.");
    for (int c = 1; c <= 5; c++)
        pm_sb_printf(sb, "pixmend_http_responses_total{code=\"%dxx\"} %llu\n", c,
                     (unsigned long long)atomic_load(&m->http_responses[c]));
    scalar(sb, "pixmend_upload_bytes_total", "counter", "Request body bytes read.",
           "%llu", (unsigned long long)atomic_load(&m->upload_bytes));

    scalar(sb, "pixmend_websocket_clients", "gauge", "Connected WebSocket clients.",
           "%d", v->ws->clients);
    scalar(sb, "pixmend_websocket_messages_total", "counter", "WebSocket messages sent.",
           "%llu", (unsigned long long)v->ws->messages_total);
    scalar(sb, "pixmend_websocket_overflows_total", "counter", "WebSocket clients cut off for not keeping up.",
           "%llu", (unsigned long long)v->ws->overflowed_total);

    scalar(sb, "pixmend_ready", "gauge", "1 when the server accepts jobs (not loading, not draining).",
           "%d", v->state == 1);
    scalar(sb, "pixmend_draining", "gauge", "1 while the server drains for shutdown.",
           "%d", v->state == 2);
    scalar(sb, "pixmend_uptime_seconds", "gauge", "Seconds since the server started.",
           "%.3f", v->uptime_seconds);
    scalar(sb, "pixmend_process_resident_memory_bytes", "gauge", "Resident set size of the process.",
           "%llu", (unsigned long long)v->rss_bytes);
    scalar(sb, "pixmend_heap_bytes", "gauge", "Bytes allocated through pixmend's counting allocator.",
           "%llu", (unsigned long long)v->heap_bytes);

    const pm_sample *x = v->sample;
    if (!x)
        return;
    header(sb, "pixmend_cpu_usage_ratio", "gauge", "Busy share of each logical CPU over the last sample period.");
    for (int i = 0; i < x->ncpu; i++)
        pm_sb_printf(sb, "pixmend_cpu_usage_ratio{cpu=\"%d\"} %.4f\n", i, x->cpu_percent[i] / 100.0);
    scalar(sb, "pixmend_process_cpu_ratio", "gauge", "CPU used by this process over the last period, in cores.",
           "%.4f", x->process_cpu_percent / 100.0);
    scalar(sb, "pixmend_host_memory_total_bytes", "gauge", "Host memory (MemTotal).",
           "%llu", (unsigned long long)x->host_total);
    scalar(sb, "pixmend_host_memory_available_bytes", "gauge", "Host memory available (MemAvailable).",
           "%llu", (unsigned long long)x->host_available);
    if (x->has_cgroup_limit) {
        scalar(sb, "pixmend_cgroup_memory_max_bytes", "gauge", "The cgroup's memory limit.",
               "%llu", (unsigned long long)x->cgroup_max);
        scalar(sb, "pixmend_cgroup_memory_current_bytes", "gauge", "The cgroup's memory in use.",
               "%llu", (unsigned long long)x->cgroup_current);
    }
    if (x->ngpu > 0) {
        gpu_series(sb, x, "pixmend_gpu_memory_used_bytes", "GPU memory in use, per device (NVML).", GPU_MEM_USED);
        gpu_series(sb, x, "pixmend_gpu_memory_total_bytes", "GPU memory, per device (NVML).", GPU_MEM_TOTAL);
        gpu_series(sb, x, "pixmend_gpu_utilization_ratio", "GPU busy share over NVML's last period, per device.",
                   GPU_UTIL);
    }
}
