/* The scheduler's statistics and the admission gate. */
#include "sched/admit.h"
#include "sched/gate.h"
#include "sched/journal.h"
#include "sched/sched_internal.h"
#include "base/base.h"
#include "pipeline/pipeline.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


/* ------------------------------------------------------------- stats */

void pm_sched_get_stats(pm_sched *s, pm_sched_stats *st)
{
    memset(st, 0, sizeof *st);
    pthread_mutex_lock(&s->lock);
    st->submitted = s->submitted;
    st->done = s->done;
    st->failed = s->failed;
    st->cancelled = s->cancelled;
    st->timed_out = s->timed_out;
    st->recovered = s->recovered;
    st->queue_depth = pm_sched_queue_count(s);
    st->lane_depth[0] = s->lanes[0].count;
    st->lane_depth[1] = s->lanes[1].count;
    st->drain_rate = pm_sched_drain_rate_locked(s);
    st->disk_write = s->disk_write;
    st->mem_budget = s->cfg.mem_budget;
    st->mem_reserved = s->mem_reserved;
    st->aging_seconds = s->cfg.aging_seconds;
    st->max_wait = s->cfg.max_wait;
    st->fast_lane_pixels = s->cfg.fast_lane_pixels;
    st->paused = s->gate.paused;
    st->pauses = s->gate.pauses;
    st->resumes = s->gate.resumes;
    st->gauge = s->gate.usage;
    st->gauge_source = s->gate.source;
    st->high_mark = s->gate.high;
    st->low_mark = s->gate.low;
    st->ntransitions = s->ntrans;
    for (int i = 0; i < s->ntrans; i++) {
        int k = (s->trans_head - s->ntrans + i + PM_SCHED_TRANSITIONS) % PM_SCHED_TRANSITIONS;
        st->transitions[i].t = s->trans[k].t;
        st->transitions[i].gauge = s->trans[k].gauge;
        st->transitions[i].paused = s->trans[k].paused;
    }
    st->nmodels = s->nmodels;
    for (int i = 0; i < s->nmodels; i++) {
        snprintf(st->models[i].name, sizeof st->models[i].name, "%s", s->models[i].desc->name);
        st->models[i].task = s->models[i].desc->task;
        st->models[i].done = s->models[i].done;
        st->models[i].failed = s->models[i].failed;
        st->models[i].cancelled = s->models[i].cancelled;
        st->models[i].law = s->laws[i];
    }
    st->queue_max = s->cfg.queue_max;
    st->running = s->running;
    st->workers = s->cfg.workers;
    st->threads = s->cfg.threads > 0 ? s->cfg.threads : pm_cpu_count();
    st->draining = s->draining;
    st->avg_run_seconds = s->avg_run;
    st->results_count = s->results_count;
    st->results_bytes = s->results_bytes;
    st->jobs_known = s->jobs_known;
    st->queue_wait = s->queue_wait;
    st->run_seconds = s->run_seconds;
    pthread_mutex_unlock(&s->lock);
    if (s->cfg.store)
        s->cfg.store->ops->stats(s->cfg.store, st);
}

int pm_sched_retry_after(pm_sched *s)
{
    if (s->cfg.store)
        return s->cfg.store->ops->retry_after(s->cfg.store);
    pthread_mutex_lock(&s->lock);
    double rate = pm_sched_drain_rate_locked(s);
    if (rate <= 0)
        rate = (double)s->cfg.workers / 5.0; /* nothing measured yet: 5 s a job */
    /* How many jobs must leave before a new one is within both bounds. */
    double room = (double)s->cfg.queue_max;
    if (s->cfg.max_wait > 0 && rate * s->cfg.max_wait < room)
        room = rate * s->cfg.max_wait;
    double over = (double)(pm_sched_queue_count(s) + s->reserved + 1) - room;
    double secs = (over > 1 ? over : 1) / rate;
    pthread_mutex_unlock(&s->lock);
    if (secs < 1)
        secs = 1;
    if (secs > 3600)
        secs = 3600;
    return (int)ceil(secs);
}

int pm_sched_list(pm_sched *s, pm_job_info *out, int max, int *total)
{
    if (s->cfg.store)
        return s->cfg.store->ops->list(s->cfg.store, out, max, total);
    int n = 0;
    pthread_mutex_lock(&s->lock);
    *total = s->running + pm_sched_queue_count(s);
    for (int i = 0; i < s->cfg.workers && n < max; i++)
        if (s->workers[i].job)
            pm_sched_snapshot_locked(s, s->workers[i].job, &out[n++]);
    for (int lane = 0; lane < PM_LANES; lane++) {
        int pos = 0;
        for (pm_jq_node *q = pm_jq_next(&s->lanes[lane], NULL); q && n < max; q = pm_jq_next(&s->lanes[lane], q)) {
            out[n] = pm_sched_job_of(q)->info;
            out[n].queue_position = pos++;
            out[n].progress_value = out[n].progress_max = 0;
            n++;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return n;
}

void pm_sched_owner_counts(pm_sched *s, const char *owner, int *queued, int *running)
{
    if (s->cfg.store) {
        s->cfg.store->ops->owner_counts(s->cfg.store, owner, queued, running);
        return;
    }
    int q = 0, r = 0;
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < s->cfg.workers; i++)
        r += s->workers[i].job && strcmp(s->workers[i].job->info.spec.owner, owner) == 0;
    for (int lane = 0; lane < PM_LANES; lane++)
        for (pm_jq_node *n = pm_jq_next(&s->lanes[lane], NULL); n; n = pm_jq_next(&s->lanes[lane], n))
            q += strcmp(pm_sched_job_of(n)->info.spec.owner, owner) == 0;
    pthread_mutex_unlock(&s->lock);
    *queued = q;
    *running = r;
}

/* ------------------------------------------------------------- admission gate */

int pm_sched_admission_update(pm_sched *s, double usage, const char *source)
{
    pthread_mutex_lock(&s->lock);
    int t = pm_gate_update(&s->gate, usage, source);
    pm_gate g = s->gate;
    int queued = pm_sched_queue_count(s), running = s->running;
    if (t) {
        int k = s->trans_head;
        s->trans[k].t = pm_wall_time();
        s->trans[k].gauge = usage;
        s->trans[k].paused = t > 0;
        s->trans_head = (k + 1) % PM_SCHED_TRANSITIONS;
        if (s->ntrans < PM_SCHED_TRANSITIONS)
            s->ntrans++;
    }
    if (t < 0)
        pthread_cond_broadcast(&s->work_cv);
    pthread_mutex_unlock(&s->lock);
    if (!t)
        return 0;
    char gauge[16], high[16], low[16], q[16], r[16], n[24];
    snprintf(gauge, sizeof gauge, "%.3f", usage);
    snprintf(high, sizeof high, "%.2f", g.high);
    snprintf(low, sizeof low, "%.2f", g.low);
    snprintf(q, sizeof q, "%d", queued);
    snprintf(r, sizeof r, "%d", running);
    snprintf(n, sizeof n, "%llu", (unsigned long long)(t > 0 ? g.pauses : g.resumes));
    if (t > 0)
        pm_logkv(PM_LOG_WARN, "admission_paused",
                 "intake paused: memory in use reached the pause mark; queued jobs wait until it falls below the "
                 "resume mark", "gauge", gauge, "high", high, "low", low, "source", g.source, "queued", q,
                 "running", r, "pauses", n, NULL);
    else
        pm_logkv(PM_LOG_INFO, "admission_resumed", "intake resumed: memory in use fell below the resume mark",
                 "gauge", gauge, "high", high, "low", low, "source", g.source, "queued", q, "running", r,
                 "resumes", n, NULL);
    return t;
}

int pm_sched_paused(pm_sched *s)
{
    pthread_mutex_lock(&s->lock);
    int p = s->gate.paused;
    pthread_mutex_unlock(&s->lock);
    return p;
}

int pm_sched_recent(pm_sched *s, pm_job_info *out, int max)
{
    int n = 0;
    pthread_mutex_lock(&s->lock);
    for (pm_job *j = s->newest; j && n < max; j = j->prev)
        pm_sched_snapshot_locked(s, j, &out[n++]);
    pthread_mutex_unlock(&s->lock);
    return n;
}
