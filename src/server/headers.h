/* The web surface's hardening: security headers on every response, CORS
 * (off unless an origin is configured), the Origin check of WebSocket
 * upgrades, the refusal of request paths that try to leave the static
 * folder, and file names made safe for a Content-Disposition header. */
#ifndef PM_HEADERS_H
#define PM_HEADERS_H

#include <stddef.h>

struct mg_connection;

/* The Content-Security-Policy of every response: scripts, styles and
 * connections from this origin only, images also from blob: (results shown
 * in the page), no framing, no inline code. */
#define PM_CSP                                                                                                     \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "                        \
    "connect-src 'self'; worker-src 'self'; manifest-src 'self'; object-src 'none'; base-uri 'none'; "            \
    "form-action 'self'; frame-ancestors 'none'"

/* The header lines for civetweb's `additional_header` option (static files
 * and civetweb's own answers); lines separated by CRLF, no final CRLF.
 * A static string. */
const char *pm_hdr_static_block(void);

/* Adds the security headers to a response whose header is being built
 * (after mg_response_header_start). */
void pm_hdr_security(struct mg_connection *c);

/* CORS for an API response: when `allowed` (--cors-origin, NULL = off)
 * equals the request's Origin, adds Access-Control-Allow-Origin and Vary. */
void pm_hdr_cors(struct mg_connection *c, const char *allowed);

/* Answers an OPTIONS preflight: 204 with the allowed methods and headers
 * when the Origin is `allowed`, 403 otherwise. Returns the status sent. */
int pm_hdr_preflight(struct mg_connection *c, const char *allowed);

/* 1 when a browser's Origin may open the WebSocket: no Origin (not a
 * browser), the server's own origin (the Host header, over http or https as
 * the connection is), or `allowed` (--cors-origin, may be NULL). */
int pm_origin_ok(const char *origin, const char *host, int is_tls, const char *allowed);

/* Why the decoded request path `path` must be refused: a `..` or `.`
 * segment (from /../ or an encoded %2e%2e), a backslash, a control
 * character, a `%` left after decoding (double encoding); NULL when it is
 * acceptable. A static string. */
const char *pm_path_refusal(const char *path);

/* Writes `name` into out (cap bytes, NUL-terminated) keeping only
 * A-Z a-z 0-9 . _ - (others become '_'), at most 100 characters, never
 * empty ("file") and never starting with '.': safe inside the quotes of a
 * Content-Disposition filename. */
void pm_hdr_filename(char *out, size_t cap, const char *name);

#endif
