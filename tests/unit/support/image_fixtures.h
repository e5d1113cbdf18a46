/* Test fixtures for the image layer: real PNG, JPEG and WebP files generated
 * in C with the same libraries the decoder uses (libspng, libturbojpeg,
 * libwebp), plus hand-built PNG chunk streams for hostile cases.
 * Every buffer returned here is malloc'ed; the caller frees it with free(). */
#ifndef PM_TEST_IMAGE_FIXTURES_H
#define PM_TEST_IMAGE_FIXTURES_H

#include <stddef.h>
#include <stdint.h>

#include "tmpfiles.h" /* fx_tempdir, fx_rmtree, fx_write */

/* ---- PNG via libspng */

/* Encodes `raw` (packed as PNG stores it: rows of samples, sub-byte depths
 * packed MSB first, 16-bit samples in host order) with the given IHDR.
 * `plte` (n_plte RGB triples) and `trns` (bytes as in a tRNS chunk payload:
 * palette alphas, or one 16-bit gray key, or three 16-bit RGB keys) are
 * optional. Aborts the test on failure. */
uint8_t *fx_png(const void *raw, int w, int h, int color, int depth, int interlace,
                const uint8_t *plte, int n_plte, const uint8_t *trns, int n_trns, size_t *len);

/* Bytes per PNG row (without the filter byte) for this shape. */
size_t fx_png_rowbytes(int w, int color, int depth);

/* A PNG built by hand: signature, IHDR (any values, even invalid ones),
 * one IDAT holding a zlib stream of `rows` rows of (filter 0 + rowbytes zero
 * bytes), IEND. Rows are streamed, so an 8000x8000 bomb costs one row here. */
uint8_t *fx_png_zero_rows(uint32_t w, uint32_t h, int color, int depth, uint32_t rows, size_t *len);

/* Recomputes the CRC of the chunk starting at `pos` (its length field). */
void fx_png_fix_crc(uint8_t *png, size_t pos);

/* ---- JPEG via libturbojpeg */

/* Compresses w x h pixels of TurboJPEG pixel format `pf` (TJPF_*) with
 * chroma subsampling `subsamp` (TJSAMP_*), `quality` and TJFLAG_* flags. */
uint8_t *fx_jpeg(const uint8_t *pixels, int w, int h, int pf, int subsamp, int quality, int flags, size_t *len);

/* A copy of `jpeg` with an APP1 Exif segment (IFD0: a Make tag, then the
 * Orientation tag) inserted after SOI, in big- or little-endian TIFF order. */
uint8_t *fx_jpeg_with_exif(const uint8_t *jpeg, size_t len, int orientation, int big_endian, size_t *out_len);

/* ---- WebP via libwebp */

/* channels 3 or 4; lossless 0/1; quality for lossy. */
uint8_t *fx_webp(const uint8_t *pixels, int w, int h, int channels, int lossless, int quality, size_t *len);

/* ---- misc */

/* Deterministic pseudo-random bytes (xorshift), for garbage inputs. */
void fx_random_bytes(uint8_t *out, size_t n, uint32_t seed);

#endif
