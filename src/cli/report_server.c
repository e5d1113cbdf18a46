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

void rp_proc_reset_hwm(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/clear_refs", (int)pid);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs("5", f);
        fclose(f);
    }
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

/* The body of a 200 answer to GET path (the caller frees it), or NULL. */
static char *get_body(const rp_server *s, const char *path)
{
    rp_resp r;
    if (rp_http(s->host, s->port, "GET", path, NULL, NULL, 0, 10, &r) || r.status != 200) {
        rp_resp_free(&r);
        return NULL;
    }
    return r.body;
}

char *rp_stats(const rp_server *s)
{
    return get_body(s, "/api/v1/stats");
}

int rp_stats_read(const rp_server *s, rp_srv_stats *st)
{
    char *body = rp_stats(s);
    int rc = rp_api_stats(body, st);
    free(body);
    return rc;
}

char *rp_metrics(const rp_server *s)
{
    return get_body(s, "/metrics");
}

uint64_t rp_server_rss(const rp_server *s)
{
    if (s->pid > 0)
        return rp_proc_rss(s->pid);
    rp_srv_stats st;
    return rp_stats_read(s, &st) == 0 ? (uint64_t)st.rss : 0;
}

int rp_job_wait(const rp_server *s, const char *id, double timeout_s, rp_job *j)
{
    char path[160];
    snprintf(path, sizeof path, "/api/v1/jobs/%s", id);
    double t0 = pm_now(), end = t0 + timeout_s;
    while (pm_now() < end) {
        rp_resp r;
        if (rp_http(s->host, s->port, "GET", path, NULL, NULL, 0, 10, &r) == 0 && r.status == 200 &&
            rp_api_job(r.body, j) == 0 && rp_api_job_final(j)) {
            rp_resp_free(&r);
            return strcmp(j->state, "done") == 0 ? 0 : PM_EIO;
        }
        rp_resp_free(&r);
        /* Polls every 2 % of the time waited so far (5 ms to 100 ms): the
         * end is seen within about 1 % of the job's time, and the polls'
         * own cost (a connection each, on the server's cores) stays small. */
        double step = (pm_now() - t0) * 0.02;
        sleep_s(step < 0.005 ? 0.005 : step > 0.1 ? 0.1 : step);
    }
    return PM_ETIMEOUT;
}

/* Writes the whole of buf to fd; 0 or -1. */
static int write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, buf, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        buf += k;
        n -= (size_t)k;
    }
    return 0;
}

/* A curl config quoting value for `key = "value"` lines. */
static void cfg_line(char *out, size_t cap, const char *key, const char *value)
{
    size_t n = (size_t)snprintf(out, cap, "%s = \"", key);
    for (; *value && n + 3 < cap; value++) {
        if (*value == '"' || *value == '\\')
            out[n++] = '\\';
        out[n++] = *value;
    }
    snprintf(out + n, cap - n, "\"\n");
}

int rp_outside_job(const rp_server *s, const char *image_path, const char *mask_path, const char *model,
                   double *seconds, double *engine_s)
{
    static const char *const curl_paths[] = {"/usr/bin/curl", "/usr/local/bin/curl", "/bin/curl"};
    const char *curl = NULL;
    for (size_t i = 0; i < sizeof curl_paths / sizeof curl_paths[0] && !curl; i++)
        if (access(curl_paths[i], X_OK) == 0)
            curl = curl_paths[i];
    if (!curl)
        return PM_ENOENT;
    /* Everything, the key included, goes in a config on curl's stdin, so
     * that no key shows in the process list. */
    char cfg[8192], line[1500], v[1200];
    size_t n = 0;
    snprintf(v, sizeof v, "http://%s:%d/api/v1/inpaint", s->host, s->port);
    cfg_line(line, sizeof line, "url", v);
    n += (size_t)snprintf(cfg + n, sizeof cfg - n, "%s", line);
    /* @"path": curl's quoting, so that a ';' or ',' in --out is a file name. */
    snprintf(v, sizeof v, "image=@\"%s\";type=image/jpeg;filename=photo.jpg", image_path);
    cfg_line(line, sizeof line, "form", v);
    n += (size_t)snprintf(cfg + n, sizeof cfg - n, "%s", line);
    snprintf(v, sizeof v, "mask=@\"%s\";type=image/png;filename=mask.png", mask_path);
    cfg_line(line, sizeof line, "form", v);
    n += (size_t)snprintf(cfg + n, sizeof cfg - n, "%s", line);
    snprintf(v, sizeof v, "model=%s", model);
    cfg_line(line, sizeof line, "form", v);
    n += (size_t)snprintf(cfg + n, sizeof cfg - n, "%s", line);
    if (rp_http_key()[0]) {
        snprintf(v, sizeof v, "Authorization: Bearer %s", rp_http_key());
        cfg_line(line, sizeof line, "header", v);
        n += (size_t)snprintf(cfg + n, sizeof cfg - n, "%s", line);
    }
    n += (size_t)snprintf(cfg + n, sizeof cfg - n,
                          "silent\noutput = \"/dev/null\"\nmax-time = 3600\n"
                          "write-out = \"%%{http_code} %%{time_total} %%header{x-pixmend-seconds}\"\n");
    if (n >= sizeof cfg)
        return PM_EINVAL;
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0)
        return PM_EIO;
    if (pipe2(out, O_CLOEXEC) != 0) {
        close(in[0]);
        close(in[1]);
        return PM_EIO;
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0)
            dup2(devnull, 2);
        execl(curl, "curl", "--config", "-", (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    int rc = PM_EIO;
    if (pid > 0) {
        write_all(in[1], cfg, n);
        close(in[1]);
        char buf[128];
        size_t got = 0;
        ssize_t k;
        while (got + 1 < sizeof buf &&
               ((k = read(out[0], buf + got, sizeof buf - 1 - got)) > 0 || (k < 0 && errno == EINTR)))
            got += k > 0 ? (size_t)k : 0;
        buf[got] = '\0';
        int st, code = 0;
        waitpid(pid, &st, 0);
        *engine_s = -1;
        if (sscanf(buf, "%d %lf %lf", &code, seconds, engine_s) >= 2 && code == 200 && WIFEXITED(st) &&
            WEXITSTATUS(st) == 0)
            rc = 0;
    } else {
        close(in[1]);
    }
    close(out[0]);
    return rc;
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
    rp_api_job_id(r.body, j->id, sizeof j->id);
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
