/* Levelled logging: text or JSON lines, to stderr or to a file that is
 * reopened after SIGHUP so that logrotate can move it away. */
#include "pixmend.h"
#include "base.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static enum pm_log_level log_level = PM_LOG_INFO;
static enum pm_log_format log_format = PM_LOG_TEXT;
static FILE *log_file;       /* NULL = stderr; owned by this module */
static char *log_path;       /* owned by this module */
static volatile sig_atomic_t reopen_requested;

static const char *level_names[] = {"debug", "info", "warn", "error", "off"};

int pm_log_level_parse(const char *s)
{
    for (int i = 0; i <= PM_LOG_OFF; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

static void close_file_locked(void)
{
    if (log_file)
        fclose(log_file);
    log_file = NULL;
}

int pm_log_setup(enum pm_log_level level, enum pm_log_format format, const char *path)
{
    int rc = 0;
    pthread_mutex_lock(&log_lock);
    log_level = level;
    log_format = format;
    close_file_locked();
    pm_free(log_path);
    log_path = NULL;
    if (path) {
        log_file = fopen(path, "a");
        if (!log_file) {
            rc = pm_errorf(PM_EIO, "cannot open log file %s for appending; check the directory exists and is writable", path);
        } else {
            setvbuf(log_file, NULL, _IOLBF, 0);
            log_path = pm_strdup(path);
        }
    }
    pthread_mutex_unlock(&log_lock);
    return rc;
}

void pm_log_shutdown(void)
{
    pthread_mutex_lock(&log_lock);
    close_file_locked();
    pm_free(log_path);
    log_path = NULL;
    pthread_mutex_unlock(&log_lock);
}

static void on_sighup(int sig)
{
    (void)sig;
    reopen_requested = 1;
}

void pm_log_install_sighup(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sighup;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGHUP, &sa, NULL);
}

static void reopen_if_asked_locked(void)
{
    if (!reopen_requested || !log_path)
        return;
    reopen_requested = 0;
    FILE *f = fopen(log_path, "a");
    if (!f)
        return; /* keep writing to the old file rather than losing lines */
    fclose(log_file);
    log_file = f;
    setvbuf(log_file, NULL, _IOLBF, 0);
}

/* Appends `s` to `out` as a JSON string body (no quotes). */
static void json_escape(FILE *out, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", out);
        else if (c < 0x20)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
}

static void emit(enum pm_log_level level, const char *event, const char *msg, va_list *kv)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char stamp[96];
    snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);

    pthread_mutex_lock(&log_lock);
    reopen_if_asked_locked();
    FILE *out = log_file ? log_file : stderr;
    if (log_format == PM_LOG_JSON) {
        fprintf(out, "{\"ts\":\"%s\",\"level\":\"%s\",\"event\":\"", stamp, level_names[level]);
        json_escape(out, event ? event : "log");
        fputs("\",\"msg\":\"", out);
        json_escape(out, msg);
        fputc('"', out);
        if (kv) {
            const char *k;
            while ((k = va_arg(*kv, const char *)) != NULL) {
                const char *v = va_arg(*kv, const char *);
                fputs(",\"", out);
                json_escape(out, k);
                fputs("\":\"", out);
                json_escape(out, v ? v : "");
                fputc('"', out);
            }
        }
        fputs("}\n", out);
    } else {
        fprintf(out, "%s %-5s %s: %s", stamp, level_names[level], event ? event : "log", msg);
        if (kv) {
            const char *k;
            while ((k = va_arg(*kv, const char *)) != NULL) {
                const char *v = va_arg(*kv, const char *);
                fprintf(out, " %s=%s", k, v ? v : "");
            }
        }
        fputc('\n', out);
    }
    fflush(out);
    pthread_mutex_unlock(&log_lock);
}

void pm_log(enum pm_log_level level, const char *event, const char *fmt, ...)
{
    if (level < log_level || level >= PM_LOG_OFF)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    emit(level, event, msg, NULL);
}

void pm_logkv(enum pm_log_level level, const char *event, const char *msg, ...)
{
    if (level < log_level || level >= PM_LOG_OFF)
        return;
    va_list ap;
    va_start(ap, msg);
    emit(level, event, msg, &ap);
    va_end(ap);
}
