/* The table of numeric job options (see options.h). */
#include "sched/options.h"
#include "sched/sched.h"
#include "base/base.h"
#include "pipeline/colorize.h"
#include "pipeline/mask.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const pm_option_preset input_size_presets[] = {
    {"portrait", PM_COLORIZE_SIZE_PORTRAIT},
    {"building", PM_COLORIZE_SIZE_BUILDING},
    {NULL, 0},
};

static const pm_option_range options[] = {
    {"priority", "", 0, PM_PRIORITY_MAX, 1, PM_PRIORITY_DEFAULT, NULL, "9 runs first"},
    {"quality", "", PM_QUALITY_MIN, PM_QUALITY_MAX, 1, PM_QUALITY_DEFAULT, NULL, NULL},
    {"input_size", "pixels", PM_COLORIZE_SIZE_MIN, PM_COLORIZE_SIZE_MAX, PM_COLORIZE_SIZE_STEP,
     PM_COLORIZE_SIZE_DEFAULT, input_size_presets, NULL},
    {"mask_dilate", "pixels", -PM_MASK_DILATE_MAX, PM_MASK_DILATE_MAX, 1, 0, NULL, "negative shrinks the mask"},
};

#define NOPTIONS ((int)(sizeof options / sizeof options[0]))

const pm_option_range *pm_option_at(int i)
{
    return i >= 0 && i < NOPTIONS ? &options[i] : NULL;
}

const pm_option_range *pm_option_find(const char *name)
{
    for (int i = 0; name && i < NOPTIONS; i++)
        if (strcmp(options[i].name, name) == 0)
            return &options[i];
    return NULL;
}

int pm_option_parse(const pm_option_range *o, const char *s, int *out)
{
    if (!o || !s || !*s)
        return PM_EINVAL;
    for (const pm_option_preset *p = o->presets; p && p->name; p++)
        if (strcmp(s, p->name) == 0) {
            *out = p->value;
            return 0;
        }
    if (!(*s == '-' || (*s >= '0' && *s <= '9')))
        return PM_EINVAL; /* strtol would skip spaces and take a '+' */
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || end == s || v < o->min || v > o->max || (v - o->min) % o->step)
        return PM_EINVAL;
    *out = (int)v;
    return 0;
}

void pm_option_describe(const pm_option_range *o, char *buf, size_t n)
{
    int k;
    if (o->step > 1)
        k = snprintf(buf, n, "a multiple of %d from %d to %d", o->step, o->min, o->max);
    else
        k = snprintf(buf, n, "a whole number%s%s from %d to %d", o->unit[0] ? " of " : "", o->unit, o->min,
                     o->max);
    for (const pm_option_preset *p = o->presets; p && p->name && k > 0 && (size_t)k < n; p++)
        k += snprintf(buf + k, n - (size_t)k, "%s%s (%d)", p == o->presets ? ", or " : " or ", p->name, p->value);
    if (o->note && k > 0 && (size_t)k < n)
        snprintf(buf + k, n - (size_t)k, " (%s)", o->note);
}
