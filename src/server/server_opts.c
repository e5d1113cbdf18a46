/* civetweb's configuration for the service (see server_opts.h). */
#include "server/server_opts.h"
#include "server/headers.h"
#include "base/base.h"

#include <dlfcn.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* "HOST:PORT" with civetweb's 's' suffix on the port for TLS. */
static char *ports_of(const char *listen, int tls)
{
    size_t n = strlen(listen) + 2;
    char *p = pm_malloc(n);
    if (p)
        snprintf(p, n, "%s%s", listen, tls ? "s" : "");
    return p;
}

int pm_server_opts_build(const pm_server_config *cfg, const char *listen, const char *web_dir, pm_server_opts *o)
{
    memset(o, 0, sizeof *o);
    int tls = cfg->tls_cert != NULL;
    o->ports = ports_of(listen, tls);
    if (!o->ports)
        return pm_errorf(PM_ENOMEM, "out of memory starting the server");
    snprintf(o->threads, sizeof o->threads, "%d", cfg->http_threads > 0 ? cfg->http_threads : 64);
    snprintf(o->timeout, sizeof o->timeout, "%d", cfg->request_timeout_ms > 0 ? cfg->request_timeout_ms : 30000);
    int n = 0;
    const char **v = o->v;
    v[n++] = "listening_ports";
    v[n++] = o->ports;
    v[n++] = "num_threads";
    v[n++] = o->threads;
    v[n++] = "request_timeout_ms";
    v[n++] = o->timeout;
    v[n++] = "enable_keep_alive";
    v[n++] = "yes";
    v[n++] = "keep_alive_timeout_ms";
    v[n++] = "5000";
    v[n++] = "websocket_timeout_ms";
    v[n++] = "10000";
    v[n++] = "enable_websocket_ping_pong";
    v[n++] = "yes";
    v[n++] = "enable_directory_listing";
    v[n++] = "no";
    v[n++] = "additional_header";
    v[n++] = pm_hdr_static_block();
    /* Request line and headers: 16 KiB at most (civetweb answers 400 beyond). */
    v[n++] = "max_request_size";
    v[n++] = "16384";
    /* Static files only: no CGI, no SSI, no cross-origin access. */
    v[n++] = "cgi_pattern";
    v[n++] = "";
    v[n++] = "ssi_pattern";
    v[n++] = "";
    v[n++] = "access_control_allow_origin";
    v[n++] = "";
    v[n++] = "access_control_allow_methods";
    v[n++] = "";
    v[n++] = "access_control_allow_headers";
    v[n++] = "";
    if (tls) {
        v[n++] = "ssl_protocol_version";
        v[n++] = "4"; /* TLS 1.2 and newer */
    }
    if (web_dir) {
        v[n++] = "document_root";
        v[n++] = web_dir;
        v[n++] = "static_file_max_age";
        v[n++] = "60";
    }
    v[n] = NULL;
    return 0;
}

void pm_server_opts_free(pm_server_opts *o)
{
    pm_free(o->ports);
    o->ports = NULL;
}

int pm_server_start_error(const pm_server_config *cfg, const char *listen, const char *why)
{
    if (cfg->tls_cert)
        return pm_errorf(PM_EIO,
                         "cannot serve HTTPS on %s: %s (see the tls_failed line above; check --tls-cert and --tls-key)",
                         listen, why);
    return pm_errorf(PM_EIO, "cannot listen on %s: %s; pick another address with --listen HOST:PORT", listen, why);
}

int pm_server_init_tls(void *ssl_ctx, void *user)
{
    const pm_server_config *cfg = user;
    SSL_CTX *ctx = ssl_ctx;
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1) {
        pm_error("tls_failed", "--tls-cert %s: not a PEM certificate (chain) OpenSSL can read: %s", cfg->tls_cert,
                 ERR_reason_error_string(ERR_get_error()));
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1) {
        pm_error("tls_failed",
                 "--tls-key %s: not a PEM private key OpenSSL can read (an encrypted key is not supported): %s",
                 cfg->tls_key, ERR_reason_error_string(ERR_get_error()));
        return -1;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        pm_error("tls_failed", "--tls-key %s does not belong to the certificate in --tls-cert %s", cfg->tls_key,
                 cfg->tls_cert);
        return -1;
    }
    return 1;
}

#define COMPAT_LIB "libpixmend-sslcompat.so"
#define CRYPTO_COMPAT_LIB "libpixmend-cryptocompat.so"

/* Loads one compat library from next to the binary or ../lib/pixmend;
 * 0 when loaded. exe: the binary's folder. */
static int load_compat(const char *exe, const char *name)
{
    char path[PATH_MAX + 96];
    static const char *const dirs[] = {"%s/%s", "%s/../lib/pixmend/%s"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, dirs[i], exe, name);
        if (access(path, R_OK) == 0 && dlopen(path, RTLD_NOW | RTLD_GLOBAL))
            return 0;
    }
    return -1;
}

int pm_server_tls_prepare(void)
{
    void *self = dlopen(NULL, RTLD_NOW);
    int have = self && dlsym(self, "SSL_get_peer_certificate") != NULL;
    if (self)
        dlclose(self);
    if (have)
        return 0; /* an OpenSSL that still exports the name civetweb looks up */
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char *slash = n > 0 ? (exe[n] = '\0', strrchr(exe, '/')) : NULL;
    if (slash) {
        *slash = '\0';
        /* libcrypto.so by that name too, unless a -dev package provides it */
        void *crypto = dlopen("libcrypto.so", RTLD_NOW | RTLD_GLOBAL);
        if ((crypto || load_compat(exe, CRYPTO_COMPAT_LIB) == 0) && load_compat(exe, COMPAT_LIB) == 0)
            return 0;
    }
    return pm_errorf(PM_EUNSUPPORTED,
                     "cannot serve TLS: civetweb needs " COMPAT_LIB " with this OpenSSL, and it is neither next "
                     "to the pixmend binary nor in ../lib/pixmend (reinstall pixmend, or terminate TLS in a "
                     "reverse proxy: docs/operations.md)");
}
