/* Internals of the jobs layer shared by sched.c, run.c and store.c. */
#ifndef PM_SCHED_INTERNAL_H
#define PM_SCHED_INTERNAL_H

#include "sched/jobqueue.h"
#include "sched/sched.h"

#include "sched/admit.h"
#include "sched/gate.h"
#include "sched/journal.h"
#include "sched/memlaw.h"
#include "sched/store.h"
#include "monitor/monitor.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/* One job. Fields under the scheduler's lock unless marked atomic. The
 * scheduler owns every pm_job and frees it when the job is forgotten. */
typedef struct pm_job {
    pm_jq_node qnode;                 /* link in the priority queue */
    struct pm_job *hnext;             /* hash chain */
    struct pm_job *prev, *next;       /* list of all jobs, oldest first */
    pm_job_info info;
    int64_t seq;                      /* submission order (journal rowid) */
    atomic_int cancel;                /* 1: a client asked to cancel */
    atomic_int timed_out;             /* 1: ran past the job timeout */
    atomic_int progress_value, progress_max;
    double deadline;                  /* monotonic; 0 = none */
    double last_progress_event;       /* monotonic time of the last progress event */
    int progress_reported;            /* progress events sent */
    int was_running;                  /* recovery: it was running when the last run stopped */
    int result_missing;               /* recovery: done, but its result file is gone */
    /* synchronous jobs only: */
    uint8_t *image, *mask;            /* owned copies of the inputs (pm_free) */
    size_t image_len, mask_len;
    uint8_t *result;                  /* owned encoded result, handed to the waiter */
    size_t result_len;
} pm_job;

/* --- the scheduler (sched.c: job and model tables, creation, drain;
 * sched_worker.c: workers, finishing jobs, the janitor; sched_submit.c:
 * submission, lookups, cancel; sched_stats.c: statistics and the admission
 * gate). Locking: one mutex (s->lock) guards the table, the queue, every
 * job's fields (except the atomics) and the counters. Nothing slow runs under
 * it: journal commits, file writes, decoding and the models all run outside
 * it. Events are emitted with the lock held so that their order is the order
 * of the state changes. */

#define PM_HASH_BUCKETS 4096
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
    pm_memlaw laws[PM_SCHED_MAX_MODELS]; /* parallel to models */
    int ntrans, trans_head;      /* ring of the last pause/resume transitions */
    struct { double t, gauge; int paused; } trans[PM_SCHED_TRANSITIONS];
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

    pm_loaded_model models[PM_SCHED_MAX_MODELS];
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

/* Shared between the scheduler's files; "_locked": call with s->lock held. */
int pm_sched_queue_count(const pm_sched *s);
pm_job *pm_sched_job_of(pm_jq_node *n);
pm_job *pm_sched_find_locked(pm_sched *s, const char *id);
void pm_sched_table_add_locked(pm_sched *s, pm_job *j);
void pm_sched_table_remove_locked(pm_sched *s, pm_job *j);
void pm_sched_job_free(pm_job *j);
pm_job *pm_sched_job_new(void);
void pm_sched_snapshot_locked(pm_sched *s, const pm_job *j, pm_job_info *out);
void pm_sched_emit_locked(pm_sched *s, pm_job_event_type type, const pm_job *j);
pm_loaded_model *pm_sched_model_find(pm_sched *s, const char *name);
int pm_sched_resolve_model_locked(pm_sched *s, pm_job_spec *spec);
char *pm_sched_fmt_u(double v, char *buf);
char *pm_sched_fmt_d(double v, char *buf);
void pm_sched_memlaw_path(const pm_sched *s, char *buf, size_t len);
void pm_sched_remove_inputs(pm_sched *s, const char *id);
const pm_memlaw *pm_sched_law_of_locked(const pm_sched *s, const char *model);
uint64_t pm_sched_predict_with(const pm_memlaw *law, const pm_job_info *info, uint64_t extra);
uint64_t pm_sched_options_extra_locked(const pm_sched *s, const pm_job_info *info);
double pm_sched_drain_rate_locked(const pm_sched *s);
double pm_sched_expected_wait_locked(const pm_sched *s);

/* --- sched_remote.c: submission when jobs live in a store (sched/store.h) */

/* Stores and queues a checked job in s->cfg.store; *info is its snapshot. */
int pm_sched_remote_submit(pm_sched *s, const pm_job_spec *spec, int sync, const uint8_t *image, size_t image_len,
                           const uint8_t *mask, size_t mask_len, int w, int h, uint64_t work_px, uint64_t predicted,
                           pm_job_info *info);

/* --- run.c: decoding, running a model, encoding */

/* Decodes `data` with limits; on success *out is the caller's (pm_image_free). */
int pm_job_decode(const uint8_t *data, size_t len, const pm_limits *lim, const char *name,
                  const char *what, pm_image *out);

/* Checks inputs as pm_sched_submit describes (spec->model already resolved).
 * `work_px` (may be NULL) receives the pixels the model will work on at once
 * (pm_inpaint_work_pixels for inpainting with the strategy of the spec; the
 * image's pixels otherwise). */
int pm_job_check_inputs(const pm_job_spec *spec, const pm_limits *lim, const uint8_t *image,
                        size_t image_len, const char *image_name, const uint8_t *mask,
                        size_t mask_len, const char *mask_name, int *w, int *h, uint64_t *work_px);

typedef struct pm_job_exec {
    const pm_job_spec *spec;
    const uint8_t *image;
    size_t image_len;
    const uint8_t *mask;     /* NULL when none */
    size_t mask_len;
    const pm_limits *limits;
    const pm_model_desc *model;
    void *model_state;
    const pm_run_ctx *ctx;
} pm_job_exec;

/* Decodes the inputs, runs the model, encodes the result in spec->format.
 * On success *out (caller owns, pm_free) holds the encoded bytes. */
int pm_job_execute(const pm_job_exec *x, uint8_t **out, size_t *out_len);

/* --- store.c: the data directory */

/* mkdir -p; 0 or PM_EIO with the detail set. */
int pm_mkdirs(const char *path);
/* DATA/inputs/<id>.image or .mask into buf. */
void pm_input_path(const char *data_dir, const char *id, int is_mask, char *buf, size_t len);
/* outputs/YYYY/MM/DD/<id>.<ext> (relative to the data dir, UTC date of `when`). */
void pm_result_relpath(const char *id, enum pm_format f, double when, char *buf, size_t len);

/* Callback for pm_store_sweep: returns 1 to keep the file. */
typedef int (*pm_keep_fn)(void *user, const char *dir_rel, const char *name);
/* Deletes every file under DATA/<sub> (recursively) that keep() does not
 * keep, and the directories left empty. Returns the number of files deleted. */
int pm_store_sweep(const char *data_dir, const char *sub, pm_keep_fn keep, void *user);

#endif
