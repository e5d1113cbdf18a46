/* One Redis connection that reconnects on demand, and a pool of them. */
#include "fleet/fleet_internal.h"
#include "base/base.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

static struct timeval tv_of(double s)
{
    struct timeval tv = {(time_t)s, (suseconds_t)((s - (double)(time_t)s) * 1e6)};
    return tv;
}

static int unavailable(const pm_rconn *r, const char *why)
{
    return pm_errorf(PM_EUNAVAIL, "the fleet's Redis at %s:%d is unreachable (%s); check that redis-server runs "
                                  "there and the address given to --redis",
                     r->url.host, r->url.port, why && why[0] ? why : "no answer");
}

static void drop(pm_rconn *r)
{
    if (r->c)
        redisFree(r->c);
    r->c = NULL;
}

static int connect_now(pm_rconn *r)
{
    drop(r);
    r->c = redisConnectWithTimeout(r->url.host, r->url.port, tv_of(r->timeout));
    if (!r->c || r->c->err) {
        char why[128];
        snprintf(why, sizeof why, "%s", r->c ? r->c->errstr : "out of memory");
        drop(r);
        return unavailable(r, why);
    }
    redisSetTimeout(r->c, tv_of(r->timeout));
    redisEnableKeepAlive(r->c);
    if (r->url.db) {
        redisReply *rep = redisCommand(r->c, "SELECT %d", r->url.db);
        int ok = pm_reply_ok(rep);
        char why[160];
        snprintf(why, sizeof why, "SELECT %d: %s", r->url.db, rep && rep->str ? rep->str : "no answer");
        if (rep)
            freeReplyObject(rep);
        if (!ok) {
            drop(r);
            return unavailable(r, why);
        }
    }
    return 0;
}

int pm_rconn_open(pm_rconn *r, const pm_redis_url *url, double timeout)
{
    memset(r, 0, sizeof *r);
    r->url = *url;
    r->timeout = timeout > 0 ? timeout : 2;
    return connect_now(r);
}

int pm_reply_ok(const redisReply *r)
{
    return r && r->type != REDIS_REPLY_ERROR;
}

/* After a failed command: the connection is dropped, the next call reconnects. */
static redisReply *broken(pm_rconn *r)
{
    char why[128];
    snprintf(why, sizeof why, "%s", r->c && r->c->errstr[0] ? r->c->errstr : "connection lost");
    drop(r);
    unavailable(r, why);
    return NULL;
}

redisReply *pm_rconn_cmd(pm_rconn *r, int argc, const char **argv, const size_t *lens)
{
    if (!r->c && connect_now(r))
        return NULL;
    redisReply *rep = redisCommandArgv(r->c, argc, argv, lens);
    return rep ? rep : broken(r);
}

redisReply *pm_rconn_cmdf(pm_rconn *r, const char *fmt, ...)
{
    if (!r->c && connect_now(r))
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(r->c, fmt, ap);
    va_end(ap);
    return rep ? rep : broken(r);
}

int pm_rconn_pipeline(pm_rconn *r, int n, const int *argc, const char ***argv, const size_t **lens,
                      redisReply **replies)
{
    for (int i = 0; i < n; i++)
        replies[i] = NULL;
    if (!r->c && connect_now(r))
        return PM_EUNAVAIL;
    for (int i = 0; i < n; i++)
        if (redisAppendCommandArgv(r->c, argc[i], argv[i], lens[i]) != REDIS_OK) {
            broken(r);
            return PM_EUNAVAIL;
        }
    for (int i = 0; i < n; i++) {
        void *rep = NULL;
        if (redisGetReply(r->c, &rep) != REDIS_OK || !rep) {
            for (int k = 0; k < i; k++) {
                freeReplyObject(replies[k]);
                replies[k] = NULL;
            }
            broken(r);
            return PM_EUNAVAIL;
        }
        replies[i] = rep;
    }
    return 0;
}

void pm_rconn_close(pm_rconn *r)
{
    drop(r);
}

void pm_rpool_init(pm_rpool *p, const pm_redis_url *url, double timeout)
{
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->lock, NULL);
    p->url = *url;
    p->timeout = timeout;
}

pm_rconn *pm_rpool_get(pm_rpool *p)
{
    pm_rconn *c = NULL;
    pthread_mutex_lock(&p->lock);
    if (p->nfree > 0)
        c = p->free[--p->nfree];
    pthread_mutex_unlock(&p->lock);
    if (c)
        return c;
    c = pm_calloc(1, sizeof *c);
    if (!c) {
        pm_errorf(PM_ENOMEM, "out of memory connecting to Redis");
        return NULL;
    }
    if (pm_rconn_open(c, &p->url, p->timeout)) {
        pm_free(c);
        return NULL;
    }
    return c;
}

void pm_rpool_put(pm_rpool *p, pm_rconn *c)
{
    if (!c)
        return;
    if (c->c && !c->c->err) {
        pthread_mutex_lock(&p->lock);
        int kept = p->nfree < (int)(sizeof p->free / sizeof p->free[0]);
        if (kept)
            p->free[p->nfree++] = c;
        pthread_mutex_unlock(&p->lock);
        if (kept)
            return;
    }
    pm_rconn_close(c);
    pm_free(c);
}

void pm_rpool_destroy(pm_rpool *p)
{
    for (int i = 0; i < p->nfree; i++) {
        pm_rconn_close(p->free[i]);
        pm_free(p->free[i]);
    }
    p->nfree = 0;
    pthread_mutex_destroy(&p->lock);
}

int pm_fleet_ensure_groups(pm_rconn *c)
{
    for (int lane = 0; lane < 2; lane++) {
        redisReply *r = pm_rconn_cmdf(c, "XGROUP CREATE %s %s 0 MKSTREAM", pm_fleet_stream(lane), PM_FLEET_GROUP);
        if (!r)
            return PM_EUNAVAIL;
        int ok = pm_reply_ok(r) || (r->str && strncmp(r->str, "BUSYGROUP", 9) == 0);
        char why[200];
        snprintf(why, sizeof why, "%s", r->str ? r->str : "");
        freeReplyObject(r);
        if (!ok)
            return pm_errorf(PM_EUNAVAIL, "cannot create the consumer group on %s in Redis at %s:%d: %s",
                             pm_fleet_stream(lane), c->url.host, c->url.port, why);
    }
    return 0;
}

int pm_fleet_probe(const char *url)
{
    pm_redis_url u;
    int rc = pm_fleet_parse_url(url, &u);
    if (rc)
        return rc;
    pm_rconn c;
    if ((rc = pm_rconn_open(&c, &u, 2)))
        return rc;
    rc = pm_fleet_ensure_groups(&c);
    pm_rconn_close(&c);
    return rc;
}
