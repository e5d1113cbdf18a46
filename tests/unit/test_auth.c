/* API keys (server/auth.c) and the hardening helpers (server/headers.c):
 * SHA-256 against FIPS 180-4's examples, the constant-time compare, the key
 * file's forms, errors and mode check, the check of presented keys, the
 * token bucket, a reload, and the path, Origin and file-name checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "server/auth.h"
#include "server/headers.h"
#include "support/tmpfiles.h"

static void hex(const uint8_t *h, char *out)
{
    for (int i = 0; i < 32; i++)
        sprintf(out + 2 * i, "%02x", h[i]);
}

static void test_sha256_fips_examples(void **st)
{
    (void)st;
    uint8_t h[32];
    char x[65];
    pm_sha256("abc", 3, h);
    hex(h, x);
    assert_string_equal(x, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    pm_sha256(two, strlen(two), h);
    hex(h, x);
    assert_string_equal(x, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    pm_sha256("", 0, h);
    hex(h, x);
    assert_string_equal(x, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_ct_equal(void **st)
{
    (void)st;
    uint8_t a[32], b[32];
    memset(a, 0x5a, sizeof a);
    memcpy(b, a, sizeof b);
    assert_int_equal(pm_ct_equal(a, b, 32), 1);
    for (int i = 0; i < 32; i += 7) {
        b[i] ^= 0x80;
        assert_int_equal(pm_ct_equal(a, b, 32), 0);
        b[i] ^= 0x80;
    }
    b[31] ^= 1;
    assert_int_equal(pm_ct_equal(a, b, 32), 0);
    assert_int_equal(pm_ct_equal(a, b, 31), 1);
}

static char *write_keys(const char *text, mode_t mode)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/keys", fx_dir);
    unlink(path);
    fx_write(path, text, strlen(text));
    chmod(path, mode);
    return path;
}

#define ALICE "alice-0123456789abcdef"
#define BOB "bob-0123456789abcdef01"
#define ROOT "root-0123456789abcdef0"

static void test_key_file_forms(void **st)
{
    (void)st;
    uint8_t h[32];
    char bobhex[65], text[512];
    pm_sha256(BOB, strlen(BOB), h);
    hex(h, bobhex);
    snprintf(text, sizeof text,
             "# team keys\n\n  alice:" ALICE "  \r\nbob:sha256:%s\nroot:" ROOT ":admin\nalice:alice-second-key-0000\n",
             bobhex);
    pm_auth *a = NULL;
    assert_int_equal(pm_auth_create(write_keys(text, 0600), 0, &a), 0);
    int keys, names;
    pm_auth_counts(a, &keys, &names);
    assert_int_equal(keys, 4);
    assert_int_equal(names, 3);
    pm_identity who;
    assert_int_equal(pm_auth_check(a, "Bearer " ALICE, 0, &who), 0);
    assert_string_equal(who.name, "alice");
    assert_int_equal(who.admin, 0);
    assert_int_equal(pm_auth_check(a, "bearer   alice-second-key-0000 ", 0, &who), 0);
    assert_string_equal(who.name, "alice");
    assert_int_equal(pm_auth_check(a, BOB, 1, &who), 0);
    assert_string_equal(who.name, "bob");
    assert_int_equal(pm_auth_check(a, "Bearer " ROOT, 0, &who), 0);
    assert_string_equal(who.name, "root");
    assert_int_equal(who.admin, 1);
    /* wrong, missing, other schemes, a prefix of a real key */
    assert_int_equal(pm_auth_check(a, "Bearer alice-0123456789abcdeX", 0, &who), PM_EINVAL);
    assert_int_equal(who.slot, -1);
    assert_int_equal(pm_auth_check(a, "Bearer alice-0123456789abcde", 0, &who), PM_EINVAL);
    assert_int_equal(pm_auth_check(a, NULL, 0, &who), PM_ENOENT);
    assert_int_equal(pm_auth_check(a, "Bearer ", 0, &who), PM_ENOENT);
    assert_int_equal(pm_auth_check(a, "Basic YWxpY2U6eA==", 0, &who), PM_EINVAL);
    assert_int_equal(pm_auth_check(a, "Bearer" ALICE, 0, &who), PM_EINVAL);
    /* the hash itself is not a key */
    assert_int_equal(pm_auth_check(a, bobhex, 1, &who), PM_EINVAL);
    pm_auth_destroy(a);
}

static void expect_refusal(const char *text, mode_t mode, const char *words)
{
    pm_auth *a = NULL;
    pm_error_clear();
    assert_int_not_equal(pm_auth_create(write_keys(text, mode), 0, &a), 0);
    assert_null(a);
    if (!strstr(pm_error_detail(), words))
        fail_msg("'%s' does not say '%s'", pm_error_detail(), words);
}

static void test_key_file_errors(void **st)
{
    (void)st;
    expect_refusal("alice:" ALICE "\n", 0644, "chmod 600");
    expect_refusal("alice:" ALICE "\n", 0602, "changed by every user");
    expect_refusal("# only a comment\n", 0600, "holds no key");
    expect_refusal("alice:" ALICE "\nbob\n", 0600, "line 2");
    expect_refusal("alice:short\n", 0600, "openssl rand -hex 32");
    expect_refusal("al ice:" ALICE "\n", 0600, "the name must be");
    expect_refusal("bob:sha256:abcd\n", 0600, "64 hex digits");
    expect_refusal("alice:" ALICE ":root\n", 0600, "line 1");
    char path[512];
    snprintf(path, sizeof path, "%s/none", fx_dir);
    pm_auth *a = NULL;
    assert_int_equal(pm_auth_create(path, 0, &a), PM_EIO);
    assert_non_null(strstr(pm_error_detail(), "cannot open"));
}

static void test_token_bucket(void **st)
{
    (void)st;
    pm_auth *a = NULL;
    assert_int_equal(pm_auth_create(write_keys("alice:" ALICE "\nbob:" BOB "\n", 0600), 2.0, &a), 0);
    pm_identity alice, bob;
    assert_int_equal(pm_auth_check(a, ALICE, 1, &alice), 0);
    assert_int_equal(pm_auth_check(a, BOB, 1, &bob), 0);
    /* rate 2/s: the bucket holds 4 */
    for (int i = 0; i < 4; i++)
        assert_int_equal(pm_auth_take(a, &alice), 0);
    int wait = pm_auth_take(a, &alice);
    assert_true(wait >= 1 && wait <= 1);
    assert_int_equal(pm_auth_take(a, &bob), 0); /* another key is still served */
    usleep(600 * 1000);                          /* 1.2 tokens come back */
    assert_int_equal(pm_auth_take(a, &alice), 0);
    assert_int_not_equal(pm_auth_take(a, &alice), 0);
    pm_auth_destroy(a);
}

static void test_reload_keeps_old_keys_on_error(void **st)
{
    (void)st;
    pm_auth *a = NULL;
    char *path = write_keys("alice:" ALICE "\nbob:" BOB "\n", 0600);
    assert_int_equal(pm_auth_create(path, 0, &a), 0);
    pm_identity who;
    /* revoke bob, add root */
    write_keys("alice:" ALICE "\nroot:" ROOT ":admin\n", 0600);
    assert_int_equal(pm_auth_reload(a), 0);
    assert_int_equal(pm_auth_check(a, BOB, 1, &who), PM_EINVAL);
    assert_int_equal(pm_auth_check(a, ROOT, 1, &who), 0);
    assert_int_equal(who.admin, 1);
    int keys, names;
    pm_auth_counts(a, &keys, &names);
    assert_int_equal(names, 2);
    /* a broken file: the keys in force stay */
    write_keys("alice:" ALICE "\nbroken line\n", 0600);
    assert_int_not_equal(pm_auth_reload(a), 0);
    assert_int_equal(pm_auth_check(a, ROOT, 1, &who), 0);
    /* metrics name every key ever read, never a key itself */
    pm_sb sb;
    pm_sb_init(&sb);
    pm_auth_metrics(a, &sb);
    assert_non_null(strstr(pm_sb_str(&sb), "pixmend_key_requests_total{key=\"bob\"}"));
    assert_null(strstr(pm_sb_str(&sb), ALICE));
    pm_sb_free(&sb);
    pm_auth_destroy(a);
}

static void test_path_refusal(void **st)
{
    (void)st;
    assert_null(pm_path_refusal("/"));
    assert_null(pm_path_refusal("/js/main.js"));
    assert_null(pm_path_refusal("/api/v1/jobs/0123"));
    assert_null(pm_path_refusal("/a..b/c.d"));
    assert_null(pm_path_refusal("")); /* (fuzz_web found a read past the end here) */
    assert_null(pm_path_refusal("//x"));
    assert_non_null(pm_path_refusal(".."));
    assert_non_null(pm_path_refusal("a/../b"));
    assert_non_null(pm_path_refusal("/../etc/passwd"));
    assert_non_null(pm_path_refusal("/js/../../x"));
    assert_non_null(pm_path_refusal("/js/.."));
    assert_non_null(pm_path_refusal("/./index.html"));
    assert_non_null(pm_path_refusal("/js\\..\\x"));
    assert_non_null(pm_path_refusal("/%2e%2e/x")); /* still encoded after one decoding: double encoding */
    assert_non_null(pm_path_refusal("/a\r\nb"));
}

static void test_origin(void **st)
{
    (void)st;
    assert_int_equal(pm_origin_ok(NULL, "h:1", 0, NULL), 1);
    assert_int_equal(pm_origin_ok("http://h:1", "h:1", 0, NULL), 1);
    assert_int_equal(pm_origin_ok("https://h:1", "h:1", 0, NULL), 0);
    assert_int_equal(pm_origin_ok("https://h:1", "h:1", 1, NULL), 1);
    assert_int_equal(pm_origin_ok("http://evil.example", "h:1", 0, NULL), 0);
    assert_int_equal(pm_origin_ok("http://h:1.evil", "h:1", 0, NULL), 0);
    assert_int_equal(pm_origin_ok("https://app.example", "h:1", 0, "https://app.example"), 1);
    assert_int_equal(pm_origin_ok("null", "h:1", 0, NULL), 0);
}

static void test_filename(void **st)
{
    (void)st;
    char out[128];
    pm_hdr_filename(out, sizeof out, "photo.png");
    assert_string_equal(out, "photo.png");
    pm_hdr_filename(out, sizeof out, "a\"; filename*=x\r\nX-Evil: 1.png");
    assert_string_equal(out, "a___filename__x__X-Evil__1.png");
    pm_hdr_filename(out, sizeof out, "../../etc/passwd");
    assert_string_equal(out, "_._.._etc_passwd");
    pm_hdr_filename(out, sizeof out, "");
    assert_string_equal(out, "file");
    pm_hdr_filename(out, 4, "abcdef");
    assert_string_equal(out, "abc");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_fips_examples),
        cmocka_unit_test(test_ct_equal),
        cmocka_unit_test_setup_teardown(test_key_file_forms, fx_dir_setup, fx_dir_teardown),
        cmocka_unit_test_setup_teardown(test_key_file_errors, fx_dir_setup, fx_dir_teardown),
        cmocka_unit_test_setup_teardown(test_token_bucket, fx_dir_setup, fx_dir_teardown),
        cmocka_unit_test_setup_teardown(test_reload_keeps_old_keys_on_error, fx_dir_setup, fx_dir_teardown),
        cmocka_unit_test(test_path_refusal),
        cmocka_unit_test(test_origin),
        cmocka_unit_test(test_filename),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
