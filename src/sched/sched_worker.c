/* The scheduler's workers: picking the job that may start, running it, finishing it (result, journal, memory law), and the janitor. */
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
        pm_sched_emit_locked(s, PM_EV_PROGRESS, j);
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
    pm_loaded_model *m = pm_sched_model_find(s, j->info.spec.model);
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
    if (rc == 0 && s->cfg.test_leak_bytes > 0)
        pm_job_test_leak(s->cfg.test_leak_bytes);

free_inputs:
    pm_free(mask_file);
    pm_free(image_file);
    return rc;
}

void pm_sched_remove_inputs(pm_sched *s, const char *id)
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
        uint64_t full = (px < whole ? PM_MEMLAW_FULL_IMAGE_BYTES * whole : 0) + pm_sched_options_extra_locked(s, fin);
        uint64_t before = pm_memlaw_predict(law, px);
        if (fin->peak_bytes <= full || !pm_memlaw_observe(law, px, fin->peak_bytes - full))
            return 0;
        pm_logkv(PM_LOG_WARN, "memlaw_raised", "a job used more memory than its model's law predicted; law raised",
                 "model", law->model, "job", fin->id, "predicted", pm_sched_fmt_u((double)before, (char[32]){0}),
                 "measured", pm_sched_fmt_u((double)fin->peak_bytes, (char[32]){0}), "a_bytes", pm_sched_fmt_u(law->a, (char[32]){0}),
                 "b_bytes_per_pixel", pm_sched_fmt_d(law->b, (char[32]){0}), NULL);
        return 1;
    }
    return 0;
}

static void save_laws(pm_sched *s)
{
    pm_memlaw copy[PM_SCHED_MAX_MODELS];
    pthread_mutex_lock(&s->lock);
    int n = s->nmodels;
    memcpy(copy, s->laws, sizeof copy[0] * (size_t)n);
    pthread_mutex_unlock(&s->lock);
    char path[4096];
    pm_sched_memlaw_path(s, path, sizeof path);
    if (pm_memlaw_save(path, copy, n))
        pm_warn("memlaw_save_failed", "%s", pm_error_detail());
}

static pm_loaded_model *model_of_job(pm_sched *s, const pm_job_info *j)
{
    return pm_sched_model_find(s, j->spec.model);
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
    s->busy_after_finish = pm_sched_queue_count(s) > 0;
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
            pm_sched_emit_locked(s, PM_EV_DONE, j);
            break;
        case PM_JOB_CANCELLED:
            s->cancelled++;
            if (lm)
                lm->cancelled++;
            pm_free(result);
            pm_sched_emit_locked(s, PM_EV_CANCELLED, j);
            break;
        default:
            s->failed++;
            if (lm)
                lm->failed++;
            if (fin.error_code == PM_ETIMEOUT)
                s->timed_out++;
            pm_free(result);
            pm_sched_emit_locked(s, PM_EV_FAILED, j);
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
        pm_sched_remove_inputs(s, fin.id);
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

const pm_memlaw *pm_sched_law_of_locked(const pm_sched *s, const char *model)
{
    for (int i = 0; i < s->nmodels; i++)
        if (strcmp(s->models[i].desc->name, model) == 0)
            return &s->laws[i];
    return NULL;
}

/* A job's predicted peak: the law at its working pixels, plus, when the
 * model works on part of the image, the full-size buffers the worker holds
 * meanwhile (PM_MEMLAW_FULL_IMAGE_BYTES a pixel). */
uint64_t pm_sched_predict_with(const pm_memlaw *law, const pm_job_info *info, uint64_t extra)
{
    uint64_t px = (uint64_t)info->width * (uint64_t)info->height, wp = law_pixels(info);
    return pm_memlaw_predict(law, wp) + (wp < px ? PM_MEMLAW_FULL_IMAGE_BYTES * px : 0) + extra;
}

/* Locked: what a job's own options add to its model's law, which is fitted
 * at the model's defaults: for a colorization job at another input size, the
 * engine's estimate at that size less its estimate at the default (never
 * below 0). The estimate takes only the engine's leaf lock (model.h). */
uint64_t pm_sched_options_extra_locked(const pm_sched *s, const pm_job_info *info)
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
    const pm_memlaw *law = pm_sched_law_of_locked(s, info->spec.model);
    return law ? pm_sched_predict_with(law, info, pm_sched_options_extra_locked(s, info)) : 0;
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
    if (!c || !owner_full_locked(s, pm_sched_job_of(c)->info.spec.owner))
        return c;
    for (c = pm_jq_next(&s->lanes[lane], NULL); c; c = pm_jq_next(&s->lanes[lane], c))
        if (!owner_full_locked(s, pm_sched_job_of(c)->info.spec.owner))
            return c;
    return NULL;
}

/* Locked: takes the job that may start now off its lane, or NULL (see admit.h). */
static pm_job *pick_locked(pm_sched *s)
{
    if (pm_sched_queue_count(s) == 0)
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
            pm_job *c = pm_sched_job_of(cand[lane]);
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
    return pm_sched_job_of(cand[lane]);
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
        pm_sched_emit_locked(s, PM_EV_STARTED, j);
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
        pm_sched_table_remove_locked(s, j);
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
        pm_sched_table_remove_locked(s, old);
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
        pm_sched_job_free(j);
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
    for (int i = 0; i < s->cfg.workers && !s->cfg.store; i++) { /* the fleet's workers are other processes */
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
