/*
 * sn_tls.c - TLS 1.3 mutual-authentication contexts with public-key pinning
 * (see sn_tls.h).
 *
 * The lookup callback and its argument ride on the SSL_CTX as ex_data; the
 * reason a handshake was refused rides on the SSL, so the server can log
 * and audit it after the failed handshake.  The peer table is a small
 * mutex-protected array: a federation has a handful of hospitals.
 */
#include "sn_tls.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509_vfy.h>

#define SN_TLS_VERIFY_DEPTH 4 /* CA -> (intermediates) -> node */
#define SN_TLS_PEERS_MAX    4096
#define SN_TLS_NOTE_SIZE    256

typedef struct tls_ctx_data {
    sn_tls_lookup_fn lookup;
    void *lookup_arg;
} tls_ctx_data;

typedef struct tls_conn_note {
    char reason[SN_TLS_NOTE_SIZE];
} tls_conn_note;

static int ctx_idx = -1, conn_idx = -1;
static pthread_once_t idx_once = PTHREAD_ONCE_INIT;

static void free_ex(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    free(ptr);
}

static void init_indexes(void)
{
    ctx_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_ex);
    conn_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, free_ex);
}

static int ensure_indexes(sc_error *err)
{
    if (pthread_once(&idx_once, init_indexes) != 0)
        return sc_error_set(err, SC_ECRYPTO, "pthread_once failed");
    if (ctx_idx < 0 || conn_idx < 0)
        return sc_openssl_error(err, SC_ECRYPTO, "SSL_get_ex_new_index");
    return 0;
}

/* Record why the peer was refused; the first reason wins (it is the cause,
 * later ones are consequences). */
static void set_note(SSL *ssl, const char *fmt, ...) SC_PRINTF(2, 3);
static void set_note(SSL *ssl, const char *fmt, ...)
{
    tls_conn_note *note = SSL_get_ex_data(ssl, conn_idx);
    va_list ap;
    if (!note) {
        note = calloc(1, sizeof *note);
        if (!note)
            return;
        if (!SSL_set_ex_data(ssl, conn_idx, note)) {
            free(note);
            return;
        }
    }
    if (note->reason[0])
        return;
    va_start(ap, fmt);
    vsnprintf(note->reason, sizeof note->reason, fmt, ap);
    va_end(ap);
}

const char *sn_tls_refusal(const SSL *ssl)
{
    tls_conn_note *note;
    if (!ssl || conn_idx < 0)
        return NULL;
    note = SSL_get_ex_data(ssl, conn_idx);
    return note && note->reason[0] ? note->reason : NULL;
}

/* Look the pin up with the context's callback; 0 when known. */
static int lookup_pin(SSL *ssl, const unsigned char pin[SC_PIN_LEN], char *node_id,
                      size_t node_id_size)
{
    tls_ctx_data *d = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_idx);
    int rc;
    if (!d || !d->lookup)
        return SC_EINVAL;
    node_id[0] = '\0';
    rc = d->lookup(d->lookup_arg, pin, node_id, node_id_size);
    if (rc == 0 && !sn_x509_node_id_valid(node_id))
        return SC_EFORMAT; /* a lookup that returns garbage refuses the peer */
    return rc;
}

/*
 * Runs for each certificate of the peer's chain, leaf last.  The chain
 * result from OpenSSL stands; for an accepted leaf the pin must also be a
 * known peer.
 */
static int verify_cb(int preverify_ok, X509_STORE_CTX *xctx)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(xctx, SSL_get_ex_data_X509_STORE_CTX_idx());
    int depth = X509_STORE_CTX_get_error_depth(xctx);
    unsigned char pin[SC_PIN_LEN];
    char node_id[SC_NODE_ID_MAX + 1], pin_text[SC_PIN_CURL_SIZE];
    X509 *cert;
    int rc;

    if (!ssl)
        return 0;
    if (!preverify_ok) {
        int e = X509_STORE_CTX_get_error(xctx);
        set_note(ssl, "certificate refused at chain depth %d: %s", depth,
                 X509_verify_cert_error_string(e));
        return 0;
    }
    if (depth != 0)
        return 1;
    cert = X509_STORE_CTX_get_current_cert(xctx);
    if (!cert || sn_x509_spki_pin(cert, pin, NULL) != 0) {
        ERR_clear_error();
        set_note(ssl, "cannot compute the public-key pin of the peer certificate");
        X509_STORE_CTX_set_error(xctx, X509_V_ERR_APPLICATION_VERIFICATION);
        return 0;
    }
    rc = lookup_pin(ssl, pin, node_id, sizeof node_id);
    if (rc != 0) {
        if (sn_x509_pin_to_curl(pin, pin_text, sizeof pin_text) != 0)
            snprintf(pin_text, sizeof pin_text, "(unprintable)");
        if (rc == SC_ENOTFOUND)
            set_note(ssl, "peer public key %s is not in the peer list", pin_text);
        else
            set_note(ssl, "peer lookup for %s failed (%s)", pin_text, sc_status_name(rc));
        X509_STORE_CTX_set_error(xctx, X509_V_ERR_APPLICATION_VERIFICATION);
        return 0;
    }
    return 1;
}

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

static int ctx_create(SSL_CTX **out, const sn_tls_config *cfg, int server, sc_error *err)
{
    SSL_CTX *ctx = NULL;
    tls_ctx_data *d = NULL;
    int rc;

    if (!out || !cfg || !cfg->cert_file || !cfg->key_file || !cfg->ca_file || !cfg->lookup)
        return sc_error_set(err, SC_EINVAL,
                            "TLS context: certificate, key, CA file and lookup are required");
    *out = NULL;
    rc = ensure_indexes(err);
    if (rc)
        return rc;
    ERR_clear_error();
    ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!ctx)
        return sc_openssl_error(err, SC_ECRYPTO, "SSL_CTX_new");
    d = calloc(1, sizeof *d);
    if (!d) {
        rc = sc_error_set(err, SC_ENOMEM, "TLS context: out of memory");
        goto fail;
    }
    d->lookup = cfg->lookup;
    d->lookup_arg = cfg->lookup_arg;
    if (!SSL_CTX_set_ex_data(ctx, ctx_idx, d)) {
        free(d);
        rc = sc_openssl_error(err, SC_ECRYPTO, "SSL_CTX_set_ex_data");
        goto fail;
    }
    /* From here d belongs to ctx and is freed with it. */
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION)) {
        rc = sc_openssl_error(err, SC_ECRYPTO, "SSL_CTX_set_{min,max}_proto_version(TLS 1.3)");
        goto fail;
    }
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert_file) != 1) {
        rc = sc_openssl_error(err, SC_EFORMAT, "SSL_CTX_use_certificate_chain_file");
        sc_error_wrap(err, "%s", cfg->cert_file);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->key_file, SSL_FILETYPE_PEM) != 1) {
        rc = sc_openssl_error(err, SC_EFORMAT, "SSL_CTX_use_PrivateKey_file");
        sc_error_wrap(err, "%s", cfg->key_file);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        rc = sc_openssl_error(err, SC_EINVAL, "SSL_CTX_check_private_key");
        sc_error_wrap(err, "key %s does not match certificate %s", cfg->key_file, cfg->cert_file);
        goto fail;
    }
    /* Only the federation's CA: never the system trust store. */
    if (SSL_CTX_load_verify_locations(ctx, cfg->ca_file, NULL) != 1) {
        rc = sc_openssl_error(err, SC_EFORMAT, "SSL_CTX_load_verify_locations");
        sc_error_wrap(err, "%s", cfg->ca_file);
        goto fail;
    }
    if (server) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg->ca_file);
        if (!names) {
            rc = sc_openssl_error(err, SC_EFORMAT, "SSL_load_client_CA_file");
            sc_error_wrap(err, "%s", cfg->ca_file);
            goto fail;
        }
        SSL_CTX_set_client_CA_list(ctx, names); /* takes ownership */
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_cb);
        /* No tickets: a resumed session would skip the pin check. */
        if (!SSL_CTX_set_num_tickets(ctx, 0)) {
            rc = sc_openssl_error(err, SC_ECRYPTO, "SSL_CTX_set_num_tickets");
            goto fail;
        }
        if (!SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"sldd", 4)) {
            rc = sc_openssl_error(err, SC_ECRYPTO, "SSL_CTX_set_session_id_context");
            goto fail;
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_cb);
    }
    SSL_CTX_set_verify_depth(ctx, SN_TLS_VERIFY_DEPTH);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    *out = ctx;
    return 0;
fail:
    SSL_CTX_free(ctx);
    return rc;
}

int sn_tls_server_ctx_create(SSL_CTX **out, const sn_tls_config *cfg, sc_error *err)
{
    return ctx_create(out, cfg, 1, err);
}

int sn_tls_client_ctx_create(SSL_CTX **out, const sn_tls_config *cfg, sc_error *err)
{
    return ctx_create(out, cfg, 0, err);
}

int sn_tls_peer_check(SSL *ssl, sn_tls_peer *peer, sc_error *err)
{
    X509 *cert;
    long vr;
    int rc;
    char pin_text[SC_PIN_CURL_SIZE];

    if (!ssl || !peer)
        return sc_error_set(err, SC_EINVAL, "peer check: missing argument");
    memset(peer, 0, sizeof *peer);
    if (ctx_idx < 0 || !SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_idx))
        return sc_error_set(err, SC_EINVAL, "peer check: connection not from an sn_tls context");
    if (!SSL_is_init_finished(ssl))
        return sc_error_set(err, SC_EREFUSE_UNKNOWN_SENDER, "TLS handshake not finished");
    if (SSL_version(ssl) != TLS1_3_VERSION)
        return sc_error_set(err, SC_EREFUSE_UNKNOWN_SENDER, "peer negotiated %s, not TLSv1.3",
                            SSL_get_version(ssl));
    /* OpenSSL leaves X509_V_OK when the peer sent no certificate at all. */
    cert = SSL_get0_peer_certificate(ssl);
    if (!cert)
        return sc_error_set(err, SC_EREFUSE_UNKNOWN_SENDER, "peer presented no certificate");
    vr = SSL_get_verify_result(ssl);
    if (vr != X509_V_OK)
        return sc_error_set(err, SC_EREFUSE_UNKNOWN_SENDER, "peer certificate not verified: %s",
                            X509_verify_cert_error_string(vr));
    rc = sn_x509_spki_pin(cert, peer->pin, err);
    if (rc)
        return rc;
    rc = lookup_pin(ssl, peer->pin, peer->node_id, sizeof peer->node_id);
    if (rc) {
        if (sn_x509_pin_to_curl(peer->pin, pin_text, sizeof pin_text) != 0)
            snprintf(pin_text, sizeof pin_text, "(unprintable)");
        memset(peer, 0, sizeof *peer);
        if (rc == SC_ENOTFOUND)
            return sc_error_set(err, SC_EREFUSE_UNKNOWN_SENDER,
                                "peer public key %s is not in the peer list", pin_text);
        return sc_error_set(err, SC_EREFUSE_UNKNOWN_SENDER, "peer lookup for %s failed (%s)",
                            pin_text, sc_status_name(rc));
    }
    return 0;
}

/* ---- peer table ---- */

typedef struct peer_entry {
    char node_id[SC_NODE_ID_MAX + 1];
    unsigned char pin[SC_PIN_LEN];
} peer_entry;

struct sn_tls_peers {
    pthread_mutex_t lock;
    peer_entry *v;
    size_t n, cap;
};

int sn_tls_peers_create(sn_tls_peers **out, sc_error *err)
{
    sn_tls_peers *p;
    if (!out)
        return sc_error_set(err, SC_EINVAL, "peers: missing argument");
    p = calloc(1, sizeof *p);
    if (!p)
        return sc_error_set(err, SC_ENOMEM, "peers: out of memory");
    if (pthread_mutex_init(&p->lock, NULL) != 0) {
        free(p);
        return sc_error_set(err, SC_ENOMEM, "peers: pthread_mutex_init failed");
    }
    *out = p;
    return 0;
}

void sn_tls_peers_destroy(sn_tls_peers *peers)
{
    if (!peers)
        return;
    pthread_mutex_destroy(&peers->lock);
    free(peers->v);
    free(peers);
}

int sn_tls_peers_add(sn_tls_peers *peers, const char *node_id, const unsigned char pin[SC_PIN_LEN],
                     sc_error *err)
{
    int rc = 0;
    if (!peers || !pin)
        return sc_error_set(err, SC_EINVAL, "peers: missing argument");
    if (!sn_x509_node_id_valid(node_id))
        return sc_error_set(err, SC_EINVAL, "peers: invalid node id '%s'",
                            node_id ? node_id : "(null)");
    pthread_mutex_lock(&peers->lock);
    for (size_t i = 0; i < peers->n; i++) {
        if (memcmp(peers->v[i].pin, pin, SC_PIN_LEN) != 0)
            continue;
        if (strcmp(peers->v[i].node_id, node_id) != 0)
            rc = sc_error_set(err, SC_EEXIST, "peers: that key already belongs to node '%s'",
                              peers->v[i].node_id);
        goto out; /* same pair again: nothing to do */
    }
    if (peers->n == peers->cap) {
        size_t cap = peers->cap ? 2 * peers->cap : 8;
        peer_entry *v;
        if (cap > SN_TLS_PEERS_MAX) {
            rc = sc_error_set(err, SC_EINVAL, "peers: more than %d pins", SN_TLS_PEERS_MAX);
            goto out;
        }
        v = realloc(peers->v, cap * sizeof *v);
        if (!v) {
            rc = sc_error_set(err, SC_ENOMEM, "peers: out of memory");
            goto out;
        }
        peers->v = v;
        peers->cap = cap;
    }
    memset(&peers->v[peers->n], 0, sizeof peers->v[peers->n]);
    memcpy(peers->v[peers->n].node_id, node_id, strlen(node_id) + 1);
    memcpy(peers->v[peers->n].pin, pin, SC_PIN_LEN);
    peers->n++;
out:
    pthread_mutex_unlock(&peers->lock);
    return rc;
}

int sn_tls_peers_remove_pin(sn_tls_peers *peers, const unsigned char pin[SC_PIN_LEN])
{
    int removed = 0;
    if (!peers || !pin)
        return 0;
    pthread_mutex_lock(&peers->lock);
    for (size_t i = 0; i < peers->n; i++) {
        if (memcmp(peers->v[i].pin, pin, SC_PIN_LEN) == 0) {
            peers->v[i] = peers->v[--peers->n];
            removed = 1;
            break;
        }
    }
    pthread_mutex_unlock(&peers->lock);
    return removed;
}

int sn_tls_peers_remove_node(sn_tls_peers *peers, const char *node_id)
{
    int removed = 0;
    if (!peers || !node_id)
        return 0;
    pthread_mutex_lock(&peers->lock);
    for (size_t i = 0; i < peers->n;) {
        if (strcmp(peers->v[i].node_id, node_id) == 0) {
            peers->v[i] = peers->v[--peers->n];
            removed++;
        } else {
            i++;
        }
    }
    pthread_mutex_unlock(&peers->lock);
    return removed;
}

int sn_tls_peers_lookup(void *arg, const unsigned char pin[SC_PIN_LEN], char *node_id,
                        size_t node_id_size)
{
    sn_tls_peers *peers = arg;
    int rc = SC_ENOTFOUND;
    if (!peers || !pin || !node_id || node_id_size == 0)
        return SC_EINVAL;
    pthread_mutex_lock(&peers->lock);
    for (size_t i = 0; i < peers->n; i++) {
        if (memcmp(peers->v[i].pin, pin, SC_PIN_LEN) == 0) {
            if (strlen(peers->v[i].node_id) >= node_id_size) {
                rc = SC_EINVAL;
            } else {
                memcpy(node_id, peers->v[i].node_id, strlen(peers->v[i].node_id) + 1);
                rc = 0;
            }
            break;
        }
    }
    pthread_mutex_unlock(&peers->lock);
    return rc;
}
