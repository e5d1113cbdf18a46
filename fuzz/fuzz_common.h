/* Shared body of the decoder fuzz targets: each target feeds only inputs
 * that carry its format's magic (the seed corpus steers it there), probes
 * and decodes with modest limits, and traps when probe and decode disagree
 * or a decoded image is not fully readable. pm_encode_opts_like (the JPEG
 * quality estimate, the WebP lossless check) reads every input too. */
#ifndef PM_FUZZ_COMMON_H
#define PM_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "pixmend.h"

static int pm_fuzz_one(const uint8_t *data, size_t size, enum pm_format want, const char *name)
{
    if (pm_format_sniff(data, size) != want)
        return 0;
    /* Small enough that a valid huge image costs milliseconds, not seconds. */
    pm_limits lim = {4000000u, 4096u, 8u * 1024u * 1024u};
    pm_image_info info;
    int prc = pm_image_probe(data, size, &lim, &info);
    /* The header walks that choose how a result is encoded like its input
     * (JPEG quantisation tables, WebP chunks) read the same bytes. */
    pm_encode_opts like;
    if (pm_encode_opts_like(data, size, &like) == 0 && (like.format != want || like.quality < 1 || like.quality > 100))
        __builtin_trap();
    pm_image img;
    int rc = pm_image_decode(data, size, &lim, name, &img);
    if (rc == 0) {
        if (prc != 0 || info.width != img.width || info.height != img.height || info.channels != img.channels)
            __builtin_trap();
        /* Read every byte, so a short buffer shows up under ASan. */
        size_t n = (size_t)img.width * (size_t)img.height * (size_t)img.channels;
        volatile uint8_t sum = 0;
        for (size_t i = 0; i < n; i++)
            sum ^= img.data[i];
        (void)sum;
        pm_image_free(&img);
    } else if (img.data || img.width || img.height) {
        __builtin_trap(); /* a failed decode must leave *out zeroed */
    }
    return 0;
}

#endif
