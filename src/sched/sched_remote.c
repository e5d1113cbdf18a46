/* Submission when the jobs live in a store (sched/store.h: the fleet's Redis):
 * the checks ran in submit_impl; here the job gets its id and lane and goes
 * to the store. */
#include "sched/admit.h"
#include "sched/sched_internal.h"
#include "sched/store.h"
#include "base/base.h"

#include <string.h>

int pm_sched_remote_submit(pm_sched *s, const pm_job_spec *spec, int sync, const uint8_t *image, size_t image_len,
                           const uint8_t *mask, size_t mask_len, int w, int h, uint64_t work_px, uint64_t predicted,
                           pm_job_info *info)
{
    pm_job *j = pm_sched_job_new(); /* only for its fresh id */
    if (!j)
        return pm_errorf(PM_ENOMEM, "out of memory accepting a job");
    pm_job_info job = j->info;
    pm_sched_job_free(j);
    job.spec = *spec;
    job.sync = sync;
    job.has_mask = mask != NULL;
    job.width = w;
    job.height = h;
    job.created = pm_wall_time();
    job.state = PM_JOB_QUEUED;
    job.predicted_bytes = predicted;
    job.work_pixels = work_px;
    job.lane = pm_admit_lane((uint64_t)w * (uint64_t)h, s->cfg.fast_lane_pixels);
    job.queue_position = -1;
    pm_jobstore *st = s->cfg.store;
    int rc = st->ops->admit(st, &job);
    if (!rc)
        rc = st->ops->enqueue(st, &job, image, image_len, mask, mask_len);
    if (rc)
        return rc;
    pthread_mutex_lock(&s->lock);
    s->submitted++;
    pthread_mutex_unlock(&s->lock);
    *info = job;
    pm_logkv(PM_LOG_DEBUG, "job_queued", "job queued in the fleet", "job", job.id, "task", pm_task_name(spec->task),
             "model", spec->model, NULL);
    return 0;
}
