/* The scheduler: job and model tables, creation, drain and destroy (see sched_internal.h for the locking and the other parts). */
#include "sched/admit.h"
#include "sched/gate.h"
#include "sched/journal.h"
#include "sched/sched_internal.h"
#include "base/base.h"
#include "pipeline/colorize.h"
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


/* ------------------------------------------------------------ small parts */

const char *pm_job_state_name(pm_job_state s)
{
    static const char *names[] = {"queued", "running", "done", "failed", "cancelled", "rejected"};
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "unknown";
}

const char *pm_task_name(enum pm_task t)
{
    return t == PM_TASK_COLORIZE ? "colorize" : "inpaint";
}

int pm_task_parse(const char *s)
{
    if (strcmp(s, "inpaint") == 0)
        return PM_TASK_INPAINT;
    if (strcmp(s, "colorize") == 0)
        return PM_TASK_COLORIZE;
    return -1;
}

const char *pm_job_event_name(pm_job_event_type t)
{
    static const char *names[] = {"queued", "started", "progress", "done", "failed", "cancelled"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "unknown";
}

void pm_job_spec_default(pm_job_spec *spec)
{
    memset(spec, 0, sizeof *spec);
    spec->task = PM_TASK_INPAINT;
    spec->priority = PM_PRIORITY_DEFAULT;
    spec->format = PM_FMT_UNKNOWN;
    spec->hd_strategy = PM_HD_AUTO;
    spec->input_size = PM_COLORIZE_SIZE_DEFAULT;
}

void pm_sched_default_config(pm_sched_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->data_dir = "pixmend-data";
    cfg->workers = 1;
    cfg->threads = 0;
    cfg->queue_max = 64;
    cfg->job_timeout = 600;
    cfg->result_ttl = 86400;
    cfg->results_max_bytes = 10ull << 30;
    cfg->limits = pm_default_limits();
    cfg->mem_budget = 0;
    cfg->pause_at = 0.85;
    cfg->resume_below = 0.75;
    cfg->aging_seconds = 30;
    cfg->fast_lane_pixels = 1000000;
    cfg->max_wait = 0;
}

int pm_sched_queue_count(const pm_sched *s)
{
    return s->lanes[0].count + s->lanes[1].count;
}

pm_job *pm_sched_job_of(pm_jq_node *n)
{
    return n ? (pm_job *)((char *)n - offsetof(pm_job, qnode)) : NULL;
}

static unsigned hash_id(const char *id)
{
    unsigned h = 2166136261u;
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 16777619u;
    return h % PM_HASH_BUCKETS;
}

pm_job *pm_sched_find_locked(pm_sched *s, const char *id)
{
    if (strlen(id) != PM_JOB_ID_LEN)
        return NULL;
    for (pm_job *j = s->buckets[hash_id(id)]; j; j = j->hnext)
        if (strcmp(j->info.id, id) == 0)
            return j;
    return NULL;
}

void pm_sched_table_add_locked(pm_sched *s, pm_job *j)
{
    unsigned b = hash_id(j->info.id);
    j->hnext = s->buckets[b];
    s->buckets[b] = j;
    j->prev = s->newest;
    j->next = NULL;
    if (s->newest)
        s->newest->next = j;
    else
        s->oldest = j;
    s->newest = j;
    s->jobs_known++;
}

void pm_sched_table_remove_locked(pm_sched *s, pm_job *j)
{
    pm_job **pp = &s->buckets[hash_id(j->info.id)];
    while (*pp && *pp != j)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = j->hnext;
    if (j->prev)
        j->prev->next = j->next;
    else
        s->oldest = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        s->newest = j->prev;
    j->prev = j->next = j->hnext = NULL;
    s->jobs_known--;
}

void pm_sched_job_free(pm_job *j)
{
    if (!j)
        return;
    pm_free(j->image);
    pm_free(j->mask);
    pm_free(j->result);
    pm_free(j);
}

/* A new job with a fresh random id; caller owns it. */
pm_job *pm_sched_job_new(void)
{
    pm_job *j = pm_calloc(1, sizeof *j);
    if (!j)
        return NULL;
    uint8_t r[PM_JOB_ID_LEN / 2];
    size_t got = 0;
    while (got < sizeof r) {
        ssize_t n = getrandom(r + got, sizeof r - got, 0);
        if (n < 0 && errno != EINTR) {
            pm_free(j);
            return NULL;
        }
        if (n > 0)
            got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(j->info.id + 2 * i, 3, "%02x", r[i]);
    j->info.queue_position = -1;
    atomic_init(&j->cancel, 0);
    atomic_init(&j->timed_out, 0);
    atomic_init(&j->progress_value, 0);
    atomic_init(&j->progress_max, 0);
    return j;
}

/* A snapshot with the live fields filled in. */
void pm_sched_snapshot_locked(pm_sched *s, const pm_job *j, pm_job_info *out)
{
    *out = j->info;
    out->queue_position = j->info.state == PM_JOB_QUEUED ? pm_jq_position(&s->lanes[j->info.lane], &j->qnode) : -1;
    out->progress_value = atomic_load(&((pm_job *)j)->progress_value);
    out->progress_max = atomic_load(&((pm_job *)j)->progress_max);
}

void pm_sched_emit_locked(pm_sched *s, pm_job_event_type type, const pm_job *j)
{
    s->ev_seq++;
    if (!s->ev_fn)
        return;
    pm_job_info info;
    pm_sched_snapshot_locked(s, j, &info);
    s->ev_fn(s->ev_user, type, s->ev_seq, &info);
}

pm_loaded_model *pm_sched_model_find(pm_sched *s, const char *name)
{
    for (int i = 0; i < s->nmodels; i++)
        if (strcmp(s->models[i].desc->name, name) == 0)
            return &s->models[i];
    return NULL;
}

/* Locked: the default model of a task. A model with a weights file (a
 * trained network) beats a built-in one. The name is static (the desc's). */
static const char *default_model_locked(pm_sched *s, enum pm_task task)
{
    const char *best = NULL;
    for (int i = 0; i < s->nmodels; i++) {
        const pm_model_desc *d = s->models[i].desc;
        if (d->task != task)
            continue;
        if (!best || d->needs_file)
            best = d->name;
        if (d->needs_file)
            break;
    }
    return best;
}

const char *pm_sched_default_model(pm_sched *s, enum pm_task task)
{
    pthread_mutex_lock(&s->lock);
    const char *best = default_model_locked(s, task);
    pthread_mutex_unlock(&s->lock);
    return best;
}

int pm_sched_models(pm_sched *s, const pm_model_desc **descs, int max)
{
    pthread_mutex_lock(&s->lock);
    int n = s->nmodels;
    for (int i = 0; i < n && i < max; i++)
        descs[i] = s->models[i].desc;
    pthread_mutex_unlock(&s->lock);
    return n;
}

static void loaded_names(pm_sched *s, char *buf, size_t len)
{
    buf[0] = '\0';
    size_t used = 0;
    for (int i = 0; i < s->nmodels && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "", s->models[i].desc->name);
    if (s->nmodels == 0)
        snprintf(buf, len, "none");
}

/* Locked: resolves spec->model (default or named) against the loaded models. */
int pm_sched_resolve_model_locked(pm_sched *s, pm_job_spec *spec)
{
    char names[256];
    if (spec->model[0] == '\0') {
        const char *def = default_model_locked(s, spec->task);
        if (!def) {
            loaded_names(s, names, sizeof names);
            return pm_errorf(PM_ENOENT,
                             "no %s model is loaded (loaded: %s); start the server with --model %s=FILE",
                             spec->task == PM_TASK_COLORIZE ? "colorization" : "inpainting", names,
                             spec->task == PM_TASK_COLORIZE ? "ddcolor" : "lama");
        }
        snprintf(spec->model, sizeof spec->model, "%s", def);
        return 0;
    }
    pm_loaded_model *m = pm_sched_model_find(s, spec->model);
    if (!m) {
        loaded_names(s, names, sizeof names);
        return pm_errorf(PM_ENOENT, "model '%s' is not loaded in this server (loaded: %s)", spec->model, names);
    }
    if (m->desc->task != spec->task)
        return pm_errorf(PM_EINVAL, "model '%s' does %s, not %s; pick task=%s or another model", spec->model,
                         pm_task_name(m->desc->task), pm_task_name(spec->task), pm_task_name(m->desc->task));
    return 0;
}

/* ------------------------------------------------------------- create */

struct recover_ctx {
    pm_sched *s;
    int rc;
};

static int recover_row(void *user, const pm_job_info *in, int64_t seq)
{
    struct recover_ctx *rc = user;
    pm_sched *s = rc->s;
    pm_job *j = pm_calloc(1, sizeof *j);
    if (!j)
        return rc->rc = pm_errorf(PM_ENOMEM, "out of memory recovering the journal");
    j->info = *in;
    j->seq = seq;
    j->info.queue_position = -1;
    if (in->state == PM_JOB_QUEUED || in->state == PM_JOB_RUNNING) {
        if (in->state == PM_JOB_RUNNING) {
            /* It was interrupted: it waits again (journaled after the load). */
            j->info.state = PM_JOB_QUEUED;
            j->info.started = 0;
            j->was_running = 1;
        }
        j->qnode.priority = j->info.spec.priority < 0 ? 0
                            : j->info.spec.priority > PM_PRIORITY_MAX ? PM_PRIORITY_MAX
                                                                      : j->info.spec.priority;
        j->info.lane = pm_admit_lane((uint64_t)j->info.width * (uint64_t)j->info.height, s->cfg.fast_lane_pixels);
        j->qnode.enqueued = pm_now();
        pm_jq_push(&s->lanes[j->info.lane], &j->qnode);
        s->recovered++;
    } else if (in->state == PM_JOB_DONE) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", s->data_dir, in->result_path);
        if (stat(path, &st) != 0)
            j->result_missing = 1; /* deleted by hand: forgotten after the load */
        else {
            s->results_bytes += in->result_bytes;
            s->results_count++;
        }
    }
    pm_sched_table_add_locked(s, j);
    return 0;
}

/* The job a file named "<job id>.<suffix>" belongs to, or NULL; *dot points
 * at the suffix's dot. The caller holds s->lock; the job stays s's. */
static pm_job *job_of_file_locked(pm_sched *s, const char *name, const char **dot)
{
    char id[PM_JOB_ID_LEN + 1];
    *dot = strchr(name, '.');
    if (!*dot || *dot - name != PM_JOB_ID_LEN)
        return NULL;
    memcpy(id, name, PM_JOB_ID_LEN);
    id[PM_JOB_ID_LEN] = '\0';
    return pm_sched_find_locked(s, id);
}

/* Keeps input files of queued jobs only. */
static int keep_input(void *user, const char *dir_rel, const char *name)
{
    (void)dir_rel;
    const char *dot;
    pm_job *j = job_of_file_locked(user, name, &dot);
    return j && j->info.state == PM_JOB_QUEUED && (strcmp(dot, ".image") == 0 || strcmp(dot, ".mask") == 0);
}

/* Keeps result files of done jobs only (drops partial and orphaned files). */
static int keep_result(void *user, const char *dir_rel, const char *name)
{
    const char *dot;
    pm_job *j = job_of_file_locked(user, name, &dot);
    if (!j || j->info.state != PM_JOB_DONE)
        return 0;
    char rel[4096];
    snprintf(rel, sizeof rel, "%s/%s", dir_rel, name);
    return strcmp(rel, j->info.result_path) == 0;
}

int pm_sched_create(const pm_sched_config *cfg, pm_sched **out)
{
    int rc;
    *out = NULL;
    pm_sched *s = pm_calloc(1, sizeof *s);
    if (!s)
        return pm_errorf(PM_ENOMEM, "out of memory creating the scheduler");
    s->cfg = *cfg;
    if (s->cfg.workers < 1)
        s->cfg.workers = 1;
    if (s->cfg.queue_max < 1)
        s->cfg.queue_max = 1;
    s->lock_fd = -1;
    atomic_init(&s->abort_running, 0);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->work_cv, NULL);
    pm_cond_init_monotonic(&s->done_cv);
    pm_cond_init_monotonic(&s->janitor_cv);
    pm_jq_init(&s->lanes[0], INT_MAX); /* the bound is on both lanes together: checked at submission */
    pm_jq_init(&s->lanes[1], INT_MAX);
    s->last_lane = -1;
    static const double disk_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
    pm_hist_init(&s->disk_write, disk_bounds, (int)(sizeof disk_bounds / sizeof disk_bounds[0]));
    static const double wait_bounds[] = {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800};
    static const double run_bounds[] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};
    pm_hist_init(&s->queue_wait, wait_bounds, (int)(sizeof wait_bounds / sizeof wait_bounds[0]));
    pm_hist_init(&s->run_seconds, run_bounds, (int)(sizeof run_bounds / sizeof run_bounds[0]));

    if ((rc = pm_gate_init(&s->gate, s->cfg.pause_at, s->cfg.resume_below))) {
        rc = pm_errorf(rc, "%s (--pause-at, --resume-below)", pm_error_detail());
        goto destroy_partial;
    }
    s->data_dir = pm_strdup(cfg->data_dir ? cfg->data_dir : "pixmend-data");
    s->workers = pm_calloc((size_t)s->cfg.workers, sizeof *s->workers);
    if (!s->data_dir || !s->workers) {
        rc = pm_errorf(PM_ENOMEM, "out of memory creating the scheduler");
        goto destroy_partial;
    }
    char path[4096];
    const char *subs[] = {"", "/inputs", "/outputs"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s%s", s->data_dir, subs[i]);
        if ((rc = pm_mkdirs(path)))
            goto destroy_partial;
    }
    snprintf(path, sizeof path, "%s/pixmend.lock", s->data_dir);
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->lock_fd < 0) {
        rc = pm_errorf(PM_EIO, "cannot open %s: %s; check that --data-dir is writable", path, strerror(errno));
        goto destroy_partial;
    }
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = pm_errorf(PM_EBUSY,
                       "data directory %s is in use by another pixmend server; give each server its own --data-dir",
                       s->data_dir);
        goto destroy_partial;
    }
    snprintf(path, sizeof path, "%s/journal.sqlite", s->data_dir);
    if ((rc = pm_journal_open(path, &s->journal)))
        goto destroy_partial;

    /* Recover: the queue may hold more than queue_max after a restart with a smaller bound. */
    struct recover_ctx rctx = {s, 0};
    pthread_mutex_lock(&s->lock);
    rc = pm_journal_load(s->journal, recover_row, &rctx);
    if (!rc)
        rc = rctx.rc;
    if (!rc) {
        pm_store_sweep(s->data_dir, "inputs", keep_input, s);
        pm_store_sweep(s->data_dir, "outputs", keep_result, s);
    }
    pthread_mutex_unlock(&s->lock);
    if (rc)
        goto destroy_partial;
    for (pm_job *j = s->oldest, *next; j; j = next) {
        next = j->next;
        if (j->result_missing) {
            pm_warn("result_missing", "the result of job %s is gone from %s; forgetting the job", j->info.id,
                    s->data_dir);
            pm_sched_table_remove_locked(s, j); /* no other thread runs yet */
            pm_journal_forget(s->journal, j->info.id);
            pm_sched_job_free(j);
            continue;
        }
        if (!j->was_running)
            continue;
        j->was_running = 0;
        if ((rc = pm_journal_transition(s->journal, &j->info, PM_JOB_RUNNING)))
            goto destroy_partial;
    }
    if (s->recovered)
        pm_info("journal_recovered", "%llu job(s) from the journal queued again",
                (unsigned long long)s->recovered);
    *out = s;
    return 0;

destroy_partial:
    pm_sched_destroy(s);
    return rc;
}

int pm_sched_load_model(pm_sched *s, const char *name, const char *path)
{
    const pm_model_desc *d = pm_model_find(name);
    if (!d) {
        char known[256] = "";
        size_t used = 0;
        for (int i = 0; pm_models[i] && used < sizeof known; i++)
            used += (size_t)snprintf(known + used, sizeof known - used, "%s%s", i ? ", " : "",
                                     pm_models[i]->name);
        return pm_errorf(PM_ENOENT, "unknown model '%s' (known: %s)", name, known[0] ? known : "none");
    }
    return pm_sched_add_model(s, d, path);
}

char *pm_sched_fmt_u(double v, char *buf)
{
    snprintf(buf, 32, "%.0f", v);
    return buf;
}

char *pm_sched_fmt_d(double v, char *buf)
{
    snprintf(buf, 32, "%.3f", v);
    return buf;
}

void pm_sched_memlaw_path(const pm_sched *s, char *buf, size_t len)
{
    snprintf(buf, len, "%s/" PM_MEMLAW_FILE, s->data_dir);
}

/* Replaces *law (seeded) by the one in DATA/memlaw.json for its model, kept
 * within the margin of the seed. A missing file is no error; a bad one is
 * logged and ignored (the seed stays). */
static void load_law(pm_sched *s, pm_memlaw *law)
{
    char path[4096];
    pm_sched_memlaw_path(s, path, sizeof path);
    pm_memlaw file[PM_SCHED_MAX_MODELS * 2];
    int n = 0;
    int rc = pm_memlaw_load(path, file, PM_SCHED_MAX_MODELS * 2, &n);
    if (rc == PM_ENOENT)
        return;
    if (rc) {
        pm_warn("memlaw_unreadable", "%s; using the engines' own estimates", pm_error_detail());
        return;
    }
    for (int i = 0; i < n; i++) {
        if (strcmp(file[i].model, law->model) != 0)
            continue;
        double seed_a = law->seed_a, seed_b = law->seed_b;
        *law = file[i];
        law->seed_a = seed_a;
        law->seed_b = seed_b;
        if (pm_memlaw_clamp(law))
            pm_warn("memlaw_clamped",
                    "the memory law of %s in %s was more than %.0f %% below the engine's estimate; raised to it",
                    law->model, path, PM_MEMLAW_MARGIN * 100);
        return;
    }
}

/* Loads a model for every worker and publishes it in the model table. The
 * loading (seconds for a large network) runs without the lock; the entry is
 * written under it, whole, so readers never see a partial one. */
int pm_sched_add_model(pm_sched *s, const pm_model_desc *d, const char *path)
{
    const char *name = d->name;
    pthread_mutex_lock(&s->lock);
    int dup = pm_sched_model_find(s, name) != NULL, full = s->nmodels >= PM_SCHED_MAX_MODELS;
    pthread_mutex_unlock(&s->lock);
    if (dup)
        return pm_errorf(PM_EINVAL, "model '%s' is given twice", name);
    if (full)
        return pm_errorf(PM_EINVAL, "at most %d models", PM_SCHED_MAX_MODELS);
    if (d->needs_file && !path)
        return pm_errorf(PM_EINVAL, "model '%s' needs a weights file: --model %s=FILE", name, name);
    pm_loaded_model m = {.desc = d};
    m.states = pm_calloc((size_t)s->cfg.workers, sizeof *m.states);
    if (path)
        m.path = pm_strdup(path);
    int rc = PM_ENOMEM;
    if (!m.states || (path && !m.path)) {
        pm_errorf(PM_ENOMEM, "out of memory loading model '%s'", name);
        goto free_entry;
    }
    pm_model_opts mo = {.threads = s->cfg.threads, .precision = (enum pm_precision)s->cfg.precision, .seed = 0};
    double t0 = pm_now();
    int loaded = 0;
    for (; loaded < s->cfg.workers; loaded++)
        if ((rc = d->load(d->needs_file ? path : NULL, &mo, &m.states[loaded])))
            goto unload_states;
    pm_memlaw law;
    pm_memlaw_seed(&law, d, m.states[0]);
    load_law(s, &law);
    pthread_mutex_lock(&s->lock);
    if (pm_sched_model_find(s, name) || s->nmodels >= PM_SCHED_MAX_MODELS) {
        pthread_mutex_unlock(&s->lock);
        rc = pm_errorf(PM_EINVAL, "model '%s' was loaded twice at once", name);
        goto unload_states;
    }
    s->models[s->nmodels] = m;
    s->laws[s->nmodels] = law;
    s->nmodels++;
    pthread_mutex_unlock(&s->lock);
    pm_logkv(PM_LOG_INFO, "memlaw", "memory law in use", "model", name, "a_bytes", pm_sched_fmt_u(law.a, (char[32]){0}),
             "b_bytes_per_pixel", pm_sched_fmt_d(law.b, (char[32]){0}), "source", law.source, NULL);
    pm_info("model_loaded", "model %s loaded%s%s for %d worker(s) in %.2f s", name, path ? " from " : "",
            path ? path : "", s->cfg.workers, pm_now() - t0);
    return 0;

unload_states:
    for (int k = 0; k < loaded; k++)
        d->unload(m.states[k]);
free_entry:
    pm_free(m.states);
    pm_free(m.path);
    return rc;
}

void pm_sched_set_event_fn(pm_sched *s, pm_job_event_fn fn, void *user)
{
    pthread_mutex_lock(&s->lock);
    s->ev_fn = fn;
    s->ev_user = user;
    pthread_mutex_unlock(&s->lock);
    if (s->cfg.store)
        s->cfg.store->ops->set_event_fn(s->cfg.store, fn, user);
}


/* ------------------------------------------------------------- drain, destroy */

int pm_sched_draining(pm_sched *s)
{
    pthread_mutex_lock(&s->lock);
    int d = s->draining;
    pthread_mutex_unlock(&s->lock);
    return d;
}

/* Cancels queued synchronous jobs (they cannot wait for the next start). */
static void cancel_queued_sync_locked(pm_sched *s)
{
    for (int lane = 0; lane < PM_LANES; lane++)
    for (pm_jq_node *q = pm_jq_next(&s->lanes[lane], NULL), *next; q; q = next) {
        next = pm_jq_next(&s->lanes[lane], q);
        pm_job *j = pm_sched_job_of(q);
        if (!j->info.sync)
            continue;
        pm_jq_remove(&s->lanes[lane], q);
        j->info.state = PM_JOB_CANCELLED;
        j->info.finished = pm_wall_time();
        j->info.error_code = PM_ECANCELLED;
        snprintf(j->info.error, sizeof j->info.error,
                 "the server is shutting down; the request was not run, send it again");
        s->cancelled++;
        pm_sched_emit_locked(s, PM_EV_CANCELLED, j);
    }
    pthread_cond_broadcast(&s->done_cv);
}

static void wait_running_locked(pm_sched *s, double seconds)
{
    double until = pm_now() + seconds;
    while (s->running > 0) {
        double left = until - pm_now();
        if (left <= 0)
            break;
        struct timespec ts;
        pm_deadline(&ts, left < 0.2 ? left : 0.2);
        pthread_cond_timedwait(&s->done_cv, &s->lock, &ts);
    }
}

int pm_sched_drain(pm_sched *s, double grace)
{
    pthread_mutex_lock(&s->lock);
    s->draining = 1;
    cancel_queued_sync_locked(s);
    int running = s->running;
    pthread_mutex_unlock(&s->lock);
    pm_info("drain_started", "draining: %d job(s) running, waiting up to %g s for them", running, grace);

    pthread_mutex_lock(&s->lock);
    wait_running_locked(s, grace);
    int interrupted = s->running;
    if (interrupted > 0) {
        atomic_store(&s->abort_running, 1);
        wait_running_locked(s, 1e9); /* they stop at their next progress report */
    }
    int queued = pm_sched_queue_count(s);
    pthread_mutex_unlock(&s->lock);
    pm_info("drain_finished", "drained: %d job(s) interrupted, %d queued job(s) left for the next start",
            interrupted, queued);
    return interrupted;
}

void pm_sched_destroy(pm_sched *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->stop = 1;
    s->draining = 1;
    atomic_store(&s->abort_running, 1);
    cancel_queued_sync_locked(s);
    pthread_cond_broadcast(&s->work_cv);
    pthread_cond_broadcast(&s->janitor_cv);
    pthread_mutex_unlock(&s->lock);
    for (int i = 0; i < s->workers_started; i++)
        pthread_join(s->workers[i].thread, NULL);
    if (s->janitor_started)
        pthread_join(s->janitor, NULL);
    for (int m = 0; m < s->nmodels; m++) {
        for (int w = 0; w < s->cfg.workers; w++)
            if (s->models[m].states[w])
                s->models[m].desc->unload(s->models[m].states[w]);
        pm_free(s->models[m].states);
        pm_free(s->models[m].path);
    }
    for (pm_job *j = s->oldest, *next; j; j = next) {
        next = j->next;
        pm_sched_job_free(j);
    }
    pm_journal_close(s->journal);
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases the flock */
    pthread_cond_destroy(&s->work_cv);
    pthread_cond_destroy(&s->done_cv);
    pthread_cond_destroy(&s->janitor_cv);
    pthread_mutex_destroy(&s->lock);
    pm_free(s->workers);
    pm_free(s->data_dir);
    pm_free(s);
}
