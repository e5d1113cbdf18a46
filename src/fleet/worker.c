/* The fleet's worker: takes entries from the lanes' streams (reclaims from
 * stopped workers first, then the fast lane, then the normal one), runs each
 * as a synchronous job of a local pm_sched (which admits it by its memory law
 * and budget), stores the result and acknowledges the entry in one
 * transaction, so that a result becomes visible exactly once. */
#include "fleet/worker_internal.h"
#include "base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct entry {
    int lane;
    char eid[48];
    char id[PM_JOB_ID_LEN + 1];   /* "" when the entry has no valid id */
    int reclaimed;
} entry;

void pm_fw_sleep(pm_fleet_worker *w, double s)
{
    double until = pm_now() + s;
    while (!atomic_load(&w->quit) && pm_now() < until)
        usleep(20000);
}

void pm_fw_free_reply(redisReply *r)
{
    if (r)
        freeReplyObject(r);
}

/* ---------------------------------------------------------- taking */

/* One stream entry ([eid, [k, v, ...]]) into *e; 0, or -1 when it is no entry. */
static int read_entry(const redisReply *x, int lane, entry *e)
{
    memset(e, 0, sizeof *e);
    e->lane = lane;
    if (!x || x->type != REDIS_REPLY_ARRAY || x->elements < 2 || x->element[0]->type != REDIS_REPLY_STRING)
        return -1;
    snprintf(e->eid, sizeof e->eid, "%.*s", (int)(x->element[0]->len < 47 ? x->element[0]->len : 47),
             x->element[0]->str);
    const redisReply *f = x->element[1];
    if (f->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i + 1 < f->elements; i += 2) {
            const redisReply *k = f->element[i], *v = f->element[i + 1];
            if (k->type == REDIS_REPLY_STRING && strcmp(k->str, "id") == 0 && v->type == REDIS_REPLY_STRING &&
                pm_fleet_valid_id(v->str, v->len))
                memcpy(e->id, v->str, PM_JOB_ID_LEN + 1);
        }
    return 0;
}

/* An error reply to a read: NOGROUP (a Redis that restarted without its
 * data) gets the group made again; anything else is logged. 1 when `r` was one. */
static int read_error(pm_fleet_worker *w, pm_rconn *c, const redisReply *r, int *err)
{
    if (r->type != REDIS_REPLY_ERROR)
        return 0;
    pm_warn("fleet_read_refused", "worker %s: Redis refused a read: %s", w->name, r->str ? r->str : "?");
    if (r->str && strncmp(r->str, "NOGROUP", 7) == 0)
        pm_fleet_ensure_groups(c);
    *err = PM_EIO;
    return 1;
}

static int lane_of_stream(const redisReply *name)
{
    return name && name->type == REDIS_REPLY_STRING && strcmp(name->str, pm_fleet_stream(0)) == 0 ? 0 : 1;
}

/* Reclaims one entry idle past --claim-idle from any consumer: 1 when *e got one. */
static int take_reclaim(pm_fleet_worker *w, pm_rconn *c, entry *e, int *err)
{
    char idle[32];
    snprintf(idle, sizeof idle, "%lld", (long long)(w->fc.claim_idle * 1000));
    for (int lane = 0; lane < 2; lane++) {
        redisReply *r = pm_rconn_cmdf(c, "XAUTOCLAIM %s %s %s %s 0-0 COUNT 1", pm_fleet_stream(lane), PM_FLEET_GROUP,
                                      w->name, idle);
        if (!r) {
            *err = PM_EUNAVAIL;
            return 0;
        }
        if (read_error(w, c, r, err)) {
            pm_fw_free_reply(r);
            return 0;
        }
        int got = r->type == REDIS_REPLY_ARRAY && r->elements >= 2 && r->element[1]->type == REDIS_REPLY_ARRAY &&
                  r->element[1]->elements > 0 && read_entry(r->element[1]->element[0], lane, e) == 0;
        pm_fw_free_reply(r);
        if (got) {
            e->reclaimed = 1;
            return 1;
        }
    }
    return 0;
}

static void hand_back_entry(pm_fleet_worker *w, pm_rconn *c, const entry *e, int undo_attempt);

/* A new entry, fast lane first; blocks up to a second when both are empty. */
static int take_new(pm_fleet_worker *w, pm_rconn *c, entry *e, int *err)
{
    for (int lane = 0; lane < 2; lane++) {
        redisReply *r = pm_rconn_cmdf(c, "XREADGROUP GROUP %s %s COUNT 1 STREAMS %s >", PM_FLEET_GROUP, w->name,
                                      pm_fleet_stream(lane));
        if (!r) {
            *err = PM_EUNAVAIL;
            return 0;
        }
        if (read_error(w, c, r, err)) {
            pm_fw_free_reply(r);
            return 0;
        }
        int got = r->type == REDIS_REPLY_ARRAY && r->elements > 0 && r->element[0]->elements == 2 &&
                  r->element[0]->element[1]->elements > 0 &&
                  read_entry(r->element[0]->element[1]->element[0], lane, e) == 0;
        pm_fw_free_reply(r);
        if (got)
            return 1;
    }
    redisReply *r = pm_rconn_cmdf(c, "XREADGROUP GROUP %s %s COUNT 1 BLOCK 1000 STREAMS %s %s > >", PM_FLEET_GROUP,
                                  w->name, pm_fleet_stream(0), pm_fleet_stream(1));
    if (!r) {
        *err = PM_EUNAVAIL;
        return 0;
    }
    if (read_error(w, c, r, err)) {
        pm_fw_free_reply(r);
        return 0;
    }
    int got = 0;
    if (r->type == REDIS_REPLY_ARRAY) {
        for (size_t s = 0; s < r->elements; s++) {
            const redisReply *st = r->element[s];
            if (st->type != REDIS_REPLY_ARRAY || st->elements != 2 || st->element[1]->type != REDIS_REPLY_ARRAY)
                continue;
            int lane = lane_of_stream(st->element[0]);
            for (size_t k = 0; k < st->element[1]->elements; k++) {
                entry x;
                if (read_entry(st->element[1]->element[k], lane, &x))
                    continue;
                if (!got && !atomic_load(&w->stop)) {
                    *e = x;
                    got = 1;
                } else {
                    hand_back_entry(w, c, &x, 0); /* more than one arrived at once */
                }
            }
        }
    }
    pm_fw_free_reply(r);
    return got;
}

/* ---------------------------------------------------------- storing */

/* XACK and XDEL of an entry that needs nothing else. */
static void ack_drop(pm_fleet_worker *w, pm_rconn *c, const entry *e)
{
    (void)w;
    pm_fw_free_reply(pm_rconn_cmdf(c, "XACK %s %s %s", pm_fleet_stream(e->lane), PM_FLEET_GROUP, e->eid));
    pm_fw_free_reply(pm_rconn_cmdf(c, "XDEL %s %s", pm_fleet_stream(e->lane), e->eid));
}

/* Runs MULTI, the commands, EXEC: 0, PM_EBUSY (a WATCHed key changed), PM_EUNAVAIL. */
static int run_tx(pm_rconn *c, int n, const int *argc, const char ***argv, const size_t **lens)
{
    static const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
    int ac[24];
    const char **av[24];
    const size_t *al[24];
    redisReply *r[24];
    if (n + 2 > 24)
        return pm_errorf(PM_EINTERNAL, "too many commands in one transaction");
    ac[0] = 1, av[0] = multi, al[0] = NULL;
    for (int i = 0; i < n; i++)
        ac[i + 1] = argc[i], av[i + 1] = argv[i], al[i + 1] = lens[i];
    ac[n + 1] = 1, av[n + 1] = exec, al[n + 1] = NULL;
    int rc = pm_rconn_pipeline(c, n + 2, ac, av, al, r);
    if (rc)
        return rc;
    const redisReply *x = r[n + 1];
    rc = x->type == REDIS_REPLY_NIL ? PM_EBUSY
         : x->type == REDIS_REPLY_ARRAY ? 0
                                        : pm_errorf(PM_EIO, "Redis refused a transaction: %s", x->str ? x->str : "?");
    for (int i = 0; i < n + 2; i++)
        freeReplyObject(r[i]);
    return rc;
}

/* Puts a taken entry back at the end of its lane (SIGTERM, or it does not
 * fit now); `undo_attempt`: the delivery is not counted. */
static void hand_back_entry(pm_fleet_worker *w, pm_rconn *c, const entry *e, int undo_attempt)
{
    char kjob[96];
    pm_fleet_key(kjob, sizeof kjob, "job", e->id[0] ? e->id : "none");
    const char *stream = pm_fleet_stream(e->lane);
    const char *ack[] = {"XACK", stream, PM_FLEET_GROUP, e->eid};
    const char *del[] = {"XDEL", stream, e->eid};
    const char *add[] = {"XADD", stream, "*", "id", e->id};
    const char *st[] = {"HSET", kjob, "state", "queued", "worker", ""};
    const char *dec[] = {"HINCRBY", kjob, "attempts", "-1"};
    const int ac[] = {4, 3, 5, 6, 3 + 1};
    const char **av[] = {ack, del, add, st, dec};
    const size_t *al[] = {NULL, NULL, NULL, NULL, NULL};
    int n = e->id[0] ? (undo_attempt ? 5 : 4) : 2;
    int rc = run_tx(c, n, ac, av, al);
    if (rc)
        pm_warn("fleet_handback_failed", "could not hand job %s back to the queue: %s; it returns after --claim-idle",
                e->id, pm_error_detail());
    else
        atomic_fetch_add(&w->handed_back, 1);
}

/* Flushes the events of running jobs so that the end comes after them. */
static void flush_events(pm_fleet_worker *w)
{
    pthread_mutex_lock(&w->lock);
    while ((w->evq_count > 0 || w->pub_busy) && !atomic_load(&w->quit)) {
        struct timespec ts;
        pm_deadline(&ts, 0.1);
        pthread_cond_timedwait(&w->cv, &w->lock, &ts);
    }
    pthread_mutex_unlock(&w->lock);
}

/* Forgets result `member` ("<id>:<bytes>" of pixmend:results) once: when
 * this call removed it from the set, deletes the result and takes its bytes
 * off the total. Returns 1 when it did. */
static int drop_result(pm_rconn *c, const char *member, int popped)
{
    char id[PM_JOB_ID_LEN + 1], key[96];
    unsigned long long bytes = 0;
    if (sscanf(member, "%32[0-9a-f]:%llu", id, &bytes) != 2)
        bytes = 0;
    if (!popped) {
        redisReply *z = pm_rconn_cmdf(c, "ZREM %s %s", PM_FLEET_RESULTS, member);
        int mine = z && z->type == REDIS_REPLY_INTEGER && z->integer == 1;
        pm_fw_free_reply(z);
        if (!mine)
            return 0; /* another worker took it */
    }
    pm_fleet_key(key, sizeof key, "result", id);
    pm_fw_free_reply(pm_rconn_cmdf(c, "DEL %s", key));
    pm_fw_free_reply(pm_rconn_cmdf(c, "DECRBY %s %llu", PM_FLEET_RESULTS_BYTES, bytes));
    return 1;
}

/* Keeps the results' total true and under --results-max-bytes: first the
 * entries whose result expired (--result-ttl) leave the set and the total,
 * then the oldest results are evicted while the total exceeds the cap. */
static void evict_results(pm_fleet_worker *w, pm_rconn *c)
{
    double ttl = w->sc.result_ttl > 0 ? w->sc.result_ttl : 86400;
    redisReply *x = pm_rconn_cmdf(c, "ZRANGEBYSCORE %s -inf %.6f LIMIT 0 256", PM_FLEET_RESULTS, pm_wall_time() - ttl);
    for (size_t i = 0; x && x->type == REDIS_REPLY_ARRAY && i < x->elements; i++)
        if (x->element[i]->type == REDIS_REPLY_STRING)
            drop_result(c, x->element[i]->str, 0);
    pm_fw_free_reply(x);
    if (!w->sc.results_max_bytes)
        return;
    for (int i = 0; i < 64; i++) {
        redisReply *t = pm_rconn_cmdf(c, "GET %s", PM_FLEET_RESULTS_BYTES);
        uint64_t total = t && t->type == REDIS_REPLY_STRING ? strtoull(t->str, NULL, 10) : 0;
        pm_fw_free_reply(t);
        if (total <= w->sc.results_max_bytes)
            return;
        redisReply *p = pm_rconn_cmdf(c, "ZPOPMIN %s", PM_FLEET_RESULTS);
        if (!p || p->type != REDIS_REPLY_ARRAY || p->elements < 2 || p->element[0]->type != REDIS_REPLY_STRING) {
            pm_fw_free_reply(p);
            return;
        }
        drop_result(c, p->element[0]->str, 1);
        pm_info("result_evicted", "result %s evicted: results exceed --results-max-bytes", p->element[0]->str);
        pm_fw_free_reply(p);
    }
}

static const char *outcome_name(pm_job_state s)
{
    return s == PM_JOB_DONE ? "done" : s == PM_JOB_CANCELLED ? "cancelled" : "failed";
}

/* Records the end of a job once: the result (when done), the record, the
 * event, the counters and the acknowledgement in one transaction, unless
 * another worker already ended it. */
static int finish(pm_fleet_worker *w, pm_rconn *c, const entry *e, const pm_job_info *fin, const uint8_t *out,
                  size_t out_len)
{
    char kjob[96], kres[96], kimg[96], kmask[96], ttl[32], fints[32], rbytes[32], mkey[48];
    pm_fleet_key(kjob, sizeof kjob, "job", fin->id);
    pm_fleet_key(kres, sizeof kres, "result", fin->id);
    pm_fleet_key(kimg, sizeof kimg, "image", fin->id);
    pm_fleet_key(kmask, sizeof kmask, "mask", fin->id);
    snprintf(ttl, sizeof ttl, "%lld", (long long)((w->sc.result_ttl > 0 ? w->sc.result_ttl : 86400) * 1000));
    snprintf(fints, sizeof fints, "%.6f", fin->finished);
    snprintf(rbytes, sizeof rbytes, "%zu", out_len);
    snprintf(mkey, sizeof mkey, "%s:%s", outcome_name(fin->state), fin->spec.model);
    pm_fleet_fields *fl = pm_malloc(sizeof *fl);
    const char **hset = pm_malloc((2 + 2 * PM_FLEET_MAX_FIELDS) * sizeof *hset);
    size_t *hlen = pm_malloc((2 + 2 * PM_FLEET_MAX_FIELDS) * sizeof *hlen);
    size_t mlen = 0;
    char *msg = pm_fleet_event_message(fin->state == PM_JOB_DONE        ? PM_EV_DONE
                                       : fin->state == PM_JOB_CANCELLED ? PM_EV_CANCELLED
                                                                        : PM_EV_FAILED,
                                       fin, &mlen);
    int rc = PM_ENOMEM;
    if (!fl || !hset || !hlen || !msg)
        goto free_all;
    pm_fleet_encode(fin, fl);
    hset[0] = "HSET", hlen[0] = 4, hset[1] = kjob, hlen[1] = strlen(kjob);
    for (int i = 0; i < fl->n; i++) {
        hset[2 + 2 * i] = fl->k[i], hlen[2 + 2 * i] = strlen(fl->k[i]);
        hset[3 + 2 * i] = fl->v[i], hlen[3 + 2 * i] = fl->vlen[i];
    }
    const char *stream = pm_fleet_stream(e->lane);
    const char *setr[] = {"SET", kres, (const char *)out, "PX", ttl};
    const size_t setr_l[] = {3, strlen(kres), out_len, 2, strlen(ttl)};
    const char *exp[] = {"PEXPIRE", kjob, ttl};
    const char *del[] = {"DEL", kimg, kmask};
    char member[64];
    snprintf(member, sizeof member, "%s:%zu", fin->id, out_len);
    const char *zadd[] = {"ZADD", PM_FLEET_RESULTS, fints, member};
    const char *incr[] = {"INCRBY", PM_FLEET_RESULTS_BYTES, rbytes};
    const char *pub[] = {"PUBLISH", PM_FLEET_EVENTS, msg};
    const size_t pub_l[] = {7, strlen(PM_FLEET_EVENTS), mlen};
    const char *cnt[] = {"HINCRBY", PM_FLEET_STATS, outcome_name(fin->state), "1"};
    const char *cntm[] = {"HINCRBY", PM_FLEET_STATS, mkey, "1"};
    const char *ack[] = {"XACK", stream, PM_FLEET_GROUP, e->eid};
    const char *xdel[] = {"XDEL", stream, e->eid};
    int ac[12];
    const char **av[12];
    const size_t *al[12];
    int n = 0;
    int keep = fin->state == PM_JOB_DONE && !fin->sync; /* sync results are read once, then deleted by the front */
    if (fin->state == PM_JOB_DONE)
        ac[n] = 5, av[n] = setr, al[n++] = setr_l;
    ac[n] = 2 + 2 * fl->n, av[n] = hset, al[n++] = hlen;
    ac[n] = 3, av[n] = exp, al[n++] = NULL;
    ac[n] = 3, av[n] = del, al[n++] = NULL;
    if (keep) {
        ac[n] = 4, av[n] = zadd, al[n++] = NULL;
        ac[n] = 3, av[n] = incr, al[n++] = NULL;
    }
    ac[n] = 3, av[n] = pub, al[n++] = pub_l;
    ac[n] = 4, av[n] = cnt, al[n++] = NULL;
    ac[n] = 4, av[n] = cntm, al[n++] = NULL;
    ac[n] = 4, av[n] = ack, al[n++] = NULL;
    ac[n] = 3, av[n] = xdel, al[n++] = NULL;
    for (int tries = 0; tries < 20; tries++) {
        redisReply *r = pm_rconn_cmdf(c, "WATCH %s", kjob);
        if (!r) {
            rc = PM_EUNAVAIL;
            break;
        }
        pm_fw_free_reply(r);
        r = pm_rconn_cmdf(c, "HGET %s state", kjob);
        if (!r) {
            rc = PM_EUNAVAIL;
            break;
        }
        int open = r->type == REDIS_REPLY_STRING && (strcmp(r->str, "running") == 0 || strcmp(r->str, "queued") == 0);
        pm_fw_free_reply(r);
        if (!open) { /* another worker ended it first (or it expired): this result is not shown */
            pm_fw_free_reply(pm_rconn_cmdf(c, "UNWATCH"));
            ack_drop(w, c, e);
            pm_info("fleet_duplicate", "job %s was already ended by another worker; this run's outcome is dropped",
                    fin->id);
            rc = 0;
            break;
        }
        rc = run_tx(c, n, ac, av, al);
        if (rc != PM_EBUSY)
            break;
    }
    if (!rc && keep)
        evict_results(w, c);
free_all:
    pm_free(fl);
    pm_free(hset);
    pm_free(hlen);
    pm_free(msg);
    return rc;
}

/* Ends a job that cannot run, with a reason. */
static void fail_entry(pm_fleet_worker *w, pm_rconn *c, const entry *e, pm_job_info *job, int code, const char *why)
{
    job->state = PM_JOB_FAILED;
    job->finished = pm_wall_time();
    job->error_code = code;
    snprintf(job->error, sizeof job->error, "%.*s", (int)sizeof job->error - 1, why); /* truncated on purpose */
    pm_warn("job_failed", "job %s failed on worker %s: %s", job->id, w->name, why);
    if (finish(w, c, e, job, NULL, 0) == 0)
        atomic_fetch_add(&w->failed, 1);
}

/* ---------------------------------------------------------- running */

/* GET of an input: 0 with *r (caller frees) or an error. */
static int get_input(pm_rconn *c, const char *id, const char *what, redisReply **r)
{
    char key[96];
    pm_fleet_key(key, sizeof key, what, id);
    *r = pm_rconn_cmdf(c, "GET %s", key);
    if (!*r)
        return PM_EUNAVAIL;
    if ((*r)->type != REDIS_REPLY_STRING) {
        pm_fw_free_reply(*r);
        *r = NULL;
        return pm_errorf(PM_ENOENT, "the job's %s is gone from Redis (deleted or lost)", what);
    }
    return 0;
}

/* 1 when a job predicted at `bytes` does not fit what this worker has free
 * now while other jobs run (it would wait here: it goes back instead). */
static int too_big_now(pm_fleet_worker *w, uint64_t bytes)
{
    pm_sched_stats *st = pm_malloc(sizeof *st);
    if (!st)
        return 0;
    pm_sched_get_stats(w->local, st);
    int r = st->mem_budget && st->running > 0 && st->mem_reserved + bytes > st->mem_budget;
    pm_free(st);
    return r;
}

static void slot_set(pm_fleet_worker *w, int i, const entry *e, const pm_job_info *job)
{
    pthread_mutex_lock(&w->lock);
    slot *s = &w->slots[i];
    s->busy = 1;
    s->lane = e->lane;
    snprintf(s->eid, sizeof s->eid, "%s", e->eid);
    s->job = *job;
    s->local_id[0] = '\0';
    pthread_mutex_unlock(&w->lock);
}

static void slot_clear(pm_fleet_worker *w, int i)
{
    pthread_mutex_lock(&w->lock);
    w->slots[i].busy = 0;
    w->slots[i].local_id[0] = '\0';
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->lock);
}

/* Runs the taken job in the local scheduler and records its end. */
static void run_job(pm_fleet_worker *w, pm_rconn *c, int i, const entry *e, pm_job_info *job)
{
    redisReply *img = NULL, *mask = NULL;
    int rc = get_input(c, job->id, "image", &img);
    if (!rc && job->has_mask)
        rc = get_input(c, job->id, "mask", &mask);
    if (rc == PM_EUNAVAIL)
        goto free_inputs; /* the entry stays pending; reclaimed after --claim-idle */
    if (rc) {
        fail_entry(w, c, e, job, rc, pm_error_detail());
        goto free_inputs;
    }
    job->state = PM_JOB_RUNNING;
    job->started = pm_wall_time();
    char kjob[96], started[32], attempts[16];
    pm_fleet_key(kjob, sizeof kjob, "job", job->id);
    snprintf(started, sizeof started, "%.6f", job->started);
    snprintf(attempts, sizeof attempts, "%d", job->attempts);
    redisReply *h = pm_rconn_cmdf(c, "HSET %s state running started %s worker %s attempts %s", kjob, started, w->name,
                                  attempts);
    if (!h)
        goto free_inputs;
    pm_fw_free_reply(h);
    slot_set(w, i, e, job);
    pm_job_spec spec = job->spec;
    snprintf(spec.owner, sizeof spec.owner, TAG_FMT, i);
    pm_job_info linfo;
    uint8_t *out = NULL;
    size_t out_len = 0;
    rc = pm_sched_submit(w->local, &spec, 1, (const uint8_t *)img->str, img->len, "image",
                         mask ? (const uint8_t *)mask->str : NULL, mask ? mask->len : 0, "mask", &linfo);
    pm_job_info fin = *job;
    if (!rc) {
        pthread_mutex_lock(&w->lock);
        memcpy(w->slots[i].local_id, linfo.id, sizeof linfo.id);
        pthread_mutex_unlock(&w->lock);
        rc = pm_sched_wait(w->local, linfo.id, &linfo, &out, &out_len);
        fin.peak_bytes = linfo.peak_bytes;
        fin.cpu_seconds = linfo.cpu_seconds;
        fin.progress_value = linfo.progress_value;
        fin.progress_max = linfo.progress_max;
    }
    char detail[512];
    snprintf(detail, sizeof detail, "%s", rc ? pm_error_detail() : "");
    flush_events(w);
    if ((rc == PM_ECANCELLED && atomic_load(&w->handback)) || rc == PM_EBUSY) { /* stopping, or refused here */
        hand_back_entry(w, c, e, 1);
        pm_info("job_handed_back", "job %s handed back to the queue: worker %s is stopping", job->id, w->name);
    } else {
        fin.finished = pm_wall_time();
        if (!rc) {
            fin.state = PM_JOB_DONE;
            fin.result_bytes = out_len;
        } else {
            fin.state = rc == PM_ECANCELLED ? PM_JOB_CANCELLED : PM_JOB_FAILED;
            fin.error_code = rc;
            snprintf(fin.error, sizeof fin.error, "%s", rc == PM_ECANCELLED ? "cancelled by a client while running"
                                                                            : detail);
        }
        if (finish(w, c, e, &fin, out, out_len) == 0)
            atomic_fetch_add(fin.state == PM_JOB_DONE ? &w->done : fin.state == PM_JOB_CANCELLED ? &w->cancelled
                                                                                                 : &w->failed,
                             1);
        else
            pm_warn("fleet_store_failed", "job %s: could not record its end: %s; it runs again after --claim-idle",
                    job->id, pm_error_detail());
    }
    pm_free(out);
    slot_clear(w, i);
free_inputs:
    pm_fw_free_reply(img);
    pm_fw_free_reply(mask);
}

/* One taken entry: checks it, counts the delivery, runs it or fails it. */
static void handle_entry(pm_fleet_worker *w, pm_rconn *c, int i, const entry *e)
{
    if (!e->id[0]) {
        pm_warn("fleet_entry_malformed", "entry %s of %s has no valid job id; dropped", e->eid,
                pm_fleet_stream(e->lane));
        ack_drop(w, c, e);
        return;
    }
    char kjob[96];
    pm_fleet_key(kjob, sizeof kjob, "job", e->id);
    redisReply *r = pm_rconn_cmdf(c, "HGETALL %s", kjob);
    if (!r)
        return;
    pm_job_info job;
    int empty = r->type == REDIS_REPLY_ARRAY && r->elements == 0;
    int rc = empty ? PM_ENOENT : pm_fleet_decode_reply(r, &job);
    char last_worker[64] = "";
    const redisReply *lw = pm_fleet_reply_field(r, "worker");
    if (lw && lw->type == REDIS_REPLY_STRING)
        snprintf(last_worker, sizeof last_worker, "%s", lw->str);
    pm_fw_free_reply(r);
    if (rc == PM_ENOENT) {
        pm_warn("fleet_entry_orphan", "entry %s names job %s, which has no record (expired?); dropped", e->eid, e->id);
        ack_drop(w, c, e);
        return;
    }
    if (rc || strcmp(job.id, e->id) != 0) {
        char why[600];
        snprintf(why, sizeof why, "%s", rc ? pm_error_detail() : "malformed job record: its id differs from its key");
        memset(&job, 0, sizeof job);
        memcpy(job.id, e->id, sizeof job.id);
        fail_entry(w, c, e, &job, PM_ECORRUPT, why);
        return;
    }
    if (job.state != PM_JOB_QUEUED && job.state != PM_JOB_RUNNING) {
        ack_drop(w, c, e); /* cancelled while queued, or ended by another worker */
        return;
    }
    r = pm_rconn_cmdf(c, "HINCRBY %s attempts 1", kjob);
    if (!r)
        return;
    job.attempts = r->type == REDIS_REPLY_INTEGER ? (int)r->integer : job.attempts + 1;
    pm_fw_free_reply(r);
    if (e->reclaimed) {
        atomic_fetch_add(&w->reclaimed, 1);
        pm_fw_free_reply(pm_rconn_cmdf(c, "HINCRBY %s reclaimed 1", PM_FLEET_STATS));
        pm_info("job_reclaimed", "job %s taken over from worker %s, which stopped without finishing it", job.id,
                last_worker[0] ? last_worker : "?");
    }
    char why[512];
    if ((rc = pm_fleet_delivery_verdict(job.attempts, w->fc.max_deliveries, last_worker, why, sizeof why))) {
        fail_entry(w, c, e, &job, rc, why);
        return;
    }
    if (too_big_now(w, job.predicted_bytes)) {
        hand_back_entry(w, c, e, 1);
        pthread_mutex_lock(&w->lock); /* wait until one of this worker's jobs ends */
        struct timespec ts;
        pm_deadline(&ts, 1.0);
        pthread_cond_timedwait(&w->cv, &w->lock, &ts);
        pthread_mutex_unlock(&w->lock);
        return;
    }
    run_job(w, c, i, e, &job);
}

static void *feeder_main(void *arg);

typedef struct feeder_arg {
    pm_fleet_worker *w;
    int i;
} feeder_arg;

static void *feeder_main(void *arg)
{
    feeder_arg *fa = arg;
    pm_fleet_worker *w = fa->w;
    int i = fa->i;
    pm_free(fa);
    pm_rconn c;
    memset(&c, 0, sizeof c);
    c.url = w->url;
    c.timeout = 5; /* above the 1 s BLOCK */
    int fails = 0, warned = 0;
    while (!atomic_load(&w->stop)) {
        if (pm_sched_paused(w->local)) { /* memory in use is past --pause-at: take nothing until it resumes */
            pm_fw_sleep(w, 0.2);
            continue;
        }
        entry e;
        int err = 0;
        int got = take_reclaim(w, &c, &e, &err);
        if (!got && !err)
            got = take_new(w, &c, &e, &err);
        if (err) {
            if (err == PM_EUNAVAIL && !warned++)
                pm_warn("fleet_redis_down", "worker %s: %s; retrying with backoff", w->name, pm_error_detail());
            pm_fw_sleep(w, pm_fleet_backoff(fails++));
            if (!c.c && pm_rconn_open(&c, &w->url, 5) == 0)
                pm_fleet_ensure_groups(&c); /* a Redis restarted without its data has no group */
            continue;
        }
        if (warned)
            pm_info("fleet_redis_back", "worker %s: Redis reachable again", w->name);
        fails = warned = 0;
        if (got) {
            if (atomic_load(&w->stop))
                hand_back_entry(w, &c, &e, 0);
            else
                handle_entry(w, &c, i, &e);
        }
    }
    pm_rconn_close(&c);
    return NULL;
}


/* ---------------------------------------------------------- start, stop */

int pm_fleet_worker_start(const pm_fleet_config *fc, const pm_sched_config *sc, pm_sched *local,
                          pm_fleet_worker **out)
{
    *out = NULL;
    pm_fleet_worker *w = pm_calloc(1, sizeof *w);
    if (!w)
        return pm_errorf(PM_ENOMEM, "out of memory starting the fleet worker");
    int rc = pm_fleet_parse_url(fc->redis_url, &w->url);
    if (rc) {
        pm_free(w);
        return rc;
    }
    w->fc = *fc;
    w->sc = *sc;
    w->local = local;
    w->nslots = sc->workers > 0 ? sc->workers : 1;
    if (fc->name && fc->name[0]) {
        snprintf(w->name, sizeof w->name, "%s", fc->name);
    } else {
        char host[64] = "host";
        gethostname(host, sizeof host - 1);
        host[sizeof host - 1] = '\0';
        snprintf(w->name, sizeof w->name, "%s-%d", host, (int)getpid());
    }
    atomic_init(&w->stop, 0);
    atomic_init(&w->handback, 0);
    atomic_init(&w->quit, 0);
    pthread_mutex_init(&w->lock, NULL);
    pm_cond_init_monotonic(&w->cv);
    w->slots = pm_calloc((size_t)w->nslots, sizeof *w->slots);
    w->evq = pm_calloc(EVQ_CAP, sizeof *w->evq);
    w->feeders = pm_calloc((size_t)w->nslots, sizeof *w->feeders);
    if (!w->slots || !w->evq || !w->feeders) {
        rc = pm_errorf(PM_ENOMEM, "out of memory starting the fleet worker");
        goto fail;
    }
    pm_rconn c;
    if ((rc = pm_rconn_open(&c, &w->url, 2)))
        goto fail;
    rc = pm_fleet_ensure_groups(&c);
    pm_rconn_close(&c);
    if (rc)
        goto fail;
    pm_sched_set_event_fn(local, pm_fw_on_local_event, w);
    w->pub_started = pthread_create(&w->pub, NULL, pm_fw_pub_main, w) == 0;
    w->beat_started = w->pub_started && pthread_create(&w->beat, NULL, pm_fw_beat_main, w) == 0;
    if (!w->beat_started) {
        rc = pm_errorf(PM_ENOMEM, "cannot start the fleet worker's threads");
        goto fail;
    }
    pm_sampler_start(&w->sampler, 1.0, 4, pm_fw_on_sample, w); /* without it the gate stays open */
    for (int i = 0; i < w->nslots; i++) {
        feeder_arg *fa = pm_malloc(sizeof *fa);
        if (fa) {
            fa->w = w;
            fa->i = i;
        }
        if (!fa || pthread_create(&w->feeders[i], NULL, feeder_main, fa) != 0) {
            pm_free(fa);
            rc = pm_errorf(PM_ENOMEM, "cannot start the fleet worker's threads");
            goto fail;
        }
        w->nfeeders++;
    }
    pm_info("fleet_worker", "worker %s takes jobs from Redis %s:%d (%d at once, claim idle %g s, at most %d deliveries)",
            w->name, w->url.host, w->url.port, w->nslots, w->fc.claim_idle, w->fc.max_deliveries);
    *out = w;
    return 0;
fail:
    pm_fleet_worker_stop(w);
    return rc;
}

void pm_fleet_worker_stop(pm_fleet_worker *w)
{
    if (!w)
        return;
    atomic_store(&w->stop, 1);
    if (!w->slots) /* a start that failed before its slots existed */
        w->nslots = 0;
    pthread_mutex_lock(&w->lock);
    int busy = 0;
    for (int i = 0; i < w->nslots; i++)
        busy += w->slots[i].busy;
    pthread_mutex_unlock(&w->lock);
    if (busy && w->nfeeders)
        pm_info("fleet_worker_stopping", "worker %s takes no new job; %d running, waiting up to %g s for them",
                w->name, busy, w->fc.drain_seconds);
    double until = pm_now() + w->fc.drain_seconds;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        busy = 0;
        for (int i = 0; i < w->nslots; i++)
            busy += w->slots[i].busy;
        if (!busy || pm_now() >= until)
            break;
        struct timespec ts;
        pm_deadline(&ts, 0.1);
        pthread_cond_timedwait(&w->cv, &w->lock, &ts);
    }
    pthread_mutex_unlock(&w->lock);
    atomic_store(&w->handback, 1);
    if (busy)
        pm_sched_drain(w->local, 0); /* interrupts them; their feeders hand them back */
    for (int i = 0; i < w->nfeeders; i++)
        pthread_join(w->feeders[i], NULL);
    atomic_store(&w->quit, 1);
    if (w->pub_started)
        pthread_join(w->pub, NULL);
    if (w->beat_started)
        pthread_join(w->beat, NULL);
    pm_sampler_stop(w->sampler);
    if (w->local)
        pm_sched_set_event_fn(w->local, NULL, NULL);
    if (w->nfeeders)
        pm_info("fleet_worker_stopped", "worker %s stopped: %llu done, %llu failed, %llu handed back", w->name,
                (unsigned long long)atomic_load(&w->done), (unsigned long long)atomic_load(&w->failed),
                (unsigned long long)atomic_load(&w->handed_back));
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->lock);
    pm_free(w->slots);
    pm_free(w->evq);
    pm_free(w->feeders);
    pm_free(w);
}

