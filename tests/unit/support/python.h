/* Unit tests whose fixtures are written by Debian's /usr/bin/python3 (torch,
 * numpy, cv2) call fx_require_python first: without the interpreter or one of
 * its modules the program exits with PM_TEST_SKIP, which CTest reports as
 * skipped (SKIP_RETURN_CODE), instead of failing in set-up. */
#ifndef PM_TEST_PYTHON_H
#define PM_TEST_PYTHON_H

#define PM_TEST_SKIP 77

/* `modules`: comma-separated, e.g. "torch, numpy". Returns 0 when
 * /usr/bin/python3 imports them all; otherwise prints which test is skipped
 * and why, and exits the process with PM_TEST_SKIP. */
int fx_require_python(const char *test, const char *modules);

#endif
