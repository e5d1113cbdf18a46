/* pixmend serve's access options: --api-keys, the per-key quotas and rate,
 * TLS, CORS and --metrics-auth (docs/operations.md, "Access control"). */
#ifndef PM_SERVE_ACCESS_H
#define PM_SERVE_ACCESS_H

#include "cli/cli.h"
#include "sched/sched.h"
#include "server/server.h"

/* The option definitions serve appends to its table. */
#define PM_SERVE_ACCESS_OPTS                                                                                       \
    {"api-keys", 0, 1}, {"key-max-queued", 0, 1}, {"key-max-running", 0, 1}, {"key-rate", 0, 1},                  \
        {"tls-cert", 0, 1}, {"tls-key", 0, 1}, {"cors-origin", 0, 1}, {"metrics-auth", 0, 0}

/* Applies the options to hc and sc; with --api-keys reads the key file into
 * *auth (caller owns; pm_auth_destroy after the server stopped). Returns 0;
 * 2 after a usage error line; 1 after an error line (an unreadable or
 * world-readable key file, a TLS file that cannot be read). */
int pm_serve_access_setup(const pm_optdef *defs, const pm_args *a, pm_server_config *hc, pm_sched_config *sc,
                          pm_auth **auth);

/* After the server started: one warning when it listens beyond loopback
 * without keys; one info line on keys and TLS. */
void pm_serve_access_announce(const pm_server_config *hc, const char *host, pm_auth *auth);

/* Makes SIGHUP also ask for the key file to be read again (the log's own
 * SIGHUP handler still runs), and pm_serve_access_poll do it. */
void pm_serve_access_sighup(void);
/* Returns 1 when it read the key file again (then the server must be told:
 * pm_server_keys_reloaded), 0 otherwise. */
int pm_serve_access_poll(pm_auth *auth);

#endif
