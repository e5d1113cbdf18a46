/* pixmend serve's access options (see serve_access.h). */
#include "cli/serve_access.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t reload_requested;
static struct sigaction previous_hup;

static void on_hup(int sig)
{
    reload_requested = 1;
    if (previous_hup.sa_handler != SIG_IGN && previous_hup.sa_handler != SIG_DFL && previous_hup.sa_handler)
        previous_hup.sa_handler(sig);
}

void pm_serve_access_sighup(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_hup;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGHUP, &sa, &previous_hup);
}

int pm_serve_access_poll(pm_auth *auth)
{
    if (!reload_requested)
        return 0;
    reload_requested = 0;
    if (!auth)
        return 0;
    if (pm_auth_reload(auth)) {
        pm_error("api_keys_reload_failed", "%s; the previous keys stay in force", pm_error_detail());
        return 0;
    }
    int keys, names;
    pm_auth_counts(auth, &keys, &names);
    pm_info("api_keys_reloaded", "API keys read again: %d keys for %d names", keys, names);
    return 1;
}

/* "R", "R/s" or "R/min": requests per second > 0. */
static int parse_rate(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !isfinite(v) || v <= 0)
        return -1;
    if (strcmp(end, "/min") == 0)
        v /= 60;
    else if (*end && strcmp(end, "/s") != 0)
        return -1;
    *out = v;
    return 0;
}

static int readable(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    close(fd);
    return 1;
}

int pm_serve_access_setup(const pm_optdef *defs, const pm_args *a, pm_server_config *hc, pm_sched_config *sc,
                          pm_auth **auth)
{
    const pm_command *cmd = &pm_cmd_serve;
    *auth = NULL;
    const char *keys = pm_cli_get(defs, a, "api-keys");
    const char *s;
    double rate = 0;
    if ((s = pm_cli_get(defs, a, "key-rate")) && parse_rate(s, &rate)) {
        pm_cli_error(cmd, "--key-rate must be requests per second above 0 (10, 10/s or 600/min), not '%s'", s);
        return 2;
    }
    if (pm_cli_opt_int(cmd, defs, a, "key-max-queued", 1, 1000000, &hc->key_max_queued) ||
        pm_cli_opt_int(cmd, defs, a, "key-max-running", 1, 64, &sc->owner_max_running))
        return 2;
    if (!keys && (pm_cli_get(defs, a, "key-rate") || pm_cli_get(defs, a, "key-max-queued") ||
                  pm_cli_get(defs, a, "key-max-running") || pm_cli_get(defs, a, "metrics-auth"))) {
        pm_cli_error(cmd, "--key-rate, --key-max-queued, --key-max-running and --metrics-auth need --api-keys FILE");
        return 2;
    }
    hc->metrics_auth = pm_cli_get(defs, a, "metrics-auth") != NULL;
    if ((s = pm_cli_get(defs, a, "cors-origin"))) {
        size_t n = strlen(s);
        if ((strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0) || s[n - 1] == '/' ||
            strpbrk(s, " \t\r\n,*")) {
            pm_cli_error(cmd, "--cors-origin must be one origin such as https://app.example.com (scheme, host, "
                              "optional port; no path, no '*'), not '%s'", s);
            return 2;
        }
        hc->cors_origin = s;
    }
    hc->tls_cert = pm_cli_get(defs, a, "tls-cert");
    hc->tls_key = pm_cli_get(defs, a, "tls-key");
    if (!hc->tls_cert != !hc->tls_key) {
        pm_cli_error(cmd, "--tls-cert and --tls-key go together (the certificate chain and its private key, PEM)");
        return 2;
    }
    if (hc->tls_cert && (!readable(hc->tls_cert) || !readable(hc->tls_key))) {
        pm_cli_error(cmd, "cannot read %s: %s", readable(hc->tls_cert) ? hc->tls_key : hc->tls_cert, strerror(errno));
        return 1;
    }
    if (keys && pm_auth_create(keys, rate, auth)) {
        pm_cli_error(cmd, "%s", pm_error_detail());
        return 1;
    }
    hc->auth = *auth;
    return 0;
}

static int loopback(const char *host)
{
    return strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 ||
           strcmp(host, "[::1]") == 0;
}

void pm_serve_access_announce(const pm_server_config *hc, const char *host, pm_auth *auth)
{
    if (!auth && !loopback(host))
        pm_warn("open_access",
                "listening on %s without --api-keys: anyone who can reach this port can submit jobs and read "
                "every result; give the server a key file (docs/operations.md, \"API keys\")",
                host);
    if (auth) {
        int keys, names;
        pm_auth_counts(auth, &keys, &names);
        pm_info("api_keys", "API keys required: %d keys for %d names (SIGHUP reads the file again)", keys, names);
    }
    if (hc->tls_cert)
        pm_info("tls", "serving HTTPS and WSS with %s", hc->tls_cert);
}
