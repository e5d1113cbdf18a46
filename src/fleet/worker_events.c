/* The fleet worker's events, heartbeat and metrics: started and progress
 * events of running jobs go to the events channel in order; the heartbeat
 * keeps claims fresh, passes cancel requests on and publishes the worker's
 * report; the sampler feeds the local gate. */
#include "fleet/worker_internal.h"
#include "base/base.h"
#include "sched/gate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* Local events (scheduler lock held: only queue them). */
void pm_fw_on_local_event(void *user, pm_job_event_type type, uint64_t seq, const pm_job_info *j)
{
    (void)seq;
    pm_fleet_worker *w = user;
    if (type != PM_EV_STARTED && type != PM_EV_PROGRESS)
        return; /* the end is published with the stored result */
    int i;
    if (sscanf(j->spec.owner, TAG_FMT, &i) != 1 || i < 0 || i >= w->nslots)
        return;
    pthread_mutex_lock(&w->lock);
    slot *s = &w->slots[i];
    if (s->busy && (w->evq_count < EVQ_CAP - 8 || (type != PM_EV_PROGRESS && w->evq_count < EVQ_CAP))) {
        evq_item *it = &w->evq[(w->evq_head + w->evq_count++) % EVQ_CAP];
        it->type = type;
        it->info = s->job;
        it->info.state = PM_JOB_RUNNING;
        it->info.progress_value = j->progress_value;
        it->info.progress_max = j->progress_max;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->lock);
}

/* Publishes queued local events in order (and a running job's progress in its record). */
void *pm_fw_pub_main(void *arg)
{
    pm_fleet_worker *w = arg;
    pm_rconn c;
    memset(&c, 0, sizeof c);
    c.url = w->url;
    c.timeout = 2;
    evq_item it;
    pthread_mutex_lock(&w->lock);
    while (!atomic_load(&w->quit)) {
        if (w->evq_count == 0) {
            struct timespec ts;
            pm_deadline(&ts, 0.2);
            pthread_cond_timedwait(&w->cv, &w->lock, &ts);
            continue;
        }
        it = w->evq[w->evq_head];
        w->evq_head = (w->evq_head + 1) % EVQ_CAP;
        w->evq_count--;
        w->pub_busy = 1;
        pthread_mutex_unlock(&w->lock);
        size_t mlen = 0;
        char *msg = pm_fleet_event_message(it.type, &it.info, &mlen);
        if (msg) {
            char kjob[96], pv[16], pmx[16];
            pm_fleet_key(kjob, sizeof kjob, "job", it.info.id);
            snprintf(pv, sizeof pv, "%d", it.info.progress_value);
            snprintf(pmx, sizeof pmx, "%d", it.info.progress_max);
            const char *hs[] = {"HSET", kjob, "progress_value", pv, "progress_max", pmx};
            const char *pub[] = {"PUBLISH", PM_FLEET_EVENTS, msg};
            const size_t pub_l[] = {7, strlen(PM_FLEET_EVENTS), mlen};
            const int ac[] = {6, 3};
            const char **av[] = {hs, pub};
            const size_t *al[] = {NULL, pub_l};
            redisReply *r[2];
            int skip = it.type != PM_EV_PROGRESS;
            if (pm_rconn_pipeline(&c, 2 - skip, ac + skip, av + skip, al + skip, r) == 0)
                for (int k = 0; k < 2 - skip; k++)
                    freeReplyObject(r[k]);
            pm_free(msg);
        }
        pthread_mutex_lock(&w->lock);
        w->pub_busy = 0;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->lock);
    pm_rconn_close(&c);
    return NULL;
}

/* Keeps running jobs' claims fresh, passes cancel requests on, and
 * publishes this worker's report. */
void *pm_fw_beat_main(void *arg)
{
    pm_fleet_worker *w = arg;
    pm_rconn c;
    memset(&c, 0, sizeof c);
    c.url = w->url;
    c.timeout = 2;
    double period = pm_fleet_refresh_period(w->fc.claim_idle);
    if (period > 1)
        period = 1; /* cancel requests and the report stay prompt */
    pm_sched_stats *st = pm_malloc(sizeof *st);
    slot *copy = pm_calloc((size_t)w->nslots, sizeof *copy);
    while (st && copy && !atomic_load(&w->quit)) {
        pthread_mutex_lock(&w->lock);
        memcpy(copy, w->slots, (size_t)w->nslots * sizeof *copy);
        pthread_mutex_unlock(&w->lock);
        int running = 0;
        for (int i = 0; i < w->nslots; i++) {
            if (!copy[i].busy)
                continue;
            running++;
            pm_fw_free_reply(pm_rconn_cmdf(&c, "XCLAIM %s %s %s 0 %s JUSTID", pm_fleet_stream(copy[i].lane), PM_FLEET_GROUP,
                                     w->name, copy[i].eid));
            char kjob[96];
            pm_fleet_key(kjob, sizeof kjob, "job", copy[i].job.id);
            redisReply *r = pm_rconn_cmdf(&c, "HGET %s cancel", kjob);
            if (r && r->type == REDIS_REPLY_STRING && strcmp(r->str, "1") == 0 && copy[i].local_id[0]) {
                pm_job_info tmp;
                pm_sched_cancel(w->local, copy[i].local_id, &tmp);
            }
            pm_fw_free_reply(r);
        }
        pm_sched_get_stats(w->local, st);
        /* per model, the most working pixels its law admits within the budget ("inf": no budget) */
        uint64_t largest = 0;
        char models[400] = "";
        size_t used = 0;
        for (int m = 0; m < st->nmodels && used < sizeof models; m++) {
            uint64_t px = st->mem_budget ? pm_memlaw_max_pixels(&st->models[m].law, st->mem_budget) : 0;
            if (px > largest)
                largest = px;
            char v[32];
            snprintf(v, sizeof v, "%llu", (unsigned long long)px);
            used += (size_t)snprintf(models + used, sizeof models - used, "%s%s:%s", m ? "," : "",
                                     st->models[m].name, st->mem_budget ? v : "inf");
        }
        char report[600];
        snprintf(report, sizeof report, "running=%d slots=%d budget=%llu largest=%llu ts=%.3f models=%s", running,
                 w->nslots, (unsigned long long)st->mem_budget, (unsigned long long)largest, pm_wall_time(),
                 models);
        redisReply *h = pm_rconn_cmdf(&c, "HSET %s %s %s", PM_FLEET_WORKERS, w->name, report);
        pm_fw_free_reply(h);
        redisReply *q[4];
        const char *a0[] = {"XLEN", pm_fleet_stream(0)}, *a1[] = {"XLEN", pm_fleet_stream(1)};
        const char *a2[] = {"XPENDING", pm_fleet_stream(0), PM_FLEET_GROUP};
        const char *a3[] = {"XPENDING", pm_fleet_stream(1), PM_FLEET_GROUP};
        const int ac[] = {2, 2, 3, 3};
        const char **av[] = {a0, a1, a2, a3};
        const size_t *al[] = {NULL, NULL, NULL, NULL};
        if (h && pm_rconn_pipeline(&c, 4, ac, av, al, q) == 0) {
            int pend[2] = {0, 0};
            for (int l = 0; l < 2; l++)
                if (q[2 + l]->type == REDIS_REPLY_ARRAY && q[2 + l]->elements > 0 &&
                    q[2 + l]->element[0]->type == REDIS_REPLY_INTEGER)
                    pend[l] = (int)q[2 + l]->element[0]->integer;
            pthread_mutex_lock(&w->lock);
            for (int l = 0; l < 2; l++) {
                int len = q[l]->type == REDIS_REPLY_INTEGER ? (int)q[l]->integer : 0;
                w->depth[l] = len > pend[l] ? len - pend[l] : 0;
            }
            w->pending = pend[0] + pend[1];
            pthread_mutex_unlock(&w->lock);
            for (int k = 0; k < 4; k++)
                freeReplyObject(q[k]);
        }
        pm_fw_sleep(w, period);
    }
    pm_fw_free_reply(pm_rconn_cmdf(&c, "HDEL %s %s", PM_FLEET_WORKERS, w->name));
    pm_free(st);
    pm_free(copy);
    pm_rconn_close(&c);
    return NULL;
}

void pm_fw_on_sample(void *user, const pm_sample *x)
{
    pm_fleet_worker *w = user;
    const char *source = "host";
    double usage = pm_gate_usage(x, &source);
    pm_sched_admission_update(w->local, usage, source);
}

char *pm_fleet_worker_metrics(pm_fleet_worker *w)
{
    pm_sched_stats *st = pm_malloc(sizeof *st);
    size_t cap = 4096;
    char *b = pm_malloc(cap);
    if (!st || !b) {
        pm_free(st);
        pm_free(b);
        return NULL;
    }
    pm_sched_get_stats(w->local, st);
    pthread_mutex_lock(&w->lock);
    int running = 0, depth[2] = {w->depth[0], w->depth[1]}, pending = w->pending;
    for (int i = 0; i < w->nslots; i++)
        running += w->slots[i].busy;
    pthread_mutex_unlock(&w->lock);
    snprintf(b, cap,
             "# HELP pixmend_fleet_queue_depth Jobs waiting in the fleet's streams, by lane (not yet taken).\n"
             "# TYPE pixmend_fleet_queue_depth gauge\n"
             "pixmend_fleet_queue_depth{lane=\"fast\"} %d\n"
             "pixmend_fleet_queue_depth{lane=\"normal\"} %d\n"
             "# HELP pixmend_fleet_pending Entries taken by a worker and not acknowledged yet.\n"
             "# TYPE pixmend_fleet_pending gauge\n"
             "pixmend_fleet_pending %d\n"
             "# HELP pixmend_fleet_reclaimed_total Jobs this worker took over from a stopped worker.\n"
             "# TYPE pixmend_fleet_reclaimed_total counter\n"
             "pixmend_fleet_reclaimed_total{worker=\"%s\"} %llu\n"
             "# HELP pixmend_fleet_worker_running_jobs Jobs this worker runs now.\n"
             "# TYPE pixmend_fleet_worker_running_jobs gauge\n"
             "pixmend_fleet_worker_running_jobs{worker=\"%s\"} %d\n"
             "# HELP pixmend_fleet_worker_slots Jobs this worker runs at most at once.\n"
             "# TYPE pixmend_fleet_worker_slots gauge\n"
             "pixmend_fleet_worker_slots{worker=\"%s\"} %d\n"
             "# HELP pixmend_fleet_worker_budget_bytes This worker's memory budget (--mem-budget).\n"
             "# TYPE pixmend_fleet_worker_budget_bytes gauge\n"
             "pixmend_fleet_worker_budget_bytes{worker=\"%s\"} %llu\n"
             "# HELP pixmend_fleet_worker_reserved_bytes Predicted peak memory of the jobs it runs now.\n"
             "# TYPE pixmend_fleet_worker_reserved_bytes gauge\n"
             "pixmend_fleet_worker_reserved_bytes{worker=\"%s\"} %llu\n"
             "# HELP pixmend_fleet_worker_jobs_total Jobs this worker ended, by outcome.\n"
             "# TYPE pixmend_fleet_worker_jobs_total counter\n"
             "pixmend_fleet_worker_jobs_total{worker=\"%s\",outcome=\"done\"} %llu\n"
             "pixmend_fleet_worker_jobs_total{worker=\"%s\",outcome=\"failed\"} %llu\n"
             "pixmend_fleet_worker_jobs_total{worker=\"%s\",outcome=\"cancelled\"} %llu\n"
             "pixmend_fleet_worker_jobs_total{worker=\"%s\",outcome=\"handed_back\"} %llu\n",
             depth[0], depth[1], pending, w->name, (unsigned long long)atomic_load(&w->reclaimed), w->name, running,
             w->name, w->nslots, w->name, (unsigned long long)st->mem_budget, w->name,
             (unsigned long long)st->mem_reserved, w->name, (unsigned long long)atomic_load(&w->done), w->name,
             (unsigned long long)atomic_load(&w->failed), w->name, (unsigned long long)atomic_load(&w->cancelled),
             w->name, (unsigned long long)atomic_load(&w->handed_back));
    pm_free(st);
    return b;
}
