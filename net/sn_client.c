/*
 * sn_client.c - libcurl HTTPS client with mutual TLS and key pinning (see
 * sn_client.h).
 *
 * One easy handle per request: nothing is shared between requests, so no
 * locking, no reused connection that was authenticated under an old peer
 * list, and a failed request leaves no state behind.  Every setopt is
 * checked: an option this libcurl does not know must fail the request, not
 * silently weaken it.
 */
#include "sn_client.h"

#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "sn_x509.h"

struct sn_client {
    char *cert_file, *key_file, *ca_file;
    long connect_timeout_ms, total_timeout_ms;
    size_t max_response_bytes;
};

typedef struct sink {
    unsigned char *buf;
    size_t len, cap, max;
    int too_big, oom;
} sink;

static size_t sink_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    sink *k = ud;
    size_t n = size * nmemb;
    if (n > k->max - k->len) {
        k->too_big = 1;
        return 0; /* makes curl abort with CURLE_WRITE_ERROR */
    }
    if (k->len + n + 1 > k->cap) {
        size_t cap = k->cap ? k->cap : 4096;
        unsigned char *b;
        while (cap < k->len + n + 1)
            cap *= 2;
        if (cap > k->max + 1)
            cap = k->max + 1;
        b = realloc(k->buf, cap);
        if (!b) {
            k->oom = 1;
            return 0;
        }
        k->buf = b;
        k->cap = cap;
    }
    memcpy(k->buf + k->len, ptr, n);
    k->len += n;
    k->buf[k->len] = '\0';
    return n;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

void sn_client_destroy(sn_client *c)
{
    if (!c)
        return;
    free(c->cert_file);
    free(c->key_file);
    free(c->ca_file);
    free(c);
}

int sn_client_create(sn_client **out, const sn_client_config *cfg, sc_error *err)
{
    curl_version_info_data *vi;
    sn_client *c;
    int rc;

    if (!out || !cfg || !cfg->cert_file || !cfg->key_file || !cfg->ca_file)
        return sc_error_set(err, SC_EINVAL, "client: certificate, key and CA file are required");
    *out = NULL;
    rc = sn_global_init(err);
    if (rc)
        return rc;
    vi = curl_version_info(CURLVERSION_NOW);
    if (!vi || !(vi->features & CURL_VERSION_SSL) || !vi->ssl_version)
        return sc_error_set(err, SN_EUNSUPPORTED, "client: libcurl was built without TLS");
    /* Pinning, TLS 1.3 only and the PEM options are what this module relies
     * on; they are all there with OpenSSL >= 1.1.1 and curl >= 7.52. */
    if (strncmp(vi->ssl_version, "OpenSSL/", 8) != 0)
        return sc_error_set(err, SN_EUNSUPPORTED, "client: libcurl uses %s, OpenSSL is required",
                            vi->ssl_version);
    if (vi->version_num < 0x073400)
        return sc_error_set(err, SN_EUNSUPPORTED, "client: libcurl %s is older than 7.52",
                            vi->version);
    c = calloc(1, sizeof *c);
    if (!c)
        return sc_error_set(err, SC_ENOMEM, "client: out of memory");
    c->cert_file = dup_str(cfg->cert_file);
    c->key_file = dup_str(cfg->key_file);
    c->ca_file = dup_str(cfg->ca_file);
    if (!c->cert_file || !c->key_file || !c->ca_file) {
        sn_client_destroy(c);
        return sc_error_set(err, SC_ENOMEM, "client: out of memory");
    }
    c->connect_timeout_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 10000;
    c->total_timeout_ms = cfg->total_timeout_ms > 0 ? cfg->total_timeout_ms : 120000;
    c->max_response_bytes = cfg->max_response_bytes ? cfg->max_response_bytes : (1u << 20);
    *out = c;
    return 0;
}

void sn_client_response_free(sn_client_response *resp)
{
    if (!resp)
        return;
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
}

static int map_curl_error(CURLcode cc, const sink *k, const char *detail)
{
    switch (cc) {
    case CURLE_OPERATION_TIMEDOUT: return SN_ETIMEOUT;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST: return SN_ECONNECT;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR: return SN_ETLS;
    case CURLE_FILESIZE_EXCEEDED: return SN_ETOOBIG;
    case CURLE_WRITE_ERROR: return k->too_big ? SN_ETOOBIG : k->oom ? SC_ENOMEM : SC_EIO;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL: return SC_EINVAL;
    case CURLE_WEIRD_SERVER_REPLY: return SN_EPROTO;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
        /* In TLS 1.3 the server checks the client certificate after the
         * client has finished its side of the handshake, so a refusal shows
         * up as an alert on the first read. */
        return detail && strstr(detail, "alert") ? SN_ETLS : SC_EIO;
    default: return SC_EIO;
    }
}

#define SN_CLIENT_MAX_PINS 4

/* Turn "pin[;pin...]" (each in any sn_x509_pin_parse form) into curl's
 * "sha256//b64;sha256//b64".  Several pins let a sender accept a peer's old
 * and new key while the peer rotates. */
static int format_pins(const char *text, char *out, size_t out_size, sc_error *err)
{
    char item[128];
    size_t used = 0, n_pins = 0;
    const char *p = text;
    out[0] = '\0';
    for (;;) {
        const char *semi = strchr(p, ';');
        size_t len = semi ? (size_t)(semi - p) : strlen(p);
        unsigned char raw[SC_PIN_LEN];
        int rc;
        if (len == 0 || len >= sizeof item)
            return sc_error_set(err, SC_EFORMAT, "pin list: empty or overlong entry");
        if (++n_pins > SN_CLIENT_MAX_PINS)
            return sc_error_set(err, SC_EINVAL, "pin list: more than %d pins", SN_CLIENT_MAX_PINS);
        memcpy(item, p, len);
        item[len] = '\0';
        rc = sn_x509_pin_parse(item, raw, err);
        if (rc)
            return rc;
        if (used + SC_PIN_CURL_SIZE + 1 > out_size)
            return sc_error_set(err, SC_EINVAL, "pin list too long");
        if (used)
            out[used++] = ';';
        if (sn_x509_pin_to_curl(raw, out + used, out_size - used) != 0)
            return sc_error_set(err, SC_EINVAL, "cannot format a pin");
        used += SC_PIN_CURL_SIZE - 1;
        if (!semi)
            return 0;
        p = semi + 1;
    }
}

#define SETOPT(h, opt, val)                                                           \
    do {                                                                              \
        CURLcode cc_ = curl_easy_setopt(h, opt, val);                                 \
        if (cc_ != CURLE_OK) {                                                        \
            rc = sc_error_set(err, SN_EUNSUPPORTED, "curl_easy_setopt(%s): %s", #opt, \
                              curl_easy_strerror(cc_));                               \
            goto out;                                                                 \
        }                                                                             \
    } while (0)

int sn_client_request(sn_client *c, const char *method, const char *url, const char *pin,
                      const char *content_type, const void *body, size_t body_len,
                      sn_client_response *resp, sc_error *err)
{
    char pin_curl[SN_CLIENT_MAX_PINS * SC_PIN_CURL_SIZE], errbuf[CURL_ERROR_SIZE], ct_header[160];
    struct curl_slist *headers = NULL, *tmp;
    sn_sigpipe_guard guard;
    sink k;
    CURL *h = NULL;
    CURLcode cc;
    char *ct = NULL;
    int is_post, rc = 0;

    if (resp)
        memset(resp, 0, sizeof *resp);
    if (!c || !method || !url || !resp)
        return sc_error_set(err, SC_EINVAL, "client request: missing argument");
    if (!pin)
        return sc_error_set(err, SC_EINVAL, "client request to %s: no pin for the peer", url);
    is_post = !strcmp(method, "POST");
    if (!is_post && strcmp(method, "GET") != 0)
        return sc_error_set(err, SC_EINVAL, "client request: method %s not supported", method);
    if (strncmp(url, "https://", 8) != 0)
        return sc_error_set(err, SC_EINVAL, "client request: '%s' is not an https:// URL", url);
    if (body_len && !body)
        return sc_error_set(err, SC_EINVAL, "client request: body is NULL");
    rc = format_pins(pin, pin_curl, sizeof pin_curl, err);
    if (rc)
        return rc;
    if (content_type && (strpbrk(content_type, "\r\n") ||
                         (size_t)snprintf(ct_header, sizeof ct_header, "Content-Type: %s",
                                          content_type) >= sizeof ct_header))
        return sc_error_set(err, SC_EINVAL, "client request: bad content type");

    memset(&k, 0, sizeof k);
    k.max = c->max_response_bytes;
    errbuf[0] = '\0';
    h = curl_easy_init();
    if (!h)
        return sc_error_set(err, SC_ENOMEM, "curl_easy_init failed");

    SETOPT(h, CURLOPT_ERRORBUFFER, errbuf);
    SETOPT(h, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
    SETOPT(h, CURLOPT_PROTOCOLS_STR, "https");
    SETOPT(h, CURLOPT_REDIR_PROTOCOLS_STR, "https");
#else
    SETOPT(h, CURLOPT_PROTOCOLS, (long)CURLPROTO_HTTPS);
    SETOPT(h, CURLOPT_REDIR_PROTOCOLS, (long)CURLPROTO_HTTPS);
#endif
    SETOPT(h, CURLOPT_FOLLOWLOCATION, 0L);
    /* Hospital networks often set http_proxy for browsing; peer traffic
     * must go straight to the pinned peer. */
    SETOPT(h, CURLOPT_PROXY, "");
    SETOPT(h, CURLOPT_NOPROXY, "*");
    SETOPT(h, CURLOPT_NOSIGNAL, 1L);
    SETOPT(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    SETOPT(h, CURLOPT_FORBID_REUSE, 1L);
    SETOPT(h, CURLOPT_FRESH_CONNECT, 1L);
    SETOPT(h, CURLOPT_SSLVERSION, (long)(CURL_SSLVERSION_TLSv1_3 | CURL_SSLVERSION_MAX_TLSv1_3));
    SETOPT(h, CURLOPT_SSLCERTTYPE, "PEM");
    SETOPT(h, CURLOPT_SSLCERT, c->cert_file);
    SETOPT(h, CURLOPT_SSLKEYTYPE, "PEM");
    SETOPT(h, CURLOPT_SSLKEY, c->key_file);
    SETOPT(h, CURLOPT_CAINFO, c->ca_file);
    SETOPT(h, CURLOPT_CAPATH, NULL); /* only the federation CA, not /etc/ssl/certs */
    SETOPT(h, CURLOPT_SSL_VERIFYPEER, 1L);
    SETOPT(h, CURLOPT_SSL_VERIFYHOST, 2L);
    SETOPT(h, CURLOPT_PINNEDPUBLICKEY, pin_curl);
    SETOPT(h, CURLOPT_SSL_SESSIONID_CACHE, 0L);
    SETOPT(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    SETOPT(h, CURLOPT_TIMEOUT_MS, c->total_timeout_ms);
    SETOPT(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_response_bytes);
    SETOPT(h, CURLOPT_WRITEFUNCTION, sink_write);
    SETOPT(h, CURLOPT_WRITEDATA, &k);
    SETOPT(h, CURLOPT_USERAGENT, "sldd/" SLDD_VERSION);
    if (is_post) {
        SETOPT(h, CURLOPT_POST, 1L);
        SETOPT(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        SETOPT(h, CURLOPT_POSTFIELDS, body_len ? (const char *)body : "");
    } else {
        SETOPT(h, CURLOPT_HTTPGET, 1L);
    }
    if (content_type) {
        tmp = curl_slist_append(headers, ct_header);
        if (!tmp) {
            rc = sc_error_set(err, SC_ENOMEM, "curl_slist_append failed");
            goto out;
        }
        headers = tmp;
        SETOPT(h, CURLOPT_HTTPHEADER, headers);
    }

    sn_sigpipe_block(&guard);
    cc = curl_easy_perform(h);
    sn_sigpipe_restore(&guard);
    if (cc != CURLE_OK) {
        const char *detail = errbuf[0] ? errbuf : curl_easy_strerror(cc);
        rc = map_curl_error(cc, &k, detail);
        if (rc == SN_ETOOBIG)
            sc_error_set(err, rc, "%s %s: response larger than %zu bytes", method, url,
                         c->max_response_bytes);
        else
            sc_error_set(err, rc, "%s %s: %s (curl %d)", method, url, detail, (int)cc);
        goto out;
    }
    cc = curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    if (cc != CURLE_OK) {
        rc = sc_error_set(err, SN_EPROTO, "curl_easy_getinfo(RESPONSE_CODE): %s",
                          curl_easy_strerror(cc));
        goto out;
    }
    cc = curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
    if (cc != CURLE_OK) {
        rc = sc_error_set(err, SN_EPROTO, "curl_easy_getinfo(CONTENT_TYPE): %s",
                          curl_easy_strerror(cc));
        goto out;
    }
    if (ct)
        snprintf(resp->content_type, sizeof resp->content_type, "%s", ct);
    resp->body = k.buf;
    resp->body_len = k.len;
    k.buf = NULL;
    if (!resp->body) {
        resp->body = calloc(1, 1);
        if (!resp->body) {
            rc = sc_error_set(err, SC_ENOMEM, "client: out of memory");
            goto out;
        }
    }
out:
    if (rc)
        resp->status = 0;
    free(k.buf);
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    return rc;
}
