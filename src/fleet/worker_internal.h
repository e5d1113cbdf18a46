/* Internals of the fleet worker shared by worker.c (taking, running,
 * storing, start and stop) and worker_events.c (events, heartbeat, metrics). */
#ifndef PM_FLEET_WORKER_INTERNAL_H
#define PM_FLEET_WORKER_INTERNAL_H

#include "fleet/fleet_internal.h"
#include "monitor/sampler.h"

#define EVQ_CAP 256
#define TAG_FMT "fleet-slot-%d"

typedef struct slot {
    int busy;                     /* under w->lock */
    int lane;
    char eid[48];                 /* the stream entry */
    pm_job_info job;              /* the fleet's record as taken */
    char local_id[PM_JOB_ID_LEN + 1]; /* the local job; "" before it is submitted */
} slot;

typedef struct evq_item {
    pm_job_event_type type;
    pm_job_info info;
} evq_item;

struct pm_fleet_worker {
    pm_fleet_config fc;
    pm_sched_config sc;
    pm_redis_url url;
    pm_sched *local;
    char name[128];
    int nslots;
    slot *slots;
    pthread_t *feeders;
    int nfeeders;
    pthread_t beat, pub;
    int beat_started, pub_started;
    pm_sampler *sampler;
    pthread_mutex_t lock;         /* slots, the event queue, the fleet reading */
    pthread_cond_t cv;            /* the event queue drained, a slot freed */
    evq_item *evq;
    int evq_head, evq_count, pub_busy;
    atomic_int stop;              /* take no new job */
    atomic_int handback;          /* interrupted jobs go back to the queue */
    atomic_int quit;              /* threads end */
    atomic_ullong reclaimed, done, failed, cancelled, handed_back;
    int depth[2], pending;        /* the fleet's queue at the last heartbeat */
};

/* worker.c */
void pm_fw_sleep(pm_fleet_worker *w, double s);   /* sleeps unless the worker quits */
void pm_fw_free_reply(redisReply *r);             /* NULL allowed */

/* worker_events.c: the local scheduler's event function (queues started
 * and progress events), the publisher and heartbeat threads, the sampler's
 * callback (the gate). */
void pm_fw_on_local_event(void *user, pm_job_event_type type, uint64_t seq, const pm_job_info *j);
void *pm_fw_pub_main(void *arg);
void *pm_fw_beat_main(void *arg);
void pm_fw_on_sample(void *user, const pm_sample *x);

#endif
