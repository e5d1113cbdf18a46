/* WebP through libwebp. The RIFF container is checked here (its declared
 * size against the data, each chunk against the container), then
 * WebPGetFeatures reads the header, and only then is a pixel buffer sized. */
#include "image/image_internal.h"
#include "image/meta.h"

#include <string.h>
#include <webp/decode.h>
#include <webp/demux.h>
#include <webp/encode.h>
#include <webp/mux.h>

#define WEBP_MAX_SIDE 16383

static int riff_walk(const uint8_t *d, size_t len)
{
    uint32_t rsize = pm_img_le32(d + 4);
    if (rsize < 12 || rsize > 0xfffffff0u)
        return pm_errorf(PM_ECORRUPT, "the WebP container declares an impossible size (%u bytes); the file is damaged",
                         rsize);
    if ((uint64_t)len < (uint64_t)rsize + 8)
        return pm_errorf(PM_ETRUNCATED, "the WebP data ends after %zu bytes but its header announces %llu; the file is truncated",
                         len, (unsigned long long)rsize + 8);
    size_t end = (size_t)rsize + 8;
    size_t pos = 12;
    while (pos < end) {
        if (end - pos < 8)
            return pm_errorf(PM_ECORRUPT, "the WebP container ends inside a chunk header at byte %zu; the file is damaged",
                             pos);
        uint32_t csize = pm_img_le32(d + pos + 4);
        if (end - pos - 8 < csize)
            return pm_errorf(PM_ECORRUPT, "the WebP %.4s chunk at byte %zu claims %u bytes, more than its container holds; the file is damaged",
                             (const char *)(d + pos), pos, csize);
        pos += 8 + (size_t)csize + (csize & 1);
    }
    return 0;
}

static int vp8_fail(VP8StatusCode st)
{
    switch (st) {
    case VP8_STATUS_OUT_OF_MEMORY:
        return pm_errorf(PM_ENOMEM, "out of memory decoding the WebP");
    case VP8_STATUS_NOT_ENOUGH_DATA:
        return pm_errorf(PM_ETRUNCATED, "the WebP data ends early; the file is truncated");
    case VP8_STATUS_UNSUPPORTED_FEATURE:
        return pm_errorf(PM_EUNSUPPORTED, "this WebP uses a feature the decoder does not support");
    case VP8_STATUS_INVALID_PARAM:
        return pm_errorf(PM_EINTERNAL, "libwebp rejected the decoder parameters");
    default:
        return pm_errorf(PM_ECORRUPT, "the WebP data is damaged (libwebp status %d)", (int)st);
    }
}

static int webp_header(const uint8_t *data, size_t len, WebPBitstreamFeatures *f)
{
    int rc = riff_walk(data, len);
    if (rc)
        return rc;
    VP8StatusCode st = WebPGetFeatures(data, len, f);
    if (st != VP8_STATUS_OK)
        return vp8_fail(st);
    if (f->has_animation)
        return pm_errorf(PM_EUNSUPPORTED, "animated WebP is not supported; export a single frame as PNG, JPEG or WebP");
    if (f->width <= 0 || f->height <= 0)
        return pm_errorf(PM_ECORRUPT, "the WebP header gives an invalid size %dx%d; the file is damaged", f->width,
                         f->height);
    return 0;
}

int pm_img_webp_probe(const uint8_t *data, size_t len, pm_image_info *info)
{
    WebPBitstreamFeatures f;
    int rc = webp_header(data, len, &f);
    if (rc)
        return rc;
    info->format = PM_FMT_WEBP;
    info->width = f.width;
    info->height = f.height;
    info->channels = f.has_alpha ? 4 : 3;
    info->orientation = 1;
    return 0;
}

/* Copies the ICCP, EXIF and "XMP " chunks of an extended WebP into *m,
 * checking the ICC profile and EXIF (a damaged one is dropped with a warning). */
static void read_meta(const uint8_t *data, size_t len, pm_image_meta *m)
{
    WebPData wd = {data, len};
    WebPDemuxer *dmx = WebPDemux(&wd);
    if (!dmx)
        return;
    static const char *const fourcc[3] = {"ICCP", "EXIF", "XMP "};
    for (int k = 0; k < 3; k++) {
        WebPChunkIterator it;
        if (!WebPDemuxGetChunk(dmx, fourcc[k], 1, &it))
            continue;
        const uint8_t *p = it.chunk.bytes;
        size_t n = it.chunk.size;
        int bad = 0;
        if (k == 0)
            bad = pm_icc_check(p, n) != 0;
        if (k == 1) {
            if (n >= 6 && !memcmp(p, "Exif\0\0", 6)) { /* some writers keep the JPEG prefix */
                p += 6;
                n -= 6;
            }
            bad = pm_exif_check(p, n) != 0;
        }
        if (k == 2 && n > PM_META_MAX_XMP)
            bad = 1;
        if (bad) {
            pm_warn("metadata_dropped", "the WebP's %s block is unusable (%s); it was dropped",
                    k == 0 ? "ICC profile" : k == 1 ? "EXIF" : "XMP", pm_error_detail());
        } else {
            uint8_t *c = pm_malloc(n ? n : 1);
            if (c) {
                memcpy(c, p, n);
                if (k == 0) {
                    m->icc = c;
                    m->icc_len = n;
                } else if (k == 1) {
                    m->exif = c;
                    m->exif_len = n;
                } else {
                    m->xmp = c;
                    m->xmp_len = n;
                }
            }
        }
        WebPDemuxReleaseChunkIterator(&it);
    }
    WebPDemuxDelete(dmx);
}

/* Replaces *buf (an encoded WebP) with one that carries `m`'s ICC profile,
 * EXIF and XMP in an extended (VP8X) container. Frees the old buffer. */
int pm_img_webp_put_meta(uint8_t **buf, size_t *len, const pm_image_meta *m)
{
    if (!m->icc && !m->exif && !m->xmp)
        return 0;
    WebPData img = {*buf, *len}, out = {NULL, 0};
    WebPMux *mux = WebPMuxCreate(&img, 0);
    if (!mux)
        return pm_errorf(PM_EINTERNAL, "libwebp cannot open the WebP it encoded to add metadata");
    int rc = 0;
    WebPMuxError e = WEBP_MUX_OK;
    if (m->icc) {
        WebPData d = {m->icc, m->icc_len};
        e = WebPMuxSetChunk(mux, "ICCP", &d, 0);
    }
    if (e == WEBP_MUX_OK && m->exif) {
        WebPData d = {m->exif, m->exif_len};
        e = WebPMuxSetChunk(mux, "EXIF", &d, 0);
    }
    if (e == WEBP_MUX_OK && m->xmp) {
        WebPData d = {m->xmp, m->xmp_len};
        e = WebPMuxSetChunk(mux, "XMP ", &d, 0);
    }
    if (e == WEBP_MUX_OK)
        e = WebPMuxAssemble(mux, &out);
    if (e != WEBP_MUX_OK) {
        rc = e == WEBP_MUX_MEMORY_ERROR ? pm_errorf(PM_ENOMEM, "out of memory adding metadata to the WebP")
                                        : pm_errorf(PM_EINTERNAL, "libwebp could not add metadata (error %d)", (int)e);
        goto delete_mux;
    }
    uint8_t *copy = pm_malloc(out.size);
    if (!copy) {
        rc = pm_errorf(PM_ENOMEM, "out of memory adding metadata to the WebP");
        goto clear_out;
    }
    memcpy(copy, out.bytes, out.size);
    pm_free(*buf);
    *buf = copy;
    *len = out.size;
clear_out:
    WebPDataClear(&out);
delete_mux:
    WebPMuxDelete(mux);
    return rc;
}

/* Caller owns *out on success, and what *meta (may be NULL) gained.
 * libwebp decodes straight into our buffer. */
int pm_img_webp_decode(const uint8_t *data, size_t len, const pm_limits *lim, pm_image *out, pm_image_meta *meta)
{
    WebPDecoderConfig cfg;
    if (!WebPInitDecoderConfig(&cfg))
        return pm_errorf(PM_EINTERNAL, "libwebp version mismatch");
    int rc = webp_header(data, len, &cfg.input);
    if (rc)
        return rc;
    rc = pm_img_check_limits(cfg.input.width, cfg.input.height, lim);
    if (rc)
        return rc;
    int channels = cfg.input.has_alpha ? 4 : 3;
    rc = pm_img_alloc_raw(out, cfg.input.width, cfg.input.height, channels, 0);
    if (rc)
        return rc;
    cfg.output.colorspace = channels == 4 ? MODE_RGBA : MODE_RGB;
    cfg.output.is_external_memory = 1;
    cfg.output.u.RGBA.rgba = out->data;
    cfg.output.u.RGBA.stride = out->width * channels;
    cfg.output.u.RGBA.size = (size_t)out->width * out->height * channels;
    VP8StatusCode st = WebPDecode(data, len, &cfg);
    WebPFreeDecBuffer(&cfg.output); /* external memory: releases nothing of ours */
    if (st != VP8_STATUS_OK) {
        rc = vp8_fail(st);
        pm_image_free(out);
        return rc;
    }
    if (meta)
        read_meta(data, len, meta);
    return 0;
}

/* Caller owns *out_data (pm_free). Lossless keeps RGB under transparent
 * pixels exactly (config.exact); lossy keeps alpha lossless (alpha_quality 100). */
int pm_img_webp_encode(const pm_image *img, int quality, int lossless, uint8_t **out_data, size_t *out_len)
{
    if (img->width > WEBP_MAX_SIDE || img->height > WEBP_MAX_SIDE)
        return pm_errorf(PM_EUNSUPPORTED, "WebP cannot store a %dx%d image (at most %d px a side); save it as PNG or JPEG",
                         img->width, img->height, WEBP_MAX_SIDE);
    WebPConfig cfg;
    if (!WebPConfigInit(&cfg))
        return pm_errorf(PM_EINTERNAL, "libwebp version mismatch");
    cfg.method = 4;
    if (lossless) {
        cfg.lossless = 1;
        cfg.exact = 1;
        cfg.quality = 75; /* for lossless this is effort, not fidelity */
    } else {
        cfg.quality = (float)quality;
        cfg.alpha_quality = 100;
    }
    if (!WebPValidateConfig(&cfg))
        return pm_errorf(PM_EINTERNAL, "libwebp rejected the encoder configuration");

    int rc = 0;
    WebPPicture pic;
    if (!WebPPictureInit(&pic))
        return pm_errorf(PM_EINTERNAL, "libwebp version mismatch");
    pic.width = img->width;
    pic.height = img->height;
    pic.use_argb = 1;
    WebPMemoryWriter wr;
    WebPMemoryWriterInit(&wr);
    int ok;
    if (img->channels == 4) {
        ok = WebPPictureImportRGBA(&pic, img->data, img->width * 4);
    } else if (img->channels == 3) {
        ok = WebPPictureImportRGB(&pic, img->data, img->width * 3);
    } else {
        ok = WebPPictureAlloc(&pic);
        if (ok) {
            for (int y = 0; y < img->height; y++) {
                const uint8_t *s = img->data + (size_t)y * img->width;
                uint32_t *d = pic.argb + (size_t)y * pic.argb_stride;
                for (int x = 0; x < img->width; x++)
                    d[x] = 0xff000000u | ((uint32_t)s[x] << 16) | ((uint32_t)s[x] << 8) | s[x];
            }
        }
    }
    if (!ok) {
        rc = pm_errorf(PM_ENOMEM, "out of memory preparing a %dx%d WebP", img->width, img->height);
        goto free_picture;
    }
    pic.writer = WebPMemoryWrite;
    pic.custom_ptr = &wr;
    if (!WebPEncode(&cfg, &pic)) {
        rc = pic.error_code == VP8_ENC_ERROR_OUT_OF_MEMORY
                 ? pm_errorf(PM_ENOMEM, "out of memory encoding a %dx%d WebP", img->width, img->height)
                 : pm_errorf(PM_EINTERNAL, "WebP encoding failed (libwebp error %d)", (int)pic.error_code);
        goto free_writer;
    }
    uint8_t *buf = pm_malloc(wr.size);
    if (!buf) {
        rc = pm_errorf(PM_ENOMEM, "out of memory encoding a %dx%d WebP", img->width, img->height);
        goto free_writer;
    }
    memcpy(buf, wr.mem, wr.size);
    *out_data = buf;
    *out_len = wr.size;

free_writer:
    WebPMemoryWriterClear(&wr);
free_picture:
    WebPPictureFree(&pic);
    return rc;
}
