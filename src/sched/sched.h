/* Jobs: the state machine, the bounded priority queue, the worker pool, the
 * SQLite journal and the result store.
 *
 * A job is queued -> running -> done | failed | cancelled; a submission that is
 * refused never becomes a job (the server counts it as rejected). Every
 * accepted asynchronous job is in the journal (with its input files under the
 * data directory) before pm_sched_submit returns, so that a restart runs the
 * queued and running jobs again; results are files under
 * DATA/outputs/YYYY/MM/DD/<id>.<ext> that expire after a time-to-live or when
 * the total exceeds a cap (oldest first).
 *
 * Synchronous jobs (the /api/v1/inpaint and /colorize routes) share the queue
 * and the workers but are not journaled: their input and result stay in
 * memory and belong to the request that waits for them.
 *
 * Thread safety: every pm_sched_* function may be called from any thread. */
#ifndef PM_SCHED_H
#define PM_SCHED_H

#include "pixmend.h"
#include "models/model.h"
#include "monitor/sampler.h"
#include "sched/memlaw.h"

#include <stdint.h>

typedef enum pm_job_state {
    PM_JOB_QUEUED = 0,
    PM_JOB_RUNNING,
    PM_JOB_DONE,
    PM_JOB_FAILED,
    PM_JOB_CANCELLED,
    PM_JOB_REJECTED,
} pm_job_state;

#define PM_JOB_ID_LEN 32     /* hex characters */
#define PM_PRIORITY_MAX 9    /* priorities 0..9; 9 runs first */
#define PM_PRIORITY_DEFAULT 5
#define PM_SCHED_MAX_MODELS 8  /* models one scheduler loads */
#define PM_SCHED_TRANSITIONS 16 /* admission pauses/resumes kept for the stats */

/* "queued", "running", ... */
const char *pm_job_state_name(pm_job_state s);
/* "inpaint", "colorize" */
const char *pm_task_name(enum pm_task t);
/* -1 if unknown */
int pm_task_parse(const char *s);

/* What the client asked for. */
typedef struct pm_job_spec {
    enum pm_task task;
    char model[32];        /* "" = the default model for the task */
    int priority;          /* 0..9 */
    enum pm_format format; /* output format; PM_FMT_UNKNOWN = the input's (resolved on submission) */
    int quality;           /* 1..100; 0 = like the input when the formats match (a JPEG's
                              estimated quality, WebP lossless), else the encoder's default */
    int hd_strategy;       /* pm_hd_strategy (inpainting) */
    int mask_resize;       /* 1: resize a mask of another size (nearest neighbour) */
    int input_size;        /* colorization: the network's square input (64..2048, multiple of 32) */
    char owner[32];        /* name of the API key that submitted it; "" = none (no --api-keys) */
    int mask_dilate;       /* inpainting: grow (> 0) or shrink (< 0) the mask by this many pixels */
    int strip_metadata;    /* 1: the result carries no EXIF, XMP, ICC, DPI or PNG text */
    int strip_gps;         /* 1: the result's metadata loses its location */
    int jpeg_reencode;     /* 1: JPEG to JPEG encodes the whole image (no kept blocks) */
} pm_job_spec;

/* Fills in the defaults (inpaint, priority 5, the input's format, auto strategy). */
void pm_job_spec_default(pm_job_spec *spec);

/* A copy of a job's state, safe to read without any lock. */
typedef struct pm_job_info {
    char id[PM_JOB_ID_LEN + 1];
    pm_job_state state;
    pm_job_spec spec;
    int sync;                /* 1: a synchronous request's job (not journaled) */
    int has_mask;            /* 1: a mask was given */
    int queue_position;      /* 0 = next to run; -1 when not queued */
    int progress_value, progress_max;
    int attempts;            /* how many times a worker started it */
    int width, height;       /* of the input image */
    double created, started, finished; /* wall-clock seconds; 0 = not yet */
    int error_code;          /* PM_E* of a failed job, 0 otherwise */
    char error[512];         /* the failure's sentence */
    char result_path[256];   /* relative to the data directory; "" when none */
    uint64_t result_bytes;
    /* resources (not journaled: a recovered job measures again) */
    int lane;                /* 0 fast (small image), 1 normal */
    uint64_t predicted_bytes;/* the model's memory law for this image */
    uint64_t work_pixels;    /* pixels the model works on at once (a crop region, a shrunk image);
                                0 = the whole image (also after a restart: not journaled) */
    uint64_t peak_bytes;     /* measured: most bytes the job's worker held above its start */
    double cpu_seconds;      /* process CPU time over the run (other jobs running beside it included) */
} pm_job_info;

/* Events, in the order the state changes happened (one global sequence). */
typedef enum pm_job_event_type {
    PM_EV_QUEUED = 0,
    PM_EV_STARTED,
    PM_EV_PROGRESS,
    PM_EV_DONE,
    PM_EV_FAILED,
    PM_EV_CANCELLED,
} pm_job_event_type;

const char *pm_job_event_name(pm_job_event_type t);

/* Called with the scheduler's lock held: it must not block or call back into
 * the scheduler. `job` is valid only during the call. */
typedef void (*pm_job_event_fn)(void *user, pm_job_event_type type, uint64_t seq,
                                const pm_job_info *job);

typedef struct pm_sched_config {
    const char *data_dir;       /* created if missing; journal, inputs, outputs */
    int workers;                /* compute workers; default 1 */
    int threads;                /* engine threads per worker; 0 = all cores */
    int precision;              /* enum pm_precision of the neural models; 0 = fp32 */
    int queue_max;              /* queued jobs at most; default 64 */
    double job_timeout;         /* seconds a job may run; 0 = no limit */
    double result_ttl;          /* seconds a finished job and its result are kept */
    uint64_t results_max_bytes; /* cap on the result files' total size; 0 = none */
    pm_limits limits;           /* decode limits for inputs */
    int job_delay_ms;           /* testing: each job first waits this long in
                                   cancellable 20 ms steps reported as progress */
    uint64_t test_leak_bytes;   /* testing only: each finished job keeps this many
                                   bytes for good (pm_job_test_leak), a planted leak */
    /* admission (design.md, Admission) */
    uint64_t mem_budget;        /* bytes the running jobs' predictions may add up to; 0 = no budget */
    double pause_at, resume_below; /* the gate's marks, fractions (0.85, 0.75) */
    double aging_seconds;       /* a waiting job gains one priority step per this many seconds; 0 = none */
    uint64_t fast_lane_pixels;  /* images of at most this many pixels use the fast lane */
    double max_wait;            /* refuse (429) when the expected wait exceeds this many seconds; 0 = no bound */
    int owner_max_running;      /* jobs of one owner (spec.owner, not "") running at once; the
                                   others wait and jobs of other owners go first; 0 = no bound */
    struct pm_jobstore *store;  /* NULL: jobs live in this process (journal, queue, data directory);
                                   else there (sched/store.h; the fleet's Redis): no worker thread
                                   starts and `workers` only sizes the model states. Not owned. */
} pm_sched_config;

void pm_sched_default_config(pm_sched_config *cfg);

typedef struct pm_sched pm_sched;

/* Opens (or creates) the data directory and the journal, and recovers it:
 * queued and running jobs are queued again (running ones count as
 * interrupted), finished jobs are remembered until they expire. Workers do not
 * start until pm_sched_start. Caller owns *out (pm_sched_destroy). */
int pm_sched_create(const pm_sched_config *cfg, pm_sched **out);

/* Loads model `name` (through the registry) once for each worker. `path` is
 * its weights file, NULL for models that need none. Before pm_sched_start only. */
int pm_sched_load_model(pm_sched *s, const char *name, const char *path);

/* The same for a description given directly (tests, engines outside the registry). */
int pm_sched_add_model(pm_sched *s, const pm_model_desc *d, const char *path);

/* Starts the workers and the janitor. */
int pm_sched_start(pm_sched *s);

/* Sets the function that receives job events; NULL to stop. */
void pm_sched_set_event_fn(pm_sched *s, pm_job_event_fn fn, void *user);

/* Accepts a job: checks its inputs, the image from its header only and the
 * mask decoded (limits, formats, mask size; errors PM_EINVAL for a missing
 * mask or a mask for colorization, PM_EEMPTY, PM_EFORMAT/PM_ECORRUPT/
 * PM_ETRUNCATED/PM_EEXTENSION when the image's header or the mask is
 * unreadable; damage inside the image's pixel data fails the job instead),
 * PM_ETOOBIG, PM_EMISMATCH when the mask size differs and mask_resize is 0,
 * PM_EMASKEMPTY when the mask (grown or shrunk by mask_dilate) selects nothing,
 * PM_EINVAL when |mask_dilate| exceeds PM_MASK_DILATE_MAX,
 * PM_ENOENT when the model is not loaded), checks the queue bound (PM_EBUSY
 * when --queue-max jobs wait, when the expected wait at the measured drain
 * rate exceeds max_wait, and while draining) and the memory budget
 * (PM_ETOOBIG when the model's law predicts more than the whole budget for
 * this image; the detail names the largest size that fits), saves the
 * inputs, journals the job and queues it in its lane.
 * The bytes are copied; the caller keeps its buffers. `sync` 1 makes a
 * synchronous job (no journal, no files; collect it with pm_sched_wait).
 * On success *info is the new job's snapshot. */
int pm_sched_submit(pm_sched *s, const pm_job_spec *spec, int sync, const uint8_t *image,
                    size_t image_len, const char *image_name, const uint8_t *mask,
                    size_t mask_len, const char *mask_name, pm_job_info *info);

/* Waits until synchronous job `id` ends, then forgets it. On done, *out and *out_len
 * receive the encoded result (caller owns; pm_free) and 0 is returned;
 * otherwise the job's error code (PM_ECANCELLED when cancelled) with the
 * detail set. *info (may be NULL) receives the final snapshot. */
int pm_sched_wait(pm_sched *s, const char *id, pm_job_info *info, uint8_t **out, size_t *out_len);

/* Snapshot of job `id`: 0 or PM_ENOENT. */
int pm_sched_get(pm_sched *s, const char *id, pm_job_info *info);

/* Cancels a queued or running job (a running one stops at its next progress
 * report). Returns 0 with *info the snapshot after the request; PM_ENOENT; or
 * PM_EINVAL when the job already ended (its state is in *info). */
int pm_sched_cancel(pm_sched *s, const char *id, pm_job_info *info);

/* Absolute path of a finished job's result file in buf, or PM_ENOENT. */
int pm_sched_result_path(pm_sched *s, const pm_job_info *info, char *buf, size_t len);

typedef struct pm_sched_stats {
    uint64_t submitted;          /* accepted since start */
    uint64_t done, failed, cancelled, timed_out;
    uint64_t recovered;          /* re-queued from the journal at start */
    int queue_depth, queue_max;
    int running;
    int workers, threads;
    int draining;
    double avg_run_seconds;      /* moving average of finished runs; 0 = none yet */
    uint64_t results_count, results_bytes;
    int jobs_known;              /* jobs in memory (queued, running, finished) */
    pm_hist queue_wait;          /* seconds from submission to start, per start */
    pm_hist run_seconds;         /* seconds from start to end, per finished run */
    pm_hist disk_write;          /* seconds to write, fsync and rename one result file */
    int lane_depth[2];           /* queued jobs per lane: fast, normal */
    double drain_rate;           /* jobs finished per second while the queue was busy; 0 = not measured yet */
    /* admission */
    uint64_t mem_budget, mem_reserved;
    double aging_seconds, max_wait;
    uint64_t fast_lane_pixels;
    int paused;
    uint64_t pauses, resumes;
    double gauge, high_mark, low_mark;
    const char *gauge_source;    /* static string */
    int ntransitions;            /* the last ones, oldest first */
    struct { double t, gauge; int paused; } transitions[PM_SCHED_TRANSITIONS];
    /* per loaded model: outcomes and the memory law */
    int nmodels;
    struct {
        char name[32];
        enum pm_task task;
        uint64_t done, failed, cancelled;
        pm_memlaw law;
    } models[PM_SCHED_MAX_MODELS];
    /* the fleet (jobs in Redis; all 0 on a single box) */
    int fleet;                   /* 1: the queue is the fleet's */
    int fleet_pending;           /* entries taken by a worker and not acknowledged yet */
    uint64_t fleet_reclaimed;    /* entries taken over from a stopped worker (XAUTOCLAIM) */
    int fleet_nworkers;          /* workers that reported within the last seconds */
    char fleet_down[192];        /* non-empty while the fleet's Redis cannot be reached: why */
    struct {
        char name[64];
        int running, slots;
        uint64_t budget, largest_pixels;
    } fleet_workers[16];
} pm_sched_stats;

void pm_sched_get_stats(pm_sched *s, pm_sched_stats *st);

/* Seconds a client should wait before trying again when the queue is full
 * (by length or by expected wait): from the measured drain rate (else the
 * run time and the number of workers) and how far the queue is over. */
int pm_sched_retry_after(pm_sched *s);

/* Feeds the gate one reading of the gauge (see gate.h: the highest of host,
 * cgroup and GPU memory in use). Returns +1 when it paused intake, -1 when it
 * resumed, 0 otherwise; each transition is logged (admission_paused or
 * admission_resumed, with gauge, marks and source) and counted. While paused
 * no job starts; submissions still queue. */
int pm_sched_admission_update(pm_sched *s, double usage, const char *source);
int pm_sched_paused(pm_sched *s);

/* The last `max` jobs known, newest first; returns how many. */
int pm_sched_recent(pm_sched *s, pm_job_info *out, int max);

/* Runs one job's inputs through a model as a worker does (decode, engine,
 * encode) and measures it: *heap_peak = the most bytes the calling thread
 * held through pm_* above its start, *rss_peak = VmHWM growth over the run
 * (after resetting it through /proc/self/clear_refs; 0 where that is not
 * possible), *seconds = wall time. For `pixmend calibrate`. */
/* Testing only (serve --test-leak-bytes): keeps `bytes` of touched memory
 * reachable from a static list until the process ends, so that RSS grows by
 * about that much per call while leak checkers see no lost block. */
void pm_job_test_leak(uint64_t bytes);

int pm_job_measure(const pm_model_desc *d, void *state, const pm_job_spec *spec, const pm_limits *lim,
                   const uint8_t *image, size_t image_len, const uint8_t *mask, size_t mask_len,
                   uint64_t *heap_peak, uint64_t *rss_peak, double *seconds);

/* Up to `max` queued jobs in the order they will run, and the running ones.
 * Returns how many were written; *total receives how many there are. */
int pm_sched_list(pm_sched *s, pm_job_info *out, int max, int *total);

/* How many of `owner`'s jobs (spec.owner) are queued and running now. */
void pm_sched_owner_counts(pm_sched *s, const char *owner, int *queued, int *running);

/* The loaded models: name and task of model i (i < count); returns count. */
int pm_sched_models(pm_sched *s, const pm_model_desc **descs, int max);
/* The model a job of `task` gets when it names none; NULL if none is loaded. */
const char *pm_sched_default_model(pm_sched *s, enum pm_task task);

/* Draining: no new job starts (queued ones stay in the journal for the next
 * run) and submissions fail with PM_EBUSY. Waits up to `grace` seconds for
 * running jobs; ones still running then are interrupted without a journal
 * entry, so the next run runs them again. Returns the number interrupted. */
int pm_sched_drain(pm_sched *s, double grace);
int pm_sched_draining(pm_sched *s);

/* Stops the workers (interrupting running jobs as a drain does), closes the
 * journal, unloads the models and frees everything. NULL is allowed. */
void pm_sched_destroy(pm_sched *s);

#endif
