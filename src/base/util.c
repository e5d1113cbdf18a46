/* Time, arena and thread helpers. */
#include "base.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double pm_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uint64_t pm_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

double pm_wall_time(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int pm_cond_init_monotonic(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    int rc = pthread_condattr_init(&ca);
    if (rc)
        return pm_errorf(PM_ENOMEM, "cannot initialise a condition variable (error %d)", rc);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    rc = pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
    return rc ? pm_errorf(PM_ENOMEM, "cannot initialise a condition variable (error %d)", rc) : 0;
}

void pm_deadline(struct timespec *ts, double seconds)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    if (seconds < 0)
        seconds = 0;
    long long ns = (long long)ts->tv_nsec + (long long)((seconds - (double)(long long)seconds) * 1e9);
    ts->tv_sec += (time_t)(long long)seconds + (time_t)(ns / 1000000000LL);
    ts->tv_nsec = (long)(ns % 1000000000LL);
}

int pm_arena_init(pm_arena *a, size_t size)
{
    memset(a, 0, sizeof *a);
    if (size == 0)
        return 0;
    a->base = pm_malloc_aligned(size);
    if (!a->base)
        return pm_errorf(PM_ENOMEM, "cannot allocate a %zu-byte work area", size);
    a->size = size;
    return 0;
}

void pm_arena_free(pm_arena *a)
{
    pm_free_aligned(a->base);
    memset(a, 0, sizeof *a);
}

void *pm_arena_alloc(pm_arena *a, size_t n)
{
    size_t start = (a->used + 63) & ~(size_t)63;
    if (start > a->size || n > a->size - start)
        return NULL;
    a->used = start + n;
    if (a->used > a->high)
        a->high = a->used;
    return a->base + start;
}

void pm_arena_reset(pm_arena *a)
{
    a->used = 0;
}

int pm_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

struct par_ctx {
    pm_par_fn fn;
    void *user;
    int n;
    atomic_int next;
    atomic_int rc;
};

static void *par_worker(void *arg)
{
    struct par_ctx *c = arg;
    for (;;) {
        int i = atomic_fetch_add(&c->next, 1);
        if (i >= c->n || atomic_load(&c->rc) != 0)
            break;
        int r = c->fn(c->user, i);
        if (r != 0) {
            int zero = 0;
            atomic_compare_exchange_strong(&c->rc, &zero, r);
        }
    }
    return NULL;
}

int pm_parallel_for(int n, int threads, pm_par_fn fn, void *user)
{
    if (threads <= 0)
        threads = pm_cpu_count();
    if (threads > n)
        threads = n;
    if (threads > 64)
        threads = 64;
    struct par_ctx c = {.fn = fn, .user = user, .n = n};
    atomic_init(&c.next, 0);
    atomic_init(&c.rc, 0);
    pthread_t tids[64];
    int started = 0;
    for (int t = 1; t < threads; t++) {
        if (pthread_create(&tids[started], NULL, par_worker, &c) == 0)
            started++;
    }
    par_worker(&c);
    for (int t = 0; t < started; t++)
        pthread_join(tids[t], NULL);
    return atomic_load(&c.rc);
}
