/* pixmend report: a small blocking HTTP/1.1 client over loopback (one request
 * per connection, Connection: close), a multipart body builder and two JSON
 * field readers for the server's own, well-formed answers. */
#include "cli/report.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int rp_connect(const char *host, int port, double timeout_s)
{
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        struct hostent *he = gethostbyname(host);
        if (!he || he->h_addrtype != AF_INET)
            return -1;
        memcpy(&sa.sin_addr, he->h_addr_list[0], sizeof sa.sin_addr);
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {(time_t)timeout_s, (suseconds_t)((timeout_s - (double)(time_t)timeout_s) * 1e6)};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        c += k;
        n -= (size_t)k;
    }
    return 0;
}

void rp_resp_free(rp_resp *r)
{
    free(r->body);
    r->body = NULL;
    r->len = 0;
}

int rp_parse_response(char *buf, size_t n, rp_resp *r)
{
    buf[n] = '\0';
    int status = 0;
    if (n < 12 || strncmp(buf, "HTTP/1.", 7) != 0 || sscanf(buf + 7, "%*d %d", &status) != 1 || status < 100 ||
        status > 999) {
        free(buf);
        return pm_errorf(PM_EIO, "no HTTP answer (%zu bytes read)", n);
    }
    char *hdr_end = strstr(buf, "\r\n\r\n");
    size_t off = hdr_end ? (size_t)(hdr_end - buf) + 4 : n;
    r->status = status;
    r->len = n - off;
    memmove(buf, buf + off, r->len);
    buf[r->len] = '\0';
    r->body = buf;
    return 0;
}

/* Reads until the peer closes (the server sends Content-Length bodies and
 * closes with Connection: close), then parses what came. */
static int read_response(int fd, rp_resp *r)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf)
        return PM_ENOMEM;
    for (;;) {
        if (n == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                free(buf);
                return PM_ENOMEM;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t k = recv(fd, buf + n, cap - n, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    return rp_parse_response(buf, n, r);
}

/* The API key sent with every request (--api-key), or "" for none. */
static char api_key[300];

void rp_http_set_key(const char *key)
{
    snprintf(api_key, sizeof api_key, "%s", key ? key : "");
}

const char *rp_http_key(void)
{
    return api_key;
}

int rp_http(const char *host, int port, const char *method, const char *path, const char *ctype,
            const void *body, size_t len, double timeout_s, rp_resp *r)
{
    memset(r, 0, sizeof *r);
    double t0 = pm_now();
    int fd = rp_connect(host, port, timeout_s);
    if (fd < 0)
        return pm_errorf(PM_EIO, "cannot connect to %s:%d: %s", host, port, strerror(errno));
    char head[1536], auth[340] = "";
    int hn;
    if (api_key[0])
        snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", api_key);
    if (ctype)
        hn = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n%sContent-Type: %s\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      method, path, host, port, auth, ctype, len);
    else
        hn = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n%s\r\n",
                      method, path, host, port, auth);
    int rc = 0;
    if (send_all(fd, head, (size_t)hn) || (body && len && send_all(fd, body, len))) {
        /* The server may answer early (413) and close: read what it said. */
        rc = read_response(fd, r);
        if (rc == 0 && r->status == 0)
            rc = PM_EIO;
    } else {
        rc = read_response(fd, r);
    }
    close(fd);
    r->seconds = pm_now() - t0;
    return rc;
}

int rp_multipart(const uint8_t *image, size_t image_len, const char *image_name, const char *image_type,
                 const uint8_t *mask, size_t mask_len, const char *model, uint8_t **body, size_t *len,
                 char *ctype, size_t ctype_len)
{
    static const char *const b = "pmreportboundary7d3f";
    size_t cap = image_len + mask_len + 2048;
    char *p = malloc(cap);
    if (!p)
        return PM_ENOMEM;
    size_t n = 0;
    n += (size_t)snprintf(p + n, cap - n,
                          "--%s\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n%s\r\n"
                          "--%s\r\nContent-Disposition: form-data; name=\"image\"; filename=\"%s\"\r\n"
                          "Content-Type: %s\r\n\r\n",
                          b, model, b, image_name, image_type);
    memcpy(p + n, image, image_len);
    n += image_len;
    if (mask) {
        n += (size_t)snprintf(p + n, cap - n,
                              "\r\n--%s\r\nContent-Disposition: form-data; name=\"mask\"; filename=\"mask.png\"\r\n"
                              "Content-Type: image/png\r\n\r\n",
                              b);
        memcpy(p + n, mask, mask_len);
        n += mask_len;
    }
    n += (size_t)snprintf(p + n, cap - n, "\r\n--%s--\r\n", b);
    snprintf(ctype, ctype_len, "multipart/form-data; boundary=%s", b);
    *body = (uint8_t *)p;
    *len = n;
    return 0;
}

double rp_json_num(const char *json, const char *key, double dflt)
{
    if (!json)
        return dflt;
    char pat[80];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    if (!p)
        return dflt;
    p += strlen(pat);
    while (*p == ' ')
        p++;
    char *end;
    double v = strtod(p, &end);
    return end == p ? dflt : v;
}

void rp_json_str(const char *json, const char *key, char *out, size_t len)
{
    out[0] = '\0';
    if (!json)
        return;
    char pat[80];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = strstr(json, pat);
    if (!p)
        return;
    p += strlen(pat);
    size_t i = 0;
    while (p[i] && p[i] != '"' && i + 1 < len) {
        out[i] = p[i];
        i++;
    }
    out[i] = '\0';
}
