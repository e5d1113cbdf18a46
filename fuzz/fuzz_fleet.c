/* libFuzzer target: what a fleet's front and workers read from Redis (which
 * anyone with access to it can write): event messages and job records. A
 * message that parses must encode and parse again to the same job. */
#include <stdlib.h>
#include <string.h>

#include "fleet/fleet_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pm_job_event_type t;
    pm_job_info a, b;
    if (pm_fleet_event_parse((const char *)data, size, &t, &a) == 0) {
        size_t len = 0;
        char *m = pm_fleet_event_message(t, &a, &len);
        if (!m)
            return 0;
        pm_job_event_type t2;
        if (pm_fleet_event_parse(m, len, &t2, &b) != 0 || t2 != t || strcmp(a.id, b.id) != 0 ||
            a.state != b.state || a.width != b.width || strcmp(a.spec.model, b.spec.model) != 0)
            __builtin_trap();
        pm_free(m);
    }
    /* The same bytes as HGETALL pairs split at NUL bytes. */
    const char *k[32], *v[32];
    size_t kl[32], vl[32];
    int n = 0;
    size_t i = 0;
    while (i < size && n < 32) {
        const uint8_t *z = memchr(data + i, 0, size - i);
        size_t klen = z ? (size_t)(z - (data + i)) : size - i;
        k[n] = (const char *)data + i;
        kl[n] = klen;
        i += klen + 1;
        if (i >= size)
            break;
        z = memchr(data + i, 0, size - i);
        size_t vlen = z ? (size_t)(z - (data + i)) : size - i;
        v[n] = (const char *)data + i;
        vl[n] = vlen;
        i += vlen + 1;
        n++;
    }
    (void)pm_fleet_decode(k, kl, v, vl, n, &a);
    return 0;
}
