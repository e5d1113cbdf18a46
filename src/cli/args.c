/* Option parsing and dispatch for the pixmend sub-commands. */
#include "cli/cli.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pm_cli_error(const pm_command *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "pixmend %s: ", cmd->name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int find_long(const pm_optdef *defs, const char *name, size_t len)
{
    for (int i = 0; defs[i].name; i++)
        if (strlen(defs[i].name) == len && strncmp(defs[i].name, name, len) == 0)
            return i;
    return -1;
}

static int find_short(const pm_optdef *defs, char c)
{
    for (int i = 0; defs[i].name; i++)
        if (defs[i].short_name == c)
            return i;
    return -1;
}

int pm_cli_parse(const pm_command *cmd, const pm_optdef *defs, int min_pos, int max_pos,
                 int argc, char **argv, pm_args *out)
{
    memset(out, 0, sizeof *out);
    int ndefs = 0;
    while (defs[ndefs].name)
        ndefs++;
    if (ndefs > PM_CLI_MAX_OPTS) {
        pm_cli_error(cmd, "internal error: %d options defined, at most %d fit (PM_CLI_MAX_OPTS)", ndefs,
                     PM_CLI_MAX_OPTS);
        return 2;
    }
    int only_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (!only_pos && (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)) {
            fputs(cmd->help, stdout);
            return 1;
        }
        if (!only_pos && a[0] == '-' && a[1] != '\0') {
            int idx;
            const char *val = NULL;
            char shown[64];
            if (a[1] == '-') {
                const char *eq = strchr(a + 2, '=');
                size_t len = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
                idx = find_long(defs, a + 2, len);
                snprintf(shown, sizeof shown, "--%.*s", (int)len, a + 2);
                if (eq)
                    val = eq + 1;
            } else {
                idx = a[2] == '\0' ? find_short(defs, a[1]) : -1;
                snprintf(shown, sizeof shown, "%s", a);
            }
            if (idx < 0) {
                pm_cli_error(cmd, "unknown option '%s' (see 'pixmend %s --help')", shown, cmd->name);
                return 2;
            }
            if (defs[idx].has_arg) {
                if (!val) {
                    if (i + 1 >= argc) {
                        pm_cli_error(cmd, "option '%s' needs a value (see 'pixmend %s --help')", shown, cmd->name);
                        return 2;
                    }
                    val = argv[++i];
                }
            } else {
                if (val) {
                    pm_cli_error(cmd, "option '%s' takes no value", shown);
                    return 2;
                }
                val = "1";
            }
            out->values[idx] = val;
            continue;
        }
        if (out->npos >= max_pos || out->npos >= PM_CLI_MAX_POS) {
            pm_cli_error(cmd, "unexpected argument '%s' (see 'pixmend %s --help')", a, cmd->name);
            return 2;
        }
        out->pos[out->npos++] = a;
    }
    if (out->npos < min_pos) {
        pm_cli_error(cmd, "missing argument: expected %d, got %d (see 'pixmend %s --help')", min_pos,
                     out->npos, cmd->name);
        return 2;
    }
    return 0;
}

const char *pm_cli_get(const pm_optdef *defs, const pm_args *a, const char *name)
{
    for (int i = 0; defs[i].name; i++)
        if (strcmp(defs[i].name, name) == 0)
            return a->values[i];
    return NULL;
}

int pm_cli_int(const pm_command *cmd, const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        pm_cli_error(cmd, "--%s must be a whole number from %ld to %ld, not '%s'", opt, lo, hi, s);
        return 2;
    }
    *out = v;
    return 0;
}

int pm_cli_size(const pm_command *cmd, const char *opt, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    double mul = 1;
    if (*end == 'k' || *end == 'K') mul = 1024.0, end++;
    else if (*end == 'm' || *end == 'M') mul = 1024.0 * 1024, end++;
    else if (*end == 'g' || *end == 'G') mul = 1024.0 * 1024 * 1024, end++;
    if (*end == 'i' || *end == 'B') end++;
    if (*end == 'B') end++;
    if (errno || end == s || *end || v < 0) {
        pm_cli_error(cmd, "--%s must be a size such as 64M or 2G, not '%s'", opt, s);
        return 2;
    }
    *out = (uint64_t)(v * mul);
    return 0;
}

int pm_cli_pixels(const pm_command *cmd, const char *opt, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    double mul = 1;
    if (*end == 'M' || *end == 'm')
        mul = 1e6, end++;
    else if (*end == 'K' || *end == 'k')
        mul = 1e3, end++;
    if (*end == 'P' || *end == 'p')
        end++;
    if (errno || end == s || *end || !(v > 0) || v * mul > 1e12) {
        pm_cli_error(cmd, "--%s takes a pixel count such as 16000000 or 16M, not '%s'", opt, s);
        return 2;
    }
    *out = (uint64_t)(v * mul);
    return 0;
}

int pm_cli_opt_int(const pm_command *cmd, const pm_optdef *defs, const pm_args *a, const char *name, long lo,
                   long hi, int *out)
{
    const char *s = pm_cli_get(defs, a, name);
    long v;
    if (!s)
        return 0;
    if (pm_cli_int(cmd, name, s, lo, hi > INT_MAX ? INT_MAX : hi, &v))
        return 2;
    *out = (int)v;
    return 0;
}

int pm_cli_limits(const pm_command *cmd, const pm_optdef *defs, const pm_args *a, pm_limits *lim)
{
    const char *s;
    int side = (int)lim->max_side;
    if ((s = pm_cli_get(defs, a, "max-pixels")) && pm_cli_pixels(cmd, "max-pixels", s, &lim->max_pixels))
        return 2;
    if (pm_cli_opt_int(cmd, defs, a, "max-side", 1, 1 << 20, &side))
        return 2;
    lim->max_side = (uint32_t)side;
    if ((s = pm_cli_get(defs, a, "max-file-bytes")) && pm_cli_size(cmd, "max-file-bytes", s, &lim->max_file_bytes))
        return 2;
    return 0;
}

static void print_overview(const pm_command *const *cmds, int n, FILE *f)
{
    fprintf(f, "pixmend %s — self-hosted image restoration\n\n"
               "usage: pixmend <command> [options]\n\ncommands:\n", PM_VERSION_STRING);
    for (int i = 0; i < n; i++)
        fprintf(f, "  %-10s %s\n", cmds[i]->name, cmds[i]->summary);
    fprintf(f, "\n'pixmend <command> --help' describes a command.\n");
}

int pm_cli_dispatch(const pm_command *const *cmds, int n, int argc, char **argv)
{
    if (argc < 2) {
        print_overview(cmds, n, stderr);
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        if (argc > 2) {
            for (int i = 0; i < n; i++)
                if (strcmp(cmds[i]->name, argv[2]) == 0) {
                    fputs(cmds[i]->help, stdout);
                    return 0;
                }
        }
        print_overview(cmds, n, stdout);
        return 0;
    }
    if (strcmp(name, "--version") == 0) {
        printf("pixmend %s\n", PM_VERSION_STRING);
        return 0;
    }
    for (int i = 0; i < n; i++)
        if (strcmp(cmds[i]->name, name) == 0)
            return cmds[i]->run(argc - 1, argv + 1);
    fprintf(stderr, "pixmend: unknown command '%s' (see 'pixmend --help')\n", name);
    return 2;
}
