/* A multipart/form-data parser over a body held in memory (RFC 7578). Parts
 * point into the body; nothing is copied or allocated. */
#ifndef PM_MULTIPART_H
#define PM_MULTIPART_H

#include <stddef.h>
#include <stdint.h>

typedef struct pm_mp_part {
    char name[64];          /* the form field's name */
    char filename[256];     /* "" when the part is not a file */
    int has_filename;
    char content_type[128]; /* "" when absent */
    const uint8_t *data;    /* points into the body */
    size_t len;
} pm_mp_part;

/* Extracts the boundary from a Content-Type header value. Returns 0, or
 * PM_EINVAL (detail set) when the type is not multipart/form-data or the
 * boundary is missing or invalid. */
int pm_multipart_boundary(const char *content_type, char *boundary, size_t cap);

/* Parses `body`. Up to `max` parts are written to `parts`; *n receives how
 * many. Errors (PM_EINVAL, detail set): no opening boundary, a part without
 * Content-Disposition or name, headers too long, no closing boundary
 * (a truncated upload), more than `max` parts. */
int pm_multipart_parse(const char *content_type, const uint8_t *body, size_t len, pm_mp_part *parts,
                       int max, int *n);

/* Copies a text part's value, without surrounding blanks and line breaks,
 * into buf (NUL-terminated); -1 when it does not fit in cap bytes. */
int pm_mp_text(const pm_mp_part *p, char *buf, size_t cap);

/* A whole decimal number from lo to hi (the whole string): 0 with *out,
 * or -1. */
int pm_mp_int(const char *s, int lo, int hi, int *out);

#endif
