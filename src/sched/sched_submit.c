/* Submission (checks, admission bound, journal before the answer), lookups, waiting and cancelling. */
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
    int rc = pm_sched_resolve_model_locked(s, spec);
    pthread_mutex_unlock(&s->lock);
    if (rc)
        return rc;
    return pm_job_check_inputs(spec, &s->cfg.limits, image, image_len, image_name, mask, mask_len, mask_name, w,
                               h, work_px);
}

/* Locked: jobs per second the queue drains at (measured between finishes
 * while jobs waited; before that, from the run time); 0 when unknown. */
double pm_sched_drain_rate_locked(const pm_sched *s)
{
    if (s->finish_interval > 0)
        return 1.0 / s->finish_interval;
    if (s->avg_run > 0)
        return (double)s->cfg.workers / s->avg_run;
    return 0;
}

/* Locked: seconds a job queued now would wait, from the drain rate; 0 when unknown. */
double pm_sched_expected_wait_locked(const pm_sched *s)
{
    double rate = pm_sched_drain_rate_locked(s);
    return rate > 0 ? (double)(pm_sched_queue_count(s) + s->reserved + 1) / rate : 0;
}

/* Locked: 1 when a submission must be refused now (draining, queue full by length or by expected wait). */
static int full_locked(const pm_sched *s)
{
    if (s->draining || pm_sched_queue_count(s) + s->reserved >= s->cfg.queue_max)
        return 1;
    return s->cfg.max_wait > 0 && pm_sched_queue_count(s) + s->reserved > 0 && pm_sched_expected_wait_locked(s) > s->cfg.max_wait;
}

static int busy_error(pm_sched *s)
{
    if (s->draining)
        return pm_errorf(PM_EBUSY, "the server is shutting down and accepts no new jobs; retry on another instance or later");
    if (pm_sched_queue_count(s) + s->reserved >= s->cfg.queue_max)
        return pm_errorf(PM_EBUSY, "the queue is full (%d jobs, --queue-max); retry later", s->cfg.queue_max);
    return pm_errorf(PM_EBUSY,
                     "the queue is full: a new job would wait about %.0f s (%d queued, draining %.2f jobs/s), "
                     "more than --max-wait %g s; retry later",
                     pm_sched_expected_wait_locked(s), pm_sched_queue_count(s), pm_sched_drain_rate_locked(s), s->cfg.max_wait);
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
    const pm_memlaw *lp = pm_sched_law_of_locked(s, spec->model);
    pm_memlaw law;
    uint64_t extra = 0;
    if (lp) {
        law = *lp;
        extra = pm_sched_options_extra_locked(s, &probe);
    }
    pthread_mutex_unlock(&s->lock);
    *predicted = 0;
    if (!lp)
        return 0;
    *predicted = pm_sched_predict_with(&law, &probe, extra);
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

/* Runs on the caller's thread, HTTP threads with small stacks included:
 * the image is only probed and the mask decoded (pm_job_check_inputs). */
int pm_sched_submit(pm_sched *s, const pm_job_spec *spec_in, int sync, const uint8_t *image,
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

    /* Refuse early when full, before spending time on the inputs. */
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
    if (s->cfg.store) /* the fleet: the job is stored and queued in Redis (sched_remote.c) */
        return pm_sched_remote_submit(s, &spec, sync, image, image_len, mask, mask_len, w, h, work_px, predicted,
                                      info);

    pm_job *j = pm_sched_job_new();
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
    pm_sched_table_add_locked(s, j);
    s->submitted++;
    pm_sched_emit_locked(s, PM_EV_QUEUED, j);
    pm_sched_snapshot_locked(s, j, info);
    pthread_cond_broadcast(&s->work_cv); /* the worker that can take it may not be the first to wake */
    pthread_mutex_unlock(&s->lock);
    pm_logkv(PM_LOG_DEBUG, "job_queued", "job queued", "job", info->id, "task", pm_task_name(spec.task), "model",
             spec.model, NULL);
    return 0;

remove_files:
    pm_sched_remove_inputs(s, j->info.id);
unreserve:
    pthread_mutex_lock(&s->lock);
    s->reserved--;
    pthread_mutex_unlock(&s->lock);
free_job:
    pm_sched_job_free(j);
    return rc;
}

int pm_sched_wait(pm_sched *s, const char *id, pm_job_info *info, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (s->cfg.store)
        return s->cfg.store->ops->wait(s->cfg.store, id, info, out, out_len);
    pthread_mutex_lock(&s->lock);
    pm_job *j = pm_sched_find_locked(s, id);
    if (!j || !j->info.sync) {
        pthread_mutex_unlock(&s->lock);
        return pm_errorf(PM_ENOENT, "no synchronous job %s", id);
    }
    while (j->info.state == PM_JOB_QUEUED || j->info.state == PM_JOB_RUNNING)
        pthread_cond_wait(&s->done_cv, &s->lock);
    if (info)
        pm_sched_snapshot_locked(s, j, info);
    pm_sched_table_remove_locked(s, j);
    pthread_mutex_unlock(&s->lock);

    int rc = 0;
    if (j->info.state == PM_JOB_DONE) {
        *out = j->result;
        *out_len = j->result_len;
        j->result = NULL;
    } else {
        rc = pm_errorf(j->info.error_code ? j->info.error_code : PM_EINTERNAL, "%s", j->info.error);
    }
    pm_sched_job_free(j);
    return rc;
}

int pm_sched_get(pm_sched *s, const char *id, pm_job_info *info)
{
    if (s->cfg.store)
        return s->cfg.store->ops->get(s->cfg.store, id, info);
    pthread_mutex_lock(&s->lock);
    pm_job *j = pm_sched_find_locked(s, id);
    if (j)
        pm_sched_snapshot_locked(s, j, info);
    pthread_mutex_unlock(&s->lock);
    if (!j)
        return pm_errorf(PM_ENOENT, "no job %s: the id is unknown or the job expired (results are kept %g s)", id,
                         s->cfg.result_ttl);
    return 0;
}

int pm_sched_cancel(pm_sched *s, const char *id, pm_job_info *info)
{
    if (s->cfg.store)
        return s->cfg.store->ops->cancel(s->cfg.store, id, info);
    pthread_mutex_lock(&s->lock);
    pm_job *j = pm_sched_find_locked(s, id);
    if (!j) {
        pthread_mutex_unlock(&s->lock);
        return pm_errorf(PM_ENOENT, "no job %s: the id is unknown or the job expired", id);
    }
    if (j->info.state == PM_JOB_RUNNING) {
        atomic_store(&j->cancel, 1);
        pm_sched_snapshot_locked(s, j, info);
        pthread_mutex_unlock(&s->lock);
        pm_logkv(PM_LOG_INFO, "job_cancel_requested", "cancel requested for a running job", "job", id, NULL);
        return 0;
    }
    if (j->info.state != PM_JOB_QUEUED) {
        pm_sched_snapshot_locked(s, j, info);
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
    pm_loaded_model *lm = pm_sched_model_find(s, fin.spec.model);
    if (lm)
        lm->cancelled++;
    pm_sched_emit_locked(s, PM_EV_CANCELLED, j);
    pm_sched_snapshot_locked(s, j, info);
    pthread_cond_broadcast(&s->done_cv);
    pthread_mutex_unlock(&s->lock);
    if (!fin.sync)
        pm_sched_remove_inputs(s, fin.id);
    pm_logkv(PM_LOG_INFO, "job_cancelled", "job cancelled while queued", "job", id, NULL);
    return 0;
}

int pm_sched_result_path(pm_sched *s, const pm_job_info *info, char *buf, size_t len)
{
    if (s->cfg.store)
        return s->cfg.store->ops->result_path(s->cfg.store, info, buf, len);
    if (info->state != PM_JOB_DONE || !info->result_path[0])
        return pm_errorf(PM_ENOENT, "job %s has no result", info->id);
    snprintf(buf, len, "%s/%s", s->data_dir, info->result_path);
    return 0;
}
