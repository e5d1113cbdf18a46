/* The growable string (see sb.h). */
#include "server/sb.h"
#include "pixmend.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void pm_sb_init(pm_sb *sb)
{
    memset(sb, 0, sizeof *sb);
}

void pm_sb_free(pm_sb *sb)
{
    pm_free(sb->buf);
    memset(sb, 0, sizeof *sb);
}

static int grow(pm_sb *sb, size_t extra)
{
    if (sb->failed)
        return -1;
    if (sb->len + extra + 1 <= sb->cap)
        return 0;
    size_t cap = sb->cap ? sb->cap : 256;
    while (cap < sb->len + extra + 1)
        cap *= 2;
    char *nb = pm_realloc(sb->buf, cap);
    if (!nb) {
        sb->failed = 1;
        return -1;
    }
    sb->buf = nb;
    sb->cap = cap;
    return 0;
}

void pm_sb_put(pm_sb *sb, const char *s, size_t n)
{
    if (grow(sb, n))
        return;
    memcpy(sb->buf + sb->len, s, n);
    sb->len += n;
    sb->buf[sb->len] = '\0';
}

void pm_sb_puts(pm_sb *sb, const char *s)
{
    pm_sb_put(sb, s, strlen(s));
}

void pm_sb_printf(pm_sb *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        pm_sb_put(sb, small, (size_t)n);
        return;
    }
    if (grow(sb, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if it is not one. */
static int utf8_len(const unsigned char *s)
{
    unsigned char c = s[0];
    int n;
    unsigned min;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0)
        n = 2, cp = c & 0x1f, min = 0x80;
    else if ((c & 0xf0) == 0xe0)
        n = 3, cp = c & 0x0f, min = 0x800;
    else if ((c & 0xf8) == 0xf0)
        n = 4, cp = c & 0x07, min = 0x10000;
    else
        return 0;
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

void pm_sb_json_str(pm_sb *sb, const char *s)
{
    pm_sb_put(sb, "\"", 1);
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    while (*p) {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            pm_sb_put(sb, e, 2);
            p++;
        } else if (c == '\n') {
            pm_sb_put(sb, "\\n", 2);
            p++;
        } else if (c == '\r') {
            pm_sb_put(sb, "\\r", 2);
            p++;
        } else if (c == '\t') {
            pm_sb_put(sb, "\\t", 2);
            p++;
        } else if (c < 0x20 || c == 0x7f) {
            pm_sb_printf(sb, "\\u%04x", c);
            p++;
        } else {
            int n = utf8_len(p);
            if (n == 0) {
                pm_sb_puts(sb, "\\ufffd");
                p++;
            } else {
                pm_sb_put(sb, (const char *)p, (size_t)n);
                p += n;
            }
        }
    }
    pm_sb_put(sb, "\"", 1);
}

const char *pm_sb_str(const pm_sb *sb)
{
    return sb->buf && !sb->failed ? sb->buf : "";
}
