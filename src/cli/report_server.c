/* pixmend report: the server under test. Starts and stops our own `pixmend
 * serve` child, reads its /proc figures, and runs one job through the HTTP API. */
#define _GNU_SOURCE /* pipe2 */
#include "cli/report.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* Reads lines of the child's stdout until the start-up line gives the port. */
static int read_port(int fd, double timeout_s, int *port)
{
    char buf[4096];
    size_t n = 0;
    double end = pm_now() + timeout_s;
    while (pm_now() < end && n + 1 < sizeof buf) {
        ssize_t k = read(fd, buf + n, sizeof buf - 1 - n);
        if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
            sleep_s(0.02);
            continue;
        }
        if (k <= 0)
            return PM_EIO;
        n += (size_t)k;
        buf[n] = '\0';
        const char *p = strstr(buf, "pixmend serving on http://");
        const char *colon = p ? strchr(p + 26, ':') : NULL;
        if (colon && strchr(colon, '\n')) {
            *port = atoi(colon + 1);
            return *port > 0 ? 0 : PM_EIO;
        }
    }
    return PM_ETIMEOUT;
}

int rp_server_start(rp_server *s, const char *exe, const char *dir, const char *const *extra)
{
    const char *argv[48];
    int n = 0;
    char dd[600];
    argv[n++] = exe;
    argv[n++] = "serve";
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--data-dir";
    snprintf(dd, sizeof dd, "%s", dir);
    argv[n++] = dd;
    argv[n++] = "--log-level";
    argv[n++] = "error";
    for (int i = 0; extra && extra[i] && n < 46; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return pm_errorf(PM_EIO, "pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return pm_errorf(PM_EIO, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0 && !getenv("PM_REPORT_SERVER_LOG"))
            dup2(devnull, 2);
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    memset(s, 0, sizeof *s);
    snprintf(s->host, sizeof s->host, "127.0.0.1");
    snprintf(s->exe, sizeof s->exe, "%s", exe);
    snprintf(s->data_dir, sizeof s->data_dir, "%s", dir);
    s->pid = pid;
    s->out_fd = fds[0];
    int rc = read_port(fds[0], 60, &s->port);
    /* The pipe stays open until the child is stopped: the server may write
     * more lines, and a closed pipe would end it with SIGPIPE. */
    if (rc) {
        rp_server_kill9(s);
        return pm_errorf(PM_EIO, "the server %s did not print its address within 60 s", exe);
    }
    double end = pm_now() + 60;
    while (pm_now() < end) {
        rp_resp r;
        if (rp_http(s->host, s->port, "GET", "/readyz", NULL, NULL, 0, 5, &r) == 0 && r.status == 200) {
            rp_resp_free(&r);
            return 0;
        }
        rp_resp_free(&r);
        sleep_s(0.05);
    }
    rp_server_kill9(s);
    return pm_errorf(PM_EIO, "the server on port %d was not ready within 60 s", s->port);
}

void rp_server_stop(rp_server *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGTERM);
    double end = pm_now() + 10;
    int st;
    while (pm_now() < end) {
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            s->pid = 0;
            if (s->out_fd > 0)
                close(s->out_fd);
            s->out_fd = 0;
            return;
        }
        sleep_s(0.02);
    }
    rp_server_kill9(s);
}

void rp_server_kill9(rp_server *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGKILL);
    int st;
    waitpid(s->pid, &st, 0);
    s->pid = 0;
    if (s->out_fd > 0)
        close(s->out_fd);
    s->out_fd = 0;
}

static uint64_t status_kb(pid_t pid, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    uint64_t v = 0;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            v = strtoull(line + kl + 1, NULL, 10) * 1024;
            break;
        }
    fclose(f);
    return v;
}

uint64_t rp_proc_rss(pid_t pid)
{
    return pid > 0 ? status_kb(pid, "VmRSS") : 0;
}

uint64_t rp_proc_hwm(pid_t pid)
{
    return pid > 0 ? status_kb(pid, "VmHWM") : 0;
}

int rp_proc_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

char *rp_stats(const rp_server *s)
{
    rp_resp r;
    if (rp_http(s->host, s->port, "GET", "/api/v1/stats", NULL, NULL, 0, 10, &r) || r.status != 200) {
        rp_resp_free(&r);
        return NULL;
    }
    return r.body;
}

uint64_t rp_server_rss(const rp_server *s)
{
    if (s->pid > 0)
        return rp_proc_rss(s->pid);
    char *st = rp_stats(s);
    uint64_t v = (uint64_t)rp_json_num(st, "rss_bytes", 0);
    free(st);
    return v;
}

int rp_job_wait(const rp_server *s, const char *id, double timeout_s, rp_job *j)
{
    char path[160];
    snprintf(path, sizeof path, "/api/v1/jobs/%s", id);
    double end = pm_now() + timeout_s, step = 0.005;
    while (pm_now() < end) {
        rp_resp r;
        if (rp_http(s->host, s->port, "GET", path, NULL, NULL, 0, 10, &r) == 0 && r.status == 200) {
            rp_json_str(r.body, "state", j->state, sizeof j->state);
            if (strcmp(j->state, "done") == 0 || strcmp(j->state, "failed") == 0 ||
                strcmp(j->state, "cancelled") == 0) {
                const char *res = strstr(r.body, "\"resources\":");
                j->engine_s = rp_json_num(res, "wall_s", -1);
                j->cpu_s = rp_json_num(res, "cpu_s", -1);
                j->peak_bytes = rp_json_num(res, "peak_bytes", -1);
                j->predicted_bytes = rp_json_num(res, "predicted_bytes", -1);
                rp_resp_free(&r);
                return strcmp(j->state, "done") == 0 ? 0 : PM_EIO;
            }
        }
        rp_resp_free(&r);
        sleep_s(step);
        if (step < 0.01)
            step *= 1.5;
    }
    return PM_ETIMEOUT;
}

int rp_job_run(const rp_server *s, const uint8_t *body, size_t len, const char *ctype, double timeout_s, rp_job *j)
{
    memset(j, 0, sizeof *j);
    double t0 = pm_now();
    rp_resp r;
    int rc = rp_http(s->host, s->port, "POST", "/api/v1/jobs", ctype, body, len, 60, &r);
    j->http_status = r.status;
    if (rc || r.status != 202) {
        rp_resp_free(&r);
        return rc ? rc : PM_EIO;
    }
    rp_json_str(r.body, "id", j->id, sizeof j->id);
    rp_resp_free(&r);
    if ((rc = rp_job_wait(s, j->id, timeout_s, j)))
        return rc;
    char path[160];
    snprintf(path, sizeof path, "/api/v1/jobs/%s/result", j->id);
    rc = rp_http(s->host, s->port, "GET", path, NULL, NULL, 0, 60, &r);
    if (rc == 0 && r.status != 200)
        rc = PM_EIO;
    j->result_len = r.len;
    rp_resp_free(&r);
    j->e2e_s = pm_now() - t0;
    return rc;
}
