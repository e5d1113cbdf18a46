/* WebSocket fan-out: every connected client has a bounded outbox and its own
 * writer thread, so a slow or vanished client never blocks the worker that
 * produced an event nor the other clients. A client whose outbox overflows
 * is sent a close frame and gets nothing more (it can reconnect and read the
 * jobs' state over HTTP). Messages are shared, reference-counted copies. */
#ifndef PM_WS_H
#define PM_WS_H

#include <stddef.h>
#include <stdint.h>

struct mg_context;
struct mg_connection;
typedef struct pm_ws_hub pm_ws_hub;

/* Produces the first message a new client gets (a status event); the result
 * is the caller's (pm_free); NULL for none. */
typedef char *(*pm_ws_greeting_fn)(void *user);

/* Caller owns *out (pm_ws_hub_destroy, after mg_stop). `max_clients` bounds
 * the connections; `outbox_max` the messages waiting for one client. */
int pm_ws_hub_create(int max_clients, int outbox_max, pm_ws_greeting_fn greet, void *greet_user,
                     pm_ws_hub **out);
void pm_ws_hub_destroy(pm_ws_hub *hub);

/* Decides whether an upgrade request may become a client, before the
 * handshake. `job` is the ?job= parameter ("" when none). Returns 0 and
 * fills owner[] (the key name whose jobs the client sees) and *all (1: it
 * sees every job) and cred (what identified it, e.g. its key's hash; left
 * zero: nothing to re-check); or an HTTP status after having sent that answer itself
 * (401, 403, 404), and the connection is not upgraded. */
typedef int (*pm_ws_admit_fn)(void *user, struct mg_connection *conn, const char *job, char *owner,
                              size_t owner_cap, int *all, uint8_t cred[32]);

/* Sets the admission check (before pm_ws_hub_attach); without one every
 * client sees every job. */
void pm_ws_hub_set_admit(pm_ws_hub *hub, pm_ws_admit_fn fn, void *user);

/* The subprotocol the server answers with when the client offers it
 * (browsers send the key as a second one, "bearer.KEY"). */
#define PM_WS_SUBPROTOCOL "pixmend.v1"

/* Installs the civetweb WebSocket handlers for `uri`. Clients may pass
 * ?job=ID to receive only that job's events (status events always come). */
void pm_ws_hub_attach(pm_ws_hub *hub, struct mg_context *ctx, const char *uri);

/* Queues `json` for every client (job NULL: a server-wide event) or for the
 * clients that follow `job` and may see jobs of `owner` (NULL or "": no
 * owner, every client may). Never blocks on the network. */
void pm_ws_broadcast(pm_ws_hub *hub, const char *job, const char *owner, const char *json, size_t len);

/* Whether a client admitted with `cred` as `owner`/`all` may stay connected. */
typedef int (*pm_ws_still_valid_fn)(void *user, const uint8_t cred[32], const char *owner, int all);

/* Closes (1008, "the API key was revoked") every client with a credential
 * that fn no longer accepts, e.g. after the key file was read again.
 * Returns how many. */
int pm_ws_revalidate(pm_ws_hub *hub, pm_ws_still_valid_fn fn, void *user);

/* Waits up to `seconds` until every client's outbox is written (before a
 * shutdown closes the connections). Returns 0, or 1 if some were left. */
int pm_ws_flush(pm_ws_hub *hub, double seconds);

typedef struct pm_ws_stats {
    int clients;
    uint64_t connected_total;  /* connections accepted since start */
    uint64_t messages_total;   /* messages written to sockets */
    uint64_t overflowed_total; /* clients cut off for not keeping up */
} pm_ws_stats;

void pm_ws_get_stats(pm_ws_hub *hub, pm_ws_stats *st);

#endif
