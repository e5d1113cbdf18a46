/* The short machine-readable name of a PM_E* code, for the "code" of the
 * API's JSON error objects and of failed jobs ("too_large", "corrupt_image",
 * ...; "internal" for codes without one). A static string. */
#ifndef PM_CODES_H
#define PM_CODES_H

const char *pm_error_code_name(int rc);

#endif
