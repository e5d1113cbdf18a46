/* Writes the seed corpora for the fuzz targets: small PNG (every colour
 * type, 1..16 bits, palette with tRNS, Adam7), JPEG (baseline, progressive,
 * gray, CMYK, EXIF orientation) and WebP (lossy, lossless, alpha) files,
 * made with the same libraries the decoders use.
 * Usage: gen_seeds OUTDIR  (creates OUTDIR/png, OUTDIR/jpeg, OUTDIR/webp) */
#include <errno.h>
#include <spng.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <turbojpeg.h>
#include <webp/encode.h>

static const char *outdir;

static void die(const char *what)
{
    fprintf(stderr, "gen_seeds: %s\n", what);
    exit(1);
}

static void save(const char *sub, const char *name, const void *data, size_t len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", outdir, sub);
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        die("cannot create a corpus directory");
    snprintf(path, sizeof path, "%s/%s/%s", outdir, sub, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0)
        die("cannot write a seed file");
}

static void png(const char *name, int w, int h, int color, int depth, int interlace, int with_trns)
{
    int ch = color == 0 || color == 3 ? 1 : color == 2 ? 3 : color == 4 ? 2 : 4;
    size_t rowbytes = ((size_t)w * ch * depth + 7) / 8;
    unsigned char *raw = malloc(rowbytes * h);
    if (!raw)
        die("out of memory");
    for (size_t i = 0; i < rowbytes * h; i++)
        raw[i] = (unsigned char)(i * 29 + 7);
    spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
    struct spng_ihdr ihdr = {(uint32_t)w, (uint32_t)h, (uint8_t)depth, (uint8_t)color, 0, 0, (uint8_t)interlace};
    int e = spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1);
    e = e ? e : spng_set_ihdr(ctx, &ihdr);
    if (color == 3) {
        struct spng_plte p;
        memset(&p, 0, sizeof p);
        p.n_entries = 1u << depth;
        for (uint32_t i = 0; i < p.n_entries; i++) {
            p.entries[i].red = (uint8_t)(i * 50);
            p.entries[i].green = (uint8_t)(i * 90 + 3);
            p.entries[i].blue = (uint8_t)(255 - i);
        }
        e = e ? e : spng_set_plte(ctx, &p);
    }
    if (with_trns) {
        struct spng_trns t;
        memset(&t, 0, sizeof t);
        t.n_type3_entries = 2;
        t.type3_alpha[1] = 128;
        t.gray = 7;
        t.red = 7;
        e = e ? e : spng_set_trns(ctx, &t);
    }
    e = e ? e : spng_encode_image(ctx, raw, rowbytes * h, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
    size_t len = 0;
    void *buf = e ? NULL : spng_get_png_buffer(ctx, &len, &e);
    if (!buf)
        die(spng_strerror(e));
    save("png", name, buf, len);
    free(buf);
    spng_ctx_free(ctx);
    free(raw);
}

static void jpeg(const char *name, int pf, int subsamp, int flags, int orientation)
{
    enum { W = 24, H = 16 };
    unsigned char px[W * H * 4];
    for (int i = 0; i < W * H * 4; i++)
        px[i] = (unsigned char)((i % (W * 4)) * 3 + (i / (W * 4)) * 5);
    tjhandle tj = tjInitCompress();
    unsigned char *buf = NULL;
    unsigned long len = 0;
    if (!tj || tjCompress2(tj, px, W, 0, H, pf, &buf, &len, subsamp, 85, flags) != 0)
        die("tjCompress2 failed");
    if (orientation) {
        /* APP1 Exif, big-endian TIFF, IFD0 with one Orientation entry. */
        unsigned char app1[2 + 2 + 6 + 8 + 2 + 12 + 4] = {0xff, 0xe1, 0, 34, 'E', 'x', 'i', 'f', 0, 0,
                                                         'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1,
                                                         0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, (unsigned char)orientation,
                                                         0, 0, 0, 0, 0, 0};
        unsigned char *out = malloc(len + sizeof app1);
        if (!out)
            die("out of memory");
        memcpy(out, buf, 2);
        memcpy(out + 2, app1, sizeof app1);
        memcpy(out + 2 + sizeof app1, buf + 2, len - 2);
        save("jpeg", name, out, len + sizeof app1);
        free(out);
    } else {
        save("jpeg", name, buf, len);
    }
    tjFree(buf);
    tjDestroy(tj);
}

static void webp(const char *name, int alpha, int lossless)
{
    enum { W = 20, H = 12 };
    unsigned char px[W * H * 4];
    for (int i = 0; i < W * H * 4; i++)
        px[i] = (unsigned char)(i * 7 + (i / 40));
    unsigned char *buf = NULL;
    size_t len;
    if (lossless)
        len = alpha ? WebPEncodeLosslessRGBA(px, W, H, W * 4, &buf) : WebPEncodeLosslessRGB(px, W, H, W * 3, &buf);
    else
        len = alpha ? WebPEncodeRGBA(px, W, H, W * 4, 80, &buf) : WebPEncodeRGB(px, W, H, W * 3, 80, &buf);
    if (!len)
        die("WebP encoding failed");
    save("webp", name, buf, len);
    WebPFree(buf);
}

/* fuzz_web: the first byte picks the check (see fuzz_web.c), the rest is the text. */
static void web(const char *name, char mode, const char *text)
{
    char buf[512];
    size_t n = strlen(text);
    buf[0] = mode;
    memcpy(buf + 1, text, n);
    save("web", name, buf, n + 1);
}

int main(int argc, char **argv)
{
    if (argc != 2)
        die("usage: gen_seeds OUTDIR");
    outdir = argv[1];
    if (mkdir(outdir, 0755) != 0 && errno != EEXIST)
        die("cannot create OUTDIR");
    png("gray1.png", 13, 5, 0, 1, 0, 0);
    png("gray8_trns.png", 8, 8, 0, 8, 0, 1);
    png("gray16_adam7.png", 11, 9, 0, 16, 1, 0);
    png("ga8.png", 6, 6, 4, 8, 0, 0);
    png("ga16.png", 5, 5, 4, 16, 0, 0);
    png("pal4_trns_adam7.png", 17, 10, 3, 4, 1, 1);
    png("pal8.png", 9, 9, 3, 8, 0, 0);
    png("rgb8.png", 10, 7, 2, 8, 0, 0);
    png("rgb16_trns.png", 4, 4, 2, 16, 0, 1);
    png("rgba8_adam7.png", 9, 9, 6, 8, 1, 0);
    png("rgba16.png", 4, 3, 6, 16, 0, 0);
    jpeg("baseline420.jpg", TJPF_RGB, TJSAMP_420, 0, 0);
    jpeg("baseline444_exif6.jpg", TJPF_RGB, TJSAMP_444, 0, 6);
    jpeg("progressive.jpg", TJPF_RGB, TJSAMP_420, TJFLAG_PROGRESSIVE, 0);
    jpeg("gray.jpg", TJPF_GRAY, TJSAMP_GRAY, 0, 3);
    jpeg("cmyk.jpg", TJPF_CMYK, TJSAMP_444, 0, 0);
    jpeg("cmyk_progressive.jpg", TJPF_CMYK, TJSAMP_420, TJFLAG_PROGRESSIVE, 8);
    webp("lossy.webp", 0, 0);
    webp("lossy_alpha.webp", 1, 0);
    webp("lossless.webp", 0, 1);
    webp("lossless_alpha.webp", 1, 1);
    web("auth_ok", 0, "Bearer fuzz-key-0123456789abcdef");
    web("auth_wrong", 0, "bearer   fuzz-key-0123456789abcdeX ");
    web("auth_basic", 0, "Basic dXNlcjpwYXNz");
    web("path_traversal", 1, "/js/../../etc/passwd");
    web("path_ok", 1, "/js/main.js");
    web("filename", 2, "a\";\r\nX-Evil: 1.png");
    web("origin", 3, "http://127.0.0.1:8080");
    web("option", 5, "1024");
    web("option_preset", 5, "portrait");
    web("format", 6, "JPG");
    web("keyfile", 4, "# keys\nalice:fuzz-key-0123456789abcdef\nbob:sha256:"
                      "3f1a4a0c1ea8d56e0b2da5c1bb7dbd3c4e8e2e74b44c3b6fb8f0e8a8e0a3bd2a:admin\n");
    return 0;
}
