/*
 * nd_tlsinit.c - federation CA and node certificate for `sldd init --tls`
 * (see nd_tlsinit.h).
 */
#include "nd_tlsinit.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "nd_config.h"
#include "sc_util.h"

int nd_tls_init_node(const char *node_dir, const char *id, const char *ca_dir,
                     const char *const *alt_names, size_t n_alt, const char *listen,
                     unsigned char pin[SC_PIN_LEN], int *made_ca, sc_error *e)
{
    char ca_pem[ND_PATH_MAX], ca_key[ND_PATH_MAX], tls[ND_PATH_MAX], cert[ND_PATH_MAX],
        key[ND_PATH_MAX], ca_copy[ND_PATH_MAX], lines[1024];
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc;
    *made_ca = 0;
    if ((rc = sc_path_join(ca_pem, sizeof ca_pem, ca_dir, "ca.pem", e)) ||
        (rc = sc_path_join(ca_key, sizeof ca_key, ca_dir, "ca.key", e)) ||
        (rc = sc_path_join(tls, sizeof tls, node_dir, "tls", e)) ||
        (rc = sc_path_join(cert, sizeof cert, tls, "node.pem", e)) ||
        (rc = sc_path_join(key, sizeof key, tls, "node.key", e)) ||
        (rc = sc_path_join(ca_copy, sizeof ca_copy, tls, "ca.pem", e)))
        return rc;
    if (access(ca_pem, F_OK) != 0) {
        if ((rc = sc_mkdir(ca_dir, 0700, e)) ||
            (rc = sn_x509_make_ca(ca_pem, ca_key, "SLDD federation CA", 3650, e)))
            return rc;
        *made_ca = 1;
    }
    sn_x509_node_req req = {id, alt_names, n_alt, 825};
    if ((rc = sc_mkdir(tls, 0700, e)) ||
        (rc = sn_x509_make_node_cert(ca_pem, ca_key, &req, cert, key, pin, e)) ||
        (rc = sc_file_read(ca_pem, 1 << 20, 0, &buf, &len, e)))
        return rc;
    rc = sc_file_create_excl(ca_copy, buf, len, 0644, e);
    free(buf);
    if (rc)
        return rc;
    snprintf(lines, sizeof lines,
             "\n# mutual TLS between nodes (sldd init --tls); see docs/node.md\n"
             "listen: %s\ntls-cert: tls/node.pem\ntls-key: tls/node.key\ntls-ca: tls/ca.pem\n",
             listen);
    return nd_config_append(node_dir, lines, e);
}
