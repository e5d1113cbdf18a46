/* CLI side of the metadata carrier (src/image/meta.h). */
#ifndef PM_CLI_META_H
#define PM_CLI_META_H

#include "cli/cli.h"
#include "image/meta.h"

/* The option entries every command that writes repaired files accepts. */
#define PM_CLI_META_OPTS {"strip-metadata", 0, 0}, {"strip-gps", 0, 0}, {"jpeg-reencode", 0, 0}, {"verbose", 'v', 0}

/* The help lines for them. */
#define PM_CLI_META_HELP                                                                      \
    "  --strip-metadata       write no EXIF, XMP, ICC profile, DPI or PNG text (default:\n"   \
    "                         keep what the output format can hold)\n"                        \
    "  --strip-gps            keep the metadata but remove the location (EXIF GPS, XMP)\n"    \
    "  --jpeg-reencode        JPEG to JPEG: encode the whole image instead of keeping the\n"  \
    "                         original's blocks outside the repair (so does an explicit -q)\n" \
    "  -v, --verbose          say what the output format could not hold\n"

pm_meta_policy pm_cli_meta_policy(const pm_optdef *defs, const pm_args *a);
/* With --verbose among the options given, one line on stderr per dropped
 * item of *r, and what the JPEG coefficient path kept. */
void pm_cli_meta_notes(const pm_command *cmd, const pm_optdef *defs, const pm_args *a, const char *out_path,
                       const pm_encode_report *r);

#endif
