/* API keys (docs/operations.md, "API keys"): the key file, the check of a
 * presented key, per-key token buckets and per-key counters.
 *
 * The key file has one key a line, `#` comments and blank lines allowed:
 *
 *     NAME:KEY              the key itself
 *     NAME:sha256:HEX       the SHA-256 of the key (64 hex digits)
 *     ...:admin             either form with a trailing `:admin`: the key
 *                           sees every job, the whole queue and the stats
 *
 * NAME is 1-31 of A-Z a-z 0-9 _ . - and becomes the owner of the jobs the
 * key submits and the `key` label on the metrics. Several lines may share
 * a name (rotation: the old and the new key are both valid until the old
 * line is removed). KEY is 16-256 of A-Z a-z 0-9 . _ ~ - (so that it fits in
 * a WebSocket subprotocol). The file must not be readable or writable by
 * other users.
 *
 * Thread-safe: every function may be called from any thread. */
#ifndef PM_AUTH_H
#define PM_AUTH_H

#include "server/sb.h"

#include <stdint.h>

#define PM_KEY_NAME_MAX 32 /* bytes with the NUL */
#define PM_KEY_MAX_LEN 256
#define PM_AUTH_MAX_NAMES 1024

typedef struct pm_auth pm_auth;

/* Who made a request. slot < 0: no key file (every request is anonymous and
 * sees everything, as without --api-keys). */
typedef struct pm_identity {
    int slot;
    int admin;
    char name[PM_KEY_NAME_MAX];
    uint8_t hash[32]; /* SHA-256 of the key presented (zeros without keys) */
} pm_identity;

/* Reads the key file at `path` (refused when other users may read or write
 * it, when it holds no key, or a line is malformed: the error names the line
 * and says what to do). `rate` is requests per second each key may make (0 =
 * no limit); the bucket holds max(1, 2 * rate) requests. Caller owns *out
 * (pm_auth_destroy). */
int pm_auth_create(const char *path, double rate, pm_auth **out);
void pm_auth_destroy(pm_auth *a);

/* Re-reads the file (SIGHUP): on success the new keys replace the old at
 * once; on error the old keys stay and the error is returned. Counters and
 * buckets of names that stay are kept. */
int pm_auth_reload(pm_auth *a);

/* How many keys (lines) and names the current file has. */
void pm_auth_counts(pm_auth *a, int *keys, int *names);

/* Checks a presented key. `header` is the Authorization header's value
 * ("Bearer KEY"); or, with is_token 1, the key itself. The time taken
 * depends on the presented key's length only, not on whether or where it is
 * in the file: the key is hashed with SHA-256 and compared with every entry
 * in constant time. Returns 0 with *who filled, PM_ENOENT when nothing was
 * presented, PM_EINVAL when it is not a valid key. */
int pm_auth_check(pm_auth *a, const char *header, int is_token, pm_identity *who);

/* Who holds the key whose SHA-256 is `hash` in the current file (after a
 * reload: is it still valid, under which name): 0 with *who, or PM_EINVAL. */
int pm_auth_lookup(pm_auth *a, const uint8_t hash[32], pm_identity *who);

/* Takes one request from the key's token bucket. Returns 0 when allowed,
 * otherwise the whole seconds (>= 1) until the next request would be. */
int pm_auth_take(pm_auth *a, const pm_identity *who);

/* Serialises one key's submissions (the quota check and the queueing). */
void pm_auth_submit_lock(pm_auth *a, const pm_identity *who);
void pm_auth_submit_unlock(pm_auth *a, const pm_identity *who);

typedef enum pm_auth_counter {
    PM_AUTH_REQUESTS = 0,   /* authenticated API requests */
    PM_AUTH_RATE_LIMITED,   /* 429 for --key-rate */
    PM_AUTH_QUOTA,          /* 429 for --key-max-queued */
    PM_AUTH_SUBMITTED,      /* jobs accepted */
    PM_AUTH_NCOUNTERS
} pm_auth_counter;

void pm_auth_count(pm_auth *a, const pm_identity *who, pm_auth_counter c);
/* A request without a valid key (401). */
void pm_auth_count_failure(pm_auth *a);

/* Appends the per-key metrics (Prometheus text; `key` label = the names in
 * the file, so its cardinality is bounded). */
void pm_auth_metrics(pm_auth *a, pm_sb *sb);

/* SHA-256 of `len` bytes into out[32] (libcrypto). */
void pm_sha256(const void *data, size_t len, uint8_t out[32]);

/* 1 if the n bytes at a and b are equal; the time does not depend on where
 * they differ. */
int pm_ct_equal(const uint8_t *a, const uint8_t *b, size_t n);

#endif
