/*
 * nd_tlsinit.c - the node's TLS key and certificate: made at init (its own
 * CA, or a federation CA), staged and switched on rotation, and the CA file
 * peers' CAs are added to (see nd_tlsinit.h).
 */
#include "nd_tlsinit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "nd_config.h"
#include "sc_util.h"

typedef struct tls_paths {
    char dir[ND_PATH_MAX], cert[ND_PATH_MAX], key[ND_PATH_MAX], ca[ND_PATH_MAX],
        own_ca[ND_PATH_MAX], own_ca_key[ND_PATH_MAX];
} tls_paths;

static int paths(const char *node_dir, tls_paths *p, sc_error *e)
{
    int rc;
    if ((rc = sc_path_join(p->dir, sizeof p->dir, node_dir, "tls", e)) ||
        (rc = sc_path_join(p->cert, sizeof p->cert, p->dir, "node.pem", e)) ||
        (rc = sc_path_join(p->key, sizeof p->key, p->dir, "node.key", e)) ||
        (rc = sc_path_join(p->ca, sizeof p->ca, p->dir, "ca.pem", e)) ||
        (rc = sc_path_join(p->own_ca, sizeof p->own_ca, p->dir, "node-ca.pem", e)) ||
        (rc = sc_path_join(p->own_ca_key, sizeof p->own_ca_key, p->dir, "node-ca.key", e)))
        return rc;
    return 0;
}

static int copy_file(const char *from, const char *to, sc_error *e)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = sc_file_read(from, 1 << 20, 0, &buf, &len, e);
    if (!rc)
        rc = sc_file_create_excl(to, buf, len, 0644, e);
    free(buf);
    return rc;
}

int nd_tls_init_node(const char *node_dir, const nd_tls_req *req, const char *ca_dir,
                     unsigned char pin[SC_PIN_LEN], int *made_ca, sc_error *e)
{
    char ca_pem[ND_PATH_MAX], ca_key[ND_PATH_MAX], lines[1024], cn[128];
    tls_paths p;
    nd_config cfg;
    int rc;
    *made_ca = 0;
    if ((rc = paths(node_dir, &p, e)) || (rc = nd_config_load(node_dir, &cfg, e)))
        return rc;
    /* a node made by `init --tls`, or one whose node.conf names TLS files */
    if (access(p.cert, F_OK) == 0 || access(cfg.tls_cert, F_OK) == 0)
        return sc_error_set(e, SC_EEXIST, "the node has a TLS certificate already (%s)",
                            access(p.cert, F_OK) == 0 ? p.cert : cfg.tls_cert);
    if (ca_dir) {
        if ((rc = sc_path_join(ca_pem, sizeof ca_pem, ca_dir, "ca.pem", e)) ||
            (rc = sc_path_join(ca_key, sizeof ca_key, ca_dir, "ca.key", e)))
            return rc;
        if (access(ca_pem, F_OK) != 0) {
            if ((rc = sc_mkdir(ca_dir, 0700, e)) ||
                (rc = sn_x509_make_ca(ca_pem, ca_key, "SLDD federation CA", 3650, e)))
                return rc;
            *made_ca = 1;
        }
    } else {
        snprintf(cn, sizeof cn, "SLDD node CA %s", req->id);
        snprintf(ca_pem, sizeof ca_pem, "%s", p.own_ca);
        snprintf(ca_key, sizeof ca_key, "%s", p.own_ca_key);
        if ((rc = sc_mkdir(p.dir, 0700, e)) || (rc = sn_x509_make_ca(ca_pem, ca_key, cn, 3650, e)))
            return rc;
    }
    sn_x509_node_req xr = {req->id, req->alt_names, req->n_alt, ND_TLS_CERT_DAYS};
    if ((rc = sc_mkdir(p.dir, 0700, e)) ||
        (rc = sn_x509_make_node_cert(ca_pem, ca_key, &xr, p.cert, p.key, pin, e)) ||
        (rc = copy_file(ca_pem, p.ca, e)))
        return rc;
    snprintf(lines, sizeof lines,
             "\n# mutual TLS between nodes; see docs/node.md and docs/keys.md\n"
             "listen: %s\ntls-cert: tls/node.pem\ntls-key: tls/node.key\ntls-ca: tls/ca.pem\n",
             req->listen);
    return nd_config_append(node_dir, lines, e);
}

int nd_tls_own_pin(const char *node_dir, unsigned char pin[SC_PIN_LEN], sc_error *e)
{
    nd_config cfg;
    int rc = nd_config_load(node_dir, &cfg, e);
    if (rc)
        return rc;
    if (access(cfg.tls_cert, F_OK) != 0)
        return sc_error_set(e, SC_ENOTFOUND,
                            "the node has no TLS certificate (%s): 'sldd keys tls-init --dir %s'",
                            cfg.tls_cert, node_dir);
    return sn_x509_spki_pin_file(cfg.tls_cert, pin, e);
}

/* ---------------------------------------------------------------- CA file */

/* Every certificate of a PEM file, in order; *n of them (X509_free each). */
static int load_certs(const char *path, X509 ***out, size_t *n, sc_error *e)
{
    FILE *f = fopen(path, "r");
    X509 **list = NULL, *c;
    *out = NULL;
    *n = 0;
    if (!f)
        return sc_error_set(e, errno == ENOENT ? SC_ENOTFOUND : SC_EIO, "%s: %s", path,
                            strerror(errno));
    while ((c = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
        X509 **grown = *n < 256 ? realloc(list, (*n + 1) * sizeof *list) : NULL;
        if (!grown) {
            X509_free(c);
            for (size_t i = 0; i < *n; i++)
                X509_free(list[i]);
            free(list);
            fclose(f);
            *n = 0;
            return sc_error_set(e, SC_EFORMAT, "%s: too many certificates, or out of memory", path);
        }
        list = grown;
        list[(*n)++] = c;
    }
    ERR_clear_error(); /* the end of the file reads as a PEM error */
    fclose(f);
    *out = list;
    return 0;
}

static void free_certs(X509 **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        X509_free(list[i]);
    free(list);
}

static int cert_der(X509 *c, uint8_t **der, size_t *len, sc_error *e)
{
    unsigned char *p = NULL;
    int n = i2d_X509(c, &p);
    if (n <= 0)
        return sc_openssl_error(e, SC_ECRYPTO, "encoding a certificate");
    *der = malloc((size_t)n);
    if (!*der) {
        OPENSSL_free(p);
        return sc_error_set(e, SC_ENOMEM, "out of memory");
    }
    memcpy(*der, p, (size_t)n);
    OPENSSL_free(p);
    *len = (size_t)n;
    return 0;
}

int nd_tls_issuer_der(const char *node_dir, uint8_t **der, size_t *len, sc_error *e)
{
    tls_paths p;
    nd_config cfg;
    X509 *leaf = NULL, **cas = NULL;
    size_t n = 0;
    int rc;
    *der = NULL;
    if ((rc = paths(node_dir, &p, e)) || (rc = nd_config_load(node_dir, &cfg, e)) ||
        (rc = sn_x509_load_cert(cfg.tls_cert, &leaf, e)))
        return rc;
    rc = load_certs(access(p.own_ca, F_OK) == 0 ? p.own_ca : cfg.tls_ca, &cas, &n, e);
    for (size_t i = 0; !rc && i < n; i++) {
        EVP_PKEY *k = X509_get0_pubkey(cas[i]);
        if (X509_check_issued(cas[i], leaf) == X509_V_OK && k && X509_verify(leaf, k) == 1) {
            rc = cert_der(cas[i], der, len, e);
            break;
        }
    }
    ERR_clear_error();
    if (!rc && !*der)
        rc = sc_error_set(e, SC_ENOTFOUND, "no CA in %s issued %s", cfg.tls_ca, cfg.tls_cert);
    free_certs(cas, n);
    X509_free(leaf);
    return rc;
}

int nd_tls_trust_ca(const char *node_dir, const uint8_t *der, size_t len, int *added, sc_error *e)
{
    nd_config cfg;
    X509 **cas = NULL, *c = NULL;
    size_t n = 0;
    const unsigned char *q = der;
    char real_dir[ND_PATH_MAX], real_ca[ND_PATH_MAX];
    int rc;
    *added = 0;
    if ((rc = nd_config_load(node_dir, &cfg, e)))
        return rc;
    if (!(c = d2i_X509(NULL, &q, (long)len)) || q != der + len) {
        X509_free(c);
        return sc_openssl_error(e, SC_EFORMAT, "the card's CA certificate");
    }
    rc = load_certs(cfg.tls_ca, &cas, &n, e);
    for (size_t i = 0; !rc && i < n; i++)
        if (X509_cmp(cas[i], c) == 0)
            goto out; /* held already */
    if (rc)
        goto out;
    if (!realpath(node_dir, real_dir) || !realpath(cfg.tls_ca, real_ca) ||
        strncmp(real_ca, real_dir, strlen(real_dir)) || real_ca[strlen(real_dir)] != '/') {
        rc = sc_error_set(e, SC_EPERM,
                          "the CA file %s is not the node's own: add the peer's CA certificate "
                          "to it by hand",
                          cfg.tls_ca);
        goto out;
    }
    FILE *f = fopen(cfg.tls_ca, "a");
    if (!f) {
        rc = sc_error_set(e, SC_EIO, "%s: %s", cfg.tls_ca, strerror(errno));
        goto out;
    }
    if (PEM_write_X509(f, c) != 1) {
        fclose(f);
        rc = sc_openssl_error(e, SC_EIO, cfg.tls_ca);
        goto out;
    }
    if (fflush(f) || fsync(fileno(f))) {
        fclose(f);
        rc = sc_error_set(e, SC_EIO, "%s: %s", cfg.tls_ca, strerror(errno));
        goto out;
    }
    if (fclose(f)) {
        rc = sc_error_set(e, SC_EIO, "%s: %s", cfg.tls_ca, strerror(errno));
        goto out;
    }
    *added = 1;
out:
    free_certs(cas, n);
    X509_free(c);
    return rc;
}

/* ---------------------------------------------------------------- rotation */

static int next_paths(const tls_paths *p, char *cert, char *key, sc_error *e)
{
    int rc;
    if ((rc = sc_path_join(cert, ND_PATH_MAX, p->dir, "node-next.pem", e)) ||
        (rc = sc_path_join(key, ND_PATH_MAX, p->dir, "node-next.key", e)))
        return rc;
    return 0;
}

int nd_tls_rotate_stage(const char *node_dir, const nd_tls_req *req,
                        unsigned char new_pin[SC_PIN_LEN], sc_error *e)
{
    tls_paths p;
    char cert[ND_PATH_MAX], key[ND_PATH_MAX];
    int rc;
    if ((rc = paths(node_dir, &p, e)) || (rc = next_paths(&p, cert, key, e)))
        return rc;
    if (access(p.own_ca_key, F_OK) != 0)
        return sc_error_set(e, SC_ENOTFOUND,
                            "%s missing: only a node that is its own CA makes its next TLS key "
                            "here (with another CA, see docs/tls.md)",
                            p.own_ca_key);
    if (access(cert, F_OK) == 0)
        return sc_error_set(e, SC_EEXIST,
                            "a next TLS key is staged already (%s): switch to it first "
                            "('sldd keys rotate-tls --switch')",
                            cert);
    sn_x509_node_req xr = {req->id, req->alt_names, req->n_alt, ND_TLS_CERT_DAYS};
    return sn_x509_make_node_cert(p.own_ca, p.own_ca_key, &xr, cert, key, new_pin, e);
}

int nd_tls_next_pin(const char *node_dir, unsigned char pin[SC_PIN_LEN], sc_error *e)
{
    tls_paths p;
    char cert[ND_PATH_MAX], key[ND_PATH_MAX];
    int rc;
    if ((rc = paths(node_dir, &p, e)) || (rc = next_paths(&p, cert, key, e)))
        return rc;
    if (access(cert, F_OK) != 0)
        return SC_ENOTFOUND; /* none staged: not an error worth a message */
    return sn_x509_spki_pin_file(cert, pin, e);
}

int nd_tls_rotate_switch(const char *node_dir, unsigned char new_pin[SC_PIN_LEN], sc_error *e)
{
    tls_paths p;
    char cert[ND_PATH_MAX], key[ND_PATH_MAX], prev_cert[ND_PATH_MAX], prev_key[ND_PATH_MAX];
    int rc;
    if ((rc = paths(node_dir, &p, e)) || (rc = next_paths(&p, cert, key, e)) ||
        (rc = sc_path_join(prev_cert, sizeof prev_cert, p.dir, "node-prev.pem", e)) ||
        (rc = sc_path_join(prev_key, sizeof prev_key, p.dir, "node-prev.key", e)))
        return rc;
    if (access(cert, F_OK) != 0)
        return sc_error_set(e, SC_ENOTFOUND,
                            "no next TLS key staged: 'sldd keys rotate-tls' first");
    if ((rc = sn_x509_spki_pin_file(cert, new_pin, e)))
        return rc;
    /* the key before is kept as node-prev.* (one generation) for a manual
     * roll-back; rename() replaces an older one */
    if (rename(p.cert, prev_cert) || rename(p.key, prev_key) || rename(cert, p.cert) ||
        rename(key, p.key))
        return sc_error_set(e, SC_EIO, "switching TLS keys in %s: %s", p.dir, strerror(errno));
    return 0;
}
