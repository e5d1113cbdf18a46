/* multipart/form-data parsing and the JSON string builder. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "pixmend.h"
#include "server/multipart.h"
#include "server/sb.h"

#define CT "multipart/form-data; boundary=XyZ"

static int parse(const char *ct, const char *body, size_t len, pm_mp_part *parts, int max, int *n)
{
    return pm_multipart_parse(ct, (const uint8_t *)body, len, parts, max, n);
}

static void test_fields_and_files(void **state)
{
    (void)state;
    static const char body[] = "--XyZ\r\n"
                               "Content-Disposition: form-data; name=\"priority\"\r\n\r\n"
                               "7\r\n"
                               "--XyZ\r\n"
                               "content-disposition: form-data; name=\"image\"; filename=\"a \\\"b\\\".png\"\r\n"
                               "Content-Type: image/png\r\n\r\n"
                               "\x89PNG\r\n--Xy\r\n\0binary\r\n"
                               "--XyZ--\r\n";
    pm_mp_part parts[4];
    int n;
    assert_int_equal(parse(CT, body, sizeof body - 1, parts, 4, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(parts[0].name, "priority");
    assert_false(parts[0].has_filename);
    assert_int_equal(parts[0].len, 1);
    assert_memory_equal(parts[0].data, "7", 1);
    assert_string_equal(parts[1].name, "image");
    assert_true(parts[1].has_filename);
    assert_string_equal(parts[1].filename, "a \"b\".png");
    assert_string_equal(parts[1].content_type, "image/png");
    /* binary content with CRLF, a partial boundary and a NUL survives */
    static const char data[] = "\x89PNG\r\n--Xy\r\n\0binary";
    assert_int_equal(parts[1].len, sizeof data - 1);
    assert_memory_equal(parts[1].data, data, sizeof data - 1);
}

static void test_quoted_boundary_and_preamble(void **state)
{
    (void)state;
    static const char body[] = "preamble to ignore\r\n--a:b c\r\n"
                               "Content-Disposition: form-data; name=x\r\n\r\n"
                               "value\r\n--a:b c--";
    pm_mp_part parts[2];
    int n;
    assert_int_equal(parse("Multipart/Form-Data; charset=utf-8; boundary=\"a:b c\"", body, sizeof body - 1, parts,
                           2, &n),
                     0);
    assert_int_equal(n, 1);
    assert_string_equal(parts[0].name, "x");
    assert_int_equal(parts[0].len, 5);
}

static void test_empty_part(void **state)
{
    (void)state;
    static const char body[] = "--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"e\"\r\n\r\n"
                               "\r\n--XyZ--\r\n";
    pm_mp_part parts[1];
    int n;
    assert_int_equal(parse(CT, body, sizeof body - 1, parts, 1, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(parts[0].len, 0);
}

static void test_errors(void **state)
{
    (void)state;
    pm_mp_part parts[2];
    int n;
    static const char ok[] = "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--XyZ--\r\n";
    /* not multipart, no boundary */
    assert_int_equal(parse("application/json", ok, sizeof ok - 1, parts, 2, &n), PM_EINVAL);
    assert_non_null(strstr(pm_error_detail(), "multipart/form-data"));
    assert_int_equal(parse("multipart/form-data", ok, sizeof ok - 1, parts, 2, &n), PM_EINVAL);
    assert_non_null(strstr(pm_error_detail(), "boundary"));
    assert_int_equal(parse(NULL, ok, sizeof ok - 1, parts, 2, &n), PM_EINVAL);
    /* every truncation of a valid body is refused, none crashes */
    for (size_t cut = 0; cut < sizeof ok - 1 - 2; cut++)
        assert_int_equal(parse(CT, ok, cut, parts, 2, &n), PM_EINVAL);
    /* the body does not contain the boundary */
    assert_int_equal(parse(CT, "hello", 5, parts, 2, &n), PM_EINVAL);
    /* a part without Content-Disposition or without a name */
    static const char nodisp[] = "--XyZ\r\nContent-Type: text/plain\r\n\r\n1\r\n--XyZ--";
    assert_int_equal(parse(CT, nodisp, sizeof nodisp - 1, parts, 2, &n), PM_EINVAL);
    static const char noname[] = "--XyZ\r\nContent-Disposition: form-data; filename=\"x\"\r\n\r\n1\r\n--XyZ--";
    assert_int_equal(parse(CT, noname, sizeof noname - 1, parts, 2, &n), PM_EINVAL);
    /* more parts than room */
    static const char three[] = "--XyZ\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n"
                                "--XyZ\r\nContent-Disposition: form-data; name=b\r\n\r\n2\r\n"
                                "--XyZ\r\nContent-Disposition: form-data; name=c\r\n\r\n3\r\n--XyZ--";
    assert_int_equal(parse(CT, three, sizeof three - 1, parts, 2, &n), PM_EINVAL);
    assert_non_null(strstr(pm_error_detail(), "more than 2 parts"));
}

static void test_headers_too_long(void **state)
{
    (void)state;
    size_t len = 20000;
    char *body = pm_malloc(len + 200);
    int k = snprintf(body, 200, "--XyZ\r\nContent-Disposition: form-data; name=a\r\nX-Pad: ");
    memset(body + k, 'p', len);
    memcpy(body + k + len, "\r\n\r\n1\r\n--XyZ--", 14);
    pm_mp_part parts[1];
    int n;
    assert_int_equal(parse(CT, body, (size_t)k + len + 14, parts, 1, &n), PM_EINVAL);
    assert_non_null(strstr(pm_error_detail(), "headers exceed"));
    pm_free(body);
}

static void test_json_strings(void **state)
{
    (void)state;
    pm_sb sb;
    pm_sb_init(&sb);
    pm_sb_json_str(&sb, "a\"b\\c\n\t\x01\x7f é \xff\xc3(");
    assert_string_equal(pm_sb_str(&sb), "\"a\\\"b\\\\c\\n\\t\\u0001\\u007f é \\ufffd\\ufffd(\"");
    pm_sb_free(&sb);
    pm_sb_init(&sb);
    for (int i = 0; i < 1000; i++)
        pm_sb_printf(&sb, "%04d,", i);
    assert_int_equal(sb.len, 5000);
    assert_int_equal(strncmp(pm_sb_str(&sb) + 4995, "0999,", 5), 0);
    pm_sb_free(&sb);
    /* overlong and surrogate encodings are not valid UTF-8 */
    pm_sb_init(&sb);
    pm_sb_json_str(&sb, "\xc0\xaf\xed\xa0\x80");
    assert_null(strstr(pm_sb_str(&sb), "\xc0"));
    assert_null(strstr(pm_sb_str(&sb), "\xed"));
    pm_sb_free(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields_and_files),
        cmocka_unit_test(test_quoted_boundary_and_preamble),
        cmocka_unit_test(test_empty_part),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_headers_too_long),
        cmocka_unit_test(test_json_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
