/* The intake gate: measured memory usage with hysteresis. At or above the
 * high mark intake pauses; it resumes only below the low mark. */
#ifndef PM_SCHED_GATE_H
#define PM_SCHED_GATE_H

#include "monitor/sampler.h"

typedef struct pm_gate {
    double high, low;      /* fractions, e.g. 0.85 and 0.75 */
    int paused;
    uint64_t pauses, resumes;
    double usage;          /* last usage seen, 0..1 */
    const char *source;    /* which reading decided: "host", "cgroup", "gpu0".. (static) */
} pm_gate;

/* Checks 0 < low < high <= 1; PM_EINVAL with a sentence otherwise. */
int pm_gate_init(pm_gate *g, double high, double low);

/* The device usage that the gate watches, from one sample: the highest of
 * host memory in use (total - available) / total, cgroup current / max when
 * limited, and each GPU's used / total. *source names the winner. */
double pm_gate_usage(const pm_sample *s, const char **source);

/* Feeds one usage reading. Returns +1 when this reading paused intake, -1 when
 * it resumed it, 0 when the state did not change. */
int pm_gate_update(pm_gate *g, double usage, const char *source);

#endif
