/* pixmend worker --metrics-listen: a small HTTP listener for /metrics and
 * /healthz (one request per connection, answered in turn). */
#include "cli/worker_http.h"
#include "base/base.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct pm_worker_http {
    int fd;
    pthread_t thread;
    atomic_int stop;
    pm_worker_http_fn render;
    void *user;
};

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0)
            return;
        p += k;
        n -= (size_t)k;
    }
}

static void answer(pm_worker_http *h, int c)
{
    char req[2048] = "";
    size_t got = 0;
    double until = pm_now() + 2;
    while (got < sizeof req - 1 && !strstr(req, "\r\n\r\n") && pm_now() < until) {
        struct pollfd p = {.fd = c, .events = POLLIN};
        if (poll(&p, 1, 200) <= 0)
            continue;
        ssize_t k = recv(c, req + got, sizeof req - 1 - got, 0);
        if (k <= 0)
            break;
        got += (size_t)k;
        req[got] = '\0';
    }
    req[got] = '\0';
    char head[256];
    const char *body = "not found: this listener serves /metrics and /healthz\n";
    char *owned = NULL;
    int status = 404;
    if (strncmp(req, "GET /metrics ", 13) == 0 || strncmp(req, "GET /metrics?", 13) == 0) {
        owned = h->render(h->user);
        body = owned ? owned : "";
        status = owned ? 200 : 500;
    } else if (strncmp(req, "GET /healthz ", 13) == 0) {
        body = "ok\n";
        status = 200;
    }
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     status, status == 200 ? "OK" : status == 404 ? "Not Found" : "Internal Server Error",
                     strlen(body));
    send_all(c, head, (size_t)n);
    send_all(c, body, strlen(body));
    pm_free(owned);
}

static void *http_main(void *arg)
{
    pm_worker_http *h = arg;
    while (!atomic_load(&h->stop)) {
        struct pollfd p = {.fd = h->fd, .events = POLLIN};
        if (poll(&p, 1, 200) <= 0)
            continue;
        int c = accept(h->fd, NULL, NULL);
        if (c < 0)
            continue;
        answer(h, c);
        close(c);
    }
    return NULL;
}

int pm_worker_http_start(const char *listen_addr, pm_worker_http_fn render, void *user, pm_worker_http **out,
                         int *port)
{
    *out = NULL;
    char host[64];
    const char *colon = strrchr(listen_addr, ':');
    if (!colon || colon == listen_addr || (size_t)(colon - listen_addr) >= sizeof host)
        return pm_errorf(PM_EINVAL, "--metrics-listen must be HOST:PORT (e.g. 0.0.0.0:9091), not '%s'", listen_addr);
    memcpy(host, listen_addr, (size_t)(colon - listen_addr));
    host[colon - listen_addr] = '\0';
    char *end;
    long pn = strtol(colon + 1, &end, 10);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)pn)};
    if (*end || pn < 0 || pn > 65535 || inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return pm_errorf(PM_EINVAL, "--metrics-listen must be IPv4-ADDRESS:PORT (e.g. 0.0.0.0:9091), not '%s'",
                         listen_addr);
    pm_worker_http *h = pm_calloc(1, sizeof *h);
    if (!h)
        return pm_errorf(PM_ENOMEM, "out of memory");
    h->render = render;
    h->user = user;
    atomic_init(&h->stop, 0);
    h->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (h->fd >= 0)
        setsockopt(h->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    socklen_t sl = sizeof sa;
    if (h->fd < 0 || bind(h->fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(h->fd, 16) != 0 ||
        getsockname(h->fd, (struct sockaddr *)&sa, &sl) != 0) {
        int e = errno;
        if (h->fd >= 0)
            close(h->fd);
        pm_free(h);
        return pm_errorf(PM_EIO, "cannot listen on %s for metrics: %s", listen_addr, strerror(e));
    }
    *port = ntohs(sa.sin_port);
    if (pthread_create(&h->thread, NULL, http_main, h) != 0) {
        close(h->fd);
        pm_free(h);
        return pm_errorf(PM_ENOMEM, "cannot start the metrics thread");
    }
    *out = h;
    return 0;
}

void pm_worker_http_stop(pm_worker_http *h)
{
    if (!h)
        return;
    atomic_store(&h->stop, 1);
    pthread_join(h->thread, NULL);
    close(h->fd);
    pm_free(h);
}
