/* Assertion helpers for image-layer tests (include after <cmocka.h>). */
#ifndef PM_TEST_IMAGE_ASSERT_H
#define PM_TEST_IMAGE_ASSERT_H

#include <string.h>

#include "pixmend.h"

/* The call must return `code`, and when `substr` is not NULL the detail
 * message must contain it. */
#define FX_ASSERT_ERR(call, code, substr)                                                            \
    do {                                                                                             \
        pm_error_clear();                                                                            \
        int fx_rc_ = (call);                                                                         \
        if (fx_rc_ != (code))                                                                        \
            fail_msg("%s returned %d (%s: %s), expected %d (%s)", #call, fx_rc_, pm_strerror(fx_rc_), \
                     pm_error_detail(), (int)(code), pm_strerror(code));                             \
        const char *fx_sub_ = (substr);                                                              \
        if (fx_sub_ && !strstr(pm_error_detail(), fx_sub_))                                          \
            fail_msg("%s: message \"%s\" does not contain \"%s\"", #call, pm_error_detail(), fx_sub_);  \
    } while (0)

/* The call must succeed; on failure the detail message is printed. */
#define FX_ASSERT_OK(call)                                                                            \
    do {                                                                                              \
        int fx_rc_ = (call);                                                                          \
        if (fx_rc_ != 0)                                                                              \
            fail_msg("%s returned %d (%s): %s", #call, fx_rc_, pm_strerror(fx_rc_), pm_error_detail()); \
    } while (0)

#endif
