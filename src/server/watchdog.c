/* The slow-body watchdog (see watchdog.h). */
#include "server/watchdog.h"
#include "pixmend.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <dirent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct watch_slot {
    int used;
    int fd;
    double deadline; /* 0 = none yet */
    int fired;
} watch_slot;

struct pm_body_watch {
    pthread_mutex_t lock;
    watch_slot *slots; /* owned */
    int n;
};

int pm_watch_create(int slots, pm_body_watch **out)
{
    pm_body_watch *w = pm_calloc(1, sizeof *w);
    if (!w || !(w->slots = pm_calloc((size_t)(slots > 0 ? slots : 1), sizeof *w->slots))) {
        pm_free(w);
        return pm_errorf(PM_ENOMEM, "out of memory creating the body watchdog");
    }
    w->n = slots > 0 ? slots : 1;
    pthread_mutex_init(&w->lock, NULL);
    *out = w;
    return 0;
}

void pm_watch_destroy(pm_body_watch *w)
{
    if (!w)
        return;
    pthread_mutex_destroy(&w->lock);
    pm_free(w->slots);
    pm_free(w);
}

/* The address of a socket end as "ip" and port. */
static int addr_of(const struct sockaddr_storage *sa, char *ip, size_t len, int *port)
{
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        *port = ntohs(a->sin_port);
        return inet_ntop(AF_INET, &a->sin_addr, ip, (socklen_t)len) ? 0 : -1;
    }
    if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        *port = ntohs(a->sin6_port);
        return inet_ntop(AF_INET6, &a->sin6_addr, ip, (socklen_t)len) ? 0 : -1;
    }
    return -1;
}

/* Finds the descriptor of the connection: the socket whose peer is the
 * request's remote address and port and whose local port is the server's. */
static int find_fd(const struct mg_connection *conn)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int found = -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && found < 0) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        if (*end || end == e->d_name || fd == dirfd(d))
            continue;
        struct stat st;
        if (fstat((int)fd, &st) != 0 || !S_ISSOCK(st.st_mode))
            continue;
        struct sockaddr_storage peer, local;
        socklen_t pl = sizeof peer, ll = sizeof local;
        if (getpeername((int)fd, (struct sockaddr *)&peer, &pl) != 0 ||
            getsockname((int)fd, (struct sockaddr *)&local, &ll) != 0)
            continue;
        char ip[64], lip[64];
        int port, lport;
        if (addr_of(&peer, ip, sizeof ip, &port) || addr_of(&local, lip, sizeof lip, &lport))
            continue;
        if (port == ri->remote_port && lport == ri->server_port && strcmp(ip, ri->remote_addr) == 0)
            found = (int)fd;
    }
    closedir(d);
    return found;
}

int pm_watch_begin(pm_body_watch *w, const struct mg_connection *conn)
{
    int fd = find_fd(conn);
    if (fd < 0)
        return -1;
    pthread_mutex_lock(&w->lock);
    int slot = -1;
    for (int i = 0; i < w->n; i++)
        if (!w->slots[i].used) {
            slot = i;
            w->slots[i] = (watch_slot){.used = 1, .fd = fd, .deadline = 0, .fired = 0};
            break;
        }
    pthread_mutex_unlock(&w->lock);
    return slot;
}

void pm_watch_deadline(pm_body_watch *w, int slot, double deadline)
{
    if (slot < 0)
        return;
    pthread_mutex_lock(&w->lock);
    w->slots[slot].deadline = deadline;
    pthread_mutex_unlock(&w->lock);
}

int pm_watch_end(pm_body_watch *w, int slot)
{
    if (slot < 0)
        return 0;
    pthread_mutex_lock(&w->lock);
    int fired = w->slots[slot].fired;
    w->slots[slot].used = 0;
    pthread_mutex_unlock(&w->lock);
    return fired;
}

int pm_watch_check(pm_body_watch *w, double now)
{
    int cut = 0;
    pthread_mutex_lock(&w->lock);
    for (int i = 0; i < w->n; i++) {
        watch_slot *s = &w->slots[i];
        if (s->used && !s->fired && s->deadline > 0 && now > s->deadline) {
            shutdown(s->fd, SHUT_RD);
            s->fired = 1;
            cut++;
        }
    }
    pthread_mutex_unlock(&w->lock);
    return cut;
}
