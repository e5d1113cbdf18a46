/* civetweb's configuration for the service: listening (with TLS when a
 * certificate is given), threads and timeouts, the static folder, the
 * security headers, and no CGI, SSI, directory listings or CORS from
 * civetweb itself (the API answers CORS on its own, see headers.h). */
#ifndef PM_SERVER_OPTS_H
#define PM_SERVER_OPTS_H

#include "server/server.h"

typedef struct pm_server_opts {
    const char *v[64];    /* name, value pairs and the final NULL */
    char threads[16], timeout[16];
    char *ports;          /* owned (pm_server_opts_free) */
} pm_server_opts;

/* Fills o from cfg; `listen` and `web_dir` are the server's copies. */
int pm_server_opts_build(const pm_server_config *cfg, const char *listen, const char *web_dir, pm_server_opts *o);
void pm_server_opts_free(pm_server_opts *o);

/* The error of a civetweb that did not start on `listen` (civetweb's
 * reason `why`), saying what to check: the address, or the TLS files. */
int pm_server_start_error(const pm_server_config *cfg, const char *listen, const char *why);

/* civetweb's init_ssl callback (user_data: the pm_server_config): loads the
 * certificate chain and the private key of --tls-cert and --tls-key into
 * civetweb's SSL_CTX. Returns 1 (done), or -1 with the reason logged. */
int pm_server_init_tls(void *ssl_ctx, void *cfg);

/* Before civetweb starts with TLS: Debian 12's civetweb asks OpenSSL 3 for
 * a function it no longer exports and crashes on the first TLS connection;
 * this loads libpixmend-sslcompat.so (next to the binary, or in
 * ../lib/pixmend), which supplies it (see src/server/compat/ssl_compat.c).
 * Returns 0, or PM_EUNSUPPORTED when it is needed and not found. */
int pm_server_tls_prepare(void);

#endif
