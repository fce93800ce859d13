/*
 * nd_tlsinit.h - `sldd init --tls`: certificates for a test federation.
 *
 * The federation CA lives in its own folder (CA_DIR/ca.pem, ca.key - keep
 * ca.key off the nodes in anything but a test); the first `init --tls`
 * naming a CA folder creates the CA, later ones reuse it.  The node gets
 * NODE/tls/node.pem and node.key (0600) signed by it and a copy of the CA
 * certificate, and node.conf gets the listen address and the tls-* lines.
 * A real deployment uses the hospital's own CA instead (docs/tls.md).
 */
#ifndef ND_TLSINIT_H
#define ND_TLSINIT_H

#include <stddef.h>

#include "sc_error.h"
#include "sn_x509.h"

int nd_tls_init_node(const char *node_dir, const char *id, const char *ca_dir,
                     const char *const *alt_names, size_t n_alt, const char *listen,
                     unsigned char pin[SC_PIN_LEN], int *made_ca, sc_error *e) SC_WUR;

#endif
