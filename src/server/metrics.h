/* Prometheus exposition (text format 0.0.4) of pixmend's counters and gauges.
 * Names are prefixed pixmend_. The counters the HTTP layer owns live here;
 * the job counters come from the scheduler's statistics. Extend this file
 * (not the routes) when new metrics are added. */
#ifndef PM_METRICS_H
#define PM_METRICS_H

#include "sched/sched.h"
#include "server/sb.h"
#include "server/ws.h"

#include <stdatomic.h>
#include <stdint.h>

/* Why a submission was refused (the `reason` label of pixmend_jobs_total{outcome="rejected"}). */
typedef enum pm_reject_reason {
    PM_REJECT_INVALID = 0,  /* 400 */
    PM_REJECT_TOO_LARGE,    /* 413 */
    PM_REJECT_UNSUPPORTED,  /* 415 */
    PM_REJECT_MISMATCH,     /* 422 */
    PM_REJECT_NOT_FOUND,    /* 404 unknown model */
    PM_REJECT_BUSY,         /* 429 */
    PM_REJECT_UNAVAILABLE,  /* 503 loading or draining */
    PM_REJECT_COUNT
} pm_reject_reason;

typedef struct pm_metrics {
    atomic_ullong http_responses[6];          /* by class: [1] = 1xx ... [5] = 5xx */
    atomic_ullong rejected[PM_REJECT_COUNT];
    atomic_ullong upload_bytes;               /* request bodies read */
} pm_metrics;

void pm_metrics_init(pm_metrics *m);
void pm_metrics_count_response(pm_metrics *m, int status);
void pm_metrics_count_rejected(pm_metrics *m, pm_reject_reason r);
uint64_t pm_metrics_rejected_total(pm_metrics *m);

/* What the exposition shows besides the counters in *m. */
typedef struct pm_metrics_view {
    const pm_sched_stats *sched;
    const pm_ws_stats *ws;
    int state;                 /* 0 loading, 1 ready, 2 draining */
    double uptime_seconds;
    uint64_t rss_bytes;
    uint64_t heap_bytes;       /* pm_mem_in_use */
    const pm_sample *sample;   /* the sampler's latest; NULL when none */
} pm_metrics_view;

/* Appends the whole exposition to sb. */
void pm_metrics_render(pm_sb *sb, pm_metrics *m, const pm_metrics_view *v);

#endif
