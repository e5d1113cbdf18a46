/* The quality a JPEG was saved at, estimated from its quantisation tables,
 * and encoding options that give an image back in the format it came in.
 *
 * Most JPEG writers (libjpeg and libjpeg-turbo, and the many programs built on
 * them) make their tables by scaling the two example tables of the JPEG
 * standard (ITU-T T.81, Annex K) by the quality: scale = 5000 / q below 50,
 * 200 - 2q from 50; entry = (base * scale + 50) / 100, at least 1 and at most
 * 255 for baseline files. The estimate is the quality whose scaled tables are
 * nearest (sum of absolute differences) to the file's own; for such files it
 * is exact, for others (cameras, other encoders) it is the closest IJG
 * quality, which is what re-encoding needs to keep about the same size. */
#include "image/image_internal.h"

#include <limits.h>
#include <string.h>

/* Annex K.1, in natural (row-major) order. */
static const uint8_t std_luma[64] = {
    16, 11, 10, 16, 24,  40,  51,  61,  12, 12, 14, 19, 26,  58,  60,  55,
    14, 13, 16, 24, 40,  57,  69,  56,  14, 17, 22, 29, 51,  87,  80,  62,
    18, 22, 37, 56, 68,  109, 103, 77,  24, 35, 55, 64, 81,  104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
};
static const uint8_t std_chroma[64] = {
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
};
/* Natural position of the k-th entry of a DQT segment (zig-zag order). */
static const uint8_t zigzag[64] = {
    0,  1,  8,  16, 9,  2,  3,  10, 17, 24, 32, 25, 18, 11, 4,  5,  12, 19, 26, 33, 40, 48,
    41, 34, 27, 20, 13, 6,  7,  14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23,
    30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
};

static int scaled(int base, int q)
{
    int scale = q < 50 ? 5000 / q : 200 - 2 * q;
    int v = (base * scale + 50) / 100;
    return v < 1 ? 1 : v > 255 ? 255 : v;
}

/* Reads the quantisation tables 0 and 1 (in natural order) of a JPEG; have[i]
 * says which were found. Stops at the first scan. */
static int read_tables(const uint8_t *d, size_t len, int tables[2][64], int have[2])
{
    have[0] = have[1] = 0;
    if (len < 4 || d[0] != 0xFF || d[1] != 0xD8)
        return pm_errorf(PM_EFORMAT, "not a JPEG file (no SOI marker)");
    size_t p = 2;
    while (p + 4 <= len) {
        if (d[p] != 0xFF)
            return pm_errorf(PM_ECORRUPT, "JPEG marker expected at byte %zu", p);
        uint8_t m = d[p + 1];
        if (m == 0xFF) { /* fill byte */
            p++;
            continue;
        }
        if (m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7)) { /* no length */
            p += 2;
            continue;
        }
        if (m == 0xDA || m == 0xD9) /* start of scan, end of image */
            break;
        size_t seg = pm_img_be16(d + p + 2);
        if (seg < 2 || seg > len - p - 2)
            return pm_errorf(PM_ETRUNCATED, "JPEG segment at byte %zu runs past the end of the file", p);
        if (m == 0xDB) {
            size_t q = p + 4, end = p + 2 + seg;
            while (q < end) {
                int prec = d[q] >> 4, id = d[q] & 15;
                size_t need = 1 + 64 * (size_t)(prec ? 2 : 1);
                if (prec > 1 || id > 3 || need > end - q)
                    return pm_errorf(PM_ECORRUPT, "malformed quantisation table at byte %zu", q);
                for (int k = 0; id < 2 && k < 64; k++)
                    tables[id][zigzag[k]] = prec ? pm_img_be16(d + q + 1 + 2 * k) : d[q + 1 + k];
                if (id < 2)
                    have[id] = 1;
                q += need;
            }
        }
        p += 2 + seg;
    }
    if (!have[0])
        return pm_errorf(PM_ECORRUPT, "the JPEG has no luminance quantisation table before its first scan");
    return 0;
}

int pm_jpeg_estimate_quality(const uint8_t *data, size_t len, int *quality)
{
    int t[2][64], have[2];
    int rc = read_tables(data, len, t, have);
    if (rc)
        return rc;
    long best = LONG_MAX;
    int best_q = 0;
    for (int q = 1; q <= 100; q++) {
        long err = 0;
        for (int i = 0; i < 64; i++) {
            int a = t[0][i] - scaled(std_luma[i], q);
            err += a < 0 ? -a : a;
            if (have[1]) {
                int b = t[1][i] - scaled(std_chroma[i], q);
                err += b < 0 ? -b : b;
            }
        }
        if (err <= best) { /* ties: the higher quality, never worse than the input */
            best = err;
            best_q = q;
        }
    }
    *quality = best_q;
    return 0;
}

/* Is a WebP file lossless (a VP8L bitstream, directly or after VP8X)? */
static int webp_lossless(const uint8_t *d, size_t len)
{
    size_t p = 12;
    while (p + 8 <= len) {
        if (memcmp(d + p, "VP8L", 4) == 0)
            return 1;
        if (memcmp(d + p, "VP8 ", 4) == 0)
            return 0;
        size_t n = pm_img_le32(d + p + 4);
        if (n > len - p - 8)
            break;
        p += 8 + n + (n & 1);
    }
    return 0;
}

int pm_encode_opts_like(const uint8_t *data, size_t len, pm_encode_opts *out)
{
    enum pm_format f = pm_format_sniff(data, len);
    if (f == PM_FMT_UNKNOWN)
        return pm_errorf(PM_EFORMAT, "not a PNG, JPEG or WebP file");
    *out = pm_default_encode_opts(f);
    if (f == PM_FMT_JPEG) {
        int q;
        if (pm_jpeg_estimate_quality(data, len, &q) == 0)
            out->quality = q;
    } else if (f == PM_FMT_WEBP) {
        out->lossless = webp_lossless(data, len);
    }
    return 0;
}
