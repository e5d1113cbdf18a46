/* The fleet: fronts and workers that share one Redis (design.md, Fleet).
 *
 * Redis layout (the prefix is "pixmend:"):
 *   pixmend:jobs:fast, pixmend:jobs:normal   streams, one per lane; an entry
 *                                            is `id <job id>`; consumer group
 *                                            "pixmend-workers", read fast first
 *   pixmend:job:<id>                         hash: the job's record (rec.c)
 *   pixmend:input:<id>:image, ...:mask       the uploaded bytes, until the job ends
 *   pixmend:result:<id>                      the encoded result (TTL --result-ttl)
 *   pixmend:results                          sorted set of results by finish time
 *                                            (the --results-max-bytes cap)
 *   pixmend:results:bytes                    their total size
 *   pixmend:stats                            hash of fleet counters
 *   pixmend:workers                          hash: worker name -> its report
 *   pixmend:events                           Pub/Sub channel of job events
 *
 * A front (pixmend serve --redis) is a pm_sched whose store is
 * pm_fleet_front_open's; a worker (pixmend worker, or serve --redis
 * --workers N) is a local pm_sched fed from the streams by pm_fleet_worker. */
#ifndef PM_FLEET_H
#define PM_FLEET_H

#include "sched/sched.h"
#include "sched/store.h"

typedef struct pm_fleet_config {
    const char *redis_url;  /* redis://HOST[:PORT][/DB] */
    double claim_idle;      /* seconds an entry may sit unrefreshed before another worker takes it (30) */
    int max_deliveries;     /* deliveries before a job fails instead of running again (3) */
    double drain_seconds;   /* worker SIGTERM: seconds to finish running jobs before handing them back (30) */
    const char *name;       /* consumer name; NULL = HOST-PID */
} pm_fleet_config;

void pm_fleet_default_config(pm_fleet_config *fc);

/* 0 when `url` is a redis:// address pixmend understands; else PM_EINVAL
 * with a sentence in the detail. */
int pm_fleet_check_url(const char *url);

/* Connects once and creates the streams' consumer group if missing: 0, or
 * PM_EUNAVAIL with a sentence naming the address. */
int pm_fleet_probe(const char *url);

/* Connects to the fleet's Redis and creates the streams' consumer group if
 * missing: PM_EUNAVAIL with a sentence naming the address when it cannot.
 * `sc` gives the front's bounds (queue_max, max_wait, result_ttl,
 * results_max_bytes) and data_dir (where results are cached for sending).
 * Caller owns *out (pm_fleet_front_close, after the pm_sched using it). */
int pm_fleet_front_open(const pm_fleet_config *fc, const pm_sched_config *sc, pm_jobstore **out);
void pm_fleet_front_close(pm_jobstore *st);

typedef struct pm_fleet_worker pm_fleet_worker;

/* Starts taking jobs from the streams into `local` (a started pm_sched with
 * its models loaded; its `workers` is the number of jobs run at once) and
 * storing their results. `sc` is local's configuration. Caller owns *out. */
int pm_fleet_worker_start(const pm_fleet_config *fc, const pm_sched_config *sc, pm_sched *local,
                          pm_fleet_worker **out);
/* Stops taking jobs, lets running ones finish for fc->drain_seconds, hands
 * the others back to the queue, and frees everything. NULL is allowed.
 * Call before destroying `local`. */
void pm_fleet_worker_stop(pm_fleet_worker *w);

/* Prometheus text of the worker's gauges (pixmend_fleet_*); caller owns the
 * string (pm_free). */
char *pm_fleet_worker_metrics(pm_fleet_worker *w);

#endif
