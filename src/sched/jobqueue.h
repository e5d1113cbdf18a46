/* A bounded priority queue of intrusive nodes: priorities 0..9, the highest
 * first, FIFO within a priority. Nodes belong to their owners; the queue only
 * links them. Not thread-safe: the scheduler's lock guards it. */
#ifndef PM_JOBQUEUE_H
#define PM_JOBQUEUE_H

#include <stddef.h>

#define PM_JQ_LEVELS 10

typedef struct pm_jq_node {
    struct pm_jq_node *prev, *next;
    int priority;  /* 0..9, set before push */
    double enqueued; /* when it was queued (any clock, set before push); for ageing */
    int queued;    /* 1 while linked */
} pm_jq_node;

typedef struct pm_jobqueue {
    pm_jq_node *head[PM_JQ_LEVELS], *tail[PM_JQ_LEVELS];
    int count;
    int max;       /* bound on count; pm_jq_push refuses beyond it */
} pm_jobqueue;

void pm_jq_init(pm_jobqueue *q, int max);
/* Appends n at the tail of its priority. Returns 0, or -1 when the queue is
 * full or n is already queued or its priority is out of range. */
int pm_jq_push(pm_jobqueue *q, pm_jq_node *n);
/* Removes and returns the next node to run, or NULL when empty. */
pm_jq_node *pm_jq_pop(pm_jobqueue *q);
/* The node pm_jq_pop would return, without removing it. */
pm_jq_node *pm_jq_peek(const pm_jobqueue *q);
/* Unlinks n if it is queued; returns 1 if it was. */
int pm_jq_remove(pm_jobqueue *q, pm_jq_node *n);
/* How many nodes run before n (0 = next), or -1 if n is not queued. */
int pm_jq_position(const pm_jobqueue *q, const pm_jq_node *n);
/* The node to run next with ageing: each priority's head (the oldest of
 * that priority) counts as priority + floor(waited / aging) where waited =
 * now - enqueued; the highest such value wins, the older node on a tie.
 * aging <= 0: no ageing (the same node as pm_jq_peek). NULL when empty. */
pm_jq_node *pm_jq_pick_aged(const pm_jobqueue *q, double now, double aging);
/* The node after n in run order (NULL at the end); n NULL = the first. */
pm_jq_node *pm_jq_next(const pm_jobqueue *q, const pm_jq_node *n);

#endif
