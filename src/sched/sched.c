/* The scheduler: job table, priority queue, workers, janitor, journal calls.
 *
 * Locking: one mutex (s->lock) guards the table, the queue, every job's
 * fields (except the atomics) and the counters. Nothing slow runs under it:
 * journal commits, file writes, decoding and the models all run outside it.
 * Events are emitted with the lock held so that their order is the order of
 * the state changes. */
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

#define PM_HASH_BUCKETS 4096
#define PM_MAX_MODELS 8
#define PM_PROGRESS_INTERVAL 0.1 /* seconds between progress events of one job */

typedef struct pm_loaded_model {
    const pm_model_desc *desc;
    char *path;      /* owned; NULL for models without a file */
    void **states;   /* owned; one per worker */
    uint64_t done, failed, cancelled;
} pm_loaded_model;

typedef struct pm_worker {
    pm_sched *s;
    int index;
    pthread_t thread;
    pm_job *job;     /* the job it runs; under s->lock */
} pm_worker;

struct pm_sched {
    pm_sched_config cfg;
    char *data_dir;              /* owned */
    int lock_fd;                 /* flock on DATA/pixmend.lock */
    pm_journal *journal;         /* owned */

    /* Lock order (outermost first): s->lock, then the event sink's own lock
     * (emit_locked calls ev_fn with s->lock held; the server's WebSocket hub
     * takes its lock inside). No code may call into the scheduler while holding
     * the hub's lock. The model table (models, laws, nmodels) is written only
     * under s->lock (pm_sched_add_model publishes a fully loaded entry) and read
     * under it; an entry never moves or changes its desc once published. */
    pthread_mutex_t lock;
    pthread_cond_t work_cv;      /* workers wait for jobs */
    pthread_cond_t done_cv;      /* sync waiters and the drain wait for ends */
    pthread_cond_t janitor_cv;
    pm_jobqueue lanes[PM_LANES]; /* fast (small images) and normal */
    int reserved;                /* submissions between the bound check and queueing */
    /* admission */
    pm_gate gate;
    uint64_t mem_reserved;       /* predictions of the running jobs */
    int last_lane;               /* lane of the last job started; -1 = none */
    pm_memlaw laws[PM_MAX_MODELS]; /* parallel to models */
    int ntrans, trans_head;      /* ring of the last pause/resume transitions */
    struct { double t, gauge; int paused; } trans[16];
    double last_finish;          /* monotonic time of the last finished job; 0 = none */
    int busy_after_finish;       /* the queue was not empty at that finish */
    double finish_interval;      /* moving average of busy intervals between finishes */
    pm_hist disk_write;
    pm_job *buckets[PM_HASH_BUCKETS];
    pm_job *oldest, *newest;     /* all jobs, oldest first */
    int jobs_known;
    int running;
    int stop;
    int draining;
    atomic_int abort_running;    /* interrupt running jobs without journaling */
    uint64_t ev_seq;
    pm_job_event_fn ev_fn;
    void *ev_user;

    pm_loaded_model models[PM_MAX_MODELS];
    int nmodels;
    pm_worker *workers;          /* owned; cfg.workers entries */
    int workers_started;
    pthread_t janitor;
    int janitor_started;

    uint64_t submitted, done, failed, cancelled, timed_out, recovered;
    double avg_run;              /* exponential moving average, seconds */
    pm_hist queue_wait, run_seconds;
    uint64_t results_bytes, results_count;
};

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
    spec->input_size = 512;
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

static int queue_count(const pm_sched *s)
{
    return s->lanes[0].count + s->lanes[1].count;
}

static pm_job *job_of(pm_jq_node *n)
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

static pm_job *find_locked(pm_sched *s, const char *id)
{
    if (strlen(id) != PM_JOB_ID_LEN)
        return NULL;
    for (pm_job *j = s->buckets[hash_id(id)]; j; j = j->hnext)
        if (strcmp(j->info.id, id) == 0)
            return j;
    return NULL;
}

static void table_add_locked(pm_sched *s, pm_job *j)
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

static void table_remove_locked(pm_sched *s, pm_job *j)
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

static void job_free(pm_job *j)
{
    if (!j)
        return;
    pm_free(j->image);
    pm_free(j->mask);
    pm_free(j->result);
    pm_free(j);
}

/* A new job with a fresh random id; caller owns it. */
static pm_job *job_new(void)
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
static void snapshot_locked(pm_sched *s, const pm_job *j, pm_job_info *out)
{
    *out = j->info;
    out->queue_position = j->info.state == PM_JOB_QUEUED ? pm_jq_position(&s->lanes[j->info.lane], &j->qnode) : -1;
    out->progress_value = atomic_load(&((pm_job *)j)->progress_value);
    out->progress_max = atomic_load(&((pm_job *)j)->progress_max);
}

static void emit_locked(pm_sched *s, pm_job_event_type type, const pm_job *j)
{
    s->ev_seq++;
    if (!s->ev_fn)
        return;
    pm_job_info info;
    snapshot_locked(s, j, &info);
    s->ev_fn(s->ev_user, type, s->ev_seq, &info);
}

static pm_loaded_model *model_find(pm_sched *s, const char *name)
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
static int resolve_model_locked(pm_sched *s, pm_job_spec *spec)
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
    pm_loaded_model *m = model_find(s, spec->model);
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
    table_add_locked(s, j);
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
    return find_locked(s, id);
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
            table_remove_locked(s, j); /* no other thread runs yet */
            pm_journal_forget(s->journal, j->info.id);
            job_free(j);
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

static char *fmt_u(double v, char *buf)
{
    snprintf(buf, 32, "%.0f", v);
    return buf;
}

static char *fmt_d(double v, char *buf)
{
    snprintf(buf, 32, "%.3f", v);
    return buf;
}

static void memlaw_path(const pm_sched *s, char *buf, size_t len)
{
    snprintf(buf, len, "%s/" PM_MEMLAW_FILE, s->data_dir);
}

/* Replaces *law (seeded) by the one in DATA/memlaw.json for its model, kept
 * within the margin of the seed. A missing file is no error; a bad one is
 * logged and ignored (the seed stays). */
static void load_law(pm_sched *s, pm_memlaw *law)
{
    char path[4096];
    memlaw_path(s, path, sizeof path);
    pm_memlaw file[PM_MAX_MODELS * 2];
    int n = 0;
    int rc = pm_memlaw_load(path, file, PM_MAX_MODELS * 2, &n);
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
    int dup = model_find(s, name) != NULL, full = s->nmodels >= PM_MAX_MODELS;
    pthread_mutex_unlock(&s->lock);
    if (dup)
        return pm_errorf(PM_EINVAL, "model '%s' is given twice", name);
    if (full)
        return pm_errorf(PM_EINVAL, "at most %d models", PM_MAX_MODELS);
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
    pm_model_opts mo = {.threads = s->cfg.threads, .precision = PM_PREC_FP32, .seed = 0};
    double t0 = pm_now();
    int loaded = 0;
    for (; loaded < s->cfg.workers; loaded++)
        if ((rc = d->load(d->needs_file ? path : NULL, &mo, &m.states[loaded])))
            goto unload_states;
    pm_memlaw law;
    pm_memlaw_seed(&law, d, m.states[0]);
    load_law(s, &law);
    pthread_mutex_lock(&s->lock);
    if (model_find(s, name) || s->nmodels >= PM_MAX_MODELS) {
        pthread_mutex_unlock(&s->lock);
        rc = pm_errorf(PM_EINVAL, "model '%s' was loaded twice at once", name);
        goto unload_states;
    }
    s->models[s->nmodels] = m;
    s->laws[s->nmodels] = law;
    s->nmodels++;
    pthread_mutex_unlock(&s->lock);
    pm_logkv(PM_LOG_INFO, "memlaw", "memory law in use", "model", name, "a_bytes", fmt_u(law.a, (char[32]){0}),
             "b_bytes_per_pixel", fmt_d(law.b, (char[32]){0}), "source", law.source, NULL);
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
}

/* ------------------------------------------------------------- workers */

typedef struct run_ctx {
    pm_sched *s;
    pm_job *job;
} run_ctx;

static int on_progress(void *user, int value, int max)
{
    run_ctx *rc = user;
    pm_sched *s = rc->s;
    pm_job *j = rc->job;
    atomic_store(&j->progress_value, value);
    atomic_store(&j->progress_max, max);
    if (atomic_load(&j->cancel) || atomic_load(&s->abort_running))
        return 1;
    double now = pm_now();
    if (j->deadline > 0 && now > j->deadline) {
        atomic_store(&j->timed_out, 1);
        return 1;
    }
    pthread_mutex_lock(&s->lock);
    if (now - j->last_progress_event >= PM_PROGRESS_INTERVAL || value >= max) {
        j->last_progress_event = now;
        j->progress_reported++;
        emit_locked(s, PM_EV_PROGRESS, j);
    }
    pthread_mutex_unlock(&s->lock);
    return 0;
}

/* The testing delay: waits cfg.job_delay_ms in 20 ms steps, reported as progress. */
static int test_delay(run_ctx *rc)
{
    int ms = rc->s->cfg.job_delay_ms;
    int steps = (ms + 19) / 20;
    for (int i = 0; i < steps; i++) {
        if (on_progress(rc, i, steps))
            return pm_errorf(PM_ECANCELLED, "stopped during the test delay");
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return 0;
}

/* Runs job j on worker w; returns the outcome code with the detail set. On
 * success *out holds the encoded result (caller owns). */
static int run_job(pm_worker *w, pm_job *j, uint8_t **out, size_t *out_len)
{
    pm_sched *s = w->s;
    int rc;
    uint8_t *image = j->image, *mask = j->mask;
    size_t image_len = j->image_len, mask_len = j->mask_len;
    uint8_t *image_file = NULL, *mask_file = NULL;
    run_ctx rctx = {s, j};
    pm_run_ctx ctx = {.progress = on_progress, .progress_user = &rctx};

    if (s->cfg.job_delay_ms > 0 && (rc = test_delay(&rctx)))
        return rc;
    if (!j->info.sync) {
        char path[4096];
        pm_input_path(s->data_dir, j->info.id, 0, path, sizeof path);
        if ((rc = pm_read_file(path, 0, &image_file, &image_len)))
            return pm_errorf(rc, "the job's saved image %s cannot be read: %s", path, pm_error_detail());
        image = image_file;
        if (j->info.has_mask) {
            pm_input_path(s->data_dir, j->info.id, 1, path, sizeof path);
            if ((rc = pm_read_file(path, 0, &mask_file, &mask_len))) {
                rc = pm_errorf(rc, "the job's saved mask %s cannot be read: %s", path, pm_error_detail());
                goto free_inputs;
            }
            mask = mask_file;
        }
    }
    pm_loaded_model *m = model_find(s, j->info.spec.model);
    pm_job_exec x = {
        .spec = &j->info.spec,
        .image = image,
        .image_len = image_len,
        .mask = j->info.has_mask ? mask : NULL,
        .mask_len = mask_len,
        .limits = &s->cfg.limits,
        .model = m ? m->desc : NULL,
        .model_state = m ? m->states[w->index] : NULL,
        .ctx = &ctx,
    };
    if (atomic_load(&j->cancel) || atomic_load(&s->abort_running))
        rc = pm_errorf(PM_ECANCELLED, "cancelled before it started");
    else
        rc = pm_job_execute(&x, out, out_len);

free_inputs:
    pm_free(mask_file);
    pm_free(image_file);
    return rc;
}

static void remove_inputs(pm_sched *s, const char *id)
{
    char path[4096];
    pm_input_path(s->data_dir, id, 0, path, sizeof path);
    unlink(path);
    pm_input_path(s->data_dir, id, 1, path, sizeof path);
    unlink(path);
}

/* Stores an asynchronous job's result; fills result_path/bytes in *info and
 * the seconds the write, fsync and rename took in *write_s. */
static int store_result(pm_sched *s, pm_job_info *info, const uint8_t *data, size_t len, double *write_s)
{
    char rel[256], abs[4096], dir[4096];
    pm_result_relpath(info->id, info->spec.format, info->finished, rel, sizeof rel);
    snprintf(abs, sizeof abs, "%s/%s", s->data_dir, rel);
    snprintf(dir, sizeof dir, "%s", abs);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    int rc = pm_mkdirs(dir);
    if (rc)
        return rc;
    double t0 = pm_now();
    rc = pm_write_file_atomic(abs, data, len);
    *write_s = pm_now() - t0;
    if (rc)
        return pm_errorf(rc, "cannot write the result %s: %s", abs, pm_error_detail());
    snprintf(info->result_path, sizeof info->result_path, "%s", rel);
    info->result_bytes = len;
    return 0;
}

/* Pixels the law of a job is applied to: the model's working pixels (a
 * crop region, a shrunk image), or the whole image when they are unknown. */
static uint64_t law_pixels(const pm_job_info *info)
{
    uint64_t px = (uint64_t)info->width * (uint64_t)info->height;
    return info->work_pixels > 0 && info->work_pixels < px ? info->work_pixels : px;
}

static uint64_t options_extra_locked(const pm_sched *s, const pm_job_info *info);

/* Locked: the memory law of j's model learns its measured peak; returns 1
 * when the law was raised (the caller saves the laws). */
static int learn_peak_locked(pm_sched *s, const pm_job_info *fin)
{
    for (int i = 0; i < s->nmodels; i++) {
        if (strcmp(s->models[i].desc->name, fin->spec.model) != 0)
            continue;
        pm_memlaw *law = &s->laws[i];
        uint64_t px = law_pixels(fin), whole = (uint64_t)fin->width * (uint64_t)fin->height;
        /* the full-size buffers and the job's options (input size) are outside the law */
        uint64_t full = (px < whole ? 9 * whole : 0) + options_extra_locked(s, fin);
        uint64_t before = pm_memlaw_predict(law, px);
        if (fin->peak_bytes <= full || !pm_memlaw_observe(law, px, fin->peak_bytes - full))
            return 0;
        pm_logkv(PM_LOG_WARN, "memlaw_raised", "a job used more memory than its model's law predicted; law raised",
                 "model", law->model, "job", fin->id, "predicted", fmt_u((double)before, (char[32]){0}),
                 "measured", fmt_u((double)fin->peak_bytes, (char[32]){0}), "a_bytes", fmt_u(law->a, (char[32]){0}),
                 "b_bytes_per_pixel", fmt_d(law->b, (char[32]){0}), NULL);
        return 1;
    }
    return 0;
}

static void save_laws(pm_sched *s)
{
    pm_memlaw copy[PM_MAX_MODELS];
    pthread_mutex_lock(&s->lock);
    int n = s->nmodels;
    memcpy(copy, s->laws, sizeof copy[0] * (size_t)n);
    pthread_mutex_unlock(&s->lock);
    char path[4096];
    memlaw_path(s, path, sizeof path);
    if (pm_memlaw_save(path, copy, n))
        pm_warn("memlaw_save_failed", "%s", pm_error_detail());
}

static pm_loaded_model *model_of_job(pm_sched *s, const pm_job_info *j)
{
    return model_find(s, j->spec.model);
}

/* Locked: a job ended; updates the drain-rate estimate. */
static void note_finish_locked(pm_sched *s)
{
    double now = pm_now();
    if (s->last_finish > 0 && s->busy_after_finish) {
        double dt = now - s->last_finish;
        s->finish_interval = s->finish_interval > 0 ? 0.8 * s->finish_interval + 0.2 * dt : dt;
    }
    s->last_finish = now;
    s->busy_after_finish = queue_count(s) > 0;
}

static void finish_job(pm_worker *w, pm_job *j, int rc, uint8_t *result, size_t result_len, double t0)
{
    pm_sched *s = w->s;
    pm_job_info fin;
    char detail[512];
    snprintf(detail, sizeof detail, "%s", pm_error_detail());

    pthread_mutex_lock(&s->lock);
    fin = j->info;
    pthread_mutex_unlock(&s->lock);
    fin.finished = pm_wall_time();

    int interrupted = 0;
    if (rc == 0) {
        fin.state = PM_JOB_DONE;
    } else if (rc == PM_ECANCELLED && atomic_load(&j->cancel)) {
        fin.state = PM_JOB_CANCELLED;
        fin.error_code = PM_ECANCELLED;
        snprintf(fin.error, sizeof fin.error, "cancelled by a client while running");
    } else if (rc == PM_ECANCELLED && atomic_load(&j->timed_out)) {
        fin.state = PM_JOB_FAILED;
        fin.error_code = PM_ETIMEOUT;
        snprintf(fin.error, sizeof fin.error,
                 "the job ran longer than the server's limit of %g s (--job-timeout); try a smaller image",
                 s->cfg.job_timeout);
    } else if (rc == PM_ECANCELLED && atomic_load(&s->abort_running)) {
        interrupted = 1;
        fin.state = PM_JOB_CANCELLED;
        fin.error_code = PM_ECANCELLED;
        snprintf(fin.error, sizeof fin.error, "the server shut down before the job finished");
    } else {
        fin.state = PM_JOB_FAILED;
        fin.error_code = rc;
        snprintf(fin.error, sizeof fin.error, "%s", detail[0] ? detail : pm_strerror(rc));
    }

    double write_s = -1;
    if (!fin.sync && !interrupted) {
        if (fin.state == PM_JOB_DONE) {
            int r = store_result(s, &fin, result, result_len, &write_s);
            if (r) {
                fin.state = PM_JOB_FAILED;
                fin.error_code = r;
                snprintf(fin.error, sizeof fin.error, "%s", pm_error_detail());
            }
        }
        int r = pm_journal_transition(s->journal, &fin, PM_JOB_RUNNING);
        if (r)
            pm_error("journal_failed", "job %s: %s", fin.id, pm_error_detail());
    }
    double secs = pm_now() - t0;

    int law_raised = 0;
    pthread_mutex_lock(&s->lock);
    w->job = NULL;
    s->running--;
    s->mem_reserved -= s->mem_reserved >= j->info.predicted_bytes ? j->info.predicted_bytes : s->mem_reserved;
    if (write_s >= 0)
        pm_hist_observe(&s->disk_write, write_s);
    pm_loaded_model *lm = model_of_job(s, &fin);
    if (interrupted && !fin.sync) {
        /* Left as running in the journal: the next start runs it again. */
        j->info.state = PM_JOB_QUEUED;
        pm_free(result);
    } else {
        j->info = fin;
        j->info.queue_position = -1;
        pm_hist_observe(&s->run_seconds, secs);
        switch (fin.state) {
        case PM_JOB_DONE:
            s->done++;
            if (lm)
                lm->done++;
            law_raised = learn_peak_locked(s, &fin);
            s->avg_run = s->avg_run > 0 ? 0.8 * s->avg_run + 0.2 * secs : secs;
            if (fin.sync) {
                j->result = result;
                j->result_len = result_len;
                j->info.result_bytes = result_len;
            } else {
                pm_free(result);
                s->results_bytes += fin.result_bytes;
                s->results_count++;
            }
            emit_locked(s, PM_EV_DONE, j);
            break;
        case PM_JOB_CANCELLED:
            s->cancelled++;
            if (lm)
                lm->cancelled++;
            pm_free(result);
            emit_locked(s, PM_EV_CANCELLED, j);
            break;
        default:
            s->failed++;
            if (lm)
                lm->failed++;
            if (fin.error_code == PM_ETIMEOUT)
                s->timed_out++;
            pm_free(result);
            emit_locked(s, PM_EV_FAILED, j);
            break;
        }
    }
    note_finish_locked(s);
    pthread_cond_broadcast(&s->done_cv);
    pthread_cond_broadcast(&s->work_cv); /* memory was released: a waiting job may fit now */
    pthread_cond_signal(&s->janitor_cv);
    pthread_mutex_unlock(&s->lock);

    if (law_raised)
        save_laws(s);
    if (!fin.sync && !interrupted)
        remove_inputs(s, fin.id);
    if (interrupted && !fin.sync)
        pm_info("job_interrupted", "job %s interrupted by shutdown; it runs again at the next start", fin.id);
    else if (interrupted)
        pm_info("job_interrupted", "synchronous job %s interrupted by shutdown", fin.id);
    else if (fin.state == PM_JOB_DONE)
        pm_logkv(PM_LOG_INFO, "job_done", "job finished", "job", fin.id, "model", fin.spec.model, NULL);
    else
        pm_logkv(PM_LOG_INFO, fin.state == PM_JOB_CANCELLED ? "job_cancelled" : "job_failed", fin.error, "job",
                 fin.id, NULL);
}

static double process_cpu_seconds(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0)
        return 0;
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static const pm_memlaw *law_of_locked(const pm_sched *s, const char *model)
{
    for (int i = 0; i < s->nmodels; i++)
        if (strcmp(s->models[i].desc->name, model) == 0)
            return &s->laws[i];
    return NULL;
}

/* A job's predicted peak: the law at its working pixels, plus, when the
 * model works on part of the image, the full-size buffers the worker holds
 * meanwhile (decoded input and mask, output, encoded result: 9 bytes a pixel). */
static uint64_t predict_with(const pm_memlaw *law, const pm_job_info *info, uint64_t extra)
{
    uint64_t px = (uint64_t)info->width * (uint64_t)info->height, wp = law_pixels(info);
    return pm_memlaw_predict(law, wp) + (wp < px ? 9 * px : 0) + extra;
}

/* Locked: what a job's own options add to its model's law, which is fitted
 * at the model's defaults: for a colorization job at another input size, the
 * engine's estimate at that size less its estimate at the default (never
 * below 0). The estimate takes only the engine's leaf lock (model.h). */
static uint64_t options_extra_locked(const pm_sched *s, const pm_job_info *info)
{
    int S = info->spec.input_size;
    if (info->spec.task != PM_TASK_COLORIZE || S <= 0)
        return 0;
    for (int i = 0; i < s->nmodels; i++) {
        const pm_loaded_model *m = &s->models[i];
        if (strcmp(m->desc->name, info->spec.model) != 0)
            continue;
        if (!m->desc->mem_estimate || !m->states)
            return 0;
        uint64_t at = m->desc->mem_estimate(m->states[0], info->width, info->height, S);
        uint64_t def = m->desc->mem_estimate(m->states[0], info->width, info->height, 0);
        return at > def ? at - def : 0;
    }
    return 0;
}

static uint64_t predict_locked(const pm_sched *s, const pm_job_info *info)
{
    const pm_memlaw *law = law_of_locked(s, info->spec.model);
    return law ? predict_with(law, info, options_extra_locked(s, info)) : 0;
}

/* Locked: 1 when `owner` already runs cfg.owner_max_running jobs. */
static int owner_full_locked(const pm_sched *s, const char *owner)
{
    if (s->cfg.owner_max_running <= 0 || !owner[0])
        return 0;
    int n = 0;
    for (int i = 0; i < s->cfg.workers; i++)
        n += s->workers[i].job && strcmp(s->workers[i].job->info.spec.owner, owner) == 0;
    return n >= s->cfg.owner_max_running;
}

/* Locked: the lane's next job (with ageing), passing over those whose owner
 * is at its running bound (in run order). */
static pm_jq_node *lane_pick_locked(pm_sched *s, int lane, double now)
{
    pm_jq_node *c = pm_jq_pick_aged(&s->lanes[lane], now, s->cfg.aging_seconds);
    if (!c || !owner_full_locked(s, job_of(c)->info.spec.owner))
        return c;
    for (c = pm_jq_next(&s->lanes[lane], NULL); c; c = pm_jq_next(&s->lanes[lane], c))
        if (!owner_full_locked(s, job_of(c)->info.spec.owner))
            return c;
    return NULL;
}

/* Locked: takes the job that may start now off its lane, or NULL (see admit.h). */
static pm_job *pick_locked(pm_sched *s)
{
    if (queue_count(s) == 0)
        return NULL;
    double now = pm_now();
    pm_jq_node *cand[PM_LANES];
    pm_admit_view v = {
        .free_slots = s->cfg.workers - s->running,
        .paused = s->gate.paused,
        .budget = s->cfg.mem_budget,
        .reserved = s->mem_reserved,
        .last_lane = s->last_lane,
    };
    for (int lane = 0; lane < PM_LANES; lane++) {
        cand[lane] = lane_pick_locked(s, lane, now);
        v.present[lane] = cand[lane] != NULL;
        if (cand[lane]) {
            pm_job *c = job_of(cand[lane]);
            if (!c->info.predicted_bytes)
                c->info.predicted_bytes = predict_locked(s, &c->info); /* recovered from the journal */
            v.predicted[lane] = c->info.predicted_bytes;
            if (lane == PM_LANE_NORMAL && s->cfg.aging_seconds > 0)
                v.normal_starving = now - cand[lane]->enqueued > PM_ADMIT_STARVING_PERIODS * s->cfg.aging_seconds;
        }
    }
    int lane = pm_admit_choose(&v);
    if (lane < 0)
        return NULL;
    pm_jq_remove(&s->lanes[lane], cand[lane]);
    s->last_lane = lane;
    return job_of(cand[lane]);
}

static void *worker_main(void *arg)
{
    pm_worker *w = arg;
    pm_sched *s = w->s;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        pm_job *j = NULL;
        while (!s->stop && (s->draining || !(j = pick_locked(s))))
            pthread_cond_wait(&s->work_cv, &s->lock);
        if (s->stop) {
            pthread_mutex_unlock(&s->lock);
            break;
        }
        s->mem_reserved += j->info.predicted_bytes;
        j->info.state = PM_JOB_RUNNING;
        j->info.started = pm_wall_time();
        pm_hist_observe(&s->queue_wait, j->info.started > j->info.created ? j->info.started - j->info.created : 0);
        j->info.attempts++;
        j->info.queue_position = -1;
        j->deadline = s->cfg.job_timeout > 0 ? pm_now() + s->cfg.job_timeout : 0;
        j->last_progress_event = 0;
        w->job = j;
        s->running++;
        pm_job_info snap = j->info;
        pthread_mutex_unlock(&s->lock);

        double t0 = pm_now();
        if (!snap.sync) {
            int r = pm_journal_transition(s->journal, &snap, PM_JOB_QUEUED);
            if (r)
                pm_error("journal_failed", "job %s: %s", snap.id, pm_error_detail());
        }
        pthread_mutex_lock(&s->lock);
        emit_locked(s, PM_EV_STARTED, j);
        pthread_mutex_unlock(&s->lock);
        pm_logkv(PM_LOG_DEBUG, "job_started", "job started", "job", snap.id, NULL);

        uint8_t *result = NULL;
        size_t result_len = 0;
        pm_error_clear();
        pm_mem_scope scope;
        double cpu0 = process_cpu_seconds();
        pm_mem_scope_begin(&scope);
        int rc = run_job(w, j, &result, &result_len);
        pm_mem_scope_end(&scope);
        pthread_mutex_lock(&s->lock);
        j->info.peak_bytes = scope.peak;
        j->info.cpu_seconds = process_cpu_seconds() - cpu0;
        pthread_mutex_unlock(&s->lock);
        finish_job(w, j, rc, result, result_len, t0);
    }
    return NULL;
}

/* ------------------------------------------------------------- janitor */

/* Unlinks expired jobs (and, while over the cap, the oldest results) from the
 * table into *victims; caller frees them. */
static void collect_victims_locked(pm_sched *s, pm_job **victims)
{
    double now = pm_wall_time();
    for (pm_job *j = s->oldest, *next; j; j = next) {
        next = j->next;
        int finished = j->info.state == PM_JOB_DONE || j->info.state == PM_JOB_FAILED ||
                       j->info.state == PM_JOB_CANCELLED;
        if (!finished || j->info.sync || now - j->info.finished < s->cfg.result_ttl)
            continue;
        table_remove_locked(s, j);
        if (j->info.state == PM_JOB_DONE) {
            s->results_bytes -= j->info.result_bytes;
            s->results_count--;
        }
        j->hnext = *victims;
        *victims = j;
    }
    while (s->cfg.results_max_bytes > 0 && s->results_bytes > s->cfg.results_max_bytes) {
        pm_job *old = NULL;
        for (pm_job *j = s->oldest; j; j = j->next)
            if (j->info.state == PM_JOB_DONE && !j->info.sync && (!old || j->info.finished < old->info.finished))
                old = j;
        if (!old)
            break;
        table_remove_locked(s, old);
        s->results_bytes -= old->info.result_bytes;
        s->results_count--;
        old->hnext = *victims;
        *victims = old;
    }
}

static void dispose_victims(pm_sched *s, pm_job *victims)
{
    while (victims) {
        pm_job *j = victims;
        victims = j->hnext;
        if (j->info.result_path[0]) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", s->data_dir, j->info.result_path);
            unlink(path);
        }
        pm_journal_forget(s->journal, j->info.id);
        pm_debug("job_expired", "job %s forgotten (result expired or evicted)", j->info.id);
        job_free(j);
    }
}

static void *janitor_main(void *arg)
{
    pm_sched *s = arg;
    double period = s->cfg.result_ttl / 4;
    if (period > 30)
        period = 30;
    if (period < 0.2)
        period = 0.2;
    pthread_mutex_lock(&s->lock);
    while (!s->stop) {
        pm_job *victims = NULL;
        collect_victims_locked(s, &victims);
        if (victims) {
            pthread_mutex_unlock(&s->lock);
            dispose_victims(s, victims);
            pthread_mutex_lock(&s->lock);
            continue;
        }
        struct timespec ts;
        pm_deadline(&ts, period);
        pthread_cond_timedwait(&s->janitor_cv, &s->lock, &ts);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

int pm_sched_start(pm_sched *s)
{
    for (int i = 0; i < s->cfg.workers; i++) {
        s->workers[i].s = s;
        s->workers[i].index = i;
        if (pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]) != 0)
            return pm_errorf(PM_ENOMEM, "cannot start worker thread %d", i);
        s->workers_started++;
    }
    if (pthread_create(&s->janitor, NULL, janitor_main, s) != 0)
        return pm_errorf(PM_ENOMEM, "cannot start the janitor thread");
    s->janitor_started = 1;
    return 0;
}

/* ------------------------------------------------------------- submit */

/* Checks a submission as pm_sched_submit describes; resolves spec->model. */
static int validate(pm_sched *s, pm_job_spec *spec, const uint8_t *image, size_t image_len, const char *image_name,
                    const uint8_t *mask, size_t mask_len, const char *mask_name, int *w, int *h, uint64_t *work_px)
{
    if (spec->priority < 0 || spec->priority > PM_PRIORITY_MAX)
        return pm_errorf(PM_EINVAL, "priority must be 0 to %d, not %d", PM_PRIORITY_MAX, spec->priority);
    if (spec->quality < 0 || spec->quality > 100)
        return pm_errorf(PM_EINVAL, "quality must be 1 to 100, not %d", spec->quality);
    pthread_mutex_lock(&s->lock);
    int rc = resolve_model_locked(s, spec);
    pthread_mutex_unlock(&s->lock);
    if (rc)
        return rc;
    return pm_job_check_inputs(spec, &s->cfg.limits, image, image_len, image_name, mask, mask_len, mask_name, w,
                               h, work_px);
}

/* Locked: jobs per second the queue drains at (measured between finishes
 * while jobs waited; before that, from the run time); 0 when unknown. */
static double drain_rate_locked(const pm_sched *s)
{
    if (s->finish_interval > 0)
        return 1.0 / s->finish_interval;
    if (s->avg_run > 0)
        return (double)s->cfg.workers / s->avg_run;
    return 0;
}

/* Locked: seconds a job queued now would wait, from the drain rate; 0 when unknown. */
static double expected_wait_locked(const pm_sched *s)
{
    double rate = drain_rate_locked(s);
    return rate > 0 ? (double)(queue_count(s) + s->reserved + 1) / rate : 0;
}

/* Locked: 1 when a submission must be refused now (draining, queue full by length or by expected wait). */
static int full_locked(const pm_sched *s)
{
    if (s->draining || queue_count(s) + s->reserved >= s->cfg.queue_max)
        return 1;
    return s->cfg.max_wait > 0 && queue_count(s) + s->reserved > 0 && expected_wait_locked(s) > s->cfg.max_wait;
}

static int busy_error(pm_sched *s)
{
    if (s->draining)
        return pm_errorf(PM_EBUSY, "the server is shutting down and accepts no new jobs; retry on another instance or later");
    if (queue_count(s) + s->reserved >= s->cfg.queue_max)
        return pm_errorf(PM_EBUSY, "the queue is full (%d jobs, --queue-max); retry later", s->cfg.queue_max);
    return pm_errorf(PM_EBUSY,
                     "the queue is full: a new job would wait about %.0f s (%d queued, draining %.2f jobs/s), "
                     "more than --max-wait %g s; retry later",
                     expected_wait_locked(s), queue_count(s), drain_rate_locked(s), s->cfg.max_wait);
}

static double gib(uint64_t b)
{
    return (double)b / (1024.0 * 1024.0 * 1024.0);
}

/* PM_ETOOBIG when the job's prediction exceeds the whole budget, naming the
 * largest size that fits. `work_px`: the model's working pixels (0 = the image's). */
static int check_fits_budget(pm_sched *s, const pm_job_spec *spec, int w, int h, uint64_t work_px,
                             uint64_t *predicted)
{
    pm_job_info probe;
    memset(&probe, 0, sizeof probe);
    probe.spec = *spec;
    probe.width = w;
    probe.height = h;
    probe.work_pixels = work_px;
    pthread_mutex_lock(&s->lock);
    const pm_memlaw *lp = law_of_locked(s, spec->model);
    pm_memlaw law;
    uint64_t extra = 0;
    if (lp) {
        law = *lp;
        extra = options_extra_locked(s, &probe);
    }
    pthread_mutex_unlock(&s->lock);
    *predicted = 0;
    if (!lp)
        return 0;
    *predicted = predict_with(&law, &probe, extra);
    uint64_t budget = s->cfg.mem_budget;
    if (!budget || *predicted <= budget)
        return 0;
    int fw, fh;
    pm_memlaw_fit_size(&law, budget, w, h, &fw, &fh);
    if (fw == 0 || fh == 0)
        return pm_errorf(PM_ETOOBIG,
                         "this %dx%d %s job needs about %.2f GiB; the budget is %.2f GiB (--mem-budget) and "
                         "even the smallest image needs %.2f GiB with model %s; raise --mem-budget",
                         w, h, pm_task_name(spec->task), gib(*predicted), gib(budget), gib((uint64_t)law.a),
                         spec->model);
    return pm_errorf(PM_ETOOBIG,
                     "this %dx%d %s job needs about %.2f GiB; the budget is %.2f GiB (--mem-budget); the largest "
                     "image that fits is about %dx%d (%.1f MP); send a smaller image or raise --mem-budget",
                     w, h, pm_task_name(spec->task), gib(*predicted), gib(budget), fw, fh,
                     (double)fw * (double)fh / 1e6);
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
    uint8_t *d = pm_malloc(n ? n : 1);
    if (d && n)
        memcpy(d, p, n);
    return d;
}

static int submit_impl(pm_sched *s, const pm_job_spec *spec_in, int sync, const uint8_t *image,
                       size_t image_len, const char *image_name, const uint8_t *mask, size_t mask_len,
                       const char *mask_name, pm_job_info *info)
{
    int rc;
    pm_job_spec spec = *spec_in;
    if (spec.format == PM_FMT_UNKNOWN) { /* the input's format; an unreadable one fails validation */
        enum pm_format in = pm_format_sniff(image, image_len);
        spec.format = in == PM_FMT_UNKNOWN ? PM_FMT_PNG : in;
    }
    int w = 0, h = 0;

    /* Refuse early when full, before spending time decoding. */
    pthread_mutex_lock(&s->lock);
    int full = full_locked(s);
    rc = full ? busy_error(s) : 0;
    pthread_mutex_unlock(&s->lock);
    if (rc)
        return rc;
    uint64_t work_px = 0;
    if ((rc = validate(s, &spec, image, image_len, image_name, mask, mask_len, mask_name, &w, &h, &work_px)))
        return rc;
    uint64_t predicted;
    if ((rc = check_fits_budget(s, &spec, w, h, work_px, &predicted)))
        return rc;

    pm_job *j = job_new();
    if (!j)
        return pm_errorf(PM_ENOMEM, "out of memory accepting a job");
    j->info.spec = spec;
    j->info.sync = sync;
    j->info.has_mask = mask != NULL;
    j->info.width = w;
    j->info.height = h;
    j->info.created = pm_wall_time();
    j->info.state = PM_JOB_QUEUED;
    j->info.predicted_bytes = predicted;
    j->info.work_pixels = work_px;
    j->info.lane = pm_admit_lane((uint64_t)w * (uint64_t)h, s->cfg.fast_lane_pixels);
    j->qnode.priority = spec.priority;

    pthread_mutex_lock(&s->lock);
    full = full_locked(s);
    if (full) {
        rc = busy_error(s);
        pthread_mutex_unlock(&s->lock);
        goto free_job;
    }
    s->reserved++;
    pthread_mutex_unlock(&s->lock);

    if (sync) {
        j->image = dup_bytes(image, image_len);
        j->image_len = image_len;
        if (mask) {
            j->mask = dup_bytes(mask, mask_len);
            j->mask_len = mask_len;
        }
        if (!j->image || (mask && !j->mask)) {
            rc = pm_errorf(PM_ENOMEM, "out of memory accepting a job");
            goto unreserve;
        }
    } else {
        char path[4096];
        pm_input_path(s->data_dir, j->info.id, 0, path, sizeof path);
        if ((rc = pm_write_file_atomic(path, image, image_len))) {
            rc = pm_errorf(rc, "cannot save the uploaded image: %s", pm_error_detail());
            goto unreserve;
        }
        if (mask) {
            pm_input_path(s->data_dir, j->info.id, 1, path, sizeof path);
            if ((rc = pm_write_file_atomic(path, mask, mask_len))) {
                rc = pm_errorf(rc, "cannot save the uploaded mask: %s", pm_error_detail());
                goto remove_files;
            }
        }
        if ((rc = pm_journal_insert(s->journal, &j->info, &j->seq)))
            goto remove_files;
    }

    pthread_mutex_lock(&s->lock);
    s->reserved--;
    j->qnode.enqueued = pm_now();
    pm_jq_push(&s->lanes[j->info.lane], &j->qnode); /* cannot fail: the lanes are unbounded, the slot reserved */
    table_add_locked(s, j);
    s->submitted++;
    emit_locked(s, PM_EV_QUEUED, j);
    snapshot_locked(s, j, info);
    pthread_cond_broadcast(&s->work_cv); /* the worker that can take it may not be the first to wake */
    pthread_mutex_unlock(&s->lock);
    pm_logkv(PM_LOG_DEBUG, "job_queued", "job queued", "job", info->id, "task", pm_task_name(spec.task), "model",
             spec.model, NULL);
    return 0;

remove_files:
    remove_inputs(s, j->info.id);
unreserve:
    pthread_mutex_lock(&s->lock);
    s->reserved--;
    pthread_mutex_unlock(&s->lock);
free_job:
    job_free(j);
    return rc;
}

typedef struct submit_args {
    pm_sched *s;
    const pm_job_spec *spec;
    int sync;
    const uint8_t *image, *mask;
    size_t image_len, mask_len;
    const char *image_name, *mask_name;
    pm_job_info *info;
    int rc;
    char detail[512];
} submit_args;

static void *submit_thread(void *arg)
{
    submit_args *a = arg;
    a->rc = submit_impl(a->s, a->spec, a->sync, a->image, a->image_len, a->image_name, a->mask, a->mask_len,
                        a->mask_name, a->info);
    if (a->rc)
        snprintf(a->detail, sizeof a->detail, "%s", pm_error_detail());
    return NULL;
}

/* Runs the submission on a thread with a full-size stack: callers may be
 * HTTP threads with small stacks, and decoding goes deep into the codecs. */
int pm_sched_submit(pm_sched *s, const pm_job_spec *spec, int sync, const uint8_t *image,
                    size_t image_len, const char *image_name, const uint8_t *mask,
                    size_t mask_len, const char *mask_name, pm_job_info *info)
{
    submit_args a = {.s = s, .spec = spec, .sync = sync, .image = image, .image_len = image_len,
                     .image_name = image_name, .mask = mask, .mask_len = mask_len, .mask_name = mask_name,
                     .info = info};
    pthread_attr_t attr;
    pthread_t t;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 8u << 20);
    int started = pthread_create(&t, &attr, submit_thread, &a) == 0;
    pthread_attr_destroy(&attr);
    if (!started)
        return pm_errorf(PM_ENOMEM, "cannot start a thread to check the upload; the server is out of resources");
    pthread_join(t, NULL);
    if (a.rc)
        pm_errorf(a.rc, "%s", a.detail);
    return a.rc;
}

int pm_sched_wait(pm_sched *s, const char *id, pm_job_info *info, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    pthread_mutex_lock(&s->lock);
    pm_job *j = find_locked(s, id);
    if (!j || !j->info.sync) {
        pthread_mutex_unlock(&s->lock);
        return pm_errorf(PM_ENOENT, "no synchronous job %s", id);
    }
    while (j->info.state == PM_JOB_QUEUED || j->info.state == PM_JOB_RUNNING)
        pthread_cond_wait(&s->done_cv, &s->lock);
    if (info)
        snapshot_locked(s, j, info);
    table_remove_locked(s, j);
    pthread_mutex_unlock(&s->lock);

    int rc = 0;
    if (j->info.state == PM_JOB_DONE) {
        *out = j->result;
        *out_len = j->result_len;
        j->result = NULL;
    } else {
        rc = pm_errorf(j->info.error_code ? j->info.error_code : PM_EINTERNAL, "%s", j->info.error);
    }
    job_free(j);
    return rc;
}

int pm_sched_get(pm_sched *s, const char *id, pm_job_info *info)
{
    pthread_mutex_lock(&s->lock);
    pm_job *j = find_locked(s, id);
    if (j)
        snapshot_locked(s, j, info);
    pthread_mutex_unlock(&s->lock);
    if (!j)
        return pm_errorf(PM_ENOENT, "no job %s: the id is unknown or the job expired (results are kept %g s)", id,
                         s->cfg.result_ttl);
    return 0;
}

int pm_sched_cancel(pm_sched *s, const char *id, pm_job_info *info)
{
    pthread_mutex_lock(&s->lock);
    pm_job *j = find_locked(s, id);
    if (!j) {
        pthread_mutex_unlock(&s->lock);
        return pm_errorf(PM_ENOENT, "no job %s: the id is unknown or the job expired", id);
    }
    if (j->info.state == PM_JOB_RUNNING) {
        atomic_store(&j->cancel, 1);
        snapshot_locked(s, j, info);
        pthread_mutex_unlock(&s->lock);
        pm_logkv(PM_LOG_INFO, "job_cancel_requested", "cancel requested for a running job", "job", id, NULL);
        return 0;
    }
    if (j->info.state != PM_JOB_QUEUED) {
        snapshot_locked(s, j, info);
        pthread_mutex_unlock(&s->lock);
        return pm_errorf(PM_EINVAL, "job %s already ended (%s); nothing to cancel", id,
                         pm_job_state_name(info->state));
    }
    /* Queued: take it out now; journal outside the lock, then announce. */
    pm_jq_remove(&s->lanes[j->info.lane], &j->qnode);
    atomic_store(&j->cancel, 1);
    pm_job_info fin = j->info;
    pthread_mutex_unlock(&s->lock);

    fin.state = PM_JOB_CANCELLED;
    fin.finished = pm_wall_time();
    fin.error_code = PM_ECANCELLED;
    snprintf(fin.error, sizeof fin.error, "cancelled by a client while queued");
    if (!fin.sync) {
        int r = pm_journal_transition(s->journal, &fin, PM_JOB_QUEUED);
        if (r)
            pm_error("journal_failed", "job %s: %s", fin.id, pm_error_detail());
    }
    pthread_mutex_lock(&s->lock);
    j->info = fin;
    j->info.queue_position = -1;
    s->cancelled++;
    pm_loaded_model *lm = model_of_job(s, &fin);
    if (lm)
        lm->cancelled++;
    emit_locked(s, PM_EV_CANCELLED, j);
    snapshot_locked(s, j, info);
    pthread_cond_broadcast(&s->done_cv);
    pthread_mutex_unlock(&s->lock);
    if (!fin.sync)
        remove_inputs(s, fin.id);
    pm_logkv(PM_LOG_INFO, "job_cancelled", "job cancelled while queued", "job", id, NULL);
    return 0;
}

int pm_sched_result_path(pm_sched *s, const pm_job_info *info, char *buf, size_t len)
{
    if (info->state != PM_JOB_DONE || !info->result_path[0])
        return pm_errorf(PM_ENOENT, "job %s has no result", info->id);
    snprintf(buf, len, "%s/%s", s->data_dir, info->result_path);
    return 0;
}

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
    st->queue_depth = queue_count(s);
    st->lane_depth[0] = s->lanes[0].count;
    st->lane_depth[1] = s->lanes[1].count;
    st->drain_rate = drain_rate_locked(s);
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
        int k = (s->trans_head - s->ntrans + i + 16) % 16;
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
}

int pm_sched_retry_after(pm_sched *s)
{
    pthread_mutex_lock(&s->lock);
    double rate = drain_rate_locked(s);
    if (rate <= 0)
        rate = (double)s->cfg.workers / 5.0; /* nothing measured yet: 5 s a job */
    /* How many jobs must leave before a new one is within both bounds. */
    double room = (double)s->cfg.queue_max;
    if (s->cfg.max_wait > 0 && rate * s->cfg.max_wait < room)
        room = rate * s->cfg.max_wait;
    double over = (double)(queue_count(s) + s->reserved + 1) - room;
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
    int n = 0;
    pthread_mutex_lock(&s->lock);
    *total = s->running + queue_count(s);
    for (int i = 0; i < s->cfg.workers && n < max; i++)
        if (s->workers[i].job)
            snapshot_locked(s, s->workers[i].job, &out[n++]);
    for (int lane = 0; lane < PM_LANES; lane++) {
        int pos = 0;
        for (pm_jq_node *q = pm_jq_next(&s->lanes[lane], NULL); q && n < max; q = pm_jq_next(&s->lanes[lane], q)) {
            out[n] = job_of(q)->info;
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
    int q = 0, r = 0;
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < s->cfg.workers; i++)
        r += s->workers[i].job && strcmp(s->workers[i].job->info.spec.owner, owner) == 0;
    for (int lane = 0; lane < PM_LANES; lane++)
        for (pm_jq_node *n = pm_jq_next(&s->lanes[lane], NULL); n; n = pm_jq_next(&s->lanes[lane], n))
            q += strcmp(job_of(n)->info.spec.owner, owner) == 0;
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
    int queued = queue_count(s), running = s->running;
    if (t) {
        int k = s->trans_head;
        s->trans[k].t = pm_wall_time();
        s->trans[k].gauge = usage;
        s->trans[k].paused = t > 0;
        s->trans_head = (k + 1) % 16;
        if (s->ntrans < 16)
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
        snapshot_locked(s, j, &out[n++]);
    pthread_mutex_unlock(&s->lock);
    return n;
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
        pm_job *j = job_of(q);
        if (!j->info.sync)
            continue;
        pm_jq_remove(&s->lanes[lane], q);
        j->info.state = PM_JOB_CANCELLED;
        j->info.finished = pm_wall_time();
        j->info.error_code = PM_ECANCELLED;
        snprintf(j->info.error, sizeof j->info.error,
                 "the server is shutting down; the request was not run, send it again");
        s->cancelled++;
        emit_locked(s, PM_EV_CANCELLED, j);
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
    int queued = queue_count(s);
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
        job_free(j);
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
