/* JPEG to JPEG without generation loss, through libjpeg's coefficient API.
 *
 * The source's DCT coefficients are read (jpeg_read_coefficients). The band
 * of iMCU rows that holds a changed pixel is cut from the repaired image (in
 * the source's stored orientation) and compressed once with the source's
 * critical parameters (jpeg_copy_critical_parameters: the same quantisation
 * tables and component sampling), which forward-DCTs its blocks exactly as
 * the source's grid lays them out (the band starts on an iMCU row, and
 * libjpeg's downsampling and DCT read nothing outside a block's own
 * pixels); its coefficients are read back. Only the band is held twice, so
 * a small repair in a large photo costs little beyond the source's
 * coefficients. For every
 * iMCU (the 8*Hmax x 8*Vmax pixel cell that holds one MCU's blocks of every
 * component) in which a pixel changed, all its blocks of all components are
 * taken from the repaired image; every other block is the source's, bit for
 * bit. The result is written with jpeg_write_coefficients, progressive when
 * the source was. Decoded, it equals the decoded source outside the
 * re-encoded iMCUs, except for a 1-pixel fringe around them in directions
 * where chroma is subsampled (the decoder's upsampling filter reads the
 * neighbouring chroma sample).
 *
 * Whole iMCUs, not single blocks: with 4:2:0 one chroma block covers four
 * luma blocks, so a change in any of them changes the chroma block, and
 * taking luma and chroma from the same encode keeps them consistent. */
#include "image/image_internal.h"
#include "image/jpeg_meta.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>

typedef struct coef_err {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
} coef_err;

static void on_error(j_common_ptr c)
{
    coef_err *e = (coef_err *)(void *)c->err;
    c->err->format_message(c, e->msg);
    longjmp(e->jb, 1);
}

static void on_output(j_common_ptr c)
{
    (void)c; /* warnings (e.g. extraneous bytes) are not errors here */
}

/* Everything that must be released, on the heap so that longjmp leaves it intact. */
typedef struct coef_job {
    coef_err err;
    struct jpeg_decompress_struct src, re;
    struct jpeg_compress_struct tmp, outc;
    int src_made, re_made, tmp_made, out_made;
    unsigned char *tmp_buf, *out_buf; /* malloc'ed by libjpeg's memory destination */
    unsigned long tmp_len, out_len;
    uint8_t *band;                    /* repaired pixels of iMCU rows [row0, row1), as stored */
    int row0, row1;                   /* in pixels; row0 == row1: nothing changed */
    uint8_t *flags;                   /* one per iMCU: 1 = re-encode */
    int cw, ch, mx_n, my_n;           /* iMCU size in pixels, iMCUs across and down */
} coef_job;

/* Flags the iMCUs (as stored) that hold a pixel where `after` differs from
 * `before` (as displayed), and sets the band of rows that holds them. */
static void mark_changes(coef_job *j, const pm_image *before, const pm_image *after, int orientation, int sw,
                         int sh)
{
    int m[6];
    pm_img_orient_map(orientation, sw, sh, m);
    int c = after->channels, lo = j->my_n, hi = -1;
    for (int y = 0; y < after->height; y++) {
        const uint8_t *a = before->data + (size_t)y * after->width * c;
        const uint8_t *b = after->data + (size_t)y * after->width * c;
        for (int x = 0; x < after->width; x++) {
            if (!memcmp(a + (size_t)x * c, b + (size_t)x * c, (size_t)c))
                continue;
            int sx = m[0] * x + m[1] * y + m[2], sy = m[3] * x + m[4] * y + m[5];
            int my = sy / j->ch;
            j->flags[(size_t)my * j->mx_n + sx / j->cw] = 1;
            if (my < lo)
                lo = my;
            if (my > hi)
                hi = my;
        }
    }
    j->row0 = hi < 0 ? 0 : lo * j->ch;
    j->row1 = hi < 0 ? 0 : ((hi + 1) * j->ch < sh ? (hi + 1) * j->ch : sh);
}

/* Copies the band's repaired pixels, in stored orientation, into j->band. */
static int cut_band(coef_job *j, const pm_image *after, int orientation, int sw, int sh)
{
    int c = after->channels;
    j->band = pm_malloc((size_t)sw * (size_t)(j->row1 - j->row0) * c);
    if (!j->band)
        return pm_errorf(PM_ENOMEM, "out of memory for the JPEG coefficient path");
    int m[6];
    pm_img_orient_map(orientation, sw, sh, m);
    for (int y = 0; y < after->height; y++) {
        const uint8_t *b = after->data + (size_t)y * after->width * c;
        for (int x = 0; x < after->width; x++) {
            int sx = m[0] * x + m[1] * y + m[2], sy = m[3] * x + m[4] * y + m[5];
            if (sy >= j->row0 && sy < j->row1)
                memcpy(j->band + ((size_t)(sy - j->row0) * sw + sx) * c, b + (size_t)x * c, (size_t)c);
        }
    }
    return 0;
}

/* Compresses the band with the source's critical parameters into j->tmp_buf. */
static void compress_band(coef_job *j, int sw, int channels)
{
    jpeg_create_compress(&j->tmp);
    j->tmp_made = 1;
    j->tmp.err = &j->err.pub;
    jpeg_mem_dest(&j->tmp, &j->tmp_buf, &j->tmp_len);
    jpeg_copy_critical_parameters(&j->src, &j->tmp);
    j->tmp.image_height = (JDIMENSION)(j->row1 - j->row0);
    j->tmp.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    j->tmp.input_components = channels;
    j->tmp.dct_method = JDCT_ISLOW;
    jpeg_start_compress(&j->tmp, TRUE);
    size_t stride = (size_t)sw * channels;
    while (j->tmp.next_scanline < j->tmp.image_height) {
        JSAMPROW row = j->band + j->tmp.next_scanline * stride;
        jpeg_write_scanlines(&j->tmp, &row, 1);
    }
    jpeg_finish_compress(&j->tmp);
}

/* Takes the flagged iMCUs' blocks from `re` (the band) into the source's arrays. */
static int splice_blocks(coef_job *j, jvirt_barray_ptr *sc, jvirt_barray_ptr *rc, int *encoded)
{
    for (int ci = 0; ci < j->src.num_components; ci++) {
        jpeg_component_info *comp = j->src.comp_info + ci, *rcomp = j->re.comp_info + ci;
        JDIMENSION h = (JDIMENSION)comp->h_samp_factor, v = (JDIMENSION)comp->v_samp_factor;
        JDIMENSION by0 = (JDIMENSION)(j->row0 / j->ch) * v;
        JDIMENSION by1 = (JDIMENSION)((j->row1 + j->ch - 1) / j->ch) * v;
        if (by1 > comp->height_in_blocks)
            by1 = comp->height_in_blocks;
        if (rcomp->width_in_blocks != comp->width_in_blocks || by1 - by0 > rcomp->height_in_blocks)
            return pm_errorf(PM_EINTERNAL, "the re-encoded band's block grid differs from the source's");
        for (JDIMENSION by = by0; by < by1; by++) {
            const uint8_t *f = j->flags + (size_t)(by / v) * j->mx_n;
            JBLOCKARRAY a = NULL, b = NULL;
            for (JDIMENSION bx = 0; bx < comp->width_in_blocks; bx++) {
                if (!f[bx / h])
                    continue;
                if (!a) {
                    a = (*j->src.mem->access_virt_barray)((j_common_ptr)&j->src, sc[ci], by, 1, TRUE);
                    b = (*j->re.mem->access_virt_barray)((j_common_ptr)&j->re, rc[ci], by - by0, 1, FALSE);
                }
                memcpy(a[0][bx], b[0][bx], sizeof(JBLOCK));
                (*encoded)++;
            }
        }
    }
    return 0;
}

static void release(coef_job *j)
{
    if (j->out_made)
        jpeg_destroy_compress(&j->outc);
    if (j->tmp_made)
        jpeg_destroy_compress(&j->tmp);
    if (j->re_made)
        jpeg_destroy_decompress(&j->re);
    if (j->src_made)
        jpeg_destroy_decompress(&j->src);
    free(j->tmp_buf);
    free(j->out_buf);
    pm_free(j->flags);
    pm_free(j->band);
    pm_free(j);
}

/* Reads the source, re-encodes the changed band, splices its blocks in and
 * writes the result into j->out_buf. Errors longjmp to the caller's setjmp
 * (libjpeg) or return a PM_E* code. */
static int transcode(coef_job *j, const uint8_t *src, size_t src_len, int orientation, const pm_image *before,
                     const pm_image *after, int *blocks_total, int *blocks_encoded)
{
    jpeg_create_decompress(&j->src);
    j->src_made = 1;
    j->src.err = &j->err.pub;
    jpeg_mem_src(&j->src, src, (unsigned long)src_len);
    jpeg_read_header(&j->src, TRUE);
    jvirt_barray_ptr *sc = jpeg_read_coefficients(&j->src);
    int sw = (int)j->src.image_width, sh = (int)j->src.image_height;
    int swap = orientation >= 5 && orientation <= 8;
    if (j->src.jpeg_color_space == JCS_CMYK || j->src.jpeg_color_space == JCS_YCCK ||
        j->src.num_components != after->channels || (swap ? sh : sw) != after->width ||
        (swap ? sw : sh) != after->height)
        return pm_errorf(PM_EUNSUPPORTED, "this JPEG's colour model cannot keep its blocks");
    /* The encoder divides by every quantisation value; a decoder takes 0. */
    for (int ci = 0; ci < j->src.num_components; ci++) {
        JQUANT_TBL *qt = j->src.comp_info[ci].quant_table;
        int bad = !qt;
        for (int k = 0; !bad && k < DCTSIZE2; k++)
            bad = qt->quantval[k] == 0;
        if (bad)
            return pm_errorf(PM_EUNSUPPORTED, "the JPEG has a quantisation table with a zero entry");
    }
    for (int ci = 0; ci < j->src.num_components; ci++)
        *blocks_total += (int)(j->src.comp_info[ci].width_in_blocks * j->src.comp_info[ci].height_in_blocks);
    j->cw = 8 * j->src.max_h_samp_factor;
    j->ch = 8 * j->src.max_v_samp_factor;
    j->mx_n = (sw + j->cw - 1) / j->cw;
    j->my_n = (sh + j->ch - 1) / j->ch;
    j->flags = pm_calloc((size_t)j->mx_n * j->my_n, 1);
    if (!j->flags)
        return pm_errorf(PM_ENOMEM, "out of memory for the JPEG coefficient path");
    mark_changes(j, before, after, orientation, sw, sh);
    if (j->row1 > j->row0) {
        int rc = cut_band(j, after, orientation, sw, sh);
        if (rc)
            return rc;
        compress_band(j, sw, after->channels);
        jpeg_create_decompress(&j->re);
        j->re_made = 1;
        j->re.err = &j->err.pub;
        jpeg_mem_src(&j->re, j->tmp_buf, j->tmp_len);
        jpeg_read_header(&j->re, TRUE);
        jvirt_barray_ptr *rcoef = jpeg_read_coefficients(&j->re);
        rc = splice_blocks(j, sc, rcoef, blocks_encoded);
        if (rc)
            return rc;
    }
    jpeg_create_compress(&j->outc);
    j->out_made = 1;
    j->outc.err = &j->err.pub;
    jpeg_mem_dest(&j->outc, &j->out_buf, &j->out_len);
    jpeg_copy_critical_parameters(&j->src, &j->outc);
    if (j->src.progressive_mode)
        jpeg_simple_progression(&j->outc);
    else
        j->outc.optimize_coding = TRUE;
    jpeg_write_coefficients(&j->outc, sc);
    jpeg_finish_compress(&j->outc);
    return 0;
}

/* Caller owns *out (pm_free). */
int pm_img_jpeg_encode_coef(const uint8_t *src, size_t src_len, int orientation, const pm_image *before,
                            const pm_image *after, uint8_t **out, size_t *out_len, int *blocks_total,
                            int *blocks_encoded)
{
    *out = NULL;
    *out_len = 0;
    *blocks_total = *blocks_encoded = 0;
    if (before->width != after->width || before->height != after->height || before->channels != after->channels ||
        (after->channels != 1 && after->channels != 3))
        return pm_errorf(PM_EUNSUPPORTED, "the result's shape differs from the source JPEG's");
    coef_job *j = pm_calloc(1, sizeof *j);
    if (!j)
        return pm_errorf(PM_ENOMEM, "out of memory for the JPEG coefficient path");
    int rc;
    if (setjmp(j->err.jb)) {
        rc = pm_errorf(PM_ECORRUPT, "the JPEG coefficient path failed: %s", j->err.msg);
        release(j);
        return rc;
    }
    jpeg_std_error(&j->err.pub);
    j->err.pub.error_exit = on_error;
    j->err.pub.output_message = on_output;
    rc = transcode(j, src, src_len, orientation, before, after, blocks_total, blocks_encoded);
    if (rc == 0) {
        uint8_t *buf = pm_malloc(j->out_len);
        if (!buf) {
            rc = pm_errorf(PM_ENOMEM, "out of memory writing the JPEG");
        } else {
            memcpy(buf, j->out_buf, j->out_len);
            *out = buf;
            *out_len = j->out_len;
        }
    }
    release(j);
    return rc;
}
