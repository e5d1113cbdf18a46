/* The counting allocator: every pm_malloc'ed byte is counted so that the
 * resource monitor can report pixmend's own heap and its peak.
 * Each block carries a 64-byte header holding its size, which keeps the
 * returned pointer 64-byte aligned when the underlying block is. */
#include "pixmend.h"

#include <malloc.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define HDR 64

static atomic_size_t in_use;
static atomic_size_t peak;
static atomic_ullong next_scope_id = 1;
static _Thread_local pm_mem_scope *cur_scope; /* the calling thread's scope, not owned */

/* Header layout: [0..8) the block's size, [8..16) the id of the scope that
 * allocated it (0 = none). */
static void scope_add(unsigned char *b, size_t n)
{
    uint64_t id = 0;
    pm_mem_scope *s = cur_scope;
    if (s) {
        id = s->id;
        s->in_use += n;
        if (s->in_use > s->peak)
            s->peak = s->in_use;
    }
    memcpy(b + 8, &id, sizeof id);
}

static void scope_sub(const unsigned char *b, size_t n)
{
    pm_mem_scope *s = cur_scope;
    if (!s)
        return;
    uint64_t id;
    memcpy(&id, b + 8, sizeof id);
    if (id == s->id && s->in_use >= n)
        s->in_use -= n;
}

void pm_mem_scope_begin(pm_mem_scope *s)
{
    s->id = atomic_fetch_add(&next_scope_id, 1);
    s->in_use = s->peak = 0;
    cur_scope = s;
}

void pm_mem_scope_end(pm_mem_scope *s)
{
    if (cur_scope == s)
        cur_scope = NULL;
}

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
    scope_add(b, n);
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
    scope_sub(b, n);
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

void pm_mem_return_large_blocks(void)
{
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
#endif
}
