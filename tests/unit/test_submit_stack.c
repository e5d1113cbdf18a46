/* Submission checks run on the HTTP threads, whose stacks civetweb makes
 * 100 KiB (Debian's libcivetweb; the handler is entered with ~23 KiB of it in
 * use). pm_job_check_inputs probes the image and decodes the mask there, so
 * its stack use is measured here: it runs on a thread whose stack is painted
 * with a pattern, and the deepest byte overwritten gives the use. It also
 * checks that the image is not decoded (a damaged pixel stream passes) and
 * that what the header says is refused as before. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include "pixmend.h"
#include "sched/sched_internal.h"
#include "support/image_fixtures.h"

/* Stack the checks may take: civetweb's 100 KiB less the ~31 KiB in use when
 * pm_sched_submit is called from a handler, less room for the journal's
 * insert (SQLite) after it. Measured: about 14 KiB, 15 KiB under ASan. */
#define STACK_BUDGET (48u * 1024u)
#define STACK_SIZE (1024u * 1024u)
#define PAINT 0xa5

typedef struct check_call {
    pm_job_spec spec;
    const uint8_t *image, *mask;
    size_t image_len, mask_len;
    const char *image_name, *mask_name;
    int rc, w, h;
    uint64_t work_px;
    char detail[512];
} check_call;

static void *run_check(void *arg)
{
    check_call *c = arg;
    pm_limits lim = pm_default_limits();
    c->rc = pm_job_check_inputs(&c->spec, &lim, c->image, c->image_len, c->image_name, c->mask, c->mask_len,
                                c->mask_name, &c->w, &c->h, &c->work_px);
    snprintf(c->detail, sizeof c->detail, "%s", pm_error_detail());
    return NULL;
}

/* Runs the check on a painted stack; returns the bytes of stack it used. */
static size_t stack_used(check_call *c)
{
    uint8_t *stack = aligned_alloc(4096, STACK_SIZE);
    assert_non_null(stack);
    memset(stack, PAINT, STACK_SIZE);
    pthread_attr_t attr;
    pthread_t t;
    assert_int_equal(pthread_attr_init(&attr), 0);
    assert_int_equal(pthread_attr_setstack(&attr, stack, STACK_SIZE), 0);
    assert_int_equal(pthread_create(&t, &attr, run_check, c), 0);
    pthread_join(t, NULL);
    pthread_attr_destroy(&attr);
    size_t low = 0;
    while (low < STACK_SIZE && stack[low] == PAINT)
        low++;
    free(stack);
    return STACK_SIZE - low;
}

static uint8_t *gray_box(int w, int h, int x0, int y0, int x1, int y1)
{
    uint8_t *p = calloc((size_t)w * (size_t)h, 1);
    assert_non_null(p);
    for (int y = y0; y < y1; y++)
        memset(p + (size_t)y * (size_t)w + x0, 255, (size_t)(x1 - x0));
    return p;
}

static uint8_t *rgb_of(const uint8_t *gray, int w, int h)
{
    uint8_t *p = malloc((size_t)w * (size_t)h * 3);
    assert_non_null(p);
    for (size_t i = 0; i < (size_t)w * (size_t)h; i++)
        p[3 * i] = p[3 * i + 1] = p[3 * i + 2] = gray[i];
    return p;
}

static pm_job_spec inpaint_spec(void)
{
    pm_job_spec s;
    pm_job_spec_default(&s);
    s.task = PM_TASK_INPAINT;
    return s;
}

/* A large mask in each format, as sent and resized, grown and shrunk: every
 * path stays within the budget and sizes the job from the mask's box. */
static void test_mask_checks_fit_http_stacks(void **state)
{
    (void)state;
    enum { W = 3000, H = 2000 };
    uint8_t *gray = gray_box(W, H, 1000, 800, 1400, 1100);
    uint8_t *rgb = rgb_of(gray, W, H);
    size_t ilen, png_len, jpg_len, webp_len, small_len;
    uint8_t *image = fx_jpeg(rgb, W, H, TJPF_RGB, TJSAMP_420, 85, 0, &ilen);
    uint8_t *png = fx_png(gray, W, H, 0, 8, 0, NULL, 0, NULL, 0, &png_len);
    uint8_t *jpg = fx_jpeg(gray, W, H, TJPF_GRAY, TJSAMP_GRAY, 95, 0, &jpg_len);
    uint8_t *webp = fx_webp(rgb, W, H, 3, 1, 100, &webp_len);
    uint8_t *small_gray = gray_box(W / 4, H / 4, 250, 200, 350, 275);
    uint8_t *small = fx_png(small_gray, W / 4, H / 4, 0, 8, 0, NULL, 0, NULL, 0, &small_len);
    struct {
        const char *what;
        const uint8_t *mask;
        size_t len;
        int resize, dilate;
    } cases[] = {
        {"png mask", png, png_len, 0, 0},   {"jpeg mask", jpg, jpg_len, 0, 0},
        {"webp mask", webp, webp_len, 0, 0}, {"grown png mask", png, png_len, 0, 40},
        {"shrunk png mask", png, png_len, 0, -20}, {"resized png mask", small, small_len, 1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        check_call c = {.spec = inpaint_spec(), .image = image, .image_len = ilen, .image_name = "photo.jpg",
                        .mask = cases[i].mask, .mask_len = cases[i].len, .mask_name = "mask"};
        c.spec.mask_resize = cases[i].resize;
        c.spec.mask_dilate = cases[i].dilate;
        c.spec.hd_strategy = 3; /* crop: the job is sized from the mask's box */
        size_t used = stack_used(&c);
        printf("# %-18s stack %zu bytes (budget %u)\n", cases[i].what, used, STACK_BUDGET);
        if (c.rc)
            fail_msg("%s: %s", cases[i].what, c.detail);
        assert_int_equal(c.w, W);
        assert_int_equal(c.h, H);
        assert_true(c.work_px > 0 && c.work_px < (uint64_t)W * H / 4);
        assert_true(used < STACK_BUDGET);
    }
    free(gray);
    free(rgb);
    free(image);
    free(png);
    free(jpg);
    free(webp);
    free(small_gray);
    free(small);
}

/* The image is probed, not decoded: a JPEG whose entropy-coded data is
 * garbage passes the check (the worker's decode fails the job), while what
 * its header says is refused at once with the sentences of a decode. */
static void test_image_is_probed_not_decoded(void **state)
{
    (void)state;
    enum { W = 640, H = 480 };
    uint8_t *gray = gray_box(W, H, 100, 100, 200, 200);
    uint8_t *rgb = rgb_of(gray, W, H);
    size_t ilen, mlen;
    uint8_t *image = fx_jpeg(rgb, W, H, TJPF_RGB, TJSAMP_420, 85, 0, &ilen);
    uint8_t *mask = fx_png(gray, W, H, 0, 8, 0, NULL, 0, NULL, 0, &mlen);
    pm_limits lim = pm_default_limits();
    pm_image decoded = {0};
    /* Damage the scan: the entropy-coded bytes after the start of scan become a pattern. */
    size_t sos = 0;
    for (size_t i = 2; i + 1 < ilen; i++)
        if (image[i] == 0xff && image[i + 1] == 0xda) {
            sos = i;
            break;
        }
    assert_true(sos > 0);
    size_t scan = sos + 2 + ((size_t)image[sos + 2] << 8 | image[sos + 3]);
    for (size_t i = scan; i + 2 < ilen; i++)
        image[i] = (uint8_t)(i & 1 ? 0x00 : 0xd5);
    int decode_rc = pm_image_decode(image, ilen, &lim, NULL, &decoded);
    pm_image_free(&decoded);
    assert_int_not_equal(decode_rc, 0); /* the worker will fail the job */

    check_call c = {.spec = inpaint_spec(), .image = image, .image_len = ilen, .image_name = "a.jpg", .mask = mask,
                    .mask_len = mlen, .mask_name = "m.png"};
    run_check(&c);
    assert_int_equal(c.rc, 0);
    assert_int_equal(c.w, W);
    assert_int_equal(c.h, H);
    printf("# a damaged scan: decode %s, check %d\n", decode_rc ? pm_strerror(decode_rc) : "passes", c.rc);

    /* The header's refusals are those of a decode, with the input named. */
    c.image_name = "a.png";
    run_check(&c);
    assert_int_equal(c.rc, PM_EEXTENSION);
    assert_non_null(strstr(c.detail, "image: a.png contains JPEG data"));
    c.image_name = "a.jpg";
    c.image_len = 0;
    run_check(&c);
    assert_int_equal(c.rc, PM_EEMPTY);
    c.image_len = ilen;
    lim.max_pixels = 1000;
    check_call big = c;
    big.rc = pm_job_check_inputs(&big.spec, &lim, big.image, big.image_len, NULL, big.mask, big.mask_len, NULL,
                                 &big.w, &big.h, &big.work_px);
    assert_int_equal(big.rc, PM_ETOOBIG);
    assert_non_null(strstr(pm_error_detail(), "640x480"));
    free(gray);
    free(rgb);
    free(image);
    free(mask);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mask_checks_fit_http_stacks),
        cmocka_unit_test(test_image_is_probed_not_decoded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
