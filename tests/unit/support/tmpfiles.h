/* Temporary directories and files for the unit tests. Failures abort the
 * current cmocka test. */
#ifndef PM_TEST_TMPFILES_H
#define PM_TEST_TMPFILES_H

#include <stddef.h>

/* A fresh private directory under $TMPDIR or /tmp; caller frees the string
 * and removes the tree with fx_rmtree(). */
char *fx_tempdir(void);
void fx_rmtree(const char *dir);
/* Number of entries (other than . and ..) in a directory. */
int fx_count_entries(const char *dir);
/* Writes a file non-atomically (test setup); aborts on failure. */
void fx_write(const char *path, const void *data, size_t len);

/* cmocka setup and teardown for tests that each want a fresh directory:
 * fx_dir_setup makes fx_dir (from fx_tempdir), fx_dir_teardown removes it. */
extern char *fx_dir;
int fx_dir_setup(void **state);
int fx_dir_teardown(void **state);

#endif
