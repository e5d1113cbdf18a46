/* Admission decisions (see admit.h). */
#include "sched/admit.h"

int pm_admit_fits(uint64_t budget, uint64_t reserved, uint64_t predicted)
{
    return budget == 0 || reserved == 0 || (predicted <= budget && reserved <= budget - predicted);
}

int pm_admit_choose(const pm_admit_view *v)
{
    if (v->paused || v->free_slots <= 0)
        return -1;
    if (v->normal_starving && v->present[PM_LANE_NORMAL] &&
        !pm_admit_fits(v->budget, v->reserved, v->predicted[PM_LANE_NORMAL]))
        return -1; /* let memory free up for it */
    /* Alternate: after a fast job, the normal lane goes first, and after anything else the fast lane. */
    int order[2] = {PM_LANE_FAST, PM_LANE_NORMAL};
    if (v->last_lane == PM_LANE_FAST) {
        order[0] = PM_LANE_NORMAL;
        order[1] = PM_LANE_FAST;
    }
    for (int i = 0; i < 2; i++) {
        int lane = order[i];
        if (v->present[lane] && pm_admit_fits(v->budget, v->reserved, v->predicted[lane]))
            return lane;
    }
    return -1;
}

int pm_admit_lane(uint64_t pixels, uint64_t fast_lane_pixels)
{
    return pixels <= fast_lane_pixels ? PM_LANE_FAST : PM_LANE_NORMAL;
}
