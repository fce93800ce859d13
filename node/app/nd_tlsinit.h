/*
 * nd_tlsinit.h - the node's TLS key and certificate, made by `sldd init`
 * (every node is TLS-ready), by `sldd keys tls-init` for a node made before
 * that, and renewed with a new key by `sldd keys rotate-tls`.
 *
 * Two ways to get a certificate:
 *  - self (the default): the node is its own CA.  NODE/tls/node-ca.pem and
 *    node-ca.key (0600) are made once, the node certificate is signed by it,
 *    and NODE/tls/ca.pem, the CAs this node trusts for peers, starts as a
 *    copy of node-ca.pem.  Peers learn node-ca.pem from the contact card
 *    (nd_card.h) and add it to their own ca.pem; the pin, not the CA,
 *    decides who a peer is.
 *  - a federation CA (`init --tls --ca-dir CADIR`, test federations): the
 *    CA lives in its own folder (CA_DIR/ca.pem, ca.key - keep ca.key off the
 *    nodes in anything but a test); the first call naming a folder creates
 *    the CA, later ones reuse it, and NODE/tls/ca.pem is a copy of it.
 * Either way the node gets NODE/tls/node.pem and node.key (0600), and
 * node.conf gets the listen address and the tls-* lines.  A real deployment
 * may use the hospital's own CA instead (docs/tls.md).
 */
#ifndef ND_TLSINIT_H
#define ND_TLSINIT_H

#include <stddef.h>
#include <stdint.h>

#include "sc_error.h"
#include "sn_x509.h"

#define ND_TLS_CERT_DAYS 825

/* What a node's certificate carries beyond CN = id. */
typedef struct nd_tls_req {
    const char *id;
    const char *const *alt_names; /* DNS names or IP literals */
    size_t n_alt;
    const char *listen; /* node.conf listen: line */
} nd_tls_req;

/* With ca_dir NULL the node is its own CA (self), else the federation CA
 * in ca_dir (made there by the first node, *made_ca then 1).  Refuses a
 * node that has a TLS certificate already (SC_EEXIST). */
int nd_tls_init_node(const char *node_dir, const nd_tls_req *req, const char *ca_dir,
                     unsigned char pin[SC_PIN_LEN], int *made_ca, sc_error *e) SC_WUR;

/* The pin of the node's current TLS certificate (node.conf tls-cert). */
int nd_tls_own_pin(const char *node_dir, unsigned char pin[SC_PIN_LEN], sc_error *e) SC_WUR;

/*
 * TLS key rotation of a node that is its own CA, in two steps so that peers
 * pin the new key before it is used: stage makes tls/node-next.pem and
 * node-next.key (signed by node-ca; SC_EEXIST when one is staged already),
 * which the contact card then lists beside the current pin; switch, run
 * once the peers hold that card, makes the next key the current one (the
 * old pair kept as node-prev.*).  The daemon presents the new key from its
 * next start.
 */
int nd_tls_rotate_stage(const char *node_dir, const nd_tls_req *req,
                        unsigned char new_pin[SC_PIN_LEN], sc_error *e) SC_WUR;
int nd_tls_rotate_switch(const char *node_dir, unsigned char new_pin[SC_PIN_LEN],
                         sc_error *e) SC_WUR;
/* The staged next key's pin; SC_ENOTFOUND (no message) when none is. */
int nd_tls_next_pin(const char *node_dir, unsigned char pin[SC_PIN_LEN], sc_error *e) SC_WUR;

/* DER of the CA certificate that issued the node's certificate, found in
 * tls/node-ca.pem or in the tls-ca file (malloc'd, OPENSSL-free'd with
 * free()). */
int nd_tls_issuer_der(const char *node_dir, uint8_t **der, size_t *len, sc_error *e) SC_WUR;

/* Add a CA certificate (DER) to the node's tls-ca file unless it holds it
 * already; *added says which.  Only a tls-ca file inside the node directory
 * is changed: for another (a hospital's CA file) SC_EPERM names the
 * certificate to add by hand. */
int nd_tls_trust_ca(const char *node_dir, const uint8_t *der, size_t len, int *added,
                    sc_error *e) SC_WUR;

#endif
