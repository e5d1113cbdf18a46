/* What a photograph carries besides its 8-bit pixels, kept from input to
 * output: the ICC colour profile, EXIF, XMP, the resolution (DPI), PNG text
 * chunks, the 16-bit samples of a 16-bit PNG, and the source JPEG itself (for
 * the coefficient-level JPEG path, which keeps every DCT block the repair did
 * not touch). The carrier lives beside a pm_image: the *_meta decode variants
 * fill it, pm_image_encode_full writes what the output format can hold and
 * reports what it had to drop. */
#ifndef PM_IMAGE_META_H
#define PM_IMAGE_META_H

#include "pixmend.h"

#include <stddef.h>
#include <stdint.h>

/* Largest ICC profile and EXIF block kept; larger ones are dropped with a
 * warning (the repair goes on). */
#define PM_META_MAX_ICC (8u * 1024u * 1024u)
#define PM_META_MAX_EXIF (1024u * 1024u)
#define PM_META_MAX_XMP (4u * 1024u * 1024u)
#define PM_META_MAX_TEXT (8u * 1024u * 1024u) /* all PNG text chunks together */

/* Units of pm_image_meta.res_x/res_y. */
enum pm_res_unit { PM_RES_NONE = 0, PM_RES_ASPECT, PM_RES_PER_INCH, PM_RES_PER_CM, PM_RES_PER_METRE };

/* One PNG text chunk, kept as it was (tEXt, zTXt or iTXt; the payload is not
 * decompressed). */
typedef struct pm_png_text {
    char type[5];   /* "tEXt", "zTXt", "iTXt" */
    uint8_t *data;  /* the chunk's payload, owned */
    size_t len;
} pm_png_text;

typedef struct pm_image_meta {
    enum pm_format format;  /* the source's format */
    uint8_t *icc;           /* the ICC profile (validated), or NULL */
    size_t icc_len;
    uint8_t *exif;          /* the TIFF structure ("II*\0" or "MM\0*" first), or NULL */
    size_t exif_len;
    uint8_t *xmp;           /* the XMP packet (UTF-8 XML), or NULL */
    size_t xmp_len;
    int res_unit;           /* enum pm_res_unit; PM_RES_NONE = no resolution given */
    uint32_t res_x, res_y;
    pm_png_text *text;      /* PNG text chunks other than XMP, in file order */
    int ntext;
    /* PNG colour chunks without an ICC profile's detail: sRGB (rendering
     * intent), gAMA, cHRM; kept PNG to PNG (JPEG and WebP mean sRGB). */
    int png_srgb;           /* rendering intent + 1; 0 = no sRGB chunk */
    uint32_t png_gama;      /* 0 = no gAMA chunk */
    uint8_t png_chrm[32];
    int has_chrm;
    int orientation;        /* EXIF orientation the decoder applied to the pixels (1 = none) */
    uint16_t *deep;         /* 16-bit PNG: every sample at 16 bits (host order), same layout
                               as the decoded 8-bit image (whose samples are deep >> 8); or NULL */
    int deep_channels;
    uint8_t *jpeg;          /* JPEG source: a copy of its bytes (coefficient path), or NULL */
    size_t jpeg_len;
} pm_image_meta;

/* Frees everything the carrier owns and zeroes it; safe on a zeroed struct. */
void pm_image_meta_free(pm_image_meta *m);

/* pm_image_decode / pm_image_load that also fill *meta (caller owns it:
 * pm_image_meta_free, also on failure it is left zeroed). A damaged or
 * oversized ICC profile or EXIF block is dropped with one warning line; it
 * never fails the decode. */
int pm_image_decode_meta(const uint8_t *data, size_t len, const pm_limits *lim, const char *name,
                         pm_image *out, pm_image_meta *meta);
int pm_image_load_meta(const char *path, const pm_limits *lim, pm_image *out, pm_image_meta *meta);

/* What the output should keep. */
typedef struct pm_meta_policy {
    int strip_metadata; /* drop ICC, EXIF, XMP, DPI and text (16-bit depth is pixels: kept) */
    int strip_gps;      /* drop the location only (EXIF GPS IFD; an XMP packet with GPS) */
    int jpeg_reencode;  /* JPEG to JPEG: encode the whole image instead of keeping blocks */
} pm_meta_policy;

/* An encode of a result made from a decoded source. */
typedef struct pm_encode_req {
    const pm_image *img;          /* the result */
    const pm_image *source;       /* the decoded input it was made from, or NULL; with
                                     keep_blocks, enables the JPEG coefficient path */
    const pm_image_meta *meta;    /* the source's metadata, or NULL */
    pm_encode_opts opts;
    pm_meta_policy policy;
    int keep_blocks;              /* 1: the task changed only part of the image (inpaint) */
} pm_encode_req;

/* What pm_image_encode_full did. `dropped` bits: what the output could not
 * hold or what had to be dropped (PM_KEEP_*). */
enum {
    PM_KEEP_ICC = 1 << 0,
    PM_KEEP_EXIF = 1 << 1,
    PM_KEEP_XMP = 1 << 2,
    PM_KEEP_DPI = 1 << 3,
    PM_KEEP_TEXT = 1 << 4,
    PM_KEEP_DEPTH = 1 << 5,
    PM_KEEP_BLOCKS = 1 << 6,
    PM_KEEP_COLOUR = 1 << 7, /* PNG sRGB, gAMA, cHRM */
};
typedef struct pm_encode_report {
    unsigned kept;       /* PM_KEEP_* written to the output */
    unsigned dropped;    /* PM_KEEP_* the source had but the output does not */
    int gps_removed;     /* 1: a location was removed (strip_gps) */
    int blocks_total;    /* JPEG coefficient path: 8x8 blocks in all components */
    int blocks_encoded;  /* of which re-encoded from the repaired pixels */
    char why[8][160];    /* one sentence per dropped item, "" when none */
    int nwhy;
} pm_encode_report;

/* Encodes req->img in req->opts.format with what it can keep of req->meta.
 * Caller owns *out_data (pm_free). *rep (may be NULL) says what was kept and
 * dropped. Metadata never fails the encode: what cannot be written is
 * dropped and reported. */
int pm_image_encode_full(const pm_encode_req *req, uint8_t **out_data, size_t *out_len, pm_encode_report *rep);

/* pm_image_encode_full + atomic write; the format comes from the name when
 * req->opts.format is PM_FMT_UNKNOWN. */
int pm_image_save_full(const char *path, const pm_encode_req *req, pm_encode_report *rep);

/* ---- the parsers (exported for the tests and the fuzz targets) ---- */

/* 0 when `p` is a plausible ICC profile: header, 'acsp', declared size within
 * the data, tag table inside it. Else PM_ECORRUPT / PM_ETOOBIG with a sentence. */
int pm_icc_check(const uint8_t *p, size_t n);
/* The profile's data colour space: 3 for 'RGB ', 1 for 'GRAY', 4 for 'CMYK', 0 other. */
int pm_icc_channels(const uint8_t *p, size_t n);

/* 0 when `t` is a TIFF structure whose first IFD lies inside it. */
int pm_exif_check(const uint8_t *t, size_t n);
/* EXIF orientation 1..8; 1 when absent or malformed. */
int pm_exif_orientation(const uint8_t *t, size_t n);
/* Sets the orientation tag in place (if present). Returns 1 if it was set. */
int pm_exif_set_orientation(uint8_t *t, size_t n, int v);
/* Removes the GPS IFD in place (its entries and values are zeroed and the
 * pointer to it removed). Returns 1 if one was removed, 0 if there was none,
 * PM_ECORRUPT if the structure cannot be edited safely (then drop it all). */
int pm_exif_strip_gps(uint8_t *t, size_t n);
/* Removes the embedded thumbnail (IFD1) in place: it shows the photo before
 * the repair. Returns 1 if one was removed, 0 if none. */
int pm_exif_drop_thumbnail(uint8_t *t, size_t n);
/* 1 when an XMP packet names a location (exif:GPS... properties). */
int pm_xmp_has_gps(const uint8_t *x, size_t n);

#endif
