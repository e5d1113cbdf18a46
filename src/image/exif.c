/* Parsers and in-place editors for the metadata blocks that travel from input
 * to output: EXIF (a TIFF structure), ICC profiles and XMP packets. They read
 * outside data, so every offset is checked against the block's length before
 * it is used (fuzz/fuzz_meta.c). Edits never move data: an entry is removed
 * by shifting the IFD's own entries, and what it pointed at is zeroed. */
#include "image/image_internal.h"
#include "image/meta.h"

#include <string.h>

/* ------------------------------------------------------------------ ICC */

int pm_icc_check(const uint8_t *p, size_t n)
{
    if (n > PM_META_MAX_ICC)
        return pm_errorf(PM_ETOOBIG, "the ICC profile is %zu bytes, more than the %u MiB pixmend keeps", n,
                         PM_META_MAX_ICC >> 20);
    if (n < 132)
        return pm_errorf(PM_ECORRUPT, "the ICC profile is only %zu bytes, shorter than its header", n);
    uint32_t size = pm_img_be32(p);
    if (size < 132 || size > n)
        return pm_errorf(PM_ECORRUPT, "the ICC profile declares %u bytes but %zu are present", size, n);
    if (memcmp(p + 36, "acsp", 4))
        return pm_errorf(PM_ECORRUPT, "the ICC profile lacks its 'acsp' signature");
    uint32_t tags = pm_img_be32(p + 128);
    if (tags > (size - 132) / 12)
        return pm_errorf(PM_ECORRUPT, "the ICC profile's tag table (%u tags) runs past its end", tags);
    for (uint32_t i = 0; i < tags; i++) {
        const uint8_t *t = p + 132 + 12 * (size_t)i;
        uint32_t off = pm_img_be32(t + 4), len = pm_img_be32(t + 8);
        if (off > size || len > size - off)
            return pm_errorf(PM_ECORRUPT, "the ICC profile's tag %u points past its end", i);
    }
    return 0;
}

int pm_icc_channels(const uint8_t *p, size_t n)
{
    if (n < 20)
        return 0;
    if (!memcmp(p + 16, "RGB ", 4))
        return 3;
    if (!memcmp(p + 16, "GRAY", 4))
        return 1;
    if (!memcmp(p + 16, "CMYK", 4))
        return 4;
    return 0;
}

/* ----------------------------------------------------------------- EXIF */

typedef struct tiff {
    uint8_t *t;
    size_t n;
    int le;
} tiff;

static unsigned rd16(const tiff *x, size_t off)
{
    return x->le ? pm_img_le16(x->t + off) : pm_img_be16(x->t + off);
}

static uint32_t rd32(const tiff *x, size_t off)
{
    return x->le ? pm_img_le32(x->t + off) : pm_img_be32(x->t + off);
}

static void wr16(tiff *x, size_t off, unsigned v)
{
    x->t[off + (x->le ? 0 : 1)] = (uint8_t)v;
    x->t[off + (x->le ? 1 : 0)] = (uint8_t)(v >> 8);
}

static void wr32(tiff *x, size_t off, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        x->t[off + (size_t)(x->le ? i : 3 - i)] = (uint8_t)(v >> (8 * i));
}

/* Opens the TIFF header; *ifd0 = the first IFD's offset, checked so that its
 * entry count and entries fit (an IFD whose entries run past the end is
 * refused). Returns 0 or PM_ECORRUPT. */
static int tiff_open_loose(tiff *x, const uint8_t *t, size_t n, size_t *ifd0)
{
    x->t = (uint8_t *)t; /* the read-only callers never write through it */
    x->n = n;
    if (n < 8)
        return pm_errorf(PM_ECORRUPT, "the EXIF block is %zu bytes, shorter than a TIFF header", n);
    if (t[0] == 'I' && t[1] == 'I')
        x->le = 1;
    else if (t[0] == 'M' && t[1] == 'M')
        x->le = 0;
    else
        return pm_errorf(PM_ECORRUPT, "the EXIF block does not start with a TIFF byte order (II or MM)");
    if (rd16(x, 2) != 42)
        return pm_errorf(PM_ECORRUPT, "the EXIF block's TIFF header lacks its magic number 42");
    uint32_t off = rd32(x, 4);
    if (off < 8 || off > n - 2)
        return pm_errorf(PM_ECORRUPT, "the EXIF block's first directory lies outside it");
    *ifd0 = off;
    return 0;
}

/* The same, and the first IFD's entries and next-IFD offset fit. */
static int tiff_open(tiff *x, const uint8_t *t, size_t n, size_t *ifd0)
{
    int rc = tiff_open_loose(x, t, n, ifd0);
    if (rc)
        return rc;
    unsigned count = rd16(x, *ifd0);
    if ((size_t)count * 12 + 6 > n - *ifd0)
        return pm_errorf(PM_ECORRUPT, "the EXIF block's first directory (%u entries) runs past its end", count);
    return 0;
}

static size_t type_size(unsigned type)
{
    static const uint8_t sz[14] = {0, 1, 1, 2, 4, 8, 1, 1, 2, 4, 8, 4, 8, 4};
    return type < 14 ? sz[type] : 0;
}

/* Entry index of `tag` in the IFD at `ifd` (already bounds-checked), or -1. */
static int find_tag(const tiff *x, size_t ifd, unsigned tag)
{
    unsigned count = rd16(x, ifd);
    for (unsigned i = 0; i < count; i++)
        if (rd16(x, ifd + 2 + 12 * (size_t)i) == tag)
            return (int)i;
    return -1;
}

/* Zeroes an IFD at `off` with its out-of-line values; stops at anything that
 * does not fit. Returns the offset of the next IFD it named (0 if none). */
static uint32_t zero_ifd(tiff *x, size_t off)
{
    if (off < 8 || off > x->n - 2)
        return 0;
    unsigned count = rd16(x, off);
    if ((size_t)count * 12 + 6 > x->n - off)
        return 0;
    for (unsigned i = 0; i < count; i++) {
        size_t e = off + 2 + 12 * (size_t)i;
        uint64_t bytes = (uint64_t)type_size(rd16(x, e + 2)) * rd32(x, e + 4);
        if (bytes > 4) {
            uint32_t v = rd32(x, e + 8);
            if (v >= 8 && v <= x->n && bytes <= x->n - v)
                memset(x->t + v, 0, (size_t)bytes);
        }
    }
    size_t end = off + 2 + 12 * (size_t)count;
    uint32_t next = rd32(x, end);
    memset(x->t + off, 0, end + 4 - off);
    return next;
}

/* Removes entry `i` of the IFD at `ifd`: later entries and the next-IFD
 * offset move up 12 bytes, the freed bytes are zeroed. */
static void remove_entry(tiff *x, size_t ifd, int i)
{
    unsigned count = rd16(x, ifd);
    if ((unsigned)i >= count)
        return;
    size_t e = ifd + 2 + 12 * (size_t)i, end = ifd + 2 + 12 * (size_t)count + 4;
    memmove(x->t + e, x->t + e + 12, end - e - 12);
    memset(x->t + end - 12, 0, 12);
    wr16(x, ifd, count - 1);
}

int pm_exif_check(const uint8_t *t, size_t n)
{
    tiff x = {0};
    size_t ifd = 0;
    if (n > PM_META_MAX_EXIF)
        return pm_errorf(PM_ETOOBIG, "the EXIF block is %zu bytes, more than the %u KiB pixmend keeps", n,
                         PM_META_MAX_EXIF >> 10);
    return tiff_open(&x, t, n, &ifd);
}

/* Tolerant: a directory that claims more entries than fit is read as far as
 * its entries do fit (cameras write such blocks; the pixels are shown
 * rotated as other viewers show them). */
int pm_exif_orientation(const uint8_t *t, size_t n)
{
    tiff x = {0};
    size_t ifd = 0;
    if (tiff_open_loose(&x, t, n, &ifd))
        return 1;
    unsigned count = rd16(&x, ifd);
    size_t e = 0;
    for (unsigned i = 0; i < count; i++) {
        size_t at = ifd + 2 + 12 * (size_t)i;
        if (at > n || n - at < 12)
            return 1;
        if (rd16(&x, at) == 0x0112) {
            e = at;
            break;
        }
    }
    if (!e)
        return 1;
    unsigned type = rd16(&x, e + 2);
    uint32_t v = 0;
    if (type == 3 && rd32(&x, e + 4) >= 1) /* SHORT, in the first two value bytes */
        v = rd16(&x, e + 8);
    else if (type == 4 && rd32(&x, e + 4) >= 1) /* LONG, written by a few tools */
        v = rd32(&x, e + 8);
    return v >= 1 && v <= 8 ? (int)v : 1;
}

int pm_exif_set_orientation(uint8_t *t, size_t n, int v)
{
    tiff x = {0};
    size_t ifd = 0;
    if (tiff_open(&x, t, n, &ifd))
        return 0;
    int i = find_tag(&x, ifd, 0x0112);
    if (i < 0)
        return 0;
    size_t e = ifd + 2 + 12 * (size_t)i;
    unsigned type = rd16(&x, e + 2);
    if (type == 3) {
        wr32(&x, e + 8, 0);
        wr16(&x, e + 8, (unsigned)v);
    } else if (type == 4) {
        wr32(&x, e + 8, (uint32_t)v);
    } else {
        return 0;
    }
    return 1;
}

int pm_exif_strip_gps(uint8_t *t, size_t n)
{
    tiff x = {0};
    size_t ifd = 0;
    if (tiff_open(&x, t, n, &ifd))
        return PM_ECORRUPT;
    int i = find_tag(&x, ifd, 0x8825);
    if (i < 0)
        return 0;
    size_t e = ifd + 2 + 12 * (size_t)i;
    uint32_t gps = rd32(&x, e + 8);
    if (gps < 8 || gps > n - 2 || (size_t)rd16(&x, gps) * 12 + 6 > n - gps)
        return PM_ECORRUPT; /* the location may be elsewhere: the caller drops the block */
    /* The pointer goes first: a hostile GPS directory may overlap IFD0. */
    remove_entry(&x, ifd, i);
    (void)zero_ifd(&x, gps);
    return 1;
}

int pm_exif_drop_thumbnail(uint8_t *t, size_t n)
{
    tiff x = {0};
    size_t ifd = 0;
    if (tiff_open(&x, t, n, &ifd))
        return 0;
    size_t next_at = ifd + 2 + 12 * (size_t)rd16(&x, ifd);
    uint32_t ifd1 = rd32(&x, next_at);
    if (ifd1 == 0)
        return 0;
    wr32(&x, next_at, 0);
    if (ifd1 < 8 || ifd1 > n - 2 || (size_t)rd16(&x, ifd1) * 12 + 6 > n - ifd1)
        return 1;
    /* The JPEG thumbnail is addressed by two tags, not by an out-of-line value. */
    int io = find_tag(&x, ifd1, 0x0201), il = find_tag(&x, ifd1, 0x0202);
    if (io >= 0 && il >= 0) {
        uint32_t off = rd32(&x, ifd1 + 2 + 12 * (size_t)io + 8);
        uint32_t len = rd32(&x, ifd1 + 2 + 12 * (size_t)il + 8);
        if (off >= 8 && off <= n && len <= n - off)
            memset(t + off, 0, len);
    }
    (void)zero_ifd(&x, ifd1);
    return 1;
}

/* ------------------------------------------------------------------ XMP */

static int contains(const uint8_t *h, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    if (n < k)
        return 0;
    for (size_t i = 0; i + k <= n; i++)
        if (h[i] == (uint8_t)needle[0] && !memcmp(h + i, needle, k))
            return 1;
    return 0;
}

int pm_xmp_has_gps(const uint8_t *x, size_t n)
{
    return contains(x, n, "GPSLatitude") || contains(x, n, "GPSLongitude") || contains(x, n, "exif:GPS") ||
           contains(x, n, "exifEX:GPS") || contains(x, n, "LocationShown") || contains(x, n, "LocationCreated");
}
