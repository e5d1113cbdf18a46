/* Access control of the service (see access.h). */
#include "server/access.h"
#include "server/headers.h"
#include "server/sb.h"
#include "base/base.h"

#include <civetweb.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define REFUSAL_LOG_PERIOD 10.0 /* seconds */
#define REFUSAL_LOG_LINES 5     /* refusal lines per period at most; the rest are counted */

static void anonymous(pm_identity *who)
{
    memset(who, 0, sizeof *who);
    who->slot = -1;
    who->admin = 1;
}

/* One log line per refused request, at most REFUSAL_LOG_LINES a period for
 * each kind (`event`, one of a few static strings); a flood gets one line
 * saying how many were not logged. */
static void log_refusal(enum pm_log_level level, const char *event, const char *what, const char *client,
                        const char *path)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static struct {
        const char *event;
        double start;
        int lines, suppressed;
    } kinds[8];
    double now = pm_now();
    int quiet = 0, skipped = 0;
    pthread_mutex_lock(&lock);
    int k = 0;
    while (k < 7 && kinds[k].event && kinds[k].event != event)
        k++;
    kinds[k].event = event;
    if (now - kinds[k].start >= REFUSAL_LOG_PERIOD) {
        skipped = kinds[k].suppressed;
        kinds[k].start = now;
        kinds[k].lines = 0;
        kinds[k].suppressed = 0;
    }
    if (kinds[k].lines < REFUSAL_LOG_LINES)
        kinds[k].lines++;
    else {
        kinds[k].suppressed++;
        quiet = 1;
    }
    pthread_mutex_unlock(&lock);
    if (skipped)
        pm_warn("refused_suppressed", "%d more %s lines were not logged in the last %.0f s", skipped, event,
                REFUSAL_LOG_PERIOD);
    if (quiet)
        return;
    /* The path comes from the client: no control characters or spaces reach
     * the log (a forged line), at most 160 bytes of it. */
    char shown[164];
    size_t n = 0;
    for (const char *p = path ? path : ""; *p && n < 160; p++)
        shown[n++] = (unsigned char)*p <= 0x20 || (unsigned char)*p == 0x7f ? '?' : *p;
    shown[n] = '\0';
    pm_logkv(level, event, what, "client", client, "path", shown, NULL);
}

/* A JSON error answer from outside a route (the WebSocket upgrade and the
 * path check), with the security headers. */
static void send_refusal(struct mg_connection *c, int status, const char *code, const char *msg, int retry)
{
    pm_sb sb;
    pm_sb_init(&sb);
    pm_sb_puts(&sb, "{\"error\":{\"code\":");
    pm_sb_json_str(&sb, code);
    pm_sb_puts(&sb, ",\"message\":");
    pm_sb_json_str(&sb, msg);
    pm_sb_puts(&sb, "}}");
    /* Written raw: civetweb's response-header functions refuse to work
     * inside a WebSocket connect handler. */
    char ra[48] = "";
    if (retry > 0)
        snprintf(ra, sizeof ra, "Retry-After: %d\r\n", retry);
    mg_printf(c,
              "HTTP/1.1 %d %s\r\n%s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
              "Cache-Control: no-store\r\nConnection: close\r\n%s%s\r\n",
              status, mg_get_response_code_text(c, status), pm_hdr_static_block(), sb.failed ? 0 : sb.len,
              status == 401 ? "WWW-Authenticate: Bearer realm=\"pixmend\"\r\n" : "", ra);
    if (!sb.failed)
        mg_write(c, sb.buf, sb.len);
    pm_sb_free(&sb);
}

/* Checks a presented key (header form or the key itself) and takes a token. */
static int check_key(pm_access *a, const char *presented, int is_token, pm_identity *who, char *msg, size_t cap,
                     int *retry)
{
    int rc = pm_auth_check(a->auth, presented, is_token, who);
    if (rc) {
        pm_auth_count_failure(a->auth);
        snprintf(msg, cap,
                 rc == PM_ENOENT ? "this server needs an API key: send it as 'Authorization: Bearer KEY'"
                                 : "the API key is not valid on this server (revoked or mistyped); ask its "
                                   "operator for a key and send it as 'Authorization: Bearer KEY'");
        return 401;
    }
    int wait = pm_auth_take(a->auth, who);
    if (wait > 0) {
        pm_auth_count(a->auth, who, PM_AUTH_RATE_LIMITED);
        snprintf(msg, cap, "key '%s' made more requests than this server allows a key (--key-rate); retry in %d s",
                 who->name, wait);
        *retry = wait;
        return 429;
    }
    pm_auth_count(a->auth, who, PM_AUTH_REQUESTS);
    return 0;
}

int pm_access_request(pm_access *a, struct mg_connection *c, pm_identity *who, char *msg, size_t cap, int *retry)
{
    *retry = 0;
    anonymous(who);
    if (!a->auth)
        return 0;
    return check_key(a, mg_get_header(c, "Authorization"), 0, who, msg, cap, retry);
}

int pm_access_owns(const pm_identity *who, const pm_job_info *j)
{
    return who->admin || strcmp(j->spec.owner, who->name) == 0;
}

int pm_access_quota(pm_access *a, const pm_identity *who, char *msg, size_t cap, int *retry)
{
    *retry = 0;
    if (!a->auth || a->key_max_queued <= 0 || who->slot < 0)
        return 0;
    int queued, running;
    pm_sched_owner_counts(a->sched, who->name, &queued, &running);
    if (queued < a->key_max_queued)
        return 0;
    pm_sched_stats *st = pm_malloc(sizeof *st);
    double run = 0;
    if (st) {
        pm_sched_get_stats(a->sched, st);
        run = st->avg_run_seconds;
        pm_free(st);
    }
    *retry = run > 1 ? (int)(run + 0.999) : 1;
    pm_auth_count(a->auth, who, PM_AUTH_QUOTA);
    snprintf(msg, cap,
             "key '%s' already has %d jobs waiting, the most one key may have queued (--key-max-queued); other "
             "keys are still served; retry in %d s",
             who->name, queued, *retry);
    return 429;
}

/* The key offered as a subprotocol "bearer.KEY" in Sec-WebSocket-Protocol,
 * copied into buf; NULL when none. */
static const char *subprotocol_key(struct mg_connection *c, char *buf, size_t cap)
{
    const char *h = mg_get_header(c, "Sec-WebSocket-Protocol");
    while (h && *h) {
        while (*h == ' ' || *h == '\t' || *h == ',')
            h++;
        size_t n = strcspn(h, ", \t");
        if (n > 7 && strncasecmp(h, "bearer.", 7) == 0) {
            if (n - 7 >= cap)
                return "";
            memcpy(buf, h + 7, n - 7);
            buf[n - 7] = '\0';
            return buf;
        }
        h += n;
    }
    return NULL;
}

int pm_access_ws_admit(void *user, struct mg_connection *conn, const char *job, char *owner, size_t owner_cap,
                       int *all, uint8_t cred[32])
{
    pm_access *a = user;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    const char *origin = mg_get_header(conn, "Origin");
    char msg[256];
    if (!pm_origin_ok(origin, mg_get_header(conn, "Host"), ri->is_ssl, a->cors_origin)) {
        log_refusal(PM_LOG_WARN, "ws_origin_refused", "WebSocket refused: a page of another origin opened it",
                    ri->remote_addr, origin);
        snprintf(msg, sizeof msg,
                 "a page of another origin may not open this WebSocket (the server allows its own origin%s)",
                 a->cors_origin ? " and --cors-origin" : "");
        send_refusal(conn, 403, "forbidden_origin", msg, 0);
        return 403;
    }
    *all = 1;
    owner[0] = '\0';
    if (!a->auth)
        return 0;
    char keybuf[PM_KEY_MAX_LEN + 2];
    const char *key = subprotocol_key(conn, keybuf, sizeof keybuf);
    pm_identity who;
    int retry = 0;
    int st = key ? check_key(a, key, 1, &who, msg, sizeof msg, &retry)
                 : check_key(a, mg_get_header(conn, "Authorization"), 0, &who, msg, sizeof msg, &retry);
    memset(keybuf, 0, sizeof keybuf);
    if (st) {
        send_refusal(conn, st, st == 401 ? "unauthorized" : "rate_limited", msg, retry);
        return st;
    }
    if (job[0]) {
        pm_job_info *info = pm_malloc(sizeof *info);
        int seen = info && pm_sched_get(a->sched, job, info) == 0 && pm_access_owns(&who, info);
        pm_free(info);
        if (!seen) {
            snprintf(msg, sizeof msg, "no job '%.40s': the id is unknown or the job expired", job);
            send_refusal(conn, 404, "job_not_found", msg, 0);
            return 404;
        }
    }
    *all = who.admin;
    snprintf(owner, owner_cap, "%s", who.name);
    memcpy(cred, who.hash, 32);
    return 0;
}

int pm_access_ws_still_valid(void *user, const uint8_t cred[32], const char *owner, int all)
{
    pm_access *a = user;
    pm_identity who;
    return a->auth && pm_auth_lookup(a->auth, cred, &who) == 0 && strcmp(who.name, owner) == 0 &&
           who.admin == all;
}

/* Whether the connection this civetweb worker thread serves has made a
 * complete request (a worker serves one connection from its init to its
 * close). */
static _Thread_local int request_seen;

int pm_access_init_connection(const struct mg_connection *c, void **conn_data)
{
    (void)c;
    (void)conn_data;
    request_seen = 0;
    return 0;
}

void pm_access_connection_close(const struct mg_connection *c)
{
    if (!request_seen) {
        const struct mg_request_info *ri = mg_get_request_info(c);
        /* info: browsers also open connections they never use */
        log_refusal(PM_LOG_INFO, "request_incomplete",
                    "connection closed without a complete request: headers too slow, too large (civetweb "
                    "answered 400) or malformed, or an idle connection",
                    ri ? ri->remote_addr : "?", "-");
    }
    request_seen = 0;
}

int pm_access_begin_request(struct mg_connection *c)
{
    request_seen = 1;
    const struct mg_request_info *ri = mg_get_request_info(c);
    const char *raw = ri->local_uri_raw ? ri->local_uri_raw : ri->request_uri;
    const char *why = pm_path_refusal(raw);
    if (!why)
        return 0;
    char what[160];
    snprintf(what, sizeof what, "request refused: %s", why);
    log_refusal(PM_LOG_WARN, "path_refused", what, ri->remote_addr, raw);
    char msg[200];
    snprintf(msg, sizeof msg, "the request path is refused: %s; nothing outside the UI folder is served", why);
    send_refusal(c, 400, "bad_path", msg, 0);
    return 400;
}
