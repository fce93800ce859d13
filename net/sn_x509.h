/*
 * sn_x509.h - X.509 certificates for the federation's mutual TLS.
 *
 * Makes a small federation CA and node certificates signed by it (used by
 * `sldd init --tls` for a test federation; a real deployment brings the
 * hospital's own CA instead, see docs/tls.md), and computes the pin that
 * identifies a peer: the SHA-256 of its certificate's DER-encoded
 * SubjectPublicKeyInfo, the same value curl's CURLOPT_PINNEDPUBLICKEY and
 * `openssl pkey -pubin -outform der | openssl dgst -sha256` give.
 *
 * Keys are EC P-256.  Files are PEM; every file is created with O_EXCL (an
 * existing file is never overwritten: SC_EEXIST), keys with mode 0600,
 * certificates 0644, and fsync'd before the call returns.
 *
 * sc_openssl_error() is the one helper that turns OpenSSL's thread-local
 * error queue into a message; sn_tls and the rest of net use it too.
 */
#ifndef SN_X509_H
#define SN_X509_H

#include <stddef.h>

#include <openssl/x509.h>

#include "sc_error.h"

#define SC_PIN_LEN       32 /* SHA-256 */
#define SC_PIN_B64_SIZE  45 /* 44 base64 characters + NUL */
#define SC_PIN_HEX_SIZE  65 /* 64 hex digits + NUL */
#define SC_PIN_CURL_SIZE 53 /* "sha256//" + base64 + NUL */
#define SC_NODE_ID_MAX   64 /* longest node id, without the NUL */

/* Subject alternative names beyond the two every node certificate has
 * (DNS:localhost, IP:127.0.0.1).  Each entry is a DNS name or an IPv4/IPv6
 * literal; which one is decided by whether it parses as an address. */
typedef struct sn_x509_node_req {
    const char *node_id;          /* becomes the CN; see sn_x509_node_id_valid */
    const char *const *alt_names; /* may be NULL when n_alt_names is 0 */
    size_t n_alt_names;
    int days; /* validity, 1 .. 3650 */
} sn_x509_node_req;

/*
 * Create a self-signed CA: a fresh P-256 key, CN = common_name,
 * basicConstraints critical CA:TRUE pathlen:0, keyUsage critical
 * keyCertSign|cRLSign, subject key identifier.  Valid from five minutes ago
 * (clock skew between hospitals) for `days` days.  Writes cert_path and
 * key_path; on failure neither is left behind.
 */
int sn_x509_make_ca(const char *cert_path, const char *key_path, const char *common_name, int days,
                    sc_error *err) SC_WUR;

/*
 * Create a node certificate signed by the CA in ca_cert_path/ca_key_path:
 * a fresh P-256 key, CN = req->node_id, basicConstraints critical CA:FALSE,
 * keyUsage critical digitalSignature, extendedKeyUsage serverAuth and
 * clientAuth (a node is both), subjectAltName DNS:localhost, IP:127.0.0.1 and
 * req->alt_names.  Writes cert_path and key_path (0600).  If pin is not NULL
 * the new certificate's pin is stored there.
 */
int sn_x509_make_node_cert(const char *ca_cert_path, const char *ca_key_path,
                           const sn_x509_node_req *req, const char *cert_path, const char *key_path,
                           unsigned char pin[SC_PIN_LEN], sc_error *err) SC_WUR;

/* A node id is 1..SC_NODE_ID_MAX characters of [A-Za-z0-9._-], starting with
 * a letter or digit: safe in a CN, a file name, a log line and a URL. */
int sn_x509_node_id_valid(const char *node_id);

/* Pin of a certificate: SHA-256 over its DER SubjectPublicKeyInfo. */
int sn_x509_spki_pin(X509 *cert, unsigned char pin[SC_PIN_LEN], sc_error *err) SC_WUR;
/* Pin of the first certificate in a PEM file. */
int sn_x509_spki_pin_file(const char *cert_path, unsigned char pin[SC_PIN_LEN],
                          sc_error *err) SC_WUR;

/* Load the first certificate of a PEM file; the caller X509_free()s it. */
int sn_x509_load_cert(const char *cert_path, X509 **out, sc_error *err) SC_WUR;
/* The subject CN of a certificate (the node id for node certificates). */
int sn_x509_common_name(X509 *cert, char *out, size_t out_size, sc_error *err) SC_WUR;

/* Pin encodings: base64 (44 chars), lowercase hex (64 chars) and curl's
 * "sha256//<base64>".  The formatters always NUL-terminate and fail with
 * SC_EINVAL when out_size is too small. */
int sn_x509_pin_to_b64(const unsigned char pin[SC_PIN_LEN], char *out, size_t out_size);
int sn_x509_pin_to_hex(const unsigned char pin[SC_PIN_LEN], char *out, size_t out_size);
int sn_x509_pin_to_curl(const unsigned char pin[SC_PIN_LEN], char *out, size_t out_size);
/* Parse a pin written in any of the three encodings (as in a config file). */
int sn_x509_pin_parse(const char *text, unsigned char pin[SC_PIN_LEN], sc_error *err) SC_WUR;

/*
 * Record `code` with "<what>: <OpenSSL reasons>" in err, draining this
 * thread's OpenSSL error queue (so a stale error never shows up in a later
 * message).  When the queue is empty the message says so.  Returns code.
 */
int sc_openssl_error(sc_error *err, int code, const char *what);

#endif
