/* Names of error codes in JSON error objects (see codes.h). */
#include "server/codes.h"
#include "pixmend.h"

const char *pm_error_code_name(int rc)
{
    switch (rc) {
    case PM_ENOMEM: return "out_of_memory";
    case PM_EINVAL: return "bad_request";
    case PM_EIO: return "io_error";
    case PM_ENOENT: return "not_found";
    case PM_ETOOBIG: return "too_large";
    case PM_EFORMAT: return "unsupported_format";
    case PM_ECORRUPT: return "corrupt_image";
    case PM_ETRUNCATED: return "truncated_image";
    case PM_EEMPTY: return "empty_input";
    case PM_EEXTENSION: return "extension_mismatch";
    case PM_EUNSUPPORTED: return "unsupported";
    case PM_ECHECKPOINT: return "checkpoint_error";
    case PM_ECANCELLED: return "cancelled";
    case PM_EBUSY: return "busy";
    case PM_EMISMATCH: return "mask_mismatch";
    case PM_EMASKEMPTY: return "empty_mask";
    case PM_ENOSOURCE: return "no_source";
    case PM_ETIMEOUT: return "timeout";
    case PM_EUNAVAIL: return "unavailable";
    default: return "internal";
    }
}
