/* libFuzzer target: what the web surface takes from clients and operators.
 * The first byte picks the check, the rest is the text:
 *   0  an Authorization header against a key file of three keys
 *   1  a decoded request path (pm_path_refusal)
 *   2  an upload's file name made safe for a header (pm_hdr_filename)
 *   3  a WebSocket Origin (pm_origin_ok)
 *   4  a whole key file (pm_auth_create)
 *   5  a numeric form field's value, for each option of the table
 *      (pm_option_parse: an accepted value is in range and on the step, or
 *      a preset's)
 *   6  a format name (pm_format_parse: an accepted name's id parses back
 *      to the same format)
 * and traps when a result breaks its promise (an accepted path with a '..'
 * segment, a header file name with a character outside the safe set, ...). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pixmend.h"
#include "sched/options.h"
#include "server/auth.h"
#include "server/headers.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static pm_auth *keys;
static char key_path[64];

static void write_file(const char *path, const char *text, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(text, 1, n, f) != n || fclose(f) != 0)
        abort();
    chmod(path, 0600);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char dir[] = "/tmp/pm-fuzz-web-XXXXXX";
    if (!mkdtemp(dir))
        abort();
    snprintf(key_path, sizeof key_path, "%s/keys", dir);
    static const char text[] = "alice:fuzz-key-0123456789abcdef\nroot:fuzz-root-0123456789abcdef:admin\n"
                               "bob:sha256:0000000000000000000000000000000000000000000000000000000000000000\n";
    write_file(key_path, text, sizeof text - 1);
    if (pm_auth_create(key_path, 0, &keys))
        abort();
    return 0;
}

static void check_path(const char *p)
{
    if (pm_path_refusal(p))
        return;
    /* accepted: no '..' or '.' segment, no backslash, nothing left encoded */
    if (strchr(p, '\\') || strchr(p, '%') || strstr(p, "/../") || strstr(p, "/./"))
        __builtin_trap();
    size_t n = strlen(p);
    if ((n >= 3 && strcmp(p + n - 3, "/..") == 0) || (n >= 2 && strcmp(p + n - 2, "/.") == 0))
        __builtin_trap();
}

static void check_option_values(const char *v)
{
    for (int i = 0; pm_option_at(i); i++) {
        const pm_option_range *o = pm_option_at(i);
        int x = 0;
        if (pm_option_parse(o, v, &x))
            continue;
        int preset = 0;
        for (const pm_option_preset *p = o->presets; p && p->name; p++)
            preset |= strcmp(p->name, v) == 0 && p->value == x;
        if (!preset && (x < o->min || x > o->max || (x - o->min) % o->step))
            __builtin_trap();
    }
}

static void check_filename(const char *name)
{
    char out[128];
    pm_hdr_filename(out, sizeof out, name);
    size_t n = strlen(out);
    if (n == 0 || n > 100 || out[0] == '.' ||
        strspn(out, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != n)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192)
        return 0;
    char *text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0'; /* stops at the first NUL, as the C strings it stands for do */
    pm_identity who;
    switch (data[0] % 7) {
    case 0:
        if (pm_auth_check(keys, text, 0, &who) == 0 && (who.slot < 0 || !who.name[0]))
            __builtin_trap();
        break;
    case 1:
        check_path(text);
        break;
    case 2:
        check_filename(text);
        break;
    case 3:
        if (pm_origin_ok(text, "127.0.0.1:8080", 0, NULL) && strcasecmp(text, "http://127.0.0.1:8080") != 0)
            __builtin_trap();
        break;
    case 4: {
        char path[80];
        snprintf(path, sizeof path, "%s.in", key_path);
        write_file(path, text, strlen(text));
        pm_auth *a = NULL;
        if (pm_auth_create(path, 1.0, &a) == 0) {
            int k, n;
            pm_auth_counts(a, &k, &n);
            if (k < 1 || n < 1 || n > k)
                __builtin_trap();
            pm_auth_destroy(a);
        } else if (a) {
            __builtin_trap();
        }
        break;
    }
    case 5:
        check_option_values(text);
        break;
    case 6: {
        enum pm_format f = pm_format_parse(text);
        if (f != PM_FMT_UNKNOWN && pm_format_parse(pm_format_id(f)) != f)
            __builtin_trap();
        break;
    }
    }
    free(text);
    return 0;
}
