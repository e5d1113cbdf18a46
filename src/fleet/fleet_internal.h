/* Internals of the fleet layer: the Redis connection, job records and
 * events as field lists, and the pure claim and retry rules (claim.c). */
#ifndef PM_FLEET_INTERNAL_H
#define PM_FLEET_INTERNAL_H

#include "fleet/fleet.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define PM_FLEET_PREFIX "pixmend:"
#define PM_FLEET_GROUP "pixmend-workers"
#define PM_FLEET_EVENTS PM_FLEET_PREFIX "events"
#define PM_FLEET_STATS PM_FLEET_PREFIX "stats"
#define PM_FLEET_WORKERS PM_FLEET_PREFIX "workers"
#define PM_FLEET_RESULTS PM_FLEET_PREFIX "results"
#define PM_FLEET_RESULTS_BYTES PM_FLEET_PREFIX "results:bytes"

/* The stream of lane 0 (fast) or 1 (normal). */
const char *pm_fleet_stream(int lane);
/* "pixmend:job:<id>", "pixmend:input:<id>:image", ... into buf. */
void pm_fleet_key(char *buf, size_t len, const char *what, const char *id);

/* --- claim.c: pure rules, unit-tested */

typedef struct pm_redis_url {
    char host[256];
    int port;
    int db;
} pm_redis_url;

/* redis://HOST[:PORT][/DB] (also HOST[:PORT]); PM_EINVAL with a sentence. */
int pm_fleet_parse_url(const char *url, pm_redis_url *out);
/* 1 when `s` is a job id (32 lower-case hex digits). */
int pm_fleet_valid_id(const char *s, size_t len);
/* Seconds between claim refreshes of a running job: a third of claim_idle,
 * within [0.05, 10]. */
double pm_fleet_refresh_period(double claim_idle);
/* Seconds to wait before reconnect attempt `n` (0, 1, ...): 0.1 s doubling, at most 5 s. */
double pm_fleet_backoff(int n);
/* 0 when delivery number `attempt` (1 = first) may run; else PM_ETIMEOUT
 * with the reason in buf. */
int pm_fleet_delivery_verdict(int attempt, int max_deliveries, const char *last_worker, char *buf, size_t len);
/* Queue bound: 0, or PM_EBUSY with the reason in buf (depth >= queue_max,
 * or the expected wait at `rate` jobs/s beyond max_wait). */
int pm_fleet_queue_verdict(int depth, int queue_max, double rate, double max_wait, char *buf, size_t len);
/* Retry-After seconds for a full queue (1..3600). */
int pm_fleet_retry_after(int depth, int queue_max, double rate, double max_wait);
/* Drain rate: folds a sample (finished jobs went from f0 to f1 over dt s
 * while the queue was not empty) into *rate (exponential average). */
void pm_fleet_rate_update(double *rate, uint64_t f0, uint64_t f1, double dt);

/* --- rec.c: records and events as field lists */

#define PM_FLEET_MAX_FIELDS 48

typedef struct pm_fleet_fields {
    int n;                                   /* pairs */
    const char *k[PM_FLEET_MAX_FIELDS];
    const char *v[PM_FLEET_MAX_FIELDS];
    size_t vlen[PM_FLEET_MAX_FIELDS];
    char buf[8192];                          /* the values' text */
    size_t used;
} pm_fleet_fields;

/* The record of `job` as field/value pairs (every field of pm_job_info the
 * API shows). */
void pm_fleet_encode(const pm_job_info *job, pm_fleet_fields *f);
/* Adds one pair (value copied). */
void pm_fleet_add(pm_fleet_fields *f, const char *k, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Reads a record from pairs; unknown fields are skipped. PM_ECORRUPT (with
 * the detail) when id, state or task is missing or a value is malformed. */
int pm_fleet_decode(const char *const *k, const size_t *klen, const char *const *v, const size_t *vlen, int n,
                    pm_job_info *out);
/* A flat HGETALL reply (k, v, k, v, ...) into *out. */
int pm_fleet_decode_reply(const redisReply *r, pm_job_info *out);
/* An event message: "event=<name>\n" then the record as k=v lines. Caller
 * owns the string (pm_free). */
char *pm_fleet_event_message(pm_job_event_type type, const pm_job_info *job, size_t *len);
/* Reads an event message; PM_ECORRUPT when malformed. */
int pm_fleet_event_parse(const char *msg, size_t len, pm_job_event_type *type, pm_job_info *job);
/* A field's value in a flat reply (k, v, ...), NULL if absent. */
const redisReply *pm_fleet_reply_field(const redisReply *r, const char *key);

/* --- rconn.c: one connection, reconnected on demand */

typedef struct pm_rconn {
    redisContext *c;
    pm_redis_url url;
    double timeout;     /* seconds for connect and each command */
} pm_rconn;

/* Connects (and SELECTs the db): 0 or PM_EUNAVAIL with a sentence. */
int pm_rconn_open(pm_rconn *r, const pm_redis_url *url, double timeout);
/* Runs one command (reconnecting first when the last one broke). Returns
 * the reply (caller frees: freeReplyObject), or NULL with PM_EUNAVAIL's
 * sentence in the detail. An error reply is returned as a reply. */
redisReply *pm_rconn_cmd(pm_rconn *r, int argc, const char **argv, const size_t *lens);
/* The same with printf-like formatting (hiredis's %s, %b, %d ...). */
redisReply *pm_rconn_cmdf(pm_rconn *r, const char *fmt, ...);
/* Runs `n` commands in one round trip; replies[i] receive theirs (NULL ones
 * mean the connection broke: then PM_EUNAVAIL). */
int pm_rconn_pipeline(pm_rconn *r, int n, const int *argc, const char ***argv, const size_t **lens,
                      redisReply **replies);
void pm_rconn_close(pm_rconn *r);
/* A reply that is not an error: 1. */
int pm_reply_ok(const redisReply *r);

/* A pool of connections for threads that come and go (HTTP threads). */
typedef struct pm_rpool {
    pthread_mutex_t lock;
    pm_rconn *free[16];
    int nfree;
    pm_redis_url url;
    double timeout;
} pm_rpool;

void pm_rpool_init(pm_rpool *p, const pm_redis_url *url, double timeout);
/* A connected connection, or NULL (PM_EUNAVAIL's sentence in the detail). */
pm_rconn *pm_rpool_get(pm_rpool *p);
/* Returns it; a broken one is closed. */
void pm_rpool_put(pm_rpool *p, pm_rconn *c);
void pm_rpool_destroy(pm_rpool *p);

/* Creates the consumer group on both streams (MKSTREAM; BUSYGROUP is fine). */
int pm_fleet_ensure_groups(pm_rconn *c);

#endif
