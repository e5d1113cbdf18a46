/* The counting allocator: every pm_malloc'ed byte is counted so that the
 * resource monitor can report pixmend's own heap and its peak.
 * Each block carries a 64-byte header holding its size, which keeps the
 * returned pointer 64-byte aligned when the underlying block is. */
#include "pixmend.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define HDR 64

static atomic_size_t in_use;
static atomic_size_t peak;

static void count_add(size_t n)
{
    size_t now = atomic_fetch_add(&in_use, n) + n;
    size_t p = atomic_load(&peak);
    while (now > p && !atomic_compare_exchange_weak(&peak, &p, now)) {
    }
}

static void count_sub(size_t n)
{
    atomic_fetch_sub(&in_use, n);
}

/* Caller owns the result; release with pm_free(). */
void *pm_malloc(size_t n)
{
    if (n > SIZE_MAX - HDR)
        return NULL;
    unsigned char *b = NULL;
    if (posix_memalign((void **)&b, HDR, n + HDR) != 0)
        return NULL;
    memcpy(b, &n, sizeof n);
    count_add(n);
    return b + HDR;
}

void *pm_calloc(size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size)
        return NULL;
    void *p = pm_malloc(count * size);
    if (p)
        memset(p, 0, count * size);
    return p;
}

void pm_free(void *p)
{
    if (!p)
        return;
    unsigned char *b = (unsigned char *)p - HDR;
    size_t n;
    memcpy(&n, b, sizeof n);
    count_sub(n);
    free(b);
}

/* Keeps the 64-byte alignment of pm_malloc, so it copies rather than calling realloc. */
void *pm_realloc(void *p, size_t n)
{
    if (!p)
        return pm_malloc(n);
    if (n == 0) {
        pm_free(p);
        return NULL;
    }
    size_t old;
    memcpy(&old, (unsigned char *)p - HDR, sizeof old);
    void *q = pm_malloc(n);
    if (!q)
        return NULL;
    memcpy(q, p, old < n ? old : n);
    pm_free(p);
    return q;
}

char *pm_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = pm_malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

void *pm_malloc_aligned(size_t n)
{
    return pm_malloc(n);
}

void pm_free_aligned(void *p)
{
    pm_free(p);
}

size_t pm_mem_in_use(void)
{
    return atomic_load(&in_use);
}

size_t pm_mem_peak(void)
{
    return atomic_load(&peak);
}

void pm_mem_reset_peak(void)
{
    atomic_store(&peak, atomic_load(&in_use));
}
