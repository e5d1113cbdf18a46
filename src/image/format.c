/* Format detection, limits, and the format-independent decode/encode entry
 * points that dispatch to png.c, jpeg.c and webp.c. */
#include "image/image_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
static const uint8_t jpeg_magic[3] = {0xff, 0xd8, 0xff};

pm_limits pm_default_limits(void)
{
    pm_limits l;
    l.max_pixels = 16000000u;
    l.max_side = 8192u;
    l.max_file_bytes = 64u * 1024u * 1024u;
    return l;
}

void pm_img_fmt_bytes(char *buf, size_t n, uint64_t bytes)
{
    if (bytes >= 1024u * 1024u)
        snprintf(buf, n, "%.1f MiB", (double)bytes / (1024.0 * 1024.0));
    else if (bytes >= 1024u)
        snprintf(buf, n, "%.1f KiB", (double)bytes / 1024.0);
    else
        snprintf(buf, n, "%llu bytes", (unsigned long long)bytes);
}

static void fmt_pixels(char *buf, size_t n, uint64_t px)
{
    if (px >= 100000u)
        snprintf(buf, n, "%.1f MP", (double)px / 1e6);
    else
        snprintf(buf, n, "%llu pixels", (unsigned long long)px);
}

/* A NULL `lim` or a zero field means the default for that field, so a
 * zero-initialised pm_limits never switches the guards off; to lift a limit,
 * set it to a huge value. The hard caps below apply whatever the limits say. */
static pm_limits effective_limits(const pm_limits *lim)
{
    pm_limits l = pm_default_limits();
    if (lim) {
        if (lim->max_pixels)
            l.max_pixels = lim->max_pixels;
        if (lim->max_side)
            l.max_side = lim->max_side;
        if (lim->max_file_bytes)
            l.max_file_bytes = lim->max_file_bytes;
    }
    return l;
}

int pm_img_check_limits(int width, int height, const pm_limits *lim)
{
    pm_limits l = effective_limits(lim);
    uint64_t px = (uint64_t)width * (uint64_t)height;
    if (px > l.max_pixels) {
        char have[32], allow[32];
        fmt_pixels(have, sizeof have, px);
        fmt_pixels(allow, sizeof allow, l.max_pixels);
        return pm_errorf(PM_ETOOBIG, "image is %dx%d (%s); this server accepts at most %s (--max-pixels)",
                         width, height, have, allow);
    }
    int side = width > height ? width : height;
    if ((uint64_t)side > l.max_side)
        return pm_errorf(PM_ETOOBIG, "image side %d px exceeds the limit of %u px (--max-side)",
                         side, (unsigned)l.max_side);
    if ((uint64_t)side > PM_IMG_HARD_MAX_SIDE || px > PM_IMG_HARD_MAX_PIXELS)
        return pm_errorf(PM_ETOOBIG, "image is %dx%d, beyond pixmend's hard maximum of %u px a side and %u pixels",
                         width, height, PM_IMG_HARD_MAX_SIDE, PM_IMG_HARD_MAX_PIXELS);
    return 0;
}

static int check_file_bytes(uint64_t bytes, const pm_limits *lim)
{
    pm_limits l = effective_limits(lim);
    if (bytes > l.max_file_bytes) {
        char have[32], allow[32];
        pm_img_fmt_bytes(have, sizeof have, bytes);
        pm_img_fmt_bytes(allow, sizeof allow, l.max_file_bytes);
        if (!strcmp(have, allow)) /* e.g. one byte over: show exact counts */
            return pm_errorf(PM_ETOOBIG, "file is %llu bytes; the limit is %llu bytes (--max-file-bytes)",
                             (unsigned long long)bytes, (unsigned long long)l.max_file_bytes);
        return pm_errorf(PM_ETOOBIG, "file is %s; the limit is %s (--max-file-bytes)", have, allow);
    }
    return 0;
}

enum pm_format pm_format_sniff(const uint8_t *data, size_t len)
{
    if (!data)
        return PM_FMT_UNKNOWN;
    if (len >= sizeof png_magic && !memcmp(data, png_magic, sizeof png_magic))
        return PM_FMT_PNG;
    if (len >= sizeof jpeg_magic && !memcmp(data, jpeg_magic, sizeof jpeg_magic))
        return PM_FMT_JPEG;
    if (len >= 12 && !memcmp(data, "RIFF", 4) && !memcmp(data + 8, "WEBP", 4))
        return PM_FMT_WEBP;
    return PM_FMT_UNKNOWN;
}

/* The format whose magic number these few bytes (fewer than the full magic)
 * are the beginning of, or UNKNOWN. */
static enum pm_format sniff_prefix(const uint8_t *d, size_t len)
{
    if (len < sizeof png_magic && !memcmp(d, png_magic, len))
        return PM_FMT_PNG;
    if (len < sizeof jpeg_magic && !memcmp(d, jpeg_magic, len))
        return PM_FMT_JPEG;
    if (len < 12) {
        size_t head = len < 4 ? len : 4;
        if (!memcmp(d, "RIFF", head) && (len <= 8 || !memcmp(d + 8, "WEBP", len - 8)))
            return PM_FMT_WEBP;
    }
    return PM_FMT_UNKNOWN;
}

/* The one table of image formats: the name the API, the CLI and the job
 * JSON use, the name in sentences, the extension results are written with,
 * the other extension recognised, and the media type. */
static const struct format_row {
    enum pm_format format;
    const char *id, *display, *ext, *alt_ext, *mime;
} formats[] = {
    {PM_FMT_PNG, "png", "PNG", "png", NULL, "image/png"},
    {PM_FMT_JPEG, "jpeg", "JPEG", "jpg", "jpeg", "image/jpeg"},
    {PM_FMT_WEBP, "webp", "WebP", "webp", NULL, "image/webp"},
};
#define NFORMATS ((int)(sizeof formats / sizeof formats[0]))

static const struct format_row *format_row(enum pm_format f)
{
    for (int i = 0; i < NFORMATS; i++)
        if (formats[i].format == f)
            return &formats[i];
    return NULL;
}

enum pm_format pm_format_at(int i)
{
    return i >= 0 && i < NFORMATS ? formats[i].format : PM_FMT_UNKNOWN;
}

enum pm_format pm_format_parse(const char *s)
{
    for (int i = 0; s && i < NFORMATS; i++)
        if (!strcasecmp(s, formats[i].id) || !strcasecmp(s, formats[i].ext) ||
            (formats[i].alt_ext && !strcasecmp(s, formats[i].alt_ext)))
            return formats[i].format;
    return PM_FMT_UNKNOWN;
}

enum pm_format pm_format_from_name(const char *path)
{
    if (!path)
        return PM_FMT_UNKNOWN;
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const char *dot = strrchr(base, '.');
    if (!dot || dot == base)
        return PM_FMT_UNKNOWN;
    for (int i = 0; i < NFORMATS; i++)
        if (!strcasecmp(dot + 1, formats[i].ext) || (formats[i].alt_ext && !strcasecmp(dot + 1, formats[i].alt_ext)))
            return formats[i].format;
    return PM_FMT_UNKNOWN;
}

const char *pm_format_name(enum pm_format f)
{
    const struct format_row *r = format_row(f);
    return r ? r->display : "unknown";
}

const char *pm_format_id(enum pm_format f)
{
    const struct format_row *r = format_row(f);
    return r ? r->id : NULL;
}

const char *pm_format_ext(enum pm_format f)
{
    const struct format_row *r = format_row(f);
    return r ? r->ext : formats[0].ext;
}

const char *pm_format_mime(enum pm_format f)
{
    const struct format_row *r = format_row(f);
    return r ? r->mime : formats[0].mime;
}

/* True when the first bytes read as text (ASCII or UTF-8, no control bytes
 * other than whitespace). */
static int looks_like_text(const uint8_t *d, size_t len)
{
    size_t n = len < 512 ? len : 512;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = d[i];
        if (c == '\t' || c == '\n' || c == '\r' || c == '\f')
            continue;
        if (c < 0x20 || c == 0x7f)
            return 0;
    }
    return 1;
}

static int starts_nocase(const uint8_t *d, size_t len, const char *s)
{
    size_t n = strlen(s);
    if (len < n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (tolower(d[i]) != tolower((unsigned char)s[i]))
            return 0;
    return 1;
}

/* PM_EFORMAT with a sentence naming what the data looks like instead. */
static int not_an_image(const uint8_t *d, size_t len)
{
    const char *what = NULL;
    const char *hint = "";
    if (len >= 6 && (!memcmp(d, "GIF87a", 6) || !memcmp(d, "GIF89a", 6)))
        what = "a GIF";
    else if (len >= 4 && (!memcmp(d, "II*\0", 4) || !memcmp(d, "MM\0*", 4)))
        what = "a TIFF";
    else if (len >= 2 && !memcmp(d, "BM", 2) && len >= 14)
        what = "a BMP";
    else if (len >= 12 && !memcmp(d + 4, "ftyp", 4)) {
        if (!memcmp(d + 8, "avif", 4) || !memcmp(d + 8, "avis", 4))
            what = "an AVIF";
        else if (!memcmp(d + 8, "hei", 3) || !memcmp(d + 8, "mif1", 4) || !memcmp(d + 8, "msf1", 4))
            what = "a HEIF/HEIC";
        else
            what = "an MP4/QuickTime video";
    } else if (len >= 12 && !memcmp(d, "\0\0\0\x0cjP  ", 8))
        what = "a JPEG 2000";
    else if ((len >= 2 && d[0] == 0xff && d[1] == 0x0a) || (len >= 12 && !memcmp(d, "\0\0\0\x0cJXL ", 8)))
        what = "a JPEG XL";
    else if (len >= 4 && !memcmp(d, "%PDF", 4))
        what = "a PDF";
    else if (len >= 4 && !memcmp(d, "PK\3\4", 4))
        what = "a ZIP";
    else if (len >= 2 && d[0] == 0x1f && d[1] == 0x8b)
        what = "a gzip";
    else if (len >= 4 && !memcmp(d, "8BPS", 4))
        what = "a Photoshop (PSD)";
    else if (len >= 4 && !memcmp(d, "\0\0\1\0", 4))
        what = "an ICO";
    else if (len >= 4 && !memcmp(d, "RIFF", 4))
        what = "a RIFF (WAV/AVI)";
    else if (looks_like_text(d, len)) {
        size_t i = 0;
        if (len >= 3 && d[0] == 0xef && d[1] == 0xbb && d[2] == 0xbf)
            i = 3;
        while (i < len && isspace(d[i]))
            i++;
        if (starts_nocase(d + i, len - i, "<!doctype html") || starts_nocase(d + i, len - i, "<html")) {
            what = "an HTML";
            hint = " (perhaps an error page was saved instead of the image)";
        } else if (starts_nocase(d + i, len - i, "<?xml") || starts_nocase(d + i, len - i, "<svg")) {
            what = "an XML/SVG";
        } else if (i < len && (d[i] == '{' || d[i] == '[')) {
            what = "a JSON";
        } else {
            what = "a text";
        }
    }
    if (what)
        return pm_errorf(PM_EFORMAT, "not an image: the data starts like %s file%s; pixmend reads PNG, JPEG and WebP",
                         what, hint);
    char hex[3 * 8 + 1] = "";
    size_t n = len < 8 ? len : 8;
    for (size_t i = 0; i < n; i++)
        snprintf(hex + 3 * i, sizeof hex - 3 * i, "%02x ", d[i]);
    if (n)
        hex[3 * n - 1] = '\0';
    return pm_errorf(PM_EFORMAT,
                     "not an image: the data starts with bytes %s, which match no known format; pixmend reads PNG, JPEG and WebP",
                     hex);
}

/* Common front of probe and decode: empty, file size, magic. */
static int classify(const uint8_t *data, size_t len, const pm_limits *lim, enum pm_format *fmt)
{
    *fmt = PM_FMT_UNKNOWN;
    if (len == 0)
        return pm_errorf(PM_EEMPTY, "the image is empty (0 bytes); check that the upload or file copy completed");
    if (!data)
        return pm_errorf(PM_EINVAL, "image data is NULL but its length is %zu", len);
    int rc = check_file_bytes(len, lim);
    if (rc)
        return rc;
    *fmt = pm_format_sniff(data, len);
    if (*fmt != PM_FMT_UNKNOWN)
        return 0;
    enum pm_format pre = sniff_prefix(data, len);
    if (pre != PM_FMT_UNKNOWN)
        return pm_errorf(PM_ETRUNCATED, "the data ends after %zu bytes, inside the %s signature; the file is truncated",
                         len, pm_format_name(pre));
    return not_an_image(data, len);
}

static int check_extension(const char *name, enum pm_format fmt)
{
    enum pm_format by_name = pm_format_from_name(name);
    if (by_name == PM_FMT_UNKNOWN || by_name == fmt)
        return 0;
    const char *slash = strrchr(name, '/');
    const char *base = slash ? slash + 1 : name;
    const char *dot = strrchr(base, '.');
    int stem = (int)(dot - name);
    return pm_errorf(PM_EEXTENSION, "%s contains %s data; rename it to %.*s.%s", name, pm_format_name(fmt),
                     stem, name, pm_format_ext(fmt));
}

int pm_image_probe(const uint8_t *data, size_t len, const pm_limits *lim, pm_image_info *info)
{
    return pm_image_probe_named(data, len, lim, NULL, info);
}

int pm_image_probe_named(const uint8_t *data, size_t len, const pm_limits *lim, const char *name,
                         pm_image_info *info)
{
    if (!info)
        return pm_errorf(PM_EINVAL, "pm_image_probe: info is NULL");
    memset(info, 0, sizeof *info);
    enum pm_format fmt;
    int rc = classify(data, len, lim, &fmt);
    if (rc)
        return rc;
    if (name && (rc = check_extension(name, fmt)))
        return rc;
    switch (fmt) {
    case PM_FMT_PNG: rc = pm_img_png_probe(data, len, lim, info); break;
    case PM_FMT_JPEG: rc = pm_img_jpeg_probe(data, len, info); break;
    default: rc = pm_img_webp_probe(data, len, info); break;
    }
    if (rc)
        return rc;
    return pm_img_check_limits(info->width, info->height, lim);
}

/* Caller owns *out on success; on failure *out is zeroed. */
int pm_image_decode(const uint8_t *data, size_t len, const pm_limits *lim, const char *name, pm_image *out)
{
    if (!out)
        return pm_errorf(PM_EINVAL, "pm_image_decode: out is NULL");
    memset(out, 0, sizeof *out);
    enum pm_format fmt;
    int rc = classify(data, len, lim, &fmt);
    if (rc)
        return rc;
    if (name) {
        rc = check_extension(name, fmt);
        if (rc)
            return rc;
    }
    switch (fmt) {
    case PM_FMT_PNG: rc = pm_img_png_decode(data, len, lim, out, NULL); break;
    case PM_FMT_JPEG: rc = pm_img_jpeg_decode(data, len, lim, out, NULL); break;
    default: rc = pm_img_webp_decode(data, len, lim, out, NULL); break;
    }
    if (rc)
        pm_image_free(out);
    return rc;
}

/* Caller owns *out. The size limit is checked with stat() before any read. */
int pm_image_load(const char *path, const pm_limits *lim, pm_image *out)
{
    if (!out)
        return pm_errorf(PM_EINVAL, "pm_image_load: out is NULL");
    memset(out, 0, sizeof *out);
    if (!path)
        return pm_errorf(PM_EINVAL, "pm_image_load: path is NULL");
    struct stat st;
    if (stat(path, &st) != 0) {
        int e = errno;
        return pm_errorf(e == ENOENT || e == ENOTDIR ? PM_ENOENT : PM_EIO, "cannot open %s: %s", path,
                         strerror(e));
    }
    if (S_ISDIR(st.st_mode))
        return pm_errorf(PM_EINVAL, "%s is a directory, not an image file", path);
    if (S_ISREG(st.st_mode)) {
        int rc = check_file_bytes((uint64_t)st.st_size, lim);
        if (rc)
            return rc;
    }
    pm_limits l = effective_limits(lim);
    uint8_t *buf = NULL;
    size_t n = 0;
    int rc = pm_read_file(path, l.max_file_bytes > SIZE_MAX ? SIZE_MAX : (size_t)l.max_file_bytes, &buf, &n);
    if (rc) /* PM_ETOOBIG here: the file grew after stat, or is not a regular file */
        return rc;
    rc = pm_image_decode(buf, n, lim, path, out);
    pm_free(buf);
    return rc;
}

pm_encode_opts pm_default_encode_opts(enum pm_format f)
{
    pm_encode_opts o;
    o.format = f;
    o.quality = PM_QUALITY_DEFAULT;
    o.lossless = 0;
    return o;
}

/* Caller owns *out_data (pm_free). */
int pm_image_encode(const pm_image *img, const pm_encode_opts *opts, uint8_t **out_data, size_t *out_len)
{
    if (!out_data || !out_len || !opts)
        return pm_errorf(PM_EINVAL, "pm_image_encode: opts, out_data and out_len must not be NULL");
    *out_data = NULL;
    *out_len = 0;
    if (!img || !img->data || img->width <= 0 || img->height <= 0 ||
        (img->channels != 1 && img->channels != 3 && img->channels != 4) ||
        (uint32_t)img->width > PM_IMG_HARD_MAX_SIDE || (uint32_t)img->height > PM_IMG_HARD_MAX_SIDE)
        return pm_errorf(PM_EINVAL, "cannot encode: the image is empty or has an invalid shape");
    if ((opts->format == PM_FMT_JPEG || (opts->format == PM_FMT_WEBP && !opts->lossless)) &&
        (opts->quality < 1 || opts->quality > 100))
        return pm_errorf(PM_EINVAL, "quality %d is out of range; use 1..100", opts->quality);
    switch (opts->format) {
    case PM_FMT_PNG: return pm_img_png_encode(img, NULL, out_data, out_len);
    case PM_FMT_JPEG: return pm_img_jpeg_encode(img, opts->quality, out_data, out_len);
    case PM_FMT_WEBP: return pm_img_webp_encode(img, opts->quality, opts->lossless, out_data, out_len);
    default: return pm_errorf(PM_EINVAL, "no output format given; use PNG, JPEG or WebP");
    }
}

int pm_image_save(const char *path, const pm_image *img, const pm_encode_opts *opts)
{
    if (!path)
        return pm_errorf(PM_EINVAL, "pm_image_save: path is NULL");
    enum pm_format by_name = pm_format_from_name(path);
    /* A name with no extension at all takes the format the options give. */
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    const char *dot = strrchr(base, '.');
    if (by_name == PM_FMT_UNKNOWN && (!dot || dot == base) && opts && opts->format != PM_FMT_UNKNOWN)
        by_name = opts->format;
    if (by_name == PM_FMT_UNKNOWN)
        return pm_errorf(PM_EINVAL, "cannot tell the output format from the name %s; use .png, .jpg, .jpeg or .webp",
                         path);
    pm_encode_opts o = opts ? *opts : pm_default_encode_opts(by_name);
    if (o.format == PM_FMT_UNKNOWN)
        o.format = by_name;
    if (o.format != by_name)
        return pm_errorf(PM_EEXTENSION, "asked to write %s data to %s, whose extension says %s; choose a matching name",
                         pm_format_name(o.format), path, pm_format_name(by_name));
    uint8_t *buf = NULL;
    size_t n = 0;
    int rc = pm_image_encode(img, &o, &buf, &n);
    if (rc)
        return rc;
    rc = pm_write_file_atomic(path, buf, n);
    pm_free(buf);
    return rc;
}
