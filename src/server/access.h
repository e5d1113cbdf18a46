/* Access control of the service (docs/operations.md, "Access control"):
 * who makes an API request (the key from the Authorization header), the
 * per-key request rate and queue quota, which jobs a key may see, the
 * WebSocket's key, Origin and job checks, and the refusal of request paths
 * that try to leave the static folder. */
#ifndef PM_ACCESS_H
#define PM_ACCESS_H

#include "sched/sched.h"
#include "server/auth.h"

#include <stddef.h>

struct mg_connection;

typedef struct pm_access {
    pm_auth *auth;           /* not owned; NULL = no keys: everyone sees everything */
    pm_sched *sched;         /* not owned */
    int key_max_queued;      /* jobs one key may have queued; 0 = no bound */
    const char *cors_origin; /* not owned; NULL = no CORS */
} pm_access;

/* Who makes the request on `c`: with keys, the Authorization header must
 * hold a valid key and the key's bucket a token. Returns 0 with *who; or
 * 401 (no key, a wrong key) or 429 (--key-rate; *retry seconds) with the
 * sentence in msg. Without keys *who is the anonymous admin. */
int pm_access_request(pm_access *a, struct mg_connection *c, pm_identity *who, char *msg, size_t cap, int *retry);

/* 1 when `who` may see job j (an admin, or the key that submitted it). */
int pm_access_owns(const pm_identity *who, const pm_job_info *j);

/* Before a submission of `who` (under pm_auth_submit_lock): 0, or 429 when
 * the key already has --key-max-queued jobs waiting (msg, *retry). */
int pm_access_quota(pm_access *a, const pm_identity *who, char *msg, size_t cap, int *retry);

/* The WebSocket admission check (a pm_ws_admit_fn; user is the pm_access):
 * the key from the Sec-WebSocket-Protocol offer ("bearer.KEY") or the
 * Authorization header, the Origin (the server's own or --cors-origin), and
 * with keys a ?job= of the key's own. */
int pm_access_ws_admit(void *user, struct mg_connection *conn, const char *job, char *owner, size_t owner_cap,
                       int *all, uint8_t cred[32]);

/* After the key file was read again (a pm_ws_still_valid_fn; user is the
 * pm_access): 1 while the client's key is still in the file under the same
 * name and with the same admin mark. */
int pm_access_ws_still_valid(void *user, const uint8_t cred[32], const char *owner, int all);

/* civetweb's begin_request: refuses (400, one log line) a path with a '.'
 * or '..' segment, a backslash, a control character or a double-encoded
 * '%'. Returns 0 to let the request through, else the status sent. */
int pm_access_begin_request(struct mg_connection *c);

/* civetweb's init_connection and connection_close: a connection that closes
 * without having made a complete request (headers too slow or too large,
 * which civetweb refuses with 400 before any callback sees them, or
 * malformed) gets one log line (request_incomplete). */
int pm_access_init_connection(const struct mg_connection *c, void **conn_data);
void pm_access_connection_close(const struct mg_connection *c);

#endif
