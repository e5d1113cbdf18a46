/* Error codes, their names, and the per-thread detail message. */
#include "pixmend.h"

#include <stdio.h>

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
