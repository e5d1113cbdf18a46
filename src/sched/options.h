/* The one table of the job options that take a number: their range, step,
 * default and named presets. The HTTP form (server_body.c), the CLI
 * (pm_colorize_size_parse for --input-size) and, through the "limits" of
 * GET /api/v1/models, the web UI all read it; nothing else writes these
 * numbers. The constants themselves live with the layer that needs them
 * (colorize.h, mask.h, sched.h, pixmend.h) and are only referenced here. */
#ifndef PM_SCHED_OPTIONS_H
#define PM_SCHED_OPTIONS_H

#include <stddef.h>

typedef struct pm_option_preset {
    const char *name;  /* "portrait" */
    int value;
} pm_option_preset;

typedef struct pm_option_range {
    const char *name;                 /* the form field and JSON key: "input_size" */
    const char *unit;                 /* "pixels", or "" */
    int min, max, step, dflt;         /* every value is min + k * step (step 1: any whole number) */
    const pm_option_preset *presets;  /* ends with a NULL name; NULL when none */
    const char *note;                 /* said after the range in sentences, or NULL */
} pm_option_range;

/* The i-th option (0, 1, ...), NULL past the last; the option named `name`,
 * or NULL. Both point into a static table. */
const pm_option_range *pm_option_at(int i);
const pm_option_range *pm_option_find(const char *name);

/* Reads `s` as a value of `o`: a whole number in range and on the step, or
 * a preset's name. 0 with *out, or PM_EINVAL (no detail set: callers say
 * "<name> must be <pm_option_describe>, not '<s>'"). */
int pm_option_parse(const pm_option_range *o, const char *s, int *out);

/* What a value of `o` must be, e.g. "a multiple of 32 from 64 to 2048, or
 * portrait (512) or building (1024)", written into buf (always terminated). */
void pm_option_describe(const pm_option_range *o, char *buf, size_t n);

#endif
