/* Internal interface of the image layer: one probe/decode/encode triple per
 * codec, plus the shared limit check and the counting allocator hooks that
 * the codecs hand to their libraries. Nothing here is public API. */
#ifndef PM_IMAGE_INTERNAL_H
#define PM_IMAGE_INTERNAL_H

#include "pixmend.h"

#include <stddef.h>
#include <stdint.h>

struct pm_image_meta;

/* Largest width or height any decoder here will accept, whatever the limits
 * say; keeps every w * h * 4 product far from overflowing. */
#define PM_IMG_HARD_MAX_SIDE 1000000u
/* Largest pixel count, whatever the limits say (4 GiB as RGBA). */
#define PM_IMG_HARD_MAX_PIXELS (1u << 30)

/* Checks a header's width/height (as displayed) against `lim` (NULL or a
 * zero field = the default) and the hard caps above. Returns 0 or PM_ETOOBIG with the
 * sentence that names the limit and its command-line option. */
int pm_img_check_limits(int width, int height, const pm_limits *lim);

/* Formats a byte count as "70.0 MiB", "12.5 KiB" or "300 bytes" into buf. */
void pm_img_fmt_bytes(char *buf, size_t n, uint64_t bytes);

/* Codec entry points. `data`/`len` are borrowed; len >= the format's magic.
 * probe: fills *info from the header after checking the container structure
 *        (chunks, markers, RIFF sizes); allocates nothing sized by the image.
 * decode: probe, then pm_img_check_limits, then decode into *out (caller owns).
 * encode: *out_data is a new pm_malloc buffer the caller owns (pm_free). */
int pm_img_png_probe(const uint8_t *data, size_t len, const pm_limits *lim, pm_image_info *info);
int pm_img_png_decode(const uint8_t *data, size_t len, const pm_limits *lim, pm_image *out,
                      struct pm_image_meta *meta);
/* deep: 16-bit samples (host order) to write instead of img's, or NULL. */
int pm_img_png_encode(const pm_image *img, const uint16_t *deep, uint8_t **out_data, size_t *out_len);
/* Metadata chunks (png_meta.c): one ancillary chunk from the walk, and the
 * splice of the carrier's chunks after IHDR of an encoded PNG. */
void pm_img_png_meta_chunk(struct pm_image_meta *m, const uint8_t *type, const uint8_t *p, size_t n);
int pm_img_png_put_meta(uint8_t **buf, size_t *len, const struct pm_image_meta *m);

int pm_img_jpeg_probe(const uint8_t *data, size_t len, pm_image_info *info);
int pm_img_jpeg_decode(const uint8_t *data, size_t len, const pm_limits *lim, pm_image *out,
                       struct pm_image_meta *meta);
int pm_img_jpeg_encode(const pm_image *img, int quality, uint8_t **out_data, size_t *out_len);

int pm_img_webp_probe(const uint8_t *data, size_t len, pm_image_info *info);
int pm_img_webp_decode(const uint8_t *data, size_t len, const pm_limits *lim, pm_image *out,
                       struct pm_image_meta *meta);
int pm_img_webp_put_meta(uint8_t **buf, size_t *len, const struct pm_image_meta *m);
int pm_img_webp_encode(const pm_image *img, int quality, int lossless,
                       uint8_t **out_data, size_t *out_len);

/* Allocates an image whose pixel buffer holds at least `min_bytes` (>= the
 * packed size), for decoders that expand in place (CMYK -> RGB, 16 -> 8 bit).
 * Not zero-filled. Caller owns *out (pm_image_free). */
int pm_img_alloc_raw(pm_image *out, int width, int height, int channels, size_t min_bytes);

/* Reads big/little-endian integers from unaligned bytes. */
static inline uint32_t pm_img_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint16_t pm_img_be16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}
static inline uint32_t pm_img_le32(const uint8_t *p)
{
    return ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | p[0];
}
static inline uint16_t pm_img_le16(const uint8_t *p)
{
    return (uint16_t)((p[1] << 8) | p[0]);
}

/* A growing byte buffer for writing metadata segments and chunks. Zero it
 * to start; p is the caller's (pm_free). After a failed allocation `failed`
 * is set and further puts do nothing. */
typedef struct pm_bytes {
    uint8_t *p;
    size_t len, cap;
    int failed;
} pm_bytes;
void pm_bytes_put(pm_bytes *b, const void *d, size_t n);

#endif
