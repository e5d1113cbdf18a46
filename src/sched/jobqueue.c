/* The bounded priority queue of jobs (see jobqueue.h). */
#include "sched/jobqueue.h"

#include <math.h>
#include <string.h>

void pm_jq_init(pm_jobqueue *q, int max)
{
    memset(q, 0, sizeof *q);
    q->max = max;
}

int pm_jq_push(pm_jobqueue *q, pm_jq_node *n)
{
    if (n->queued || n->priority < 0 || n->priority >= PM_JQ_LEVELS || q->count >= q->max)
        return -1;
    int p = n->priority;
    n->next = NULL;
    n->prev = q->tail[p];
    if (q->tail[p])
        q->tail[p]->next = n;
    else
        q->head[p] = n;
    q->tail[p] = n;
    n->queued = 1;
    q->count++;
    return 0;
}

pm_jq_node *pm_jq_peek(const pm_jobqueue *q)
{
    for (int p = PM_JQ_LEVELS - 1; p >= 0; p--)
        if (q->head[p])
            return q->head[p];
    return NULL;
}

int pm_jq_remove(pm_jobqueue *q, pm_jq_node *n)
{
    if (!n->queued)
        return 0;
    int p = n->priority;
    if (n->prev)
        n->prev->next = n->next;
    else
        q->head[p] = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        q->tail[p] = n->prev;
    n->prev = n->next = NULL;
    n->queued = 0;
    q->count--;
    return 1;
}

pm_jq_node *pm_jq_pop(pm_jobqueue *q)
{
    pm_jq_node *n = pm_jq_peek(q);
    if (n)
        pm_jq_remove(q, n);
    return n;
}

int pm_jq_position(const pm_jobqueue *q, const pm_jq_node *n)
{
    if (!n->queued)
        return -1;
    int pos = 0;
    for (int p = PM_JQ_LEVELS - 1; p > n->priority; p--)
        for (const pm_jq_node *m = q->head[p]; m; m = m->next)
            pos++;
    for (const pm_jq_node *m = n->prev; m; m = m->prev)
        pos++;
    return pos;
}

pm_jq_node *pm_jq_next(const pm_jobqueue *q, const pm_jq_node *n)
{
    int p;
    if (!n) {
        p = PM_JQ_LEVELS - 1;
    } else {
        if (n->next)
            return n->next;
        p = n->priority - 1;
    }
    for (; p >= 0; p--)
        if (q->head[p])
            return q->head[p];
    return NULL;
}

pm_jq_node *pm_jq_pick_aged(const pm_jobqueue *q, double now, double aging)
{
    pm_jq_node *best = NULL;
    double best_eff = 0;
    for (int p = PM_JQ_LEVELS - 1; p >= 0; p--) {
        pm_jq_node *h = q->head[p];
        if (!h)
            continue;
        double waited = now - h->enqueued;
        double eff = p + (aging > 0 && waited > 0 ? floor(waited / aging) : 0);
        if (!best || eff > best_eff || (eff == best_eff && h->enqueued < best->enqueued)) {
            best = h;
            best_eff = eff;
        }
    }
    return best;
}
