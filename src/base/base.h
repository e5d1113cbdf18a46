/* Internal helpers of the base layer: time, arena, threads. */
#ifndef PM_BASE_H
#define PM_BASE_H

#include "pixmend.h"

#include <stddef.h>

/* A macro's value as a string literal: PM_XSTR(PM_QUALITY_DEFAULT) is "92". */
#define PM_STR_(x) #x
#define PM_XSTR(x) PM_STR_(x)
#include <stdint.h>

/* The short machine-readable name of a PM_E* code ("too_large",
 * "corrupt_image", ...; "ok" for 0, "internal" for codes without one): the
 * "code" of the API's error objects and what the job journal stores. A static
 * string. pm_error_parse is the inverse ("" and "ok" give 0, unknown names
 * PM_EINTERNAL). */
const char *pm_error_name(int code);
int pm_error_parse(const char *name);

/* Monotonic time in seconds / nanoseconds. */
double pm_now(void);
uint64_t pm_now_ns(void);
/* Wall-clock time in seconds since the epoch. */
double pm_wall_time(void);

/* Timed waits use one clock, CLOCK_MONOTONIC, so that a change of the wall
 * clock neither stretches nor cuts a wait. pm_cond_init_monotonic initialises
 * a condition variable on that clock; pm_deadline fills *ts with the monotonic
 * time `seconds` from now, for pthread_cond_timedwait on such a variable. */
#include <pthread.h>
#include <time.h>
int pm_cond_init_monotonic(pthread_cond_t *cv);
void pm_deadline(struct timespec *ts, double seconds);

/* A bump allocator over one buffer, sized once (at plan time) and reset
 * between uses; nothing in a hot loop calls malloc. */
typedef struct pm_arena {
    uint8_t *base;   /* owned; from pm_malloc_aligned */
    size_t size;
    size_t used;
    size_t high;     /* high-water mark of `used` */
} pm_arena;

/* Allocates the arena's buffer; caller owns it (pm_arena_free). */
int pm_arena_init(pm_arena *a, size_t size);
void pm_arena_free(pm_arena *a);
/* 64-byte aligned block from the arena, or NULL when it is exhausted.
 * The block belongs to the arena and is invalid after pm_arena_reset. */
void *pm_arena_alloc(pm_arena *a, size_t n);
void pm_arena_reset(pm_arena *a);

/* Number of online logical CPUs (at least 1). */
int pm_cpu_count(void);

/* Parallel for: runs fn(user, i) for i in [0, n) on up to `threads` threads
 * (the calling thread included). Returns 0, or the first non-zero value an
 * invocation returned. threads <= 0 means pm_cpu_count(). */
typedef int (*pm_par_fn)(void *user, int i);
int pm_parallel_for(int n, int threads, pm_par_fn fn, void *user);

#endif
