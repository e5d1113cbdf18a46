/* The sub-command table and the option parser shared by every sub-command. */
#ifndef PM_CLI_H
#define PM_CLI_H

#include "pixmend.h"

typedef struct pm_command {
    const char *name;
    const char *summary;                /* one line for `pixmend --help` */
    const char *help;                   /* full text for `pixmend NAME --help` */
    int (*run)(int argc, char **argv);  /* argv[0] is the sub-command name */
} pm_command;

/* Options a sub-command accepts. has_arg: 0 = flag, 1 = takes a value. */
typedef struct pm_optdef {
    const char *name;  /* long name without dashes, e.g. "model" */
    char short_name;   /* e.g. 'o', or 0 */
    int has_arg;
} pm_optdef;

#define PM_CLI_MAX_POS 8
#define PM_CLI_MAX_OPTS 48 /* options one sub-command may define */

typedef struct pm_args {
    const char *values[PM_CLI_MAX_OPTS]; /* per option, in pm_optdef order: value, "1" for a flag, NULL if absent */
    const char *pos[PM_CLI_MAX_POS]; /* positional arguments */
    int npos;
} pm_args;

/* Parses argv[1..] against `defs` (terminated by a zeroed entry).
 * Returns 0 on success; 1 if --help was printed (exit 0); 2 after printing a
 * one-line error for an unknown option, a missing value, or a wrong number of
 * positional arguments (between min_pos and max_pos). */
int pm_cli_parse(const pm_command *cmd, const pm_optdef *defs, int min_pos, int max_pos,
                 int argc, char **argv, pm_args *out);

/* Value of option `name`, or NULL. */
const char *pm_cli_get(const pm_optdef *defs, const pm_args *a, const char *name);

/* Parses an integer option in [lo, hi]; prints a one-line error and returns 2 if it is not one. */
int pm_cli_int(const pm_command *cmd, const char *opt, const char *s, long lo, long hi, long *out);
/* Parses a size like 64M, 2G, 1048576; returns 2 after an error line. */
int pm_cli_size(const pm_command *cmd, const char *opt, const char *s, uint64_t *out);

/* --mem-budget's value: bytes ("8G") or a share of the memory pixmend may use
 * ("60%"), at least 1M. Returns 0, or 2 after an error line. */
int pm_cli_mem_budget(const pm_command *cmd, const char *s, uint64_t *out);
/* Parses a pixel count: 16000000, 16M, 16MP or 500K; returns 2 after an error line. */
int pm_cli_pixels(const pm_command *cmd, const char *opt, const char *s, uint64_t *out);
/* When option `name` of defs was given, parses it as an integer in [lo, hi]
 * (hi at most INT_MAX) into *out; *out is left alone when it was not.
 * Returns 0, or 2 after an error line. */
int pm_cli_opt_int(const pm_command *cmd, const pm_optdef *defs, const pm_args *a, const char *name, long lo,
                   long hi, int *out);
/* Applies the options --max-pixels, --max-side and --max-file-bytes, those of
 * them that were given, to *lim. Returns 0, or 2 after an error line. */
int pm_cli_limits(const pm_command *cmd, const pm_optdef *defs, const pm_args *a, pm_limits *lim);

/* Prints "pixmend NAME: <msg>" on stderr as one line. */
void pm_cli_error(const pm_command *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Runs the sub-command named by argv[1]; handles --help, --version. */
int pm_cli_dispatch(const pm_command *const *cmds, int n, int argc, char **argv);

extern const pm_command pm_cmd_version;
extern const pm_command pm_cmd_probe;
extern const pm_command pm_cmd_inpaint;
extern const pm_command pm_cmd_serve;
extern const pm_command pm_cmd_colorize;
extern const pm_command pm_cmd_bench;
extern const pm_command pm_cmd_calibrate;
extern const pm_command pm_cmd_report;
extern const pm_command pm_cmd_models;
extern const pm_command pm_cmd_worker;

/* cmd_models.c, shared with serve: the searched folders and the models
 * found as JSON ({"searched": [...], "models": [...]}, each model with
 * "loaded" when `loaded` is not NULL), appended to sb. */
struct pm_sb;
struct pm_found;
void pm_cli_found_json(struct pm_sb *sb, const char *const *dirs, int ndirs, const struct pm_found *f, int n,
                       const int *loaded);
/* Searches `given` folders, or the default caches when ndirs_given is 0
 * (their names are kept in buf): dirs[0, *ndirs) name what was searched,
 * *found (caller owns, pm_free) the *nfound models. */
/* auto_models.c: searches the default caches; with `load`, loads the
 * largest LaMa and DDColor found for each task no --model NAME=FILE of
 * given[0, ngiven) named, appending ", lama" and the like to names. Logs
 * what it loaded and found, and sets the server's found list. 0 or PM_E*. */
struct pm_sched;
struct pm_server;
int pm_cli_serve_models(struct pm_sched *sched, struct pm_server *srv, int load, const char *const *given, int ngiven,
                        char *names, size_t names_len);
int pm_cli_discover(int ndirs_given, const char *const *given, char (*buf)[4096], const char **dirs, int *ndirs,
                    struct pm_found **found, int *nfound);

#endif
