/*
 * sn_x509.c - federation CA, node certificates and public-key pins (see
 * sn_x509.h).
 *
 * Everything here goes through OpenSSL 3's EVP and X509 APIs; each call is
 * checked and its failure carries OpenSSL's own reason.  Files are created
 * exclusively and removed again when anything after their creation fails,
 * so a failed `sldd init --tls` leaves no half-made key behind.
 */
#include "sn_x509.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#define SN_X509_MAX_DAYS      3650
#define SN_X509_MAX_ALT_NAMES 32
#define SC_DNS_NAME_MAX       253

int sc_openssl_error(sc_error *err, int code, const char *what)
{
    char reasons[400];
    size_t used = 0;
    const char *file, *func, *data;
    int line, flags;
    unsigned long e;

    reasons[0] = '\0';
    while ((e = ERR_get_error_all(&file, &line, &func, &data, &flags)) != 0) {
        char one[256];
        int n;
        ERR_error_string_n(e, one, sizeof one);
        if (used + 3 >= sizeof reasons)
            continue; /* keep draining; the first reasons are the useful ones */
        n = snprintf(reasons + used, sizeof reasons - used, "%s%s", used ? "; " : "", one);
        if (n > 0)
            used += (size_t)n < sizeof reasons - used ? (size_t)n : sizeof reasons - used - 1;
        if ((flags & ERR_TXT_STRING) && data && *data && used + 3 < sizeof reasons) {
            n = snprintf(reasons + used, sizeof reasons - used, " (%s)", data);
            if (n > 0)
                used += (size_t)n < sizeof reasons - used ? (size_t)n : sizeof reasons - used - 1;
        }
    }
    (void)file;
    (void)line;
    (void)func;
    return sc_error_set(err, code, "%s: %s", what, used ? reasons : "no OpenSSL reason recorded");
}

int sn_x509_node_id_valid(const char *node_id)
{
    size_t n;
    if (!node_id)
        return 0;
    n = strlen(node_id);
    if (n == 0 || n > SC_NODE_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = node_id[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (i == 0 && !alnum)
            return 0;
        if (!alnum && c != '.' && c != '_' && c != '-')
            return 0;
    }
    return 1;
}

/* A DNS name for a SAN: letters, digits, dots and hyphens only, which also
 * keeps the X509V3 config string below free of separators. */
static int dns_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SC_DNS_NAME_MAX || s[0] == '.' || s[0] == '-')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

static int is_ip_literal(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static int make_p256_key(EVP_PKEY **out, sc_error *err)
{
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    EVP_PKEY *key = NULL;
    int rc = 0;

    if (!pctx)
        return sc_openssl_error(err, SC_ECRYPTO, "EVP_PKEY_CTX_new_from_name(EC)");
    if (EVP_PKEY_keygen_init(pctx) <= 0) {
        rc = sc_openssl_error(err, SC_ECRYPTO, "EVP_PKEY_keygen_init");
        goto out;
    }
    if (EVP_PKEY_CTX_set_group_name(pctx, "P-256") <= 0) {
        rc = sc_openssl_error(err, SC_ECRYPTO, "EVP_PKEY_CTX_set_group_name(P-256)");
        goto out;
    }
    if (EVP_PKEY_keygen(pctx, &key) <= 0) {
        rc = sc_openssl_error(err, SC_ECRYPTO, "EVP_PKEY_keygen");
        goto out;
    }
    *out = key;
out:
    EVP_PKEY_CTX_free(pctx);
    return rc;
}

/* Random positive 159-bit serial (RFC 5280 allows up to 20 octets). */
static int set_random_serial(X509 *cert, sc_error *err)
{
    unsigned char raw[20];
    BIGNUM *bn = NULL;
    int rc = 0;

    if (RAND_bytes(raw, sizeof raw) != 1)
        return sc_openssl_error(err, SC_ECRYPTO, "RAND_bytes(serial)");
    raw[0] &= 0x7f;
    raw[0] |= 0x01; /* never zero, never negative */
    bn = BN_bin2bn(raw, sizeof raw, NULL);
    if (!bn)
        return sc_openssl_error(err, SC_ECRYPTO, "BN_bin2bn(serial)");
    if (!BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)))
        rc = sc_openssl_error(err, SC_ECRYPTO, "BN_to_ASN1_INTEGER(serial)");
    BN_free(bn);
    return rc;
}

static int set_validity(X509 *cert, int days, sc_error *err)
{
    /* Five minutes back so that a peer whose clock is slightly behind does
     * not see a certificate from the future. */
    if (!X509_gmtime_adj(X509_getm_notBefore(cert), -300))
        return sc_openssl_error(err, SC_ECRYPTO, "X509_gmtime_adj(notBefore)");
    if (!X509_time_adj_ex(X509_getm_notAfter(cert), days, 0, NULL))
        return sc_openssl_error(err, SC_ECRYPTO, "X509_time_adj_ex(notAfter)");
    return 0;
}

static int set_subject_cn(X509 *cert, const char *cn, sc_error *err)
{
    X509_NAME *name = X509_get_subject_name(cert);
    if (!name)
        return sc_openssl_error(err, SC_ECRYPTO, "X509_get_subject_name");
    if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
                                    0))
        return sc_openssl_error(err, SC_ECRYPTO, "X509_NAME_add_entry_by_txt(CN)");
    return 0;
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value, sc_error *err)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    int rc = 0;

    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext) {
        char what[96];
        snprintf(what, sizeof what, "X509V3_EXT_conf_nid(%s)", OBJ_nid2sn(nid));
        return sc_openssl_error(err, SC_ECRYPTO, what);
    }
    if (!X509_add_ext(cert, ext, -1))
        rc = sc_openssl_error(err, SC_ECRYPTO, "X509_add_ext");
    X509_EXTENSION_free(ext);
    return rc;
}

/* Open path for writing, failing if it exists. */
static int open_excl(const char *path, mode_t mode, FILE **out, sc_error *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    FILE *f;
    if (fd < 0) {
        int code = errno == EEXIST ? SC_EEXIST : SC_EIO;
        return sc_error_set(err, code, "creating %s: %s", path, strerror(errno));
    }
    /* The mode passed to open() is filtered by the umask; make it exact. */
    if (fchmod(fd, mode) != 0) {
        int e = errno;
        close(fd);
        unlink(path);
        return sc_error_set(err, SC_EIO, "chmod %s: %s", path, strerror(e));
    }
    f = fdopen(fd, "w");
    if (!f) {
        int e = errno;
        close(fd);
        unlink(path);
        return sc_error_set(err, SC_EIO, "fdopen %s: %s", path, strerror(e));
    }
    *out = f;
    return 0;
}

/* Flush, fsync and close f (always closed). */
static int close_synced(FILE *f, const char *path, sc_error *err)
{
    int rc = 0;
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        rc = sc_error_set(err, SC_EIO, "writing %s: %s", path, strerror(errno));
    if (fclose(f) != 0 && rc == 0)
        rc = sc_error_set(err, SC_EIO, "closing %s: %s", path, strerror(errno));
    return rc;
}

/* fsync the directory holding path so the new names survive a crash. */
static int sync_parent_dir(const char *path, sc_error *err)
{
    char copy[4096];
    int fd, rc = 0;
    if (strlen(path) >= sizeof copy)
        return sc_error_set(err, SC_EINVAL, "path too long: %s", path);
    memcpy(copy, path, strlen(path) + 1);
    fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return sc_error_set(err, SC_EIO, "opening directory of %s: %s", path, strerror(errno));
    if (fsync(fd) != 0)
        rc = sc_error_set(err, SC_EIO, "fsync directory of %s: %s", path, strerror(errno));
    close(fd);
    return rc;
}

/*
 * Write key (0600) and cert (0644).  Both files are created before either
 * is written, so an existing file fails the call before anything changes;
 * on any later failure both are removed.
 */
static int write_key_and_cert(const char *key_path, EVP_PKEY *key, const char *cert_path,
                              X509 *cert, sc_error *err)
{
    FILE *kf = NULL, *cf = NULL;
    int rc;

    rc = open_excl(key_path, 0600, &kf, err);
    if (rc)
        return rc;
    rc = open_excl(cert_path, 0644, &cf, err);
    if (rc) {
        fclose(kf);
        unlink(key_path);
        return rc;
    }
    if (!PEM_write_PrivateKey(kf, key, NULL, NULL, 0, NULL, NULL)) {
        rc = sc_openssl_error(err, SC_ECRYPTO, "PEM_write_PrivateKey");
        fclose(kf);
        fclose(cf);
        goto fail;
    }
    if (!PEM_write_X509(cf, cert)) {
        rc = sc_openssl_error(err, SC_ECRYPTO, "PEM_write_X509");
        fclose(kf);
        fclose(cf);
        goto fail;
    }
    rc = close_synced(kf, key_path, err);
    if (rc) {
        fclose(cf);
        goto fail;
    }
    rc = close_synced(cf, cert_path, err);
    if (rc)
        goto fail;
    rc = sync_parent_dir(key_path, err);
    if (!rc)
        rc = sync_parent_dir(cert_path, err);
    if (rc)
        goto fail;
    return 0;
fail:
    unlink(key_path);
    unlink(cert_path);
    return rc;
}

static int check_days(int days, sc_error *err)
{
    if (days < 1 || days > SN_X509_MAX_DAYS)
        return sc_error_set(err, SC_EINVAL, "validity of %d days is outside 1..%d", days,
                            SN_X509_MAX_DAYS);
    return 0;
}

int sn_x509_make_ca(const char *cert_path, const char *key_path, const char *common_name, int days,
                    sc_error *err)
{
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    int rc;

    if (!cert_path || !key_path || !common_name || !*common_name || strlen(common_name) > 64)
        return sc_error_set(err, SC_EINVAL, "make CA: missing paths or bad common name");
    rc = check_days(days, err);
    if (rc)
        return rc;
    ERR_clear_error();
    rc = make_p256_key(&key, err);
    if (rc)
        goto out;
    cert = X509_new();
    if (!cert) {
        rc = sc_openssl_error(err, SC_ENOMEM, "X509_new");
        goto out;
    }
    if (!X509_set_version(cert, X509_VERSION_3)) {
        rc = sc_openssl_error(err, SC_ECRYPTO, "X509_set_version");
        goto out;
    }
    if ((rc = set_random_serial(cert, err)) || (rc = set_validity(cert, days, err)) ||
        (rc = set_subject_cn(cert, common_name, err)))
        goto out;
    if (!X509_set_issuer_name(cert, X509_get_subject_name(cert))) {
        rc = sc_openssl_error(err, SC_ECRYPTO, "X509_set_issuer_name");
        goto out;
    }
    if (!X509_set_pubkey(cert, key)) {
        rc = sc_openssl_error(err, SC_ECRYPTO, "X509_set_pubkey");
        goto out;
    }
    /* pathlen:0 - this CA signs node certificates, never another CA. */
    if ((rc = add_ext(cert, cert, NID_basic_constraints, "critical,CA:TRUE,pathlen:0", err)) ||
        (rc = add_ext(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign", err)) ||
        (rc = add_ext(cert, cert, NID_subject_key_identifier, "hash", err)))
        goto out;
    if (X509_sign(cert, key, EVP_sha256()) <= 0) {
        rc = sc_openssl_error(err, SC_ECRYPTO, "X509_sign(CA)");
        goto out;
    }
    rc = write_key_and_cert(key_path, key, cert_path, cert, err);
out:
    X509_free(cert);
    EVP_PKEY_free(key);
    return rc;
}

int sn_x509_load_cert(const char *cert_path, X509 **out, sc_error *err)
{
    FILE *f;
    X509 *cert;

    if (!cert_path || !out)
        return sc_error_set(err, SC_EINVAL, "load certificate: missing argument");
    f = fopen(cert_path, "re");
    if (!f)
        return sc_error_set(err, errno == ENOENT ? SC_ENOTFOUND : SC_EIO, "opening %s: %s",
                            cert_path, strerror(errno));
    ERR_clear_error();
    cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (!cert) {
        sc_openssl_error(err, SC_EFORMAT, "PEM_read_X509");
        return sc_error_wrap(err, "reading certificate %s", cert_path);
    }
    *out = cert;
    return 0;
}

/* Refuse to prompt on a terminal for an encrypted key: an empty passphrase
 * makes the read fail, which is reported. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

static int load_key(const char *key_path, EVP_PKEY **out, sc_error *err)
{
    FILE *f = fopen(key_path, "re");
    EVP_PKEY *key;
    if (!f)
        return sc_error_set(err, errno == ENOENT ? SC_ENOTFOUND : SC_EIO, "opening %s: %s",
                            key_path, strerror(errno));
    ERR_clear_error();
    key = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL);
    fclose(f);
    if (!key) {
        sc_openssl_error(err, SC_EFORMAT, "PEM_read_PrivateKey");
        return sc_error_wrap(err, "reading key %s (encrypted keys are not supported)", key_path);
    }
    *out = key;
    return 0;
}

static int build_san(const sn_x509_node_req *req, char *out, size_t out_size, sc_error *err)
{
    size_t used;
    int n = snprintf(out, out_size, "DNS:localhost,IP:127.0.0.1");
    if (n < 0 || (size_t)n >= out_size)
        return sc_error_set(err, SC_EINVAL, "subjectAltName too long");
    used = (size_t)n;
    if (req->n_alt_names > SN_X509_MAX_ALT_NAMES)
        return sc_error_set(err, SC_EINVAL, "more than %d alternative names",
                            SN_X509_MAX_ALT_NAMES);
    for (size_t i = 0; i < req->n_alt_names; i++) {
        const char *name = req->alt_names[i];
        const char *kind;
        if (!name)
            return sc_error_set(err, SC_EINVAL, "alternative name %zu is NULL", i);
        if (!strcmp(name, "localhost") || !strcmp(name, "127.0.0.1"))
            continue;
        if (is_ip_literal(name))
            kind = "IP";
        else if (dns_name_valid(name))
            kind = "DNS";
        else
            return sc_error_set(err, SC_EINVAL,
                                "alternative name '%s' is neither an IP address nor a DNS name",
                                name);
        n = snprintf(out + used, out_size - used, ",%s:%s", kind, name);
        if (n < 0 || (size_t)n >= out_size - used)
            return sc_error_set(err, SC_EINVAL, "subjectAltName too long");
        used += (size_t)n;
    }
    return 0;
}

int sn_x509_make_node_cert(const char *ca_cert_path, const char *ca_key_path,
                           const sn_x509_node_req *req, const char *cert_path, const char *key_path,
                           unsigned char pin[SC_PIN_LEN], sc_error *err)
{
    X509 *ca = NULL, *cert = NULL;
    EVP_PKEY *ca_key = NULL, *key = NULL;
    char san[SN_X509_MAX_ALT_NAMES * (SC_DNS_NAME_MAX + 6) + 64];
    int rc;

    if (!ca_cert_path || !ca_key_path || !req || !cert_path || !key_path)
        return sc_error_set(err, SC_EINVAL, "make node certificate: missing argument");
    if (!sn_x509_node_id_valid(req->node_id))
        return sc_error_set(err, SC_EINVAL,
                            "node id '%s' is not 1..%d characters of [A-Za-z0-9._-]",
                            req->node_id ? req->node_id : "(null)", SC_NODE_ID_MAX);
    if ((rc = check_days(req->days, err)) || (rc = build_san(req, san, sizeof san, err)))
        return rc;
    if ((rc = sn_x509_load_cert(ca_cert_path, &ca, err)) ||
        (rc = load_key(ca_key_path, &ca_key, err)))
        goto out;
    ERR_clear_error();
    if (X509_check_private_key(ca, ca_key) != 1) {
        rc = sc_openssl_error(err, SC_EINVAL, "X509_check_private_key");
        sc_error_wrap(err, "CA key %s does not belong to %s", ca_key_path, ca_cert_path);
        goto out;
    }
    if (X509_check_ca(ca) < 1) {
        rc = sc_error_set(err, SC_EINVAL, "%s is not a CA certificate", ca_cert_path);
        goto out;
    }
    if ((rc = make_p256_key(&key, err)))
        goto out;
    cert = X509_new();
    if (!cert) {
        rc = sc_openssl_error(err, SC_ENOMEM, "X509_new");
        goto out;
    }
    if (!X509_set_version(cert, X509_VERSION_3)) {
        rc = sc_openssl_error(err, SC_ECRYPTO, "X509_set_version");
        goto out;
    }
    if ((rc = set_random_serial(cert, err)) || (rc = set_validity(cert, req->days, err)) ||
        (rc = set_subject_cn(cert, req->node_id, err)))
        goto out;
    if (!X509_set_issuer_name(cert, X509_get_subject_name(ca))) {
        rc = sc_openssl_error(err, SC_ECRYPTO, "X509_set_issuer_name");
        goto out;
    }
    if (!X509_set_pubkey(cert, key)) {
        rc = sc_openssl_error(err, SC_ECRYPTO, "X509_set_pubkey");
        goto out;
    }
    if ((rc = add_ext(cert, ca, NID_basic_constraints, "critical,CA:FALSE", err)) ||
        (rc = add_ext(cert, ca, NID_key_usage, "critical,digitalSignature", err)) ||
        (rc = add_ext(cert, ca, NID_ext_key_usage, "serverAuth,clientAuth", err)) ||
        (rc = add_ext(cert, ca, NID_subject_alt_name, san, err)) ||
        (rc = add_ext(cert, ca, NID_subject_key_identifier, "hash", err)) ||
        (rc = add_ext(cert, ca, NID_authority_key_identifier, "keyid:always", err)))
        goto out;
    if (X509_sign(cert, ca_key, EVP_sha256()) <= 0) {
        rc = sc_openssl_error(err, SC_ECRYPTO, "X509_sign(node)");
        goto out;
    }
    if (pin && (rc = sn_x509_spki_pin(cert, pin, err)))
        goto out;
    rc = write_key_and_cert(key_path, key, cert_path, cert, err);
out:
    X509_free(cert);
    X509_free(ca);
    EVP_PKEY_free(key);
    EVP_PKEY_free(ca_key);
    return rc;
}

int sn_x509_spki_pin(X509 *cert, unsigned char pin[SC_PIN_LEN], sc_error *err)
{
    X509_PUBKEY *pub;
    unsigned char *der = NULL;
    unsigned int md_len = 0;
    int len, rc = 0;

    if (!cert || !pin)
        return sc_error_set(err, SC_EINVAL, "spki pin: missing argument");
    pub = X509_get_X509_PUBKEY(cert);
    if (!pub)
        return sc_openssl_error(err, SC_EFORMAT, "X509_get_X509_PUBKEY");
    len = i2d_X509_PUBKEY(pub, &der); /* allocates der */
    if (len <= 0 || !der)
        return sc_openssl_error(err, SC_ECRYPTO, "i2d_X509_PUBKEY");
    if (EVP_Digest(der, (size_t)len, pin, &md_len, EVP_sha256(), NULL) != 1 || md_len != SC_PIN_LEN)
        rc = sc_openssl_error(err, SC_ECRYPTO, "EVP_Digest(SHA-256)");
    OPENSSL_free(der);
    return rc;
}

int sn_x509_spki_pin_file(const char *cert_path, unsigned char pin[SC_PIN_LEN], sc_error *err)
{
    X509 *cert = NULL;
    int rc = sn_x509_load_cert(cert_path, &cert, err);
    if (rc)
        return rc;
    rc = sn_x509_spki_pin(cert, pin, err);
    X509_free(cert);
    return rc;
}

int sn_x509_common_name(X509 *cert, char *out, size_t out_size, sc_error *err)
{
    X509_NAME *name;
    X509_NAME_ENTRY *entry;
    unsigned char *utf8 = NULL;
    int idx, len, rc = 0;

    if (!cert || !out || out_size == 0)
        return sc_error_set(err, SC_EINVAL, "common name: missing argument");
    name = X509_get_subject_name(cert);
    idx = name ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;
    if (idx < 0)
        return sc_error_set(err, SC_EFORMAT, "certificate has no common name");
    entry = X509_NAME_get_entry(name, idx);
    if (!entry)
        return sc_openssl_error(err, SC_EFORMAT, "X509_NAME_get_entry");
    len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(entry));
    if (len < 0)
        return sc_openssl_error(err, SC_EFORMAT, "ASN1_STRING_to_UTF8");
    if ((size_t)len >= out_size || memchr(utf8, '\0', (size_t)len))
        rc = sc_error_set(err, SC_EFORMAT, "common name too long or contains NUL");
    else {
        memcpy(out, utf8, (size_t)len);
        out[len] = '\0';
    }
    OPENSSL_free(utf8);
    return rc;
}

int sn_x509_pin_to_b64(const unsigned char pin[SC_PIN_LEN], char *out, size_t out_size)
{
    if (!pin || !out || out_size < SC_PIN_B64_SIZE)
        return SC_EINVAL;
    if (EVP_EncodeBlock((unsigned char *)out, pin, SC_PIN_LEN) != SC_PIN_B64_SIZE - 1)
        return SC_ECRYPTO;
    return 0;
}

int sn_x509_pin_to_hex(const unsigned char pin[SC_PIN_LEN], char *out, size_t out_size)
{
    static const char digits[] = "0123456789abcdef";
    if (!pin || !out || out_size < SC_PIN_HEX_SIZE)
        return SC_EINVAL;
    for (size_t i = 0; i < SC_PIN_LEN; i++) {
        out[2 * i] = digits[pin[i] >> 4];
        out[2 * i + 1] = digits[pin[i] & 15];
    }
    out[2 * SC_PIN_LEN] = '\0';
    return 0;
}

int sn_x509_pin_to_curl(const unsigned char pin[SC_PIN_LEN], char *out, size_t out_size)
{
    if (!out || out_size < SC_PIN_CURL_SIZE)
        return SC_EINVAL;
    memcpy(out, "sha256//", 8);
    return sn_x509_pin_to_b64(pin, out + 8, out_size - 8);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int sn_x509_pin_parse(const char *text, unsigned char pin[SC_PIN_LEN], sc_error *err)
{
    size_t n;
    if (!text || !pin)
        return sc_error_set(err, SC_EINVAL, "pin: missing argument");
    if (!strncmp(text, "sha256//", 8))
        text += 8;
    n = strlen(text);
    if (n == 2 * SC_PIN_LEN) {
        for (size_t i = 0; i < SC_PIN_LEN; i++) {
            int hi = hexval(text[2 * i]), lo = hexval(text[2 * i + 1]);
            if (hi < 0 || lo < 0)
                return sc_error_set(err, SC_EFORMAT, "pin: not a hex digit in '%s'", text);
            pin[i] = (unsigned char)(hi << 4 | lo);
        }
        return 0;
    }
    if (n == SC_PIN_B64_SIZE - 1) {
        unsigned char buf[36];
        char again[SC_PIN_B64_SIZE];
        /* EVP_DecodeBlock counts the padding byte: 44 chars decode to 33. */
        if (EVP_DecodeBlock(buf, (const unsigned char *)text, (int)n) != SC_PIN_LEN + 1)
            return sc_error_set(err, SC_EFORMAT, "pin: bad base64 '%s'", text);
        memcpy(pin, buf, SC_PIN_LEN);
        /* Only the canonical encoding is accepted, so a pin has one spelling. */
        if (sn_x509_pin_to_b64(pin, again, sizeof again) != 0 || strcmp(again, text) != 0)
            return sc_error_set(err, SC_EFORMAT, "pin: non-canonical base64 '%s'", text);
        return 0;
    }
    return sc_error_set(err, SC_EFORMAT,
                        "pin: expected 64 hex digits or 44 base64 characters, got %zu "
                        "characters",
                        n);
}
