/* Internal to the image layer: JPEG metadata markers (jpeg_meta.c) and the
 * coefficient-level encoder (jpeg_coef.c). */
#ifndef PM_IMAGE_JPEG_META_H
#define PM_IMAGE_JPEG_META_H

#include "image/meta.h"

/* Collects metadata segments during the marker walk; the segment pointers
 * borrow the JPEG data until pm_img_jpeg_meta_finish. */
typedef struct pm_jpeg_meta_acc {
    pm_image_meta *m;
    const uint8_t *icc_seg[256];
    size_t icc_len[256];
    int icc_count, icc_bad;
    int seen_jfif, seen_exif, seen_xmp;
} pm_jpeg_meta_acc;

void pm_img_jpeg_meta_segment(pm_jpeg_meta_acc *a, uint8_t marker, const uint8_t *seg, size_t n);
/* Assembles and checks the ICC profile; warns and drops it when damaged. */
void pm_img_jpeg_meta_finish(pm_jpeg_meta_acc *a);

/* PM_KEEP_* bits of what `m` has that JPEG markers cannot hold. */
unsigned pm_img_jpeg_meta_fits(const pm_image_meta *m);
int pm_img_jpeg_put_meta(uint8_t **buf, size_t *len, const pm_image_meta *m);

/* The coefficient path: re-encodes only the iMCUs in which `after` differs
 * from `before` (both as displayed, the source's size and channels) and keeps
 * every other DCT block of the source JPEG `src` (whose EXIF orientation
 * `orientation` the decoder applied). Caller owns *out (pm_free).
 * PM_EUNSUPPORTED when the source cannot take this path (CMYK). */
int pm_img_jpeg_encode_coef(const uint8_t *src, size_t src_len, int orientation, const pm_image *before,
                            const pm_image *after, uint8_t **out, size_t *out_len, int *blocks_total,
                            int *blocks_encoded);

/* Applies EXIF orientation 2..8 into a new image that replaces *img. */
int pm_img_orient(pm_image *img, int orientation);
/* Where display pixel (x, y) of an image stored W x H with EXIF orientation
 * `orientation` lies as stored: (m[0]*x + m[1]*y + m[2], m[3]*x + m[4]*y + m[5]). */
void pm_img_orient_map(int orientation, int W, int H, int m[6]);

#endif
