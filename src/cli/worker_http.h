/* The worker's metrics listener (worker_http.c). */
#ifndef PM_CLI_WORKER_HTTP_H
#define PM_CLI_WORKER_HTTP_H

typedef struct pm_worker_http pm_worker_http;
/* Returns the body of /metrics; the listener frees it (pm_free). */
typedef char *(*pm_worker_http_fn)(void *user);

/* Listens on HOST:PORT (port 0: any; *port receives it). Caller owns *out. */
int pm_worker_http_start(const char *listen_addr, pm_worker_http_fn render, void *user, pm_worker_http **out,
                         int *port);
void pm_worker_http_stop(pm_worker_http *h);

#endif
