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
typedef struct pm_ws_hub pm_ws_hub;

/* Produces the first message a new client gets (a status event); the result
 * is the caller's (pm_free); NULL for none. */
typedef char *(*pm_ws_greeting_fn)(void *user);

/* Caller owns *out (pm_ws_hub_destroy, after mg_stop). `max_clients` bounds
 * the connections; `outbox_max` the messages waiting for one client. */
int pm_ws_hub_create(int max_clients, int outbox_max, pm_ws_greeting_fn greet, void *greet_user,
                     pm_ws_hub **out);
void pm_ws_hub_destroy(pm_ws_hub *hub);

/* Installs the civetweb WebSocket handlers for `uri`. Clients may pass
 * ?job=ID to receive only that job's events (status events always come). */
void pm_ws_hub_attach(pm_ws_hub *hub, struct mg_context *ctx, const char *uri);

/* Queues `json` for every client (job NULL: a server-wide event) or for the
 * clients that follow `job`. Never blocks on the network. */
void pm_ws_broadcast(pm_ws_hub *hub, const char *job, const char *json, size_t len);

typedef struct pm_ws_stats {
    int clients;
    uint64_t connected_total;  /* connections accepted since start */
    uint64_t messages_total;   /* messages written to sockets */
    uint64_t overflowed_total; /* clients cut off for not keeping up */
} pm_ws_stats;

void pm_ws_get_stats(pm_ws_hub *hub, pm_ws_stats *st);

#endif
