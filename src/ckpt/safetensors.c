/* safetensors: an 8-byte little-endian header length, a JSON header
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {...}}, then the tensor bytes. The JSON is parsed here by
 * a small recursive-descent parser with a depth limit; the tensor bytes are
 * used in place (the file is mapped) unless they are misaligned. */
#include "ckpt/ckpt_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define MAX_DEPTH 64

typedef struct js {
    const char *start, *p, *end;
    const char *what;
} js;

static int bad(js *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(js *j, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return pm_errorf(PM_ECORRUPT, "%s: its safetensors header is damaged at byte %zu of the JSON: %s; the file is corrupt",
                     j->what, (size_t)(j->p - j->start), msg);
}

static void ws(js *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int expect(js *j, char c)
{
    ws(j);
    if (j->p >= j->end || *j->p != c)
        return bad(j, "expected '%c'", c);
    j->p++;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int hex4(js *j, unsigned *out)
{
    if (j->end - j->p < 4)
        return bad(j, "a \\u escape is cut short");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(j->p[i]);
        if (h < 0)
            return bad(j, "a \\u escape has a non-hex digit");
        v = v << 4 | (unsigned)h;
    }
    j->p += 4;
    *out = v;
    return 0;
}

/* Parses a string. When out is not NULL the decoded UTF-8 text is written to
 * a new NUL-terminated buffer the caller owns (pm_free), its length to *len. */
static int jstring(js *j, char **out, size_t *len)
{
    int rc = expect(j, '"');
    if (rc)
        return rc;
    /* decoded text is never longer than the raw text */
    const char *q = j->p;
    while (q < j->end && *q != '"')
        q += (*q == '\\' && q + 1 < j->end) ? 2 : 1;
    if (q >= j->end)
        return bad(j, "a string is not closed");
    char *buf = NULL;
    if (out) {
        buf = pm_malloc((size_t)(q - j->p) + 1);
        if (!buf)
            return pm_errorf(PM_ENOMEM, "%s: out of memory reading its safetensors header", j->what);
    }
    size_t n = 0;
    while (*j->p != '"') {
        unsigned char c = (unsigned char)*j->p++;
        unsigned cp;
        if (c < 0x20) {
            rc = bad(j, "a string holds a raw control character");
            goto free_buf;
        }
        if (c != '\\') {
            if (buf)
                buf[n] = (char)c;
            n++;
            continue;
        }
        c = (unsigned char)*j->p++;
        switch (c) {
        case '"': case '\\': case '/': cp = c; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            if ((rc = hex4(j, &cp)))
                goto free_buf;
            if (cp >= 0xd800 && cp < 0xdc00) {
                unsigned lo;
                if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u') {
                    rc = bad(j, "a UTF-16 surrogate is unpaired");
                    goto free_buf;
                }
                j->p += 2;
                if ((rc = hex4(j, &lo)))
                    goto free_buf;
                if (lo < 0xdc00 || lo >= 0xe000) {
                    rc = bad(j, "a UTF-16 surrogate is unpaired");
                    goto free_buf;
                }
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if (cp >= 0xdc00 && cp < 0xe000) {
                rc = bad(j, "a UTF-16 surrogate is unpaired");
                goto free_buf;
            }
            break;
        default:
            rc = bad(j, "unknown escape \\%c", c);
            goto free_buf;
        }
        /* UTF-8 of cp; each form is no longer than the escape it came from */
        unsigned char u[4];
        int k;
        if (cp < 0x80) {
            u[0] = (unsigned char)cp;
            k = 1;
        } else if (cp < 0x800) {
            u[0] = (unsigned char)(0xc0 | cp >> 6);
            u[1] = (unsigned char)(0x80 | (cp & 0x3f));
            k = 2;
        } else if (cp < 0x10000) {
            u[0] = (unsigned char)(0xe0 | cp >> 12);
            u[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
            u[2] = (unsigned char)(0x80 | (cp & 0x3f));
            k = 3;
        } else {
            u[0] = (unsigned char)(0xf0 | cp >> 18);
            u[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
            u[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
            u[3] = (unsigned char)(0x80 | (cp & 0x3f));
            k = 4;
        }
        if (buf)
            memcpy(buf + n, u, (size_t)k);
        n += (size_t)k;
    }
    j->p++; /* closing quote */
    if (buf) {
        buf[n] = '\0';
        *out = buf;
    }
    if (len)
        *len = n;
    return 0;
free_buf:
    pm_free(buf);
    return rc;
}

/* A non-negative integer (shape dimension, offset). */
static int juint(js *j, int64_t *out)
{
    ws(j);
    const char *s = j->p;
    uint64_t v = 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        if (v > (uint64_t)INT64_MAX / 10)
            return bad(j, "a number is too large");
        v = v * 10 + (uint64_t)(*j->p - '0');
        if (v > (uint64_t)INT64_MAX)
            return bad(j, "a number is too large");
        j->p++;
    }
    if (j->p == s)
        return bad(j, "expected a non-negative integer");
    if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E'))
        return bad(j, "expected an integer, found a fraction");
    *out = (int64_t)v;
    return 0;
}

static int skip_value(js *j, int depth);

static int skip_container(js *j, char close, int is_obj, int depth)
{
    int rc;
    if (depth > MAX_DEPTH)
        return bad(j, "nesting deeper than %d", MAX_DEPTH);
    j->p++; /* opening bracket */
    ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        return 0;
    }
    for (;;) {
        if (is_obj) {
            if ((rc = jstring(j, NULL, NULL)) || (rc = expect(j, ':')))
                return rc;
        }
        if ((rc = skip_value(j, depth + 1)))
            return rc;
        ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        return expect(j, close);
    }
}

static int skip_value(js *j, int depth)
{
    ws(j);
    if (j->p >= j->end)
        return bad(j, "the header ends inside a value");
    char c = *j->p;
    if (c == '"')
        return jstring(j, NULL, NULL);
    if (c == '{')
        return skip_container(j, '}', 1, depth);
    if (c == '[')
        return skip_container(j, ']', 0, depth);
    static const char *const words[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(words[i]);
        if ((size_t)(j->end - j->p) >= n && memcmp(j->p, words[i], n) == 0) {
            j->p += n;
            return 0;
        }
    }
    const char *s = j->p;
    while (j->p < j->end && *j->p && (strchr("+-.eE", *j->p) || (*j->p >= '0' && *j->p <= '9')))
        j->p++;
    if (j->p == s)
        return bad(j, "unexpected character '%c'", c);
    return 0;
}

/* [n, n, ...] into out (at most max items); *count gets the number. */
static int int_array(js *j, int64_t *out, int max, int *count)
{
    int rc = expect(j, '[');
    if (rc)
        return rc;
    int n = 0;
    ws(j);
    if (j->p < j->end && *j->p == ']') {
        j->p++;
        *count = 0;
        return 0;
    }
    for (;;) {
        int64_t v = 0;
        if ((rc = juint(j, &v)))
            return rc;
        if (n < max)
            out[n] = v;
        n++;
        ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if ((rc = expect(j, ']')))
            return rc;
        *count = n;
        return 0;
    }
}

static const struct { const char *name; int dtype; } st_dtypes[] = {
    {"F32", PM_DT_F32}, {"F16", PM_DT_F16}, {"BF16", PM_DT_BF16}, {"F64", PM_DT_F64},
    {"I64", PM_DT_I64}, {"I32", PM_DT_I32}, {"I16", PM_DT_I16}, {"I8", PM_DT_I8},
    {"U8", PM_DT_U8}, {"BOOL", PM_DT_BOOL},
};

/* One tensor's description {"dtype":..,"shape":..,"data_offsets":..}; adds it. */
static int tensor_entry(js *j, pm_ckpt *ck, const char *name, const uint8_t *data, uint64_t data_len)
{
    char dtype_s[16] = "";
    int have_dtype = 0, have_shape = 0, have_off = 0, ndim = 0, noff = 0, rc;
    int64_t shape[PM_MAX_DIMS], off[2];

    if ((rc = expect(j, '{')))
        return rc;
    ws(j);
    if (j->p < j->end && *j->p == '}') {
        j->p++;
    } else {
        for (;;) {
            char *key;
            if ((rc = jstring(j, &key, NULL)))
                return rc;
            if ((rc = expect(j, ':'))) {
                pm_free(key);
                return rc;
            }
            if (strcmp(key, "dtype") == 0) {
                char *v;
                size_t vn;
                if ((rc = jstring(j, &v, &vn))) {
                    pm_free(key);
                    return rc;
                }
                snprintf(dtype_s, sizeof dtype_s, "%s", v);
                if (vn >= sizeof dtype_s)
                    snprintf(dtype_s, sizeof dtype_s, "?");
                pm_free(v);
                have_dtype = 1;
            } else if (strcmp(key, "shape") == 0) {
                rc = int_array(j, shape, PM_MAX_DIMS, &ndim);
                have_shape = 1;
            } else if (strcmp(key, "data_offsets") == 0) {
                rc = int_array(j, off, 2, &noff);
                have_off = 1;
            } else {
                rc = skip_value(j, 2);
            }
            pm_free(key);
            if (rc)
                return rc;
            ws(j);
            if (j->p < j->end && *j->p == ',') {
                j->p++;
                continue;
            }
            if ((rc = expect(j, '}')))
                return rc;
            break;
        }
    }
    if (!have_dtype || !have_shape || !have_off || noff != 2)
        return pm_errorf(PM_ECORRUPT, "%s: safetensors entry '%s' lacks its dtype, shape or data_offsets; the file is corrupt",
                         ck->what, name);
    int dt = -1;
    for (size_t i = 0; i < sizeof st_dtypes / sizeof *st_dtypes; i++)
        if (strcmp(dtype_s, st_dtypes[i].name) == 0)
            dt = st_dtypes[i].dtype;
    if (off[0] > off[1] || (uint64_t)off[1] > data_len)
        return pm_errorf(PM_ECORRUPT, "%s: safetensors tensor '%s' has data_offsets [%lld,%lld] outside the %llu data bytes; the file is truncated or corrupt",
                         ck->what, name, (long long)off[0], (long long)off[1], (unsigned long long)data_len);
    if (dt < 0 || ndim > PM_MAX_DIMS) {
        if (pm_ckpt_wants(ck, name))
            pm_warn("ckpt_tensor_skipped", "%s: tensor %s is skipped: %s", ck->what, name,
                    dt < 0 ? "its dtype is not one pixmend reads" : "it has more than 8 dimensions");
        return 0;
    }
    int64_t numel = pm_shape_numel(ndim, shape);
    size_t es = pm_dtype_size((enum pm_dtype)dt);
    uint64_t nbytes = (uint64_t)(off[1] - off[0]);
    if (numel < 0 || (uint64_t)numel > data_len / es || (uint64_t)numel * es != nbytes)
        return pm_errorf(PM_ECORRUPT, "%s: safetensors tensor '%s' (%s) spans %llu bytes, which does not match its shape; the file is corrupt",
                         ck->what, name, dtype_s, (unsigned long long)nbytes);
    if (!pm_ckpt_wants(ck, name))
        return 0;
    const uint8_t *src = data + off[0];
    void *owned = NULL;
    if (nbytes && (uintptr_t)src % es) {
        owned = pm_malloc((size_t)nbytes);
        if (!owned)
            return pm_errorf(PM_ENOMEM, "%s: out of memory copying tensor %s (%llu bytes)", ck->what, name,
                             (unsigned long long)nbytes);
        memcpy(owned, src, (size_t)nbytes);
        src = owned;
    }
    return pm_ckpt_add(ck, name, (enum pm_dtype)dt, ndim, shape, src, (size_t)nbytes, owned);
}

int pm_safetensors_load(pm_ckpt *ck)
{
    const uint8_t *b = ck->base;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | b[i];
    if (hlen > ck->size - 8)
        return pm_errorf(PM_ETRUNCATED, "%s: its safetensors header claims %llu bytes but the file has only %zu; it is truncated",
                         ck->what, (unsigned long long)hlen, ck->size);
    js j = {(const char *)b + 8, (const char *)b + 8, (const char *)b + 8 + hlen, ck->what};
    const uint8_t *data = b + 8 + hlen;
    uint64_t data_len = ck->size - 8 - hlen;
    int rc = expect(&j, '{');
    if (rc)
        return rc;
    ws(&j);
    if (j.p < j.end && *j.p == '}') {
        j.p++;
    } else {
        for (;;) {
            char *name;
            size_t nlen;
            if ((rc = jstring(&j, &name, &nlen)))
                return rc;
            if (strlen(name) != nlen) {
                pm_free(name);
                return bad(&j, "a tensor name contains a NUL character");
            }
            if ((rc = expect(&j, ':'))) {
                pm_free(name);
                return rc;
            }
            if (strcmp(name, "__metadata__") == 0)
                rc = skip_value(&j, 1);
            else
                rc = tensor_entry(&j, ck, name, data, data_len);
            pm_free(name);
            if (rc)
                return rc;
            ws(&j);
            if (j.p < j.end && *j.p == ',') {
                j.p++;
                continue;
            }
            if ((rc = expect(&j, '}')))
                return rc;
            break;
        }
    }
    ws(&j);
    if (j.p != j.end)
        return bad(&j, "text follows the header's closing brace");
    return 0;
}
