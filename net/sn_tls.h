/*
 * sn_tls.h - OpenSSL TLS contexts for mutual TLS between nodes.
 *
 * Both roles are TLS 1.3 only (minimum = maximum = TLS1_3_VERSION), trust
 * exactly one CA file (never the system store), present the node's own
 * certificate and require the peer's.  On top of the CA chain every peer is
 * pinned: the SHA-256 of its SubjectPublicKeyInfo (sn_x509_spki_pin) must be
 * known to a lookup callback, which also maps it to the peer's node id.
 * The pin is checked inside the handshake (a refused peer gets an alert,
 * never an HTTP answer) and again by sn_tls_peer_check() after it, which
 * also insists that a certificate was presented: OpenSSL reports
 * X509_V_OK for a peer that sent none.
 *
 * Session tickets and the session cache are off so that every connection
 * is a full handshake checked against the current peer list.
 */
#ifndef SN_TLS_H
#define SN_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "sc_error.h"
#include "sn_x509.h"

/*
 * Map a pin to a node id.  Returns 0 and writes the NUL-terminated node id
 * when the pin belongs to a known peer, SC_ENOTFOUND when it does not, and
 * another negative code when the lookup itself failed (the peer is then
 * refused too).  Called on the thread doing the handshake; it must be
 * thread-safe if the peer list can change while connections are made.
 */
typedef int (*sn_tls_lookup_fn)(void *arg, const unsigned char pin[SC_PIN_LEN], char *node_id,
                                size_t node_id_size);

typedef struct sn_tls_config {
    const char *cert_file; /* PEM: this node's certificate, then any intermediates */
    const char *key_file;  /* PEM: its private key (unencrypted, 0600) */
    const char *ca_file;   /* PEM: the CA(s) that sign peer certificates */
    sn_tls_lookup_fn lookup;
    void *lookup_arg; /* must outlive the context */
} sn_tls_config;

/* The authenticated peer of a finished handshake. */
typedef struct sn_tls_peer {
    char node_id[SC_NODE_ID_MAX + 1];
    unsigned char pin[SC_PIN_LEN];
} sn_tls_peer;

/* Create a server context (requests and requires a client certificate). */
int sn_tls_server_ctx_create(SSL_CTX **out, const sn_tls_config *cfg, sc_error *err) SC_WUR;
/* Create a client context (the server's pin is checked the same way). */
int sn_tls_client_ctx_create(SSL_CTX **out, const sn_tls_config *cfg, sc_error *err) SC_WUR;

/*
 * After a completed handshake on a connection made from one of the
 * contexts above: check TLS 1.3 was negotiated, a peer certificate was
 * presented, the chain verified, and the certificate's pin maps to a node
 * id (looked up again, so a peer removed meanwhile is refused).  On success
 * fills *peer.  A refusal returns SC_EREFUSE_UNKNOWN_SENDER with the reason.
 */
int sn_tls_peer_check(SSL *ssl, sn_tls_peer *peer, sc_error *err) SC_WUR;

/*
 * The reason the verify callback refused this connection's peer during the
 * handshake ("no certificate", "unknown CA", "key sha256//... is not a
 * known peer"), or NULL when it refused nothing.  For logs and audit.
 */
const char *sn_tls_refusal(const SSL *ssl);

/* A ready-made, thread-safe peer table usable as the lookup callback.
 * One node may have several pins (certificate rotation); one pin belongs to
 * one node only. */
typedef struct sn_tls_peers sn_tls_peers;

int sn_tls_peers_create(sn_tls_peers **out, sc_error *err) SC_WUR;
void sn_tls_peers_destroy(sn_tls_peers *peers);
/* Add pin -> node_id.  Adding the same pair again is a no-op; the pin
 * already mapped to another node is SC_EEXIST. */
int sn_tls_peers_add(sn_tls_peers *peers, const char *node_id, const unsigned char pin[SC_PIN_LEN],
                     sc_error *err) SC_WUR;
/* Remove one pin; returns 1 if it was present, 0 if not. */
int sn_tls_peers_remove_pin(sn_tls_peers *peers, const unsigned char pin[SC_PIN_LEN]);
/* Remove every pin of node_id; returns how many were removed. */
int sn_tls_peers_remove_node(sn_tls_peers *peers, const char *node_id);
/* sn_tls_lookup_fn over an sn_tls_peers (pass the table as arg). */
int sn_tls_peers_lookup(void *peers, const unsigned char pin[SC_PIN_LEN], char *node_id,
                        size_t node_id_size);

#endif
