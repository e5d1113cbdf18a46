/* A one-line progress bar for long sub-commands, shown only on a terminal. */
#ifndef PM_CLI_PROGRESS_H
#define PM_CLI_PROGRESS_H

#include "base/base.h"

typedef struct pm_bar {
    const char *label;
    int enabled;
    int last_pct;
    double start;
} pm_bar;

void pm_bar_init(pm_bar *b, const char *label, int quiet);
/* A pm_progress_fn: `user` is the pm_bar. Never cancels. */
int pm_bar_update(void *user, int value, int max);
void pm_bar_finish(pm_bar *b);

#endif
