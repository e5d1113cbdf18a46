/* libFuzzer target: the metadata parsers and editors (EXIF orientation, GPS
 * and thumbnail removal, the ICC check, the XMP location scan) on the raw
 * input, and, when the input is an image, decoding with the metadata
 * carrier and encoding to PNG, JPEG (with the coefficient path) and WebP
 * with what it carries; each result must decode again. */
#include <stdlib.h>
#include <string.h>

#include "image/meta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void parsers(const uint8_t *data, size_t size)
{
    (void)pm_icc_check(data, size);
    (void)pm_icc_channels(data, size);
    (void)pm_xmp_has_gps(data, size);
    uint8_t *c = malloc(size ? size : 1);
    if (!c)
        return;
    memcpy(c, data, size);
    int o = pm_exif_orientation(c, size);
    if (o < 1 || o > 8)
        __builtin_trap();
    int ok = pm_exif_check(c, size) == 0;
    (void)pm_exif_set_orientation(c, size, 1);
    int g = pm_exif_strip_gps(c, size);
    if (g != 0 && g != 1 && g != PM_ECORRUPT)
        __builtin_trap();
    (void)pm_exif_drop_thumbnail(c, size);
    /* Edits keep a valid block valid. */
    if (ok && pm_exif_check(c, size) != 0)
        __builtin_trap();
    free(c);
}

static void round_trip(const uint8_t *data, size_t size)
{
    pm_limits lim = {65536u, 1024u, 1u << 20};
    pm_image img, res;
    pm_image_meta meta;
    if (pm_image_decode_meta(data, size, &lim, NULL, &img, &meta) != 0)
        return;
    if (pm_image_clone(&res, &img) == 0) {
        res.data[0] ^= 0x55; /* one changed pixel: the coefficient path re-encodes one iMCU */
        static const enum pm_format fmts[3] = {PM_FMT_PNG, PM_FMT_JPEG, PM_FMT_WEBP};
        for (int f = 0; f < 3; f++) {
            pm_encode_req q = {&res, &img, &meta, pm_default_encode_opts(fmts[f]), {0, f == 1, 0}, 1};
            uint8_t *out;
            size_t len;
            pm_encode_report rep;
            if (pm_image_encode_full(&q, &out, &len, &rep) != 0)
                continue; /* e.g. out of the format's size range */
            pm_image back;
            pm_image_meta bm;
            if (pm_image_decode_meta(out, len, NULL, NULL, &back, &bm) != 0)
                __builtin_trap(); /* what we write must read back */
            pm_image_meta_free(&bm);
            pm_image_free(&back);
            pm_free(out);
        }
        pm_image_free(&res);
    }
    pm_image_meta_free(&meta);
    pm_image_free(&img);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    parsers(data, size);
    if (pm_format_sniff(data, size) != PM_FMT_UNKNOWN)
        round_trip(data, size);
    return 0;
}
