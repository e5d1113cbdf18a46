/* A read-only zip reader for PyTorch archives: central directory (with
 * ZIP64 records), stored entries returned in place, deflated entries
 * inflated with zlib, CRC-32 checked on first read. Every read is checked
 * against the mapped size. */
#include "ckpt/ckpt_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOC64 0x07064b50u

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

/* Does [off, off+n) lie inside [0, size)? */
static int in_range(uint64_t off, uint64_t n, size_t size)
{
    return off <= size && n <= size - off;
}

static int cmp_names(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c;
    return an < bn ? -1 : an > bn;
}

/* Merge sort of entry indices by name (no global state, so threads may open
 * checkpoints concurrently). tmp has n slots. */
static void sort_by_name(const pm_zip *z, size_t *idx, size_t *tmp, size_t n)
{
    if (n < 2)
        return;
    size_t h = n / 2;
    sort_by_name(z, idx, tmp, h);
    sort_by_name(z, idx + h, tmp, n - h);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        const pm_zip_entry *a = &z->entries[idx[i]], *b = &z->entries[idx[j]];
        if (cmp_names(a->name, a->name_len, b->name, b->name_len) <= 0)
            tmp[k++] = idx[i++];
        else
            tmp[k++] = idx[j++];
    }
    while (i < h)
        tmp[k++] = idx[i++];
    while (j < n)
        tmp[k++] = idx[j++];
    memcpy(idx, tmp, n * sizeof *idx);
}

/* Reads the ZIP64 extended-information extra field of a central entry: each
 * of usize, csize, offset is present only when its 32-bit field is all ones. */
static int read_zip64_extra(pm_zip_entry *e, const uint8_t *extra, size_t len, int need_u, int need_c, int need_o)
{
    size_t pos = 0;
    while (pos + 4 <= len) {
        uint16_t id = rd16(extra + pos), n = rd16(extra + pos + 2);
        pos += 4;
        if (n > len - pos)
            return -1;
        if (id == 0x0001) {
            const uint8_t *f = extra + pos;
            size_t k = 0;
            if (need_u) {
                if (k + 8 > n)
                    return -1;
                e->usize = rd64(f + k);
                k += 8;
            }
            if (need_c) {
                if (k + 8 > n)
                    return -1;
                e->csize = rd64(f + k);
                k += 8;
            }
            if (need_o) {
                if (k + 8 > n)
                    return -1;
                e->local_off = rd64(f + k);
            }
            return 0;
        }
        pos += n;
    }
    return (need_u || need_c || need_o) ? -1 : 0;
}

/* Fills z from the central directory. z borrows base; the caller owns z
 * afterwards (pm_zip_close), also on failure. */
int pm_zip_open(pm_zip *z, const uint8_t *base, size_t size, const char *what)
{
    memset(z, 0, sizeof *z);
    z->base = base;
    z->size = size;

    if (size < 22)
        return pm_errorf(PM_ETRUNCATED, "%s is a zip archive of only %zu bytes: the file is truncated; download or copy it again",
                         what, size);
    /* The end-of-central-directory record: last 22 bytes plus up to 64 KiB of comment. */
    size_t eocd = SIZE_MAX;
    size_t lo = size - 22 > 65535 ? size - 22 - 65535 : 0;
    for (size_t p = size - 22 + 1; p-- > lo;) {
        if (rd32(base + p) == SIG_EOCD && p + 22 + (size_t)rd16(base + p + 20) <= size) {
            eocd = p;
            break;
        }
    }
    if (eocd == SIZE_MAX)
        return pm_errorf(PM_ETRUNCATED, "%s is a zip archive without its end record (%zu bytes): the file is truncated; download or copy it again",
                         what, size);

    uint64_t count = rd16(base + eocd + 10);
    uint64_t cd_size = rd32(base + eocd + 12);
    uint64_t cd_off = rd32(base + eocd + 16);
    if (eocd >= 20 && rd32(base + eocd - 20) == SIG_LOC64) {
        uint64_t off64 = rd64(base + eocd - 20 + 8);
        if (!in_range(off64, 56, size) || rd32(base + off64) != SIG_EOCD64)
            return pm_errorf(PM_ECORRUPT, "%s: the zip's ZIP64 end record (at byte %llu) is missing or damaged; the file is corrupt",
                             what, (unsigned long long)off64);
        count = rd64(base + off64 + 32);
        cd_size = rd64(base + off64 + 40);
        cd_off = rd64(base + off64 + 48);
    }
    if (!in_range(cd_off, cd_size, size))
        return pm_errorf(PM_ETRUNCATED, "%s: the zip's central directory (%llu bytes at byte %llu) lies beyond the end of the %zu-byte file; it is truncated or corrupt",
                         what, (unsigned long long)cd_size, (unsigned long long)cd_off, size);
    if (count > cd_size / 46)
        return pm_errorf(PM_ECORRUPT, "%s: the zip claims %llu entries in a %llu-byte central directory; the file is corrupt",
                         what, (unsigned long long)count, (unsigned long long)cd_size);
    if (count == 0)
        return 0;

    z->entries = pm_calloc((size_t)count, sizeof *z->entries);
    z->by_name = pm_malloc((size_t)count * sizeof *z->by_name);
    size_t *tmp = pm_malloc((size_t)count * sizeof *tmp);
    if (!z->entries || !z->by_name || !tmp) {
        pm_free(tmp);
        return pm_errorf(PM_ENOMEM, "%s: out of memory for a zip directory of %llu entries", what, (unsigned long long)count);
    }

    int rc = 0;
    const uint8_t *p = base + cd_off, *end = base + cd_off + cd_size;
    for (size_t i = 0; i < count; i++) {
        if (end - p < 46 || rd32(p) != SIG_CENTRAL) {
            rc = pm_errorf(PM_ECORRUPT, "%s: zip central directory entry %zu of %llu is damaged; the file is corrupt",
                           what, i, (unsigned long long)count);
            goto free_tmp;
        }
        pm_zip_entry *e = &z->entries[i];
        e->flags = rd16(p + 8);
        e->method = rd16(p + 10);
        e->crc = rd32(p + 16);
        e->csize = rd32(p + 20);
        e->usize = rd32(p + 24);
        size_t nlen = rd16(p + 28), xlen = rd16(p + 30), clen = rd16(p + 32);
        e->local_off = rd32(p + 42);
        if ((size_t)(end - p) - 46 < nlen + xlen + clen) {
            rc = pm_errorf(PM_ECORRUPT, "%s: zip central directory entry %zu of %llu runs past the directory; the file is corrupt",
                           what, i, (unsigned long long)count);
            goto free_tmp;
        }
        e->name = p + 46;
        e->name_len = nlen;
        int need_u = e->usize == 0xffffffffu, need_c = e->csize == 0xffffffffu, need_o = e->local_off == 0xffffffffu;
        if (read_zip64_extra(e, p + 46 + nlen, xlen, need_u, need_c, need_o) != 0) {
            rc = pm_errorf(PM_ECORRUPT, "%s: zip entry %.*s lacks its ZIP64 sizes; the file is corrupt",
                           what, (int)(nlen > 200 ? 200 : nlen), (const char *)e->name);
            goto free_tmp;
        }
        p += 46 + nlen + xlen + clen;
        z->by_name[i] = i;
    }
    z->count = (size_t)count;
    sort_by_name(z, z->by_name, tmp, z->count);
free_tmp:
    pm_free(tmp);
    return rc;
}

/* Frees what pm_zip_open and pm_zip_read allocated; the mapped bytes stay
 * the caller's. */
void pm_zip_close(pm_zip *z)
{
    if (!z)
        return;
    for (size_t i = 0; i < z->count; i++)
        pm_free(z->entries[i].owned);
    pm_free(z->entries);
    pm_free(z->by_name);
    memset(z, 0, sizeof *z);
}

/* Binary search over the sorted names; the entry belongs to z. */
pm_zip_entry *pm_zip_find(pm_zip *z, const char *name, size_t len)
{
    size_t lo = 0, hi = z->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        pm_zip_entry *e = &z->entries[z->by_name[mid]];
        int c = cmp_names(e->name, e->name_len, (const uint8_t *)name, len);
        if (c == 0)
            return e;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Linear scan (once per open); the entry belongs to z. */
pm_zip_entry *pm_zip_find_base(pm_zip *z, const char *basename)
{
    size_t bl = strlen(basename);
    pm_zip_entry *best = NULL;
    for (size_t i = 0; i < z->count; i++) {
        pm_zip_entry *e = &z->entries[i];
        if (e->name_len < bl || memcmp(e->name + e->name_len - bl, basename, bl) != 0)
            continue;
        if (e->name_len > bl && e->name[e->name_len - bl - 1] != '/')
            continue;
        if (!best || e->name_len < best->name_len)
            best = e;
    }
    return best;
}

/* Inflates a raw deflate stream into a new buffer of exactly `usize` bytes.
 * Caller owns *out (pm_free). */
static int inflate_entry(const uint8_t *src, uint64_t csize, uint64_t usize, uint8_t **out, const char *what,
                         const pm_zip_entry *e)
{
    int nl = (int)(e->name_len > 200 ? 200 : e->name_len);
    /* deflate cannot compress better than about 1032:1 */
    if (usize > csize * 1032 + 1024 || usize > SIZE_MAX - 1)
        return pm_errorf(PM_ECORRUPT, "%s: zip entry %.*s claims %llu bytes from %llu compressed; the file is corrupt",
                         what, nl, (const char *)e->name, (unsigned long long)usize, (unsigned long long)csize);
    uint8_t *buf = pm_malloc(usize ? (size_t)usize : 1);
    if (!buf)
        return pm_errorf(PM_ENOMEM, "%s: out of memory inflating %llu bytes of zip entry %.*s",
                         what, (unsigned long long)usize, nl, (const char *)e->name);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, -15) != Z_OK) {
        pm_free(buf);
        return pm_errorf(PM_ENOMEM, "%s: cannot start zlib", what);
    }
    uint64_t in_left = csize, out_left = usize;
    zs.next_in = (Bytef *)src;
    zs.next_out = buf;
    int zr;
    for (;;) {
        if (zs.avail_in == 0 && in_left) {
            zs.avail_in = in_left > UINT_MAX ? UINT_MAX : (uInt)in_left;
            in_left -= zs.avail_in;
        }
        if (zs.avail_out == 0 && out_left) {
            zs.avail_out = out_left > UINT_MAX ? UINT_MAX : (uInt)out_left;
            out_left -= zs.avail_out;
        }
        zr = inflate(&zs, Z_NO_FLUSH);
        if (zr == Z_OK)
            continue;
        /* Z_STREAM_END: done. Z_BUF_ERROR after refilling: the input ended
         * early or the output is full before the stream's end. Anything else
         * is bad data. */
        break;
    }
    uint64_t produced = usize - out_left - zs.avail_out;
    inflateEnd(&zs);
    if (zr != Z_STREAM_END || produced != usize) {
        pm_free(buf);
        return pm_errorf(PM_ECORRUPT, "%s: zip entry %.*s does not inflate to its %llu bytes (zlib: %s); the file is corrupt",
                         what, nl, (const char *)e->name, (unsigned long long)usize,
                         zr == Z_STREAM_END ? "size differs" : zr == Z_DATA_ERROR ? "bad data" : zr == Z_BUF_ERROR ? "sizes disagree" : "failed");
    }
    *out = buf;
    return 0;
}

/* The CRC-32 of n bytes; an entry of 1 MiB or more is split in CRC_PARTS
 * pieces checked on the OpenMP threads and combined (a weight tensor of a
 * checkpoint is megabytes: this halves a load's checking on two cores). */
#define CRC_PARTS 8
static uint32_t crc_of(const uint8_t *p, size_t n)
{
    if (n < ((size_t)1 << 20))
        return (uint32_t)crc32_z(0L, p, (z_size_t)n);
    uLong part[CRC_PARTS], crc = crc32_z(0L, Z_NULL, 0);
    size_t piece = (n + CRC_PARTS - 1) / CRC_PARTS, len[CRC_PARTS];
#pragma omp parallel for schedule(static)
    for (int i = 0; i < CRC_PARTS; i++) {
        size_t lo = (size_t)i * piece < n ? (size_t)i * piece : n;
        len[i] = n - lo < piece ? n - lo : piece;
        part[i] = crc32_z(0L, p + lo, (z_size_t)len[i]);
    }
    for (int i = 0; i < CRC_PARTS; i++)
        crc = crc32_combine(crc, part[i], (z_off_t)len[i]);
    return (uint32_t)crc;
}

/* *data points into the mapped file (stored) or into e->owned (deflated,
 * freed by pm_zip_close); the caller owns neither. */
int pm_zip_read(pm_zip *z, pm_zip_entry *e, const char *what, const uint8_t **data, size_t *len)
{
    int nl = (int)(e->name_len > 200 ? 200 : e->name_len);
    if (e->data) {
        *data = e->data;
        *len = (size_t)e->usize;
        return 0;
    }
    if (e->flags & 1)
        return pm_errorf(PM_EUNSUPPORTED, "%s: zip entry %.*s is encrypted; pixmend reads only plain archives as torch.save writes them",
                         what, nl, (const char *)e->name);
    if (e->method != 0 && e->method != 8)
        return pm_errorf(PM_EUNSUPPORTED, "%s: zip entry %.*s uses compression method %u; only stored and deflate are supported (re-save it with torch.save)",
                         what, nl, (const char *)e->name, e->method);
    if (!in_range(e->local_off, 30, z->size) || rd32(z->base + e->local_off) != SIG_LOCAL)
        return pm_errorf(PM_ECORRUPT, "%s: the local header of zip entry %.*s (byte %llu) is missing; the file is truncated or corrupt",
                         what, nl, (const char *)e->name, (unsigned long long)e->local_off);
    const uint8_t *lh = z->base + e->local_off;
    uint64_t start = e->local_off + 30 + rd16(lh + 26) + rd16(lh + 28);
    if (!in_range(start, e->csize, z->size))
        return pm_errorf(PM_ETRUNCATED, "%s: zip entry %.*s (%llu bytes at byte %llu) runs past the end of the %zu-byte file; it is truncated",
                         what, nl, (const char *)e->name, (unsigned long long)e->csize, (unsigned long long)start, z->size);
    const uint8_t *src = z->base + start;
    if (e->method == 0) {
        if (e->csize != e->usize)
            return pm_errorf(PM_ECORRUPT, "%s: stored zip entry %.*s has sizes %llu and %llu; the file is corrupt",
                             what, nl, (const char *)e->name, (unsigned long long)e->csize, (unsigned long long)e->usize);
        e->data = src;
    } else {
        int rc = inflate_entry(src, e->csize, e->usize, &e->owned, what, e);
        if (rc)
            return rc;
        e->data = e->owned;
    }
    if (!e->verified) {
        if (crc_of(e->data, (size_t)e->usize) != e->crc && !z->skip_crc) {
            e->data = NULL;
            pm_free(e->owned);
            e->owned = NULL;
            return pm_errorf(PM_ECORRUPT, "%s: zip entry %.*s fails its CRC check; the file is damaged (download or copy it again)",
                             what, nl, (const char *)e->name);
        }
        e->verified = 1;
        if (z->release && e->method == 0)
            pm_map_release(e->data, (size_t)e->usize);
    }
    *data = e->data;
    *len = (size_t)e->usize;
    return 0;
}
