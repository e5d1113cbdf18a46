/* JPEG to JPEG without generation loss, through libjpeg's coefficient API.
 *
 * The source's DCT coefficients are read (jpeg_read_coefficients). The
 * repaired image is compressed once with the source's critical parameters
 * (jpeg_copy_critical_parameters: the same quantisation tables, component
 * sampling and size), which forward-DCTs every block of it exactly as the
 * source's grid lays them out; its coefficients are read back. For every
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
    pm_image stored, changed;        /* repaired pixels and change map, as stored */
    uint8_t *flags;                  /* one per iMCU: 1 = re-encode */
} coef_job;

/* 1-channel map of the pixels where `after` differs from `before`. */
static int change_map(pm_image *map, const pm_image *before, const pm_image *after)
{
    int rc = pm_image_alloc(map, after->width, after->height, 1);
    if (rc)
        return rc;
    size_t n = (size_t)after->width * after->height;
    int c = after->channels;
    for (size_t i = 0; i < n; i++)
        map->data[i] = memcmp(before->data + i * c, after->data + i * c, (size_t)c) != 0;
    return 0;
}

/* Compresses j->stored with the source's critical parameters into j->tmp_buf. */
static void compress_repaired(coef_job *j)
{
    jpeg_create_compress(&j->tmp);
    j->tmp_made = 1;
    j->tmp.err = &j->err.pub;
    jpeg_mem_dest(&j->tmp, &j->tmp_buf, &j->tmp_len);
    jpeg_copy_critical_parameters(&j->src, &j->tmp);
    j->tmp.in_color_space = j->stored.channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    j->tmp.input_components = j->stored.channels;
    j->tmp.dct_method = JDCT_ISLOW;
    jpeg_start_compress(&j->tmp, TRUE);
    size_t stride = (size_t)j->stored.width * j->stored.channels;
    while (j->tmp.next_scanline < j->tmp.image_height) {
        JSAMPROW row = j->stored.data + j->tmp.next_scanline * stride;
        jpeg_write_scanlines(&j->tmp, &row, 1);
    }
    jpeg_finish_compress(&j->tmp);
}

/* Marks the iMCUs (cw x ch pixels, mx_n across) that hold a changed pixel. */
static void mark_imcus(coef_job *j, int cw, int ch, int mx_n)
{
    const pm_image *m = &j->changed;
    for (int y = 0; y < m->height; y++) {
        const uint8_t *row = m->data + (size_t)y * m->width;
        uint8_t *f = j->flags + (size_t)(y / ch) * mx_n;
        for (int x = 0; x < m->width; x++)
            if (row[x])
                f[x / cw] = 1;
    }
}

/* Takes the flagged iMCUs' blocks from `re` into the source's arrays. */
static void splice_blocks(coef_job *j, jvirt_barray_ptr *sc, jvirt_barray_ptr *rc, int mx_n, int *total,
                          int *encoded)
{
    for (int ci = 0; ci < j->src.num_components; ci++) {
        jpeg_component_info *comp = j->src.comp_info + ci;
        int h = comp->h_samp_factor, v = comp->v_samp_factor;
        for (JDIMENSION by = 0; by < comp->height_in_blocks; by++) {
            JBLOCKARRAY a = (*j->src.mem->access_virt_barray)((j_common_ptr)&j->src, sc[ci], by, 1, TRUE);
            JBLOCKARRAY b = (*j->re.mem->access_virt_barray)((j_common_ptr)&j->re, rc[ci], by, 1, FALSE);
            const uint8_t *f = j->flags + (size_t)(by / (JDIMENSION)v) * mx_n;
            for (JDIMENSION bx = 0; bx < comp->width_in_blocks; bx++) {
                if (f[bx / (JDIMENSION)h]) {
                    memcpy(a[0][bx], b[0][bx], sizeof(JBLOCK));
                    (*encoded)++;
                }
            }
            *total += (int)comp->width_in_blocks;
        }
    }
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
    pm_image_free(&j->stored);
    pm_image_free(&j->changed);
    pm_free(j);
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
    int rc = pm_image_clone(&j->stored, after);
    if (!rc)
        rc = change_map(&j->changed, before, after);
    int inverse = orientation == 6 ? 8 : orientation == 8 ? 6 : orientation;
    if (!rc && inverse >= 2 && inverse <= 8) {
        rc = pm_img_orient(&j->stored, inverse);
        if (!rc)
            rc = pm_img_orient(&j->changed, inverse);
    }
    if (rc) {
        release(j);
        return rc;
    }
    if (setjmp(j->err.jb)) {
        rc = pm_errorf(PM_ECORRUPT, "the JPEG coefficient path failed: %s", j->err.msg);
        release(j);
        return rc;
    }
    jpeg_std_error(&j->err.pub);
    j->err.pub.error_exit = on_error;
    j->err.pub.output_message = on_output;
    jpeg_create_decompress(&j->src);
    j->src_made = 1;
    j->src.err = &j->err.pub;
    jpeg_mem_src(&j->src, src, (unsigned long)src_len);
    jpeg_read_header(&j->src, TRUE);
    jvirt_barray_ptr *sc = jpeg_read_coefficients(&j->src);
    if (j->src.jpeg_color_space == JCS_CMYK || j->src.jpeg_color_space == JCS_YCCK ||
        j->src.num_components != after->channels || (int)j->src.image_width != j->stored.width ||
        (int)j->src.image_height != j->stored.height) {
        release(j);
        return pm_errorf(PM_EUNSUPPORTED, "this JPEG's colour model cannot keep its blocks");
    }
    /* The encoder divides by every quantisation value; a decoder takes 0. */
    for (int ci = 0; ci < j->src.num_components; ci++) {
        JQUANT_TBL *qt = j->src.comp_info[ci].quant_table;
        int bad = !qt;
        for (int k = 0; !bad && k < DCTSIZE2; k++)
            bad = qt->quantval[k] == 0;
        if (bad) {
            release(j);
            return pm_errorf(PM_EUNSUPPORTED, "the JPEG has a quantisation table with a zero entry");
        }
    }
    compress_repaired(j);
    jpeg_create_decompress(&j->re);
    j->re_made = 1;
    j->re.err = &j->err.pub;
    jpeg_mem_src(&j->re, j->tmp_buf, j->tmp_len);
    jpeg_read_header(&j->re, TRUE);
    jvirt_barray_ptr *rcoef = jpeg_read_coefficients(&j->re);

    int cw = 8 * j->src.max_h_samp_factor, ch = 8 * j->src.max_v_samp_factor;
    int mx_n = (j->stored.width + cw - 1) / cw, my_n = (j->stored.height + ch - 1) / ch;
    j->flags = pm_calloc((size_t)mx_n * my_n, 1);
    if (!j->flags) {
        release(j);
        return pm_errorf(PM_ENOMEM, "out of memory for the JPEG coefficient path");
    }
    mark_imcus(j, cw, ch, mx_n);
    for (int ci = 0; ci < j->src.num_components; ci++)
        if (j->re.comp_info[ci].width_in_blocks != j->src.comp_info[ci].width_in_blocks ||
            j->re.comp_info[ci].height_in_blocks != j->src.comp_info[ci].height_in_blocks) {
            release(j);
            return pm_errorf(PM_EINTERNAL, "the re-encoded JPEG's block grid differs from the source's");
        }
    splice_blocks(j, sc, rcoef, mx_n, blocks_total, blocks_encoded);

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

    uint8_t *buf = pm_malloc(j->out_len);
    if (!buf) {
        release(j);
        return pm_errorf(PM_ENOMEM, "out of memory writing the JPEG");
    }
    memcpy(buf, j->out_buf, j->out_len);
    *out = buf;
    *out_len = j->out_len;
    release(j);
    return 0;
}
