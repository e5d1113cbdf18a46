/* Admission decisions, as plain functions of the scheduler's state (the
 * scheduler calls them under its lock; the unit tests call them directly).
 *
 * A queued job may start when a compute slot is free, intake is not paused,
 * and its predicted peak fits: reserved (the predictions of the running jobs)
 * + predicted <= budget. Two lanes: 0 = fast (small images), 1 = normal. Each
 * lane offers one candidate, its next job by priority with ageing (FIFO
 * within a priority); a lane's candidate that does not fit blocks only its
 * own lane, so small jobs overtake large ones that wait for memory. The lanes
 * alternate when both have a candidate that fits. Against starvation, a
 * normal-lane candidate that has waited long (normal_starving) and does not
 * fit stops the fast lane too until it starts. */
#ifndef PM_SCHED_ADMIT_H
#define PM_SCHED_ADMIT_H

#include <stdint.h>

enum { PM_LANE_FAST = 0, PM_LANE_NORMAL = 1, PM_LANES = 2 };

typedef struct pm_admit_view {
    int free_slots;        /* workers without a job */
    int paused;            /* the gate holds intake */
    uint64_t budget;       /* bytes; 0 = no budget */
    uint64_t reserved;     /* predictions of the running jobs */
    int last_lane;         /* lane of the job started last (-1 = none) */
    int present[PM_LANES]; /* the lane has a candidate */
    uint64_t predicted[PM_LANES]; /* its predicted peak */
    int normal_starving;   /* the normal lane's candidate has waited past the starvation limit */
} pm_admit_view;

/* A normal-lane job that has waited this many ageing periods holds the fast
 * lane while it does not fit, so that memory frees up for it. */
#define PM_ADMIT_STARVING_PERIODS 4

/* 1 when a job predicted at `predicted` bytes may start beside `reserved`:
 * it fits the budget, or nothing else runs (a job alone always may, so that
 * a law raised after admission cannot block the queue for ever). */
int pm_admit_fits(uint64_t budget, uint64_t reserved, uint64_t predicted);

/* The lane whose candidate starts now, or -1 for none. */
int pm_admit_choose(const pm_admit_view *v);

/* The lane of an image of `pixels` working pixels. */
int pm_admit_lane(uint64_t pixels, uint64_t fast_lane_pixels);

#endif
