/* multipart/form-data parsing (see multipart.h). */
#define _GNU_SOURCE /* memmem */
#include "server/multipart.h"
#include "pixmend.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PM_MP_MAX_HEADERS 8192 /* bytes of headers in one part */

/* Copies a parameter value (quoted or a token) starting at p into out; returns
 * the position after it. */
static const char *param_value(const char *p, const char *end, char *out, size_t cap)
{
    size_t n = 0;
    if (p < end && *p == '"') {
        p++;
        while (p < end && *p != '"') {
            if (*p == '\\' && p + 1 < end)
                p++;
            if (n + 1 < cap)
                out[n++] = *p;
            p++;
        }
        if (p < end)
            p++;
    } else {
        while (p < end && *p != ';' && !isspace((unsigned char)*p)) {
            if (n + 1 < cap)
                out[n++] = *p;
            p++;
        }
    }
    out[n] = '\0';
    return p;
}

/* Finds parameter `key` in a header value "type; k1=v1; k2=\"v2\"". Returns 1 if found. */
static int header_param(const char *v, const char *end, const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key);
    const char *p = memchr(v, ';', (size_t)(end - v));
    while (p && p < end) {
        p++;
        while (p < end && isspace((unsigned char)*p))
            p++;
        const char *eq = memchr(p, '=', (size_t)(end - p));
        if (!eq)
            return 0;
        const char *kend = eq;
        while (kend > p && isspace((unsigned char)kend[-1]))
            kend--;
        const char *val = eq + 1;
        while (val < end && isspace((unsigned char)*val))
            val++;
        char tmp[512];
        const char *after = param_value(val, end, tmp, sizeof tmp);
        if ((size_t)(kend - p) == klen && strncasecmp(p, key, klen) == 0) {
            snprintf(out, cap, "%s", tmp);
            return 1;
        }
        p = memchr(after, ';', (size_t)(end - after));
    }
    return 0;
}

int pm_multipart_boundary(const char *ct, char *boundary, size_t cap)
{
    if (!ct || strncasecmp(ct, "multipart/form-data", 19) != 0)
        return pm_errorf(PM_EINVAL,
                         "the request body must be multipart/form-data (Content-Type is '%s'); "
                         "send the image as a file field, e.g. curl -F image=@photo.png",
                         ct ? ct : "missing");
    const char *end = ct + strlen(ct);
    if (!header_param(ct, end, "boundary", boundary, cap) || boundary[0] == '\0')
        return pm_errorf(PM_EINVAL, "the multipart Content-Type has no boundary parameter");
    size_t bl = strlen(boundary);
    if (bl > 70)
        return pm_errorf(PM_EINVAL, "the multipart boundary is longer than 70 characters");
    return 0;
}

/* Parses the header block [p, end) of one part. */
static int parse_part_headers(const char *p, const char *end, pm_mp_part *part)
{
    int have_disposition = 0;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = eol ? eol : end;
        const char *le = line_end;
        if (le > p && le[-1] == '\r')
            le--;
        const char *colon = memchr(p, ':', (size_t)(le - p));
        if (colon) {
            const char *v = colon + 1;
            while (v < le && isspace((unsigned char)*v))
                v++;
            size_t klen = (size_t)(colon - p);
            if (klen == 19 && strncasecmp(p, "Content-Disposition", 19) == 0) {
                if ((size_t)(le - v) < 9 || strncasecmp(v, "form-data", 9) != 0)
                    return pm_errorf(PM_EINVAL, "a multipart part's Content-Disposition is not form-data");
                have_disposition = 1;
                if (!header_param(v, le, "name", part->name, sizeof part->name))
                    return pm_errorf(PM_EINVAL, "a multipart part has no name");
                part->has_filename = header_param(v, le, "filename", part->filename, sizeof part->filename);
            } else if (klen == 12 && strncasecmp(p, "Content-Type", 12) == 0) {
                size_t n = (size_t)(le - v);
                if (n >= sizeof part->content_type)
                    n = sizeof part->content_type - 1;
                memcpy(part->content_type, v, n);
                part->content_type[n] = '\0';
            }
        }
        p = eol ? eol + 1 : end;
    }
    if (!have_disposition)
        return pm_errorf(PM_EINVAL, "a multipart part has no Content-Disposition header");
    return 0;
}

int pm_multipart_parse(const char *content_type, const uint8_t *body, size_t len, pm_mp_part *parts,
                       int max, int *n)
{
    *n = 0;
    char boundary[128];
    int rc = pm_multipart_boundary(content_type, boundary, sizeof boundary);
    if (rc)
        return rc;
    char delim[136];
    int dl = snprintf(delim, sizeof delim, "\r\n--%s", boundary);
    const uint8_t *end = body + len;
    const uint8_t *p;
    /* The first delimiter may start the body (without the leading CRLF). */
    if (len >= (size_t)dl - 2 && memcmp(body, delim + 2, (size_t)dl - 2) == 0) {
        p = body + dl - 2;
    } else {
        const uint8_t *f = memmem(body, len, delim, (size_t)dl);
        if (!f)
            return pm_errorf(PM_EINVAL, "the multipart body does not contain its boundary; is it multipart/form-data?");
        p = f + dl;
    }
    for (;;) {
        /* After a delimiter: "--" closes, otherwise optional blanks and CRLF. */
        if (end - p >= 2 && p[0] == '-' && p[1] == '-')
            return 0;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
            return pm_errorf(PM_EINVAL, "the multipart body ends early or is malformed after a boundary "
                                        "(a truncated upload?)");
        p += 2;
        size_t avail = (size_t)(end - p);
        const uint8_t *hend = memmem(p, avail < PM_MP_MAX_HEADERS ? avail : PM_MP_MAX_HEADERS, "\r\n\r\n", 4);
        if (!hend) {
            if (avail < PM_MP_MAX_HEADERS)
                return pm_errorf(PM_EINVAL, "the multipart body ends inside a part's headers (a truncated upload?)");
            return pm_errorf(PM_EINVAL, "a multipart part's headers exceed %d bytes", PM_MP_MAX_HEADERS);
        }
        if (*n >= max)
            return pm_errorf(PM_EINVAL, "the form has more than %d parts", max);
        pm_mp_part *part = &parts[*n];
        memset(part, 0, sizeof *part);
        if ((rc = parse_part_headers((const char *)p, (const char *)hend + 2, part)))
            return rc;
        const uint8_t *data = hend + 4;
        const uint8_t *next = memmem(data, (size_t)(end - data), delim, (size_t)dl);
        if (!next)
            return pm_errorf(PM_EINVAL, "the multipart body ends before its closing boundary (a truncated upload?)");
        part->data = data;
        part->len = (size_t)(next - data);
        (*n)++;
        p = next + dl;
    }
}

int pm_mp_text(const pm_mp_part *p, char *buf, size_t cap)
{
    const uint8_t *s = p->data, *e = p->data + p->len;
    while (s < e && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n'))
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
        e--;
    if ((size_t)(e - s) >= cap)
        return -1;
    memcpy(buf, s, (size_t)(e - s));
    buf[e - s] = '\0';
    return 0;
}

int pm_mp_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}
