/* The fleet's front: a pm_jobstore (sched/store.h) whose records, inputs,
 * queue, results and events live in Redis (layout in fleet.h). */
#include "fleet/fleet_internal.h"
#include "base/base.h"
#include "sched/sched_internal.h" /* pm_mkdirs */

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SNAP_MAX_AGE 0.1   /* seconds a queue snapshot is reused */
#define WORKER_STALE 15.0  /* seconds after which a worker's report no longer counts */

typedef struct snapshot {
    double t;                 /* pm_now() of the reading; 0 = none yet */
    int depth[2], pending;
    uint64_t submitted, done, failed, cancelled, reclaimed;
    int nworkers;
    uint64_t max_budget;
    pm_sched_stats w;         /* only fleet_workers and models' counters used */
    int nmodel_counts;
    struct { char name[32]; uint64_t done, failed, cancelled; } mc[8];
    int nadmit;               /* per model: the most working pixels a live worker admits */
    struct { char name[32]; uint64_t pixels; int unbounded; } admit[8];
} snapshot;

typedef struct front {
    pm_jobstore base;
    pm_fleet_config fc;
    pm_redis_url url;
    pm_rpool pool;
    int queue_max;
    double max_wait, result_ttl;
    char cache_dir[4096];
    double last_sweep;

    pthread_mutex_t lock;      /* ev_fn, seq, the snapshot, the rate */
    pthread_cond_t ended_cv;   /* a job ended (for wait) */
    uint64_t ended_gen;        /* ends seen: a waiter sleeps only while it is unchanged (no lost wake-up) */
    pm_job_event_fn ev_fn;
    void *ev_user;
    uint64_t ev_seq;
    snapshot snap;
    double rate, rate_t;       /* drain rate and when it was last folded */
    uint64_t rate_finished;

    pthread_t sub;
    int sub_started;
    atomic_int stop;
    atomic_int subscribed;     /* the event thread listens (events before that are not seen here) */
} front;

static front *front_of(pm_jobstore *st)
{
    return (front *)st;
}

/* --------------------------------------------------------------- snapshot */

/* " models=patchmatch:123,lama:inf" of one worker's report into s->admit
 * (the largest over workers). */
static void parse_models(const char *p, snapshot *s)
{
    if (!p)
        return;
    p += 8;
    while (*p && *p != ' ') {
        char name[32], val[24];
        int n = 0;
        if (sscanf(p, "%31[^:,]:%23[^, ]%n", name, val, &n) != 2 || n == 0)
            return;
        p += n;
        if (*p == ',')
            p++;
        int m;
        for (m = 0; m < s->nadmit && strcmp(s->admit[m].name, name) != 0; m++)
            ;
        if (m == s->nadmit) {
            if (m >= 8)
                continue;
            s->nadmit++;
            memset(&s->admit[m], 0, sizeof s->admit[m]);
            snprintf(s->admit[m].name, sizeof s->admit[m].name, "%s", name);
        }
        if (strcmp(val, "inf") == 0)
            s->admit[m].unbounded = 1;
        else if (strtoull(val, NULL, 10) > s->admit[m].pixels)
            s->admit[m].pixels = strtoull(val, NULL, 10);
    }
}

static void parse_workers(const redisReply *r, snapshot *s, double now_wall)
{
    s->nworkers = 0;
    s->max_budget = 0;
    s->nadmit = 0;
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        int running = 0, slots = 0;
        unsigned long long budget = 0, largest = 0;
        double ts = 0;
        if (sscanf(v->str, "running=%d slots=%d budget=%llu largest=%llu ts=%lf", &running, &slots, &budget,
                   &largest, &ts) != 5 ||
            now_wall - ts > WORKER_STALE)
            continue;
        if (budget > s->max_budget)
            s->max_budget = budget;
        parse_models(strstr(v->str, " models="), s);
        if (s->nworkers < 16) {
            int n = s->nworkers++;
            snprintf(s->w.fleet_workers[n].name, sizeof s->w.fleet_workers[n].name, "%.*s",
                     (int)(k->len < 63 ? k->len : 63), k->str);
            s->w.fleet_workers[n].running = running;
            s->w.fleet_workers[n].slots = slots;
            s->w.fleet_workers[n].budget = budget;
            s->w.fleet_workers[n].largest_pixels = largest;
        }
    }
}

static uint64_t field_u64(const redisReply *r, const char *key)
{
    const redisReply *v = pm_fleet_reply_field(r, key);
    return v && v->type == REDIS_REPLY_STRING ? strtoull(v->str, NULL, 10) : 0;
}

static void parse_stats(const redisReply *r, snapshot *s)
{
    s->submitted = field_u64(r, "submitted");
    s->done = field_u64(r, "done");
    s->failed = field_u64(r, "failed");
    s->cancelled = field_u64(r, "cancelled");
    s->reclaimed = field_u64(r, "reclaimed");
    s->nmodel_counts = 0;
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i];
        const char *colon = k->type == REDIS_REPLY_STRING ? strchr(k->str, ':') : NULL;
        if (!colon || strlen(colon + 1) >= 32)
            continue;
        int m;
        for (m = 0; m < s->nmodel_counts; m++)
            if (strcmp(s->mc[m].name, colon + 1) == 0)
                break;
        if (m == s->nmodel_counts) {
            if (m >= 8)
                continue;
            s->nmodel_counts++;
            memset(&s->mc[m], 0, sizeof s->mc[m]);
            snprintf(s->mc[m].name, sizeof s->mc[m].name, "%s", colon + 1);
        }
        uint64_t v = strtoull(r->element[i + 1]->str ? r->element[i + 1]->str : "0", NULL, 10);
        if (strncmp(k->str, "done:", 5) == 0)
            s->mc[m].done = v;
        else if (strncmp(k->str, "failed:", 7) == 0)
            s->mc[m].failed = v;
        else if (strncmp(k->str, "cancelled:", 10) == 0)
            s->mc[m].cancelled = v;
    }
}

/* Reads the queue's state from Redis (unless `force`, at most every SNAP_MAX_AGE s) into
 * *out: 0, or PM_EUNAVAIL (then *out is the last reading). */
static int snapshot_get(front *f, snapshot *out, int force)
{
    double now = pm_now();
    pthread_mutex_lock(&f->lock);
    int fresh = !force && f->snap.t > 0 && now - f->snap.t < SNAP_MAX_AGE;
    if (fresh)
        *out = f->snap;
    pthread_mutex_unlock(&f->lock);
    if (fresh)
        return 0;
    pm_rconn *c = pm_rpool_get(&f->pool);
    if (!c) {
        pthread_mutex_lock(&f->lock);
        *out = f->snap;
        pthread_mutex_unlock(&f->lock);
        return PM_EUNAVAIL;
    }
    const char *a0[] = {"XLEN", pm_fleet_stream(0)}, *a1[] = {"XLEN", pm_fleet_stream(1)};
    const char *a2[] = {"XPENDING", pm_fleet_stream(0), PM_FLEET_GROUP};
    const char *a3[] = {"XPENDING", pm_fleet_stream(1), PM_FLEET_GROUP};
    const char *a4[] = {"HGETALL", PM_FLEET_STATS}, *a5[] = {"HGETALL", PM_FLEET_WORKERS};
    const char **argv[] = {a0, a1, a2, a3, a4, a5};
    const int argc[] = {2, 2, 3, 3, 2, 2};
    const size_t *lens[] = {NULL, NULL, NULL, NULL, NULL, NULL};
    redisReply *r[6];
    int rc = pm_rconn_pipeline(c, 6, argc, argv, lens, r);
    pm_rpool_put(&f->pool, c);
    if (rc) {
        pthread_mutex_lock(&f->lock);
        *out = f->snap;
        pthread_mutex_unlock(&f->lock);
        return rc;
    }
    snapshot s;
    memset(&s, 0, sizeof s);
    int pend[2] = {0, 0};
    for (int l = 0; l < 2; l++) {
        const redisReply *p = r[2 + l];
        if (p->type == REDIS_REPLY_ARRAY && p->elements >= 1 && p->element[0]->type == REDIS_REPLY_INTEGER)
            pend[l] = (int)p->element[0]->integer;
        int len = r[l]->type == REDIS_REPLY_INTEGER ? (int)r[l]->integer : 0;
        s.depth[l] = len > pend[l] ? len - pend[l] : 0;
    }
    s.pending = pend[0] + pend[1];
    parse_stats(r[4], &s);
    parse_workers(r[5], &s, pm_wall_time());
    for (int i = 0; i < 6; i++)
        freeReplyObject(r[i]);
    s.t = now;
    pthread_mutex_lock(&f->lock);
    uint64_t finished = s.done + s.failed + s.cancelled;
    int was_busy = f->snap.depth[0] + f->snap.depth[1] > 0;
    if (f->rate_t == 0 || finished < f->rate_finished) {
        f->rate_t = now;
        f->rate_finished = finished;
    } else if (now - f->rate_t >= 1.0) {
        if (was_busy || s.depth[0] + s.depth[1] > 0)
            pm_fleet_rate_update(&f->rate, f->rate_finished, finished, now - f->rate_t);
        f->rate_t = now;
        f->rate_finished = finished;
    }
    f->snap = s;
    *out = s;
    pthread_mutex_unlock(&f->lock);
    return 0;
}

/* ------------------------------------------------------------------ ops */

/* "3.50 GiB" or "12.0 MiB" into buf. */
static const char *human(uint64_t b, char *buf)
{
    if (b >= (1ull << 30))
        snprintf(buf, 32, "%.2f GiB", (double)b / (1024.0 * 1024.0 * 1024.0));
    else
        snprintf(buf, 32, "%.1f MiB", (double)b / (1024.0 * 1024.0));
    return buf;
}

/* 0 when a live worker loads the job's model and admits its working pixels
 * (workers publish the most their law and budget admit per model); else
 * PM_ENOENT or PM_ETOOBIG naming what would fit. */
static int fits_a_worker(const snapshot *s, const pm_job_info *job)
{
    int m;
    for (m = 0; m < s->nadmit && strcmp(s->admit[m].name, job->spec.model) != 0; m++)
        ;
    if (m == s->nadmit)
        return pm_errorf(PM_ENOENT,
                         "none of the fleet's %d worker(s) has model %s loaded; start workers with --model %s=FILE",
                         s->nworkers, job->spec.model, job->spec.model);
    uint64_t work = job->work_pixels ? job->work_pixels : (uint64_t)job->width * (uint64_t)job->height;
    uint64_t best = s->admit[m].pixels;
    if (s->admit[m].unbounded || work <= best)
        return 0;
    if (best == 0)
        return pm_errorf(PM_ETOOBIG,
                         "this %dx%d %s job needs about %s; no worker of the fleet admits even the smallest image "
                         "for model %s (their --mem-budget, the largest %s), so no worker could run it",
                         job->width, job->height, pm_task_name(job->spec.task),
                         human(job->predicted_bytes, (char[32]){0}), job->spec.model, human(s->max_budget, (char[32]){0}));
    double k = sqrt((double)best / (double)work);
    return pm_errorf(PM_ETOOBIG,
                     "this %dx%d %s job works on %.1f MP at once (about %s); the fleet's workers admit at most "
                     "%.1f MP for model %s (their --mem-budget and memory laws), so no worker could run it; the "
                     "largest image that fits is about %dx%d",
                     job->width, job->height, pm_task_name(job->spec.task), (double)work / 1e6,
                     human(job->predicted_bytes, (char[32]){0}), (double)best / 1e6, job->spec.model,
                     (int)(job->width * k), (int)(job->height * k));
}

static int op_admit(pm_jobstore *st, const pm_job_info *job)
{
    front *f = front_of(st);
    snapshot s;
    int rc = snapshot_get(f, &s, 1); /* the bound is checked on a fresh reading */
    if (rc)
        return rc;
    pthread_mutex_lock(&f->lock);
    double rate = f->rate;
    pthread_mutex_unlock(&f->lock);
    char why[300];
    if ((rc = pm_fleet_queue_verdict(s.depth[0] + s.depth[1], f->queue_max, rate, f->max_wait, why, sizeof why)))
        return pm_errorf(rc, "%s", why);
    if (s.nworkers > 0)
        return fits_a_worker(&s, job);
    return 0; /* no worker yet: the job waits for one */
}

/* Runs the queued commands as MULTI ... EXEC on `c`: 0, PM_EUNAVAIL, or
 * PM_EBUSY when a WATCHed key changed (EXEC answered nil). */
static int exec_tx(pm_rconn *c, int n, const int *argc, const char ***argv, const size_t **lens)
{
    int total = n + 2;
    int ac[24];
    const char **av[24];
    const size_t *al[24];
    static const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
    redisReply *r[24];
    if (total > 24)
        return pm_errorf(PM_EINTERNAL, "too many commands in one transaction");
    ac[0] = 1;
    av[0] = multi;
    al[0] = NULL;
    for (int i = 0; i < n; i++) {
        ac[i + 1] = argc[i];
        av[i + 1] = argv[i];
        al[i + 1] = lens[i];
    }
    ac[n + 1] = 1;
    av[n + 1] = exec;
    al[n + 1] = NULL;
    int rc = pm_rconn_pipeline(c, total, ac, av, al, r);
    if (rc)
        return rc;
    redisReply *e = r[total - 1];
    if (e->type == REDIS_REPLY_NIL)
        rc = PM_EBUSY;
    else if (e->type != REDIS_REPLY_ARRAY) {
        rc = pm_errorf(PM_EIO, "Redis refused a transaction: %s", e->str ? e->str : "?");
    } else {
        for (size_t i = 0; i < e->elements; i++)
            if (e->element[i]->type == REDIS_REPLY_ERROR) {
                rc = pm_errorf(PM_EIO, "Redis refused a command: %s", e->element[i]->str);
                break;
            }
    }
    for (int i = 0; i < total; i++)
        freeReplyObject(r[i]);
    return rc;
}

static int op_enqueue(pm_jobstore *st, const pm_job_info *job, const uint8_t *image, size_t image_len,
                      const uint8_t *mask, size_t mask_len)
{
    front *f = front_of(st);
    char kimg[96], kmask[96], kjob[96];
    pm_fleet_key(kimg, sizeof kimg, "image", job->id);
    pm_fleet_key(kmask, sizeof kmask, "mask", job->id);
    pm_fleet_key(kjob, sizeof kjob, "job", job->id);
    pm_fleet_fields *fl = pm_malloc(sizeof *fl);
    size_t mlen = 0;
    char *msg = pm_fleet_event_message(PM_EV_QUEUED, job, &mlen);
    const char **hset = pm_malloc((2 + 2 * PM_FLEET_MAX_FIELDS) * sizeof *hset);
    size_t *hlen = pm_malloc((2 + 2 * PM_FLEET_MAX_FIELDS) * sizeof *hlen);
    int rc = PM_ENOMEM;
    if (!fl || !msg || !hset || !hlen) {
        pm_errorf(PM_ENOMEM, "out of memory queueing a job");
        goto free_all;
    }
    pm_fleet_encode(job, fl);
    hset[0] = "HSET";
    hlen[0] = 4;
    hset[1] = kjob;
    hlen[1] = strlen(kjob);
    for (int i = 0; i < fl->n; i++) {
        hset[2 + 2 * i] = fl->k[i];
        hlen[2 + 2 * i] = strlen(fl->k[i]);
        hset[3 + 2 * i] = fl->v[i];
        hlen[3 + 2 * i] = fl->vlen[i];
    }
    const char *set_img[] = {"SET", kimg, (const char *)image};
    const size_t set_img_l[] = {3, strlen(kimg), image_len};
    const char *set_mask[] = {"SET", kmask, (const char *)mask};
    const size_t set_mask_l[] = {3, strlen(kmask), mask_len};
    const char *xadd[] = {"XADD", pm_fleet_stream(job->lane), "*", "id", job->id};
    const char *pub[] = {"PUBLISH", PM_FLEET_EVENTS, msg};
    const size_t pub_l[] = {7, strlen(PM_FLEET_EVENTS), mlen};
    const char *cnt[] = {"HINCRBY", PM_FLEET_STATS, "submitted", "1"};
    int ac[5];
    const char **av[5];
    const size_t *al[5];
    int n = 0;
    ac[n] = 3, av[n] = set_img, al[n++] = set_img_l;
    if (mask)
        ac[n] = 3, av[n] = set_mask, al[n++] = set_mask_l;
    ac[n] = 2 + 2 * fl->n, av[n] = hset, al[n++] = hlen;
    ac[n] = 5, av[n] = xadd, al[n++] = NULL;
    ac[n] = 3, av[n] = pub, al[n++] = pub_l;
    int ac2[6];
    const char **av2[6];
    const size_t *al2[6];
    memcpy(ac2, ac, sizeof ac);
    memcpy(av2, av, sizeof av);
    memcpy(al2, al, sizeof al);
    ac2[n] = 4, av2[n] = cnt, al2[n] = NULL;
    pm_rconn *c = pm_rpool_get(&f->pool);
    if (!c) {
        rc = PM_EUNAVAIL;
        goto free_all;
    }
    rc = exec_tx(c, n + 1, ac2, av2, al2);
    pm_rpool_put(&f->pool, c);
    if (rc == PM_EUNAVAIL)
        pm_errorf(rc, "the job was not accepted: %s", pm_error_detail());
free_all:
    pm_free(fl);
    pm_free(msg);
    pm_free(hset);
    pm_free(hlen);
    return rc;
}

/* HGETALL of the record on `c`: 0, PM_ENOENT, PM_EUNAVAIL, PM_ECORRUPT. */
static int read_record(pm_rconn *c, const char *id, pm_job_info *out, int *cancel_asked)
{
    char kjob[96];
    if (!pm_fleet_valid_id(id, strlen(id)))
        return pm_errorf(PM_ENOENT, "no job %.40s: not a job id", id);
    pm_fleet_key(kjob, sizeof kjob, "job", id);
    redisReply *r = pm_rconn_cmdf(c, "HGETALL %s", kjob);
    if (!r)
        return PM_EUNAVAIL;
    int rc;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 0)
        rc = pm_errorf(PM_ENOENT, "no job %s: the id is unknown or the job expired", id);
    else
        rc = pm_fleet_decode_reply(r, out);
    if (!rc && cancel_asked) {
        const redisReply *v = pm_fleet_reply_field(r, "cancel");
        *cancel_asked = v && v->type == REDIS_REPLY_STRING && strcmp(v->str, "1") == 0;
    }
    freeReplyObject(r);
    return rc;
}

static int op_get(pm_jobstore *st, const char *id, pm_job_info *out)
{
    front *f = front_of(st);
    pm_rconn *c = pm_rpool_get(&f->pool);
    if (!c)
        return PM_EUNAVAIL;
    int rc = read_record(c, id, out, NULL);
    pm_rpool_put(&f->pool, c);
    return rc;
}

static int op_cancel(pm_jobstore *st, const char *id, pm_job_info *out)
{
    front *f = front_of(st);
    if (!pm_fleet_valid_id(id, strlen(id)))
        return pm_errorf(PM_ENOENT, "no job %.40s: not a job id", id);
    pm_rconn *c = pm_rpool_get(&f->pool);
    if (!c)
        return PM_EUNAVAIL;
    char kjob[96], kimg[96], kmask[96], ttl[32];
    pm_fleet_key(kjob, sizeof kjob, "job", id);
    pm_fleet_key(kimg, sizeof kimg, "image", id);
    pm_fleet_key(kmask, sizeof kmask, "mask", id);
    snprintf(ttl, sizeof ttl, "%lld", (long long)(f->result_ttl * 1000));
    int rc = PM_EBUSY;
    for (int tries = 0; tries < 8 && rc == PM_EBUSY; tries++) {
        redisReply *w = pm_rconn_cmdf(c, "WATCH %s", kjob);
        if (!w) {
            rc = PM_EUNAVAIL;
            break;
        }
        freeReplyObject(w);
        if ((rc = read_record(c, id, out, NULL)))
            break;
        if (out->state == PM_JOB_RUNNING) {
            redisReply *u = pm_rconn_cmdf(c, "UNWATCH");
            if (u)
                freeReplyObject(u);
            redisReply *h = pm_rconn_cmdf(c, "HSET %s cancel 1", kjob);
            rc = h ? 0 : PM_EUNAVAIL;
            if (h)
                freeReplyObject(h);
            if (!rc)
                pm_logkv(PM_LOG_INFO, "job_cancel_requested", "cancel requested for a running job", "job", id, NULL);
            break;
        }
        if (out->state != PM_JOB_QUEUED) {
            redisReply *u = pm_rconn_cmdf(c, "UNWATCH");
            if (u)
                freeReplyObject(u);
            rc = pm_errorf(PM_EINVAL, "job %s already ended (%s); nothing to cancel", id,
                           pm_job_state_name(out->state));
            break;
        }
        out->state = PM_JOB_CANCELLED;
        out->finished = pm_wall_time();
        out->error_code = PM_ECANCELLED;
        snprintf(out->error, sizeof out->error, "cancelled by a client while queued");
        char fin[32], code[16];
        snprintf(fin, sizeof fin, "%.6f", out->finished);
        snprintf(code, sizeof code, "%d", PM_ECANCELLED);
        size_t mlen = 0;
        char *msg = pm_fleet_event_message(PM_EV_CANCELLED, out, &mlen);
        if (!msg) {
            rc = pm_errorf(PM_ENOMEM, "out of memory cancelling a job");
            break;
        }
        const char *hset[] = {"HSET", kjob, "state", "cancelled", "finished", fin, "error_code", code, "error",
                              out->error};
        const char *exp[] = {"PEXPIRE", kjob, ttl};
        const char *del[] = {"DEL", kimg, kmask};
        const char *pub[] = {"PUBLISH", PM_FLEET_EVENTS, msg};
        const size_t pub_l[] = {7, strlen(PM_FLEET_EVENTS), mlen};
        char mkey[48];
        snprintf(mkey, sizeof mkey, "cancelled:%s", out->spec.model);
        const char *cnt[] = {"HINCRBY", PM_FLEET_STATS, "cancelled", "1"};
        const char *cntm[] = {"HINCRBY", PM_FLEET_STATS, mkey, "1"};
        const int ac[] = {10, 3, 3, 3, 4, 4};
        const char **av[] = {hset, exp, del, pub, cnt, cntm};
        const size_t *al[] = {NULL, NULL, NULL, pub_l, NULL, NULL};
        rc = exec_tx(c, 6, ac, av, al);
        pm_free(msg);
        if (!rc)
            pm_logkv(PM_LOG_INFO, "job_cancelled", "job cancelled while queued", "job", id, NULL);
    }
    pm_rpool_put(&f->pool, c);
    if (rc == PM_EBUSY)
        rc = pm_errorf(PM_EUNAVAIL, "job %s changed too often while cancelling it; try again", id);
    return rc;
}

static void sweep_cache(front *f)
{
    double now = pm_wall_time();
    if (now - f->last_sweep < 60)
        return;
    f->last_sweep = now;
    DIR *d = opendir(f->cache_dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char p[4400];
        struct stat sb;
        snprintf(p, sizeof p, "%s/%s", f->cache_dir, e->d_name);
        if (stat(p, &sb) == 0 && now - (double)sb.st_mtime > 600)
            unlink(p); /* a download still reading it keeps its open file */
    }
    closedir(d);
}

static int op_result_path(pm_jobstore *st, const pm_job_info *job, char *buf, size_t len)
{
    front *f = front_of(st);
    if (job->state != PM_JOB_DONE)
        return pm_errorf(PM_ENOENT, "job %s has no result", job->id);
    static const char *const ext[] = {"png", "png", "jpg", "webp"};
    snprintf(buf, len, "%s/%s.%s", f->cache_dir, job->id, ext[(unsigned)job->spec.format < 4 ? job->spec.format : 0]);
    sweep_cache(f);
    struct stat sb;
    if (stat(buf, &sb) == 0)
        return 0;
    pm_rconn *c = pm_rpool_get(&f->pool);
    if (!c)
        return PM_EUNAVAIL;
    char key[96];
    pm_fleet_key(key, sizeof key, "result", job->id);
    redisReply *r = pm_rconn_cmdf(c, "GET %s", key);
    pm_rpool_put(&f->pool, c);
    if (!r)
        return PM_EUNAVAIL;
    int rc = 0;
    if (r->type == REDIS_REPLY_STRING)
        rc = pm_write_file_atomic(buf, r->str, r->len);
    else
        rc = pm_errorf(PM_ENOENT, "the result of job %s is gone (expired or evicted)", job->id);
    freeReplyObject(r);
    return rc;
}

static int op_wait(pm_jobstore *st, const char *id, pm_job_info *info, uint8_t **out, size_t *out_len)
{
    front *f = front_of(st);
    pm_job_info j;
    int rc;
    for (;;) {
        pthread_mutex_lock(&f->lock);
        uint64_t gen = f->ended_gen; /* read before the record: an end after it wakes the wait below */
        pthread_mutex_unlock(&f->lock);
        rc = op_get(st, id, &j);
        if (rc && rc != PM_EUNAVAIL)
            return rc;
        if (!rc && j.state != PM_JOB_QUEUED && j.state != PM_JOB_RUNNING)
            break;
        if (rc && atomic_load(&f->stop))
            return rc;
        struct timespec ts;
        pm_deadline(&ts, rc ? 0.5 : 0.25); /* Redis down: try again; else the end's event wakes it */
        pthread_mutex_lock(&f->lock);
        while (f->ended_gen == gen && pthread_cond_timedwait(&f->ended_cv, &f->lock, &ts) == 0)
            ;
        pthread_mutex_unlock(&f->lock);
    }
    if (info)
        *info = j;
    pm_rconn *c = pm_rpool_get(&f->pool);
    if (!c)
        return PM_EUNAVAIL;
    char kres[96], kjob[96];
    pm_fleet_key(kres, sizeof kres, "result", id);
    pm_fleet_key(kjob, sizeof kjob, "job", id);
    if (j.state == PM_JOB_DONE) {
        redisReply *r = pm_rconn_cmdf(c, "GET %s", kres);
        if (!r)
            rc = PM_EUNAVAIL;
        else if (r->type != REDIS_REPLY_STRING)
            rc = pm_errorf(PM_EIO, "the result of job %s is missing from Redis", id);
        else if (!(*out = pm_malloc(r->len ? r->len : 1)))
            rc = pm_errorf(PM_ENOMEM, "out of memory reading a result");
        else {
            memcpy(*out, r->str, r->len);
            *out_len = r->len;
        }
        if (r)
            freeReplyObject(r);
    } else {
        rc = pm_errorf(j.error_code ? j.error_code : PM_EINTERNAL, "%s", j.error);
    }
    char detail[600];
    snprintf(detail, sizeof detail, "%s", rc ? pm_error_detail() : "");
    redisReply *d = pm_rconn_cmdf(c, "DEL %s %s", kres, kjob); /* a synchronous job is forgotten once answered */
    if (d)
        freeReplyObject(d);
    pm_rpool_put(&f->pool, c);
    if (rc)
        pm_errorf(rc, "%s", detail);
    return rc;
}

static void op_stats(pm_jobstore *st, pm_sched_stats *io)
{
    front *f = front_of(st);
    snapshot s;
    if (snapshot_get(f, &s, 0))
        snprintf(io->fleet_down, sizeof io->fleet_down, "%s", pm_error_detail());
    else
        io->fleet_down[0] = '\0';
    pthread_mutex_lock(&f->lock);
    io->drain_rate = f->rate;
    pthread_mutex_unlock(&f->lock);
    io->fleet = 1;
    io->lane_depth[0] = s.depth[0];
    io->lane_depth[1] = s.depth[1];
    io->queue_depth = s.depth[0] + s.depth[1];
    io->running = s.pending;
    io->fleet_pending = s.pending;
    io->fleet_reclaimed = s.reclaimed;
    io->submitted = s.submitted;
    io->done = s.done;
    io->failed = s.failed;
    io->cancelled = s.cancelled;
    io->fleet_nworkers = s.nworkers;
    int slots = 0;
    for (int i = 0; i < s.nworkers; i++) {
        io->fleet_workers[i] = s.w.fleet_workers[i];
        slots += s.w.fleet_workers[i].slots;
    }
    io->workers = slots;
    for (int m = 0; m < io->nmodels; m++) {
        io->models[m].done = io->models[m].failed = io->models[m].cancelled = 0;
        for (int k = 0; k < s.nmodel_counts; k++)
            if (strcmp(s.mc[k].name, io->models[m].name) == 0) {
                io->models[m].done = s.mc[k].done;
                io->models[m].failed = s.mc[k].failed;
                io->models[m].cancelled = s.mc[k].cancelled;
            }
    }
}

static int op_retry_after(pm_jobstore *st)
{
    front *f = front_of(st);
    snapshot s;
    snapshot_get(f, &s, 0);
    pthread_mutex_lock(&f->lock);
    double rate = f->rate;
    pthread_mutex_unlock(&f->lock);
    return pm_fleet_retry_after(s.depth[0] + s.depth[1], f->queue_max, rate, f->max_wait);
}

/* The records of up to `max` entries of lane `lane` (oldest first), with
 * queue positions for the queued ones. Returns how many were written. */
static int list_lane(pm_rconn *c, int lane, pm_job_info *out, int max)
{
    if (max <= 0)
        return 0;
    redisReply *r = pm_rconn_cmdf(c, "XRANGE %s - + COUNT %d", pm_fleet_stream(lane), max);
    if (!r)
        return 0;
    int n = 0, pos = 0;
    char key[96];
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements && n < max; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 2)
            continue;
        const redisReply *id = pm_fleet_reply_field(e->element[1], "id");
        if (!id || id->type != REDIS_REPLY_STRING || !pm_fleet_valid_id(id->str, id->len))
            continue;
        pm_fleet_key(key, sizeof key, "job", id->str);
        redisReply *h = pm_rconn_cmdf(c, "HGETALL %s", key);
        if (h && pm_fleet_decode_reply(h, &out[n]) == 0 &&
            (out[n].state == PM_JOB_QUEUED || out[n].state == PM_JOB_RUNNING)) {
            out[n].queue_position = out[n].state == PM_JOB_QUEUED ? pos++ : -1;
            n++;
        }
        if (h)
            freeReplyObject(h);
    }
    freeReplyObject(r);
    return n;
}

static int op_list(pm_jobstore *st, pm_job_info *out, int max, int *total)
{
    front *f = front_of(st);
    snapshot s;
    snapshot_get(f, &s, 0);
    *total = s.depth[0] + s.depth[1] + s.pending;
    pm_rconn *c = pm_rpool_get(&f->pool);
    if (!c)
        return 0;
    int n = list_lane(c, 0, out, max);
    n += list_lane(c, 1, out + n, max - n);
    pm_rpool_put(&f->pool, c);
    return n;
}

/* Counts from the streams themselves (each entry's record: owner and
 * state), so that no counter can drift when a worker dies mid-update. One
 * XRANGE per lane and one pipelined round of HMGET. */
static void op_owner_counts(pm_jobstore *st, const char *owner, int *queued, int *running)
{
    front *f = front_of(st);
    *queued = *running = 0;
    pm_rconn *c = pm_rpool_get(&f->pool);
    if (!c)
        return;
    enum { MAXIDS = 4096 };
    char(*ids)[PM_JOB_ID_LEN + 1] = pm_malloc(MAXIDS * sizeof *ids);
    char(*keys)[96] = pm_malloc(MAXIDS * sizeof *keys);
    const char ***argv = pm_malloc(MAXIDS * sizeof *argv);
    const char **args = pm_malloc(MAXIDS * 4 * sizeof *args);
    int *argc = pm_malloc(MAXIDS * sizeof *argc);
    const size_t **lens = pm_calloc(MAXIDS, sizeof *lens);
    redisReply **rep = pm_malloc(MAXIDS * sizeof *rep);
    int n = 0;
    for (int lane = 0; lane < 2 && ids && keys && argv && args && argc && lens && rep; lane++) {
        redisReply *r = pm_rconn_cmdf(c, "XRANGE %s - + COUNT %d", pm_fleet_stream(lane), MAXIDS);
        for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements && n < MAXIDS; i++) {
            const redisReply *e = r->element[i];
            const redisReply *id = e->type == REDIS_REPLY_ARRAY && e->elements >= 2
                                       ? pm_fleet_reply_field(e->element[1], "id")
                                       : NULL;
            if (id && id->type == REDIS_REPLY_STRING && pm_fleet_valid_id(id->str, id->len)) {
                memcpy(ids[n], id->str, PM_JOB_ID_LEN + 1);
                pm_fleet_key(keys[n], sizeof keys[n], "job", ids[n]);
                const char **a = args + 4 * n;
                a[0] = "HMGET", a[1] = keys[n], a[2] = "owner", a[3] = "state";
                argv[n] = a;
                argc[n] = 4;
                n++;
            }
        }
        if (r)
            freeReplyObject(r);
    }
    if (n > 0 && pm_rconn_pipeline(c, n, argc, argv, lens, rep) == 0) {
        for (int i = 0; i < n; i++) {
            const redisReply *r = rep[i];
            if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->type == REDIS_REPLY_STRING &&
                r->element[1]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, owner) == 0) {
                *queued += strcmp(r->element[1]->str, "queued") == 0;
                *running += strcmp(r->element[1]->str, "running") == 0;
            }
            freeReplyObject(rep[i]);
        }
    }
    pm_rpool_put(&f->pool, c);
    pm_free(ids);
    pm_free(keys);
    pm_free(argv);
    pm_free(args);
    pm_free(argc);
    pm_free(lens);
    pm_free(rep);
}

static void op_set_event_fn(pm_jobstore *st, pm_job_event_fn fn, void *user)
{
    front *f = front_of(st);
    pthread_mutex_lock(&f->lock);
    f->ev_fn = fn;
    f->ev_user = user;
    pthread_mutex_unlock(&f->lock);
}

static const pm_jobstore_ops front_ops = {
    .admit = op_admit,
    .enqueue = op_enqueue,
    .get = op_get,
    .cancel = op_cancel,
    .wait = op_wait,
    .result_path = op_result_path,
    .stats = op_stats,
    .retry_after = op_retry_after,
    .list = op_list,
    .owner_counts = op_owner_counts,
    .set_event_fn = op_set_event_fn,
};

/* ------------------------------------------------------------ events */

static void deliver(front *f, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 || r->element[0]->type != REDIS_REPLY_STRING ||
        strcmp(r->element[0]->str, "message") != 0 || r->element[2]->type != REDIS_REPLY_STRING)
        return;
    pm_job_event_type type;
    pm_job_info job;
    if (pm_fleet_event_parse(r->element[2]->str, r->element[2]->len, &type, &job)) {
        pm_warn("fleet_event_malformed", "ignored an event from Redis: %s", pm_error_detail());
        return;
    }
    pthread_mutex_lock(&f->lock);
    uint64_t seq = ++f->ev_seq;
    if (f->ev_fn)
        f->ev_fn(f->ev_user, type, seq, &job);
    if (type == PM_EV_DONE || type == PM_EV_FAILED || type == PM_EV_CANCELLED) {
        f->ended_gen++;
        pthread_cond_broadcast(&f->ended_cv);
    }
    pthread_mutex_unlock(&f->lock);
}

/* Reads the events channel until stopped; reconnects with backoff. */
static void *sub_main(void *arg)
{
    front *f = arg;
    pm_rconn c;
    memset(&c, 0, sizeof c);
    c.url = f->url;
    c.timeout = 2;
    int fails = 0, warned = 0;
    while (!atomic_load(&f->stop)) {
        if (!c.c) {
            redisReply *r = pm_rconn_cmdf(&c, "SUBSCRIBE %s", PM_FLEET_EVENTS);
            if (!r) {
                if (!warned++)
                    pm_warn("fleet_events_lost", "%s; retrying", pm_error_detail());
                double until = pm_now() + pm_fleet_backoff(fails++);
                while (!atomic_load(&f->stop) && pm_now() < until)
                    usleep(20000);
                continue;
            }
            freeReplyObject(r);
            atomic_store(&f->subscribed, 1);
            if (warned)
                pm_info("fleet_events_back", "receiving job events from Redis again");
            fails = warned = 0;
        }
        void *rep = NULL;
        if (redisGetReplyFromReader(c.c, &rep) != REDIS_OK) {
            pm_rconn_close(&c);
            continue;
        }
        if (rep) {
            deliver(f, rep);
            freeReplyObject(rep);
            continue;
        }
        struct pollfd p = {.fd = c.c->fd, .events = POLLIN};
        int n = poll(&p, 1, 200);
        if (n > 0 && redisBufferRead(c.c) != REDIS_OK)
            pm_rconn_close(&c);
    }
    pm_rconn_close(&c);
    return NULL;
}

int pm_fleet_front_open(const pm_fleet_config *fc, const pm_sched_config *sc, pm_jobstore **out)
{
    *out = NULL;
    front *f = pm_calloc(1, sizeof *f);
    if (!f)
        return pm_errorf(PM_ENOMEM, "out of memory opening the fleet");
    int rc = pm_fleet_parse_url(fc->redis_url, &f->url);
    if (rc)
        goto free_front;
    f->base.ops = &front_ops;
    f->fc = *fc;
    f->queue_max = sc->queue_max > 0 ? sc->queue_max : 64;
    f->max_wait = sc->max_wait;
    f->result_ttl = sc->result_ttl > 0 ? sc->result_ttl : 86400;
    atomic_init(&f->stop, 0);
    atomic_init(&f->subscribed, 0);
    pthread_mutex_init(&f->lock, NULL);
    pm_cond_init_monotonic(&f->ended_cv);
    pm_rpool_init(&f->pool, &f->url, 2);
    snprintf(f->cache_dir, sizeof f->cache_dir, "%s/fleet-results", sc->data_dir ? sc->data_dir : "pixmend-data");
    if ((rc = pm_mkdirs(f->cache_dir)))
        goto destroy;
    pm_rconn *c = pm_rpool_get(&f->pool);
    if (!c) {
        rc = PM_EUNAVAIL;
        goto destroy;
    }
    rc = pm_fleet_ensure_groups(c);
    pm_rpool_put(&f->pool, c);
    if (rc)
        goto destroy;
    if (pthread_create(&f->sub, NULL, sub_main, f) != 0) {
        rc = pm_errorf(PM_ENOMEM, "cannot start the fleet's event thread");
        goto destroy;
    }
    f->sub_started = 1;
    for (int i = 0; i < 200 && !atomic_load(&f->subscribed); i++) /* so that no event of its first jobs is missed */
        usleep(10000);
    *out = &f->base;
    return 0;

destroy:
    pm_rpool_destroy(&f->pool);
    pthread_cond_destroy(&f->ended_cv);
    pthread_mutex_destroy(&f->lock);
free_front:
    pm_free(f);
    return rc;
}

void pm_fleet_front_close(pm_jobstore *st)
{
    if (!st)
        return;
    front *f = front_of(st);
    atomic_store(&f->stop, 1);
    if (f->sub_started)
        pthread_join(f->sub, NULL);
    pm_rpool_destroy(&f->pool);
    pthread_cond_destroy(&f->ended_cv);
    pthread_mutex_destroy(&f->lock);
    pm_free(f);
}
