/* Names of error codes in JSON error objects (see codes.h). */
#include "server/codes.h"
#include "base/base.h"

const char *pm_error_code_name(int rc)
{
    return rc == PM_OK ? "internal" : pm_error_name(rc); /* one table: base/error.c */
}
