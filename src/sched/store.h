/* Where accepted jobs live: the seam between the scheduler's front half
 * (validation, the memory law, the API every caller uses: pm_sched_*) and the
 * storage of jobs (records, the queue, inputs, results, events).
 *
 * Two implementations stand side by side:
 *   - in this process (pm_sched_config.store == NULL, the single box): the
 *     SQLite journal (journal.c), the in-process priority queue with its fast
 *     lane (jobqueue.c), the data directory (store.c) and the worker pool
 *     (sched_worker.c). It is the scheduler itself, unchanged: no call goes
 *     through this table, so the single box pays nothing for the seam.
 *   - Redis Streams (src/fleet/front.c, pm_fleet_front_open): records, inputs
 *     and results in Redis, one stream per lane with a consumer group, events
 *     on Pub/Sub; separate `pixmend worker` processes run the jobs.
 *
 * With a store set, pm_sched_submit still checks the inputs, resolves the
 * model and applies the memory law, then hands the accepted job to
 * store->enqueue; pm_sched_get, _cancel, _wait, _result_path, _get_stats,
 * _retry_after, _list, _owner_counts and _set_event_fn are answered by the
 * store. Every function
 * here may be called from any thread. A store whose backend is unreachable
 * answers PM_EUNAVAIL with a sentence saying what is down. */
#ifndef PM_SCHED_STORE_H
#define PM_SCHED_STORE_H

#include "sched/sched.h"

typedef struct pm_jobstore pm_jobstore;

typedef struct pm_jobstore_ops {
    /* The queue bound before the job is stored: 0, PM_EBUSY (full by length
     * or by expected wait), PM_ETOOBIG (no worker's budget fits
     * job->predicted_bytes), PM_EUNAVAIL. */
    int (*admit)(pm_jobstore *st, const pm_job_info *job);
    /* Stores the inputs, then the record, then the queue entry and the
     * queued event; the job is durable when this returns 0. */
    int (*enqueue)(pm_jobstore *st, const pm_job_info *job, const uint8_t *image, size_t image_len,
                   const uint8_t *mask, size_t mask_len);
    /* As pm_sched_get, _cancel, _wait and _result_path (sched.h). */
    int (*get)(pm_jobstore *st, const char *id, pm_job_info *out);
    int (*cancel)(pm_jobstore *st, const char *id, pm_job_info *out);
    int (*wait)(pm_jobstore *st, const char *id, pm_job_info *info, uint8_t **out, size_t *out_len);
    int (*result_path)(pm_jobstore *st, const pm_job_info *job, char *buf, size_t len);
    /* Overwrites the queue, outcome and fleet fields of *io (the caller
     * filled the rest from its own tables). */
    void (*stats)(pm_jobstore *st, pm_sched_stats *io);
    int (*retry_after)(pm_jobstore *st);
    /* As pm_sched_list: running then queued jobs, fast lane first. */
    int (*list)(pm_jobstore *st, pm_job_info *out, int max, int *total);
    /* As pm_sched_owner_counts, over the whole store. */
    void (*owner_counts)(pm_jobstore *st, const char *owner, int *queued, int *running);
    void (*set_event_fn)(pm_jobstore *st, pm_job_event_fn fn, void *user);
} pm_jobstore_ops;

struct pm_jobstore {
    const pm_jobstore_ops *ops;
};

#endif
