/* Prometheus exposition (see metrics.h). */
#include "server/metrics.h"

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

void pm_metrics_render(pm_sb *sb, pm_metrics *m, const pm_metrics_view *v)
{
    const pm_sched_stats *s = v->sched;

    header(sb, "pixmend_jobs_total", "counter", "Jobs by outcome: done, failed, cancelled, or rejected (never queued).");
    pm_sb_printf(sb, "pixmend_jobs_total{outcome=\"done\"} %llu\n", (unsigned long long)s->done);
    pm_sb_printf(sb, "pixmend_jobs_total{outcome=\"failed\"} %llu\n", (unsigned long long)s->failed);
    pm_sb_printf(sb, "pixmend_jobs_total{outcome=\"cancelled\"} %llu\n", (unsigned long long)s->cancelled);
    pm_sb_printf(sb, "pixmend_jobs_total{outcome=\"rejected\"} %llu\n",
                 (unsigned long long)pm_metrics_rejected_total(m));

    header(sb, "pixmend_jobs_rejected_total", "counter", "Submissions refused, by reason.");
    for (int i = 0; i < PM_REJECT_COUNT; i++)
        pm_sb_printf(sb, "pixmend_jobs_rejected_total{reason=\"%s\"} %llu\n", reject_names[i],
                     (unsigned long long)atomic_load(&m->rejected[i]));

    header(sb, "pixmend_jobs_submitted_total", "counter", "Jobs accepted into the queue since start.");
    pm_sb_printf(sb, "pixmend_jobs_submitted_total %llu\n", (unsigned long long)s->submitted);
    header(sb, "pixmend_jobs_timed_out_total", "counter", "Jobs failed for running past --job-timeout.");
    pm_sb_printf(sb, "pixmend_jobs_timed_out_total %llu\n", (unsigned long long)s->timed_out);
    header(sb, "pixmend_jobs_recovered_total", "counter", "Jobs queued again from the journal at start.");
    pm_sb_printf(sb, "pixmend_jobs_recovered_total %llu\n", (unsigned long long)s->recovered);

    header(sb, "pixmend_queue_depth", "gauge", "Jobs waiting in the queue.");
    pm_sb_printf(sb, "pixmend_queue_depth %d\n", s->queue_depth);
    header(sb, "pixmend_queue_capacity", "gauge", "The queue's bound (--queue-max).");
    pm_sb_printf(sb, "pixmend_queue_capacity %d\n", s->queue_max);
    header(sb, "pixmend_jobs_running", "gauge", "Jobs running now.");
    pm_sb_printf(sb, "pixmend_jobs_running %d\n", s->running);
    header(sb, "pixmend_workers", "gauge", "Compute workers.");
    pm_sb_printf(sb, "pixmend_workers %d\n", s->workers);
    header(sb, "pixmend_job_run_seconds_avg", "gauge", "Moving average of a finished job's run time.");
    pm_sb_printf(sb, "pixmend_job_run_seconds_avg %.6f\n", s->avg_run_seconds);

    header(sb, "pixmend_results_bytes", "gauge", "Bytes of stored result files.");
    pm_sb_printf(sb, "pixmend_results_bytes %llu\n", (unsigned long long)s->results_bytes);
    header(sb, "pixmend_results_files", "gauge", "Stored result files.");
    pm_sb_printf(sb, "pixmend_results_files %llu\n", (unsigned long long)s->results_count);

    header(sb, "pixmend_http_responses_total", "counter", "HTTP responses by status class.");
    for (int c = 1; c <= 5; c++)
        pm_sb_printf(sb, "pixmend_http_responses_total{code=\"%dxx\"} %llu\n", c,
                     (unsigned long long)atomic_load(&m->http_responses[c]));
    header(sb, "pixmend_upload_bytes_total", "counter", "Request body bytes read.");
    pm_sb_printf(sb, "pixmend_upload_bytes_total %llu\n", (unsigned long long)atomic_load(&m->upload_bytes));

    header(sb, "pixmend_websocket_clients", "gauge", "Connected WebSocket clients.");
    pm_sb_printf(sb, "pixmend_websocket_clients %d\n", v->ws->clients);
    header(sb, "pixmend_websocket_messages_total", "counter", "WebSocket messages sent.");
    pm_sb_printf(sb, "pixmend_websocket_messages_total %llu\n", (unsigned long long)v->ws->messages_total);
    header(sb, "pixmend_websocket_overflows_total", "counter", "WebSocket clients cut off for not keeping up.");
    pm_sb_printf(sb, "pixmend_websocket_overflows_total %llu\n", (unsigned long long)v->ws->overflowed_total);

    header(sb, "pixmend_ready", "gauge", "1 when the server accepts jobs (not loading, not draining).");
    pm_sb_printf(sb, "pixmend_ready %d\n", v->state == 1);
    header(sb, "pixmend_draining", "gauge", "1 while the server drains for shutdown.");
    pm_sb_printf(sb, "pixmend_draining %d\n", v->state == 2);
    header(sb, "pixmend_uptime_seconds", "gauge", "Seconds since the server started.");
    pm_sb_printf(sb, "pixmend_uptime_seconds %.3f\n", v->uptime_seconds);
    header(sb, "pixmend_process_resident_memory_bytes", "gauge", "Resident set size of the process.");
    pm_sb_printf(sb, "pixmend_process_resident_memory_bytes %llu\n", (unsigned long long)v->rss_bytes);
    header(sb, "pixmend_heap_bytes", "gauge", "Bytes allocated through pixmend's counting allocator.");
    pm_sb_printf(sb, "pixmend_heap_bytes %llu\n", (unsigned long long)v->heap_bytes);
}
