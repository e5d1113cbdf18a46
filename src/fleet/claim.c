/* The fleet's pure rules: addresses, ids, claim refresh, reconnect backoff,
 * the delivery bound, the queue bound and the drain rate. No I/O here. */
#include "fleet/fleet_internal.h"
#include "base/base.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *pm_fleet_stream(int lane)
{
    return lane == 0 ? PM_FLEET_PREFIX "jobs:fast" : PM_FLEET_PREFIX "jobs:normal";
}

void pm_fleet_key(char *buf, size_t len, const char *what, const char *id)
{
    if (strcmp(what, "image") == 0 || strcmp(what, "mask") == 0)
        snprintf(buf, len, PM_FLEET_PREFIX "input:%s:%s", id, what);
    else
        snprintf(buf, len, PM_FLEET_PREFIX "%s:%s", what, id);
}

void pm_fleet_default_config(pm_fleet_config *fc)
{
    memset(fc, 0, sizeof *fc);
    fc->claim_idle = 30;
    fc->max_deliveries = 3;
    fc->drain_seconds = 30;
}

int pm_fleet_parse_url(const char *url, pm_redis_url *out)
{
    memset(out, 0, sizeof *out);
    out->port = 6379;
    const char *p = url;
    if (!p || !*p)
        return pm_errorf(PM_EINVAL, "--redis needs an address such as redis://127.0.0.1:6379/0");
    if (strncmp(p, "redis://", 8) == 0)
        p += 8;
    else if (strstr(p, "://"))
        return pm_errorf(PM_EINVAL, "--redis %s: only redis://HOST[:PORT][/DB] is supported", url);
    const char *at = strchr(p, '@');
    if (at)
        return pm_errorf(PM_EINVAL, "--redis %s: passwords in the address are not supported; "
                                    "reach Redis over a private network", url);
    size_t hl = strcspn(p, ":/");
    if (hl == 0 || hl >= sizeof out->host)
        return pm_errorf(PM_EINVAL, "--redis %s: the host is missing or too long (redis://HOST[:PORT][/DB])", url);
    memcpy(out->host, p, hl);
    out->host[hl] = '\0';
    p += hl;
    char *end;
    if (*p == ':') {
        errno = 0;
        long v = strtol(p + 1, &end, 10);
        if (errno || end == p + 1 || v < 1 || v > 65535 || (*end && *end != '/'))
            return pm_errorf(PM_EINVAL, "--redis %s: the port must be 1 to 65535", url);
        out->port = (int)v;
        p = end;
    }
    if (*p == '/') {
        if (p[1]) {
            errno = 0;
            long v = strtol(p + 1, &end, 10);
            if (errno || end == p + 1 || *end || v < 0 || v > 1000000)
                return pm_errorf(PM_EINVAL, "--redis %s: the database must be a number (e.g. /0)", url);
            out->db = (int)v;
        }
    } else if (*p) {
        return pm_errorf(PM_EINVAL, "--redis %s: expected redis://HOST[:PORT][/DB]", url);
    }
    return 0;
}

int pm_fleet_check_url(const char *url)
{
    pm_redis_url u;
    return pm_fleet_parse_url(url, &u);
}

int pm_fleet_valid_id(const char *s, size_t len)
{
    if (!s || len != PM_JOB_ID_LEN)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

double pm_fleet_refresh_period(double claim_idle)
{
    double p = claim_idle / 3;
    return p < 0.05 ? 0.05 : p > 10 ? 10 : p;
}

double pm_fleet_backoff(int n)
{
    if (n < 0)
        n = 0;
    if (n > 10)
        return 5;
    double s = 0.1 * (double)(1 << n);
    return s > 5 ? 5 : s;
}

int pm_fleet_delivery_verdict(int attempt, int max_deliveries, const char *last_worker, char *buf, size_t len)
{
    if (max_deliveries < 1 || attempt <= max_deliveries)
        return 0;
    snprintf(buf, len,
             "the job was handed to a worker %d times and each worker stopped before finishing it "
             "(crashed, killed or lost; the last was %s); it is not tried again (--max-deliveries %d)",
             attempt - 1, last_worker && last_worker[0] ? last_worker : "unknown", max_deliveries);
    return PM_ETIMEOUT;
}

int pm_fleet_queue_verdict(int depth, int queue_max, double rate, double max_wait, char *buf, size_t len)
{
    if (depth >= queue_max) {
        snprintf(buf, len, "the fleet's queue is full (%d jobs waiting, --queue-max %d); retry later", depth,
                 queue_max);
        return PM_EBUSY;
    }
    if (max_wait > 0 && depth > 0 && rate > 0 && (double)(depth + 1) / rate > max_wait) {
        snprintf(buf, len,
                 "the fleet's queue is full: a new job would wait about %.0f s (%d queued, the workers "
                 "drain %.2f jobs/s), more than --max-wait %g s; retry later",
                 (double)(depth + 1) / rate, depth, rate, max_wait);
        return PM_EBUSY;
    }
    return 0;
}

int pm_fleet_retry_after(int depth, int queue_max, double rate, double max_wait)
{
    if (rate <= 0)
        rate = 0.2; /* nothing measured yet: 5 s a job */
    double over = (double)depth - (double)queue_max + 1;
    if (max_wait > 0) {
        double over_wait = (double)depth + 1 - max_wait * rate;
        if (over_wait > over)
            over = over_wait;
    }
    if (over < 1)
        over = 1;
    double s = ceil(over / rate);
    return s < 1 ? 1 : s > 3600 ? 3600 : (int)s;
}

void pm_fleet_rate_update(double *rate, uint64_t f0, uint64_t f1, double dt)
{
    if (dt <= 0 || f1 < f0)
        return;
    double r = (double)(f1 - f0) / dt;
    *rate = *rate > 0 ? 0.7 * *rate + 0.3 * r : r;
}
