/* A progress bar on a terminal's stderr. */
#include "cli/progress.h"

#include <stdio.h>
#include <unistd.h>

void pm_bar_init(pm_bar *b, const char *label, int quiet)
{
    b->label = label;
    b->enabled = !quiet && isatty(STDERR_FILENO);
    b->last_pct = -1;
    b->start = pm_now();
}

int pm_bar_update(void *user, int value, int max)
{
    pm_bar *b = user;
    if (!b->enabled || max <= 0)
        return 0;
    int pct = (int)((long long)value * 100 / max);
    if (pct == b->last_pct)
        return 0;
    b->last_pct = pct;
    char bar[31];
    int fill = pct * 30 / 100;
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[30] = '\0';
    fprintf(stderr, "\r%s [%s] %3d%%  %.1fs", b->label, bar, pct, pm_now() - b->start);
    fflush(stderr);
    return 0;
}

void pm_bar_finish(pm_bar *b)
{
    if (b->enabled && b->last_pct >= 0)
        fputc('\n', stderr);
}
