/* Internals of the jobs layer shared by sched.c, run.c and store.c. */
#ifndef PM_SCHED_INTERNAL_H
#define PM_SCHED_INTERNAL_H

#include "sched/jobqueue.h"
#include "sched/sched.h"

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

/* "png", "jpg", "webp" */
const char *pm_format_ext(enum pm_format f);
/* "image/png", ... */

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
