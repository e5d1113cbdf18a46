/* A growable string (for JSON and Prometheus text) on the counting allocator. */
#ifndef PM_SB_H
#define PM_SB_H

#include <stddef.h>

typedef struct pm_sb {
    char *buf;    /* owned; always NUL-terminated once anything was added */
    size_t len;
    size_t cap;
    int failed;   /* 1 after an allocation failed; later appends do nothing */
} pm_sb;

void pm_sb_init(pm_sb *sb);
void pm_sb_free(pm_sb *sb);
void pm_sb_put(pm_sb *sb, const char *s, size_t n);
void pm_sb_puts(pm_sb *sb, const char *s);
void pm_sb_printf(pm_sb *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string with quotes; control characters are escaped and
 * bytes that are not valid UTF-8 become U+FFFD, so the output is valid JSON. */
void pm_sb_json_str(pm_sb *sb, const char *s);
/* The text so far ("" when empty or failed); owned by sb. */
const char *pm_sb_str(const pm_sb *sb);

#endif
