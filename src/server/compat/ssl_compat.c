/* libpixmend-sslcompat: lets Debian 12's civetweb (1.15) serve TLS with
 * OpenSSL 3.
 *
 * civetweb loads libssl at run time with dlopen("libssl.so") and looks up
 * its functions by name. It looks up SSL_get_peer_certificate, which
 * OpenSSL 3 no longer exports (its header makes the name a macro for
 * SSL_get1_peer_certificate), gets NULL and calls it on the first TLS
 * connection. This library's soname is "libssl.so": once the server has
 * loaded it (pm_server_tls_prepare), civetweb's dlopen("libssl.so") finds
 * it already loaded, and each lookup finds either the function below or,
 * through this library's dependencies, the real libssl.so.3 and
 * libcrypto.so.3. The function is the one OpenSSL 3 defines the old name
 * as: the same reference-counted result. */
typedef struct ssl_st SSL;
typedef struct x509_st X509;

X509 *SSL_get1_peer_certificate(const SSL *s);
X509 *SSL_get_peer_certificate(const SSL *s);

X509 *SSL_get_peer_certificate(const SSL *s)
{
    return SSL_get1_peer_certificate(s);
}
