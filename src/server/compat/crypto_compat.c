/* libpixmend-cryptocompat: the companion of libpixmend-sslcompat (see
 * ssl_compat.c). Debian 12's civetweb also loads libcrypto with
 * dlopen("libcrypto.so"), a name only the -dev package provides. This
 * library's soname is "libcrypto.so" and it depends on the real
 * libcrypto.so.3: once the server has loaded it, civetweb's dlopen finds it
 * loaded and each lookup goes through to libcrypto.so.3. So a machine needs
 * only the runtime library, libssl3. It defines one symbol of its own, so
 * that it is not an empty translation unit. */
int pm_cryptocompat_loaded(void);

int pm_cryptocompat_loaded(void)
{
    return 1;
}
