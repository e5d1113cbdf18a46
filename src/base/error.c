/* Error codes, their names, and the per-thread detail message. */
#include "pixmend.h"

#include <stdio.h>
#include <string.h>

static _Thread_local char detail[512];

const char *pm_strerror(int code)
{
    switch (code) {
    case PM_OK: return "success";
    case PM_ENOMEM: return "out of memory";
    case PM_EINVAL: return "invalid argument";
    case PM_EIO: return "input/output error";
    case PM_ENOENT: return "not found";
    case PM_ETOOBIG: return "too large";
    case PM_EFORMAT: return "unsupported format";
    case PM_ECORRUPT: return "corrupt data";
    case PM_ETRUNCATED: return "truncated data";
    case PM_EEMPTY: return "empty input";
    case PM_EEXTENSION: return "file extension contradicts content";
    case PM_EUNSUPPORTED: return "not supported";
    case PM_ECHECKPOINT: return "checkpoint mismatch";
    case PM_ECANCELLED: return "cancelled";
    case PM_EBUSY: return "busy";
    case PM_EMISMATCH: return "inputs disagree";
    case PM_ENOSOURCE: return "nothing to copy from";
    case PM_ETIMEOUT: return "timed out";
    case PM_EINTERNAL: return "internal error";
    case PM_EMASKEMPTY: return "the mask selects nothing";
    case PM_EUNAVAIL: return "a service it depends on is unreachable";
    default: return "unknown error";
    }
}

/* One row per PM_E* code: its short machine-readable name. */
static const struct {
    int code;
    const char *name;
} error_names[] = {
    {PM_ENOMEM, "out_of_memory"},     {PM_EINVAL, "bad_request"},        {PM_EIO, "io_error"},
    {PM_ENOENT, "not_found"},         {PM_ETOOBIG, "too_large"},         {PM_EFORMAT, "unsupported_format"},
    {PM_ECORRUPT, "corrupt_image"},   {PM_ETRUNCATED, "truncated_image"}, {PM_EEMPTY, "empty_input"},
    {PM_EEXTENSION, "extension_mismatch"}, {PM_EUNSUPPORTED, "unsupported"}, {PM_ECHECKPOINT, "checkpoint_error"},
    {PM_ECANCELLED, "cancelled"},     {PM_EBUSY, "busy"},                {PM_EMISMATCH, "mask_mismatch"},
    {PM_EMASKEMPTY, "empty_mask"},    {PM_ENOSOURCE, "no_source"},       {PM_ETIMEOUT, "timeout"},
    {PM_EUNAVAIL, "unavailable"},
    {PM_EINTERNAL, "internal"},
};

const char *pm_error_name(int code)
{
    for (size_t i = 0; i < sizeof error_names / sizeof error_names[0]; i++)
        if (error_names[i].code == code)
            return error_names[i].name;
    return code == PM_OK ? "ok" : "internal";
}

int pm_error_parse(const char *name)
{
    if (!name || !strcmp(name, "ok") || !name[0])
        return PM_OK;
    for (size_t i = 0; i < sizeof error_names / sizeof error_names[0]; i++)
        if (!strcmp(error_names[i].name, name))
            return error_names[i].code;
    return PM_EINTERNAL;
}

const char *pm_error_detail(void)
{
    return detail;
}

void pm_error_clear(void)
{
    detail[0] = '\0';
}

int pm_errorf(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return code;
}
