/* Security headers, CORS, Origin and path checks (see headers.h). */
#include "server/headers.h"

#include <civetweb.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define REFERRER "no-referrer"

const char *pm_hdr_static_block(void)
{
    return "X-Content-Type-Options: nosniff\r\n"
           "Content-Security-Policy: " PM_CSP "\r\n"
           "X-Frame-Options: DENY\r\n"
           "Referrer-Policy: " REFERRER "\r\n"
           "Cross-Origin-Opener-Policy: same-origin";
}

void pm_hdr_security(struct mg_connection *c)
{
    mg_response_header_add(c, "X-Content-Type-Options", "nosniff", -1);
    mg_response_header_add(c, "Content-Security-Policy", PM_CSP, -1);
    mg_response_header_add(c, "X-Frame-Options", "DENY", -1);
    mg_response_header_add(c, "Referrer-Policy", REFERRER, -1);
    mg_response_header_add(c, "Cross-Origin-Opener-Policy", "same-origin", -1);
}

void pm_hdr_cors(struct mg_connection *c, const char *allowed)
{
    if (!allowed)
        return;
    const char *origin = mg_get_header(c, "Origin");
    mg_response_header_add(c, "Vary", "Origin", -1);
    if (origin && strcmp(origin, allowed) == 0) {
        mg_response_header_add(c, "Access-Control-Allow-Origin", allowed, -1);
        mg_response_header_add(c, "Access-Control-Expose-Headers",
                               "Retry-After, Location, WWW-Authenticate, X-Pixmend-Job, X-Pixmend-Seconds, "
                               "X-Pixmend-Model",
                               -1);
    }
}

int pm_hdr_preflight(struct mg_connection *c, const char *allowed)
{
    const char *origin = mg_get_header(c, "Origin");
    int ok = allowed && origin && strcmp(origin, allowed) == 0;
    mg_response_header_start(c, ok ? 204 : 403);
    pm_hdr_security(c);
    mg_response_header_add(c, "Content-Length", "0", -1);
    mg_response_header_add(c, "Vary", "Origin", -1);
    if (ok) {
        mg_response_header_add(c, "Access-Control-Allow-Origin", allowed, -1);
        mg_response_header_add(c, "Access-Control-Allow-Methods", "GET, HEAD, POST, DELETE", -1);
        mg_response_header_add(c, "Access-Control-Allow-Headers", "Authorization, Content-Type, Accept", -1);
        mg_response_header_add(c, "Access-Control-Max-Age", "600", -1);
    }
    mg_response_header_send(c);
    return ok ? 204 : 403;
}

int pm_origin_ok(const char *origin, const char *host, int is_tls, const char *allowed)
{
    if (!origin)
        return 1;
    if (allowed && strcmp(origin, allowed) == 0)
        return 1;
    const char *scheme = is_tls ? "https://" : "http://";
    size_t sl = strlen(scheme);
    return host && host[0] && strncasecmp(origin, scheme, sl) == 0 && strcasecmp(origin + sl, host) == 0;
}

const char *pm_path_refusal(const char *path)
{
    if (!path)
        return NULL;
    for (const char *p = path; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '\\')
            return "a backslash in the path";
        if (ch < 0x20 || ch == 0x7f)
            return "a control character in the path";
        if (ch == '%')
            return "a '%' left after decoding the path (double encoding)";
    }
    /* Segments "." and ".." (after decoding, so %2e%2e is caught too). */
    for (const char *seg = path;;) {
        if (*seg == '/')
            seg++;
        size_t n = strcspn(seg, "/");
        if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return "a '.' or '..' segment in the path";
        if (!seg[n])
            return NULL;
        seg += n;
    }
}

void pm_hdr_filename(char *out, size_t cap, const char *name)
{
    if (cap == 0)
        return;
    size_t n = 0;
    for (const char *p = name ? name : ""; *p && n + 1 < cap && n < 100; p++) {
        unsigned char ch = (unsigned char)*p;
        int ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' ||
                 ch == '_' || ch == '-';
        if (n == 0 && ch == '.')
            ok = 0;
        out[n++] = ok ? (char)ch : '_';
    }
    out[n] = '\0';
    if (n == 0)
        snprintf(out, cap, "file");
}
