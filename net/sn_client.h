/*
 * sn_client.h - the node's HTTPS client (libcurl over OpenSSL).
 *
 * Every request is TLS 1.3 only, presents this node's certificate and key,
 * trusts only the federation CA file, and pins the peer's public key
 * (CURLOPT_PINNEDPUBLICKEY "sha256//..."): a request without a pin is
 * refused.  Proxies from the environment are ignored, redirects are not
 * followed, connect and total times are bounded, and the response body is
 * capped.  Each request uses a fresh connection (the server closes after
 * one response anyway), so one sn_client may serve several threads.
 */
#ifndef SN_CLIENT_H
#define SN_CLIENT_H

#include <stddef.h>

#include "sc_error.h"
#include "sn_net.h"

typedef struct sn_client sn_client;

/* Zero means the default shown. */
typedef struct sn_client_config {
    const char *cert_file;     /* this node's certificate (PEM) */
    const char *key_file;      /* its private key (PEM) */
    const char *ca_file;       /* the federation CA (PEM) */
    long connect_timeout_ms;   /* TCP + TLS handshake: 10000 */
    long total_timeout_ms;     /* whole request: 120000 */
    size_t max_response_bytes; /* response body cap: 1 MiB */
} sn_client_config;

typedef struct sn_client_response {
    long status;            /* HTTP status, 0 if none was received */
    unsigned char *body;    /* malloc'd, NUL-terminated for convenience */
    size_t body_len;        /* without the NUL */
    char content_type[128]; /* "" when absent */
} sn_client_response;

/* Check that libcurl uses OpenSSL with TLS 1.3 and copy the config. */
int sn_client_create(sn_client **out, const sn_client_config *cfg, sc_error *err) SC_WUR;
void sn_client_destroy(sn_client *c);

/*
 * Send method ("GET" or "POST") to url ("https://host:port/path") and read
 * the answer.  pin is the peer's public-key pin in any sn_x509_pin_parse
 * form, or up to four of them separated by ';' (any one must match: the
 * overlap while a peer changes its key).  For POST, body/body_len are sent
 * with content_type.
 *
 * Returns 0 once an HTTP response was received, whatever its status
 * (resp->status tells); a negative code when none was: SN_ECONNECT,
 * SN_ETIMEOUT, SN_ETLS (handshake failed, pin or certificate refused),
 * SN_ETOOBIG, SN_EPROTO, SC_EIO (connection lost) - err says which and
 * carries curl's own message.  resp is always safe to pass to
 * sn_client_response_free afterwards.
 */
int sn_client_request(sn_client *c, const char *method, const char *url, const char *pin,
                      const char *content_type, const void *body, size_t body_len,
                      sn_client_response *resp, sc_error *err) SC_WUR;

void sn_client_response_free(sn_client_response *resp);

#endif
