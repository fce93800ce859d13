/*
 * test_net_x509.c - the federation CA, node certificates, pins and the
 * peer table (net/sn_x509, net/sn_tls).
 *
 * The independent oracle is the OpenSSL command-line tool: it verifies the
 * chain, prints the extensions, and computes the SPKI pin the documented
 * way (x509 -pubkey | pkey -pubin -outform der | dgst -sha256 | base64);
 * ours must agree byte for byte.  When the tool is missing those checks
 * are skipped and said so.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/x509v3.h>

#include "../sd_test.h"
#include "sn_tls.h"
#include "sn_x509.h"

static char dir[64];

static const char *path_in(const char *name)
{
    static char bufs[8][256];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, 256, "%s/%s", dir, name);
    return b;
}

static int have_openssl(void)
{
    return !strstr(SN_TEST_OPENSSL, "NOTFOUND") && access(SN_TEST_OPENSSL, X_OK) == 0;
}

/* Run a shell command, capture up to out_size-1 bytes of its output. */
static int run_capture(const char *cmd, char *out, size_t out_size)
{
    FILE *p = popen(cmd, "r");
    size_t n = 0;
    int st;
    out[0] = '\0';
    if (!p)
        return -1;
    while (n + 1 < out_size) {
        size_t r = fread(out + n, 1, out_size - 1 - n, p);
        if (r == 0)
            break;
        n += r;
    }
    out[n] = '\0';
    st = pclose(p);
    return st;
}

static mode_t file_mode(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return (mode_t)-1;
    return st.st_mode & 0777;
}

static void test_ca_and_node(void)
{
    sc_error e;
    unsigned char pin[SC_PIN_LEN], pin2[SC_PIN_LEN];
    const char *alts[] = {"hospital-b.example", "10.1.2.3", "::1", "localhost"};
    sn_x509_node_req req = {"hospital-b", alts, 4, 30};
    char cn[80], b64[SC_PIN_B64_SIZE], out[8192], cmd[1024];
    X509 *ca = NULL, *node = NULL;
    int rc;

    sc_error_clear(&e);
    rc = sn_x509_make_ca(path_in("ca.pem"), path_in("ca.key"), "Test Federation CA", 365, &e);
    CHECKF(rc == 0, "%s", e.msg);
    CHECK(file_mode(path_in("ca.key")) == 0600);
    CHECK(file_mode(path_in("ca.pem")) == 0644);

    /* O_EXCL: a second CA over the first is refused and changes nothing. */
    {
        unsigned char before[SC_PIN_LEN], after[SC_PIN_LEN];
        CHECK(sn_x509_spki_pin_file(path_in("ca.pem"), before, &e) == 0);
        rc = sn_x509_make_ca(path_in("ca.pem"), path_in("ca.key"), "Again", 365, &e);
        CHECK(rc == SC_EEXIST);
        CHECK(sn_x509_spki_pin_file(path_in("ca.pem"), after, &e) == 0);
        CHECK(memcmp(before, after, SC_PIN_LEN) == 0);
    }

    rc = sn_x509_make_node_cert(path_in("ca.pem"), path_in("ca.key"), &req, path_in("b.pem"),
                                path_in("b.key"), pin, &e);
    CHECKF(rc == 0, "%s", e.msg);
    CHECK(file_mode(path_in("b.key")) == 0600);
    CHECK(sn_x509_spki_pin_file(path_in("b.pem"), pin2, &e) == 0);
    CHECK(memcmp(pin, pin2, SC_PIN_LEN) == 0);
    rc = sn_x509_make_node_cert(path_in("ca.pem"), path_in("ca.key"), &req, path_in("b.pem"),
                                path_in("b2.key"), NULL, &e);
    CHECK(rc == SC_EEXIST);
    CHECK(access(path_in("b2.key"), F_OK) != 0); /* nothing left behind */

    CHECK(sn_x509_load_cert(path_in("ca.pem"), &ca, &e) == 0);
    CHECK(sn_x509_load_cert(path_in("b.pem"), &node, &e) == 0);
    if (ca && node) {
        EVP_PKEY *ca_pub = X509_get0_pubkey(ca);
        CHECK(X509_check_ca(ca) >= 1);
        CHECK(X509_check_ca(node) == 0);
        CHECK(X509_verify(node, ca_pub) == 1);
        CHECK(X509_verify(ca, ca_pub) == 1);
        CHECK((X509_get_extension_flags(node) & EXFLAG_XKUSAGE) != 0);
        CHECK((X509_get_extended_key_usage(node) & (XKU_SSL_SERVER | XKU_SSL_CLIENT)) ==
              (XKU_SSL_SERVER | XKU_SSL_CLIENT));
        CHECK((X509_get_key_usage(node) & KU_DIGITAL_SIGNATURE) != 0);
        CHECK((X509_get_key_usage(ca) & KU_KEY_CERT_SIGN) != 0);
        CHECK(X509_check_host(node, "localhost", 0, 0, NULL) == 1);
        CHECK(X509_check_host(node, "hospital-b.example", 0, 0, NULL) == 1);
        CHECK(X509_check_host(node, "hospital-c.example", 0, 0, NULL) == 0);
        CHECK(X509_check_ip_asc(node, "127.0.0.1", 0) == 1);
        CHECK(X509_check_ip_asc(node, "10.1.2.3", 0) == 1);
        CHECK(X509_check_ip_asc(node, "::1", 0) == 1);
        CHECK(X509_check_ip_asc(node, "10.1.2.4", 0) == 0);
        CHECK(sn_x509_common_name(node, cn, sizeof cn, &e) == 0 && !strcmp(cn, "hospital-b"));
        CHECK(sn_x509_common_name(ca, cn, sizeof cn, &e) == 0 && !strcmp(cn, "Test Federation CA"));
        CHECK(sn_x509_common_name(node, cn, 5, &e) == SC_EFORMAT);
    }
    X509_free(ca);
    X509_free(node);

    if (!have_openssl()) {
        printf("openssl CLI not found: skipping the cross-checks against it\n");
        return;
    }
    snprintf(cmd, sizeof cmd, "'%s' verify -CAfile '%s' '%s' 2>&1", SN_TEST_OPENSSL,
             path_in("ca.pem"), path_in("b.pem"));
    rc = run_capture(cmd, out, sizeof out);
    CHECKF(rc == 0 && strstr(out, ": OK"), "openssl verify: %s", out);

    snprintf(cmd, sizeof cmd,
             "'%s' x509 -in '%s' -pubkey -noout | '%s' pkey -pubin -outform der | "
             "'%s' dgst -sha256 -binary | '%s' base64",
             SN_TEST_OPENSSL, path_in("b.pem"), SN_TEST_OPENSSL, SN_TEST_OPENSSL, SN_TEST_OPENSSL);
    rc = run_capture(cmd, out, sizeof out);
    CHECK(sn_x509_pin_to_b64(pin, b64, sizeof b64) == 0);
    CHECKF(rc == 0 && !strncmp(out, b64, strlen(b64)), "openssl pin %s vs ours %s", out, b64);

    snprintf(cmd, sizeof cmd, "'%s' x509 -in '%s' -noout -text", SN_TEST_OPENSSL,
             path_in("ca.pem"));
    rc = run_capture(cmd, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "CA:TRUE") && strstr(out, "Certificate Sign") &&
          strstr(out, "prime256v1"));
    snprintf(cmd, sizeof cmd, "'%s' x509 -in '%s' -noout -text", SN_TEST_OPENSSL, path_in("b.pem"));
    rc = run_capture(cmd, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "CA:FALSE") &&
          strstr(out, "TLS Web Server Authentication, TLS Web Client Authentication") &&
          strstr(out, "DNS:localhost") && strstr(out, "IP Address:127.0.0.1") &&
          strstr(out, "DNS:hospital-b.example") && strstr(out, "Subject: CN = hospital-b"));
    /* The key file is a PKCS#8 P-256 key the CLI can read. */
    snprintf(cmd, sizeof cmd, "'%s' pkey -in '%s' -noout -text 2>&1", SN_TEST_OPENSSL,
             path_in("b.key"));
    rc = run_capture(cmd, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "P-256"));
}

static void test_refusals(void)
{
    sc_error e;
    const char *bad_alt[] = {"a,DNS:evil.example"};
    const char *bad_alt2[] = {"has space"};
    sn_x509_node_req req = {"hospital-c", NULL, 0, 30};
    unsigned char pin[SC_PIN_LEN];
    int rc;

    sc_error_clear(&e);
    req.node_id = "bad id";
    CHECK(sn_x509_make_node_cert(path_in("ca.pem"), path_in("ca.key"), &req, path_in("x.pem"),
                                 path_in("x.key"), NULL, &e) == SC_EINVAL);
    req.node_id = "-leading";
    CHECK(sn_x509_make_node_cert(path_in("ca.pem"), path_in("ca.key"), &req, path_in("x.pem"),
                                 path_in("x.key"), NULL, &e) == SC_EINVAL);
    req.node_id = "hospital-c";
    req.alt_names = bad_alt;
    req.n_alt_names = 1;
    CHECK(sn_x509_make_node_cert(path_in("ca.pem"), path_in("ca.key"), &req, path_in("x.pem"),
                                 path_in("x.key"), NULL, &e) == SC_EINVAL);
    req.alt_names = bad_alt2;
    CHECK(sn_x509_make_node_cert(path_in("ca.pem"), path_in("ca.key"), &req, path_in("x.pem"),
                                 path_in("x.key"), NULL, &e) == SC_EINVAL);
    req.alt_names = NULL;
    req.n_alt_names = 0;
    req.days = 0;
    CHECK(sn_x509_make_node_cert(path_in("ca.pem"), path_in("ca.key"), &req, path_in("x.pem"),
                                 path_in("x.key"), NULL, &e) == SC_EINVAL);
    req.days = 30;
    /* A CA key that does not belong to the CA certificate. */
    rc = sn_x509_make_ca(path_in("other.pem"), path_in("other.key"), "Other CA", 30, &e);
    CHECKF(rc == 0, "%s", e.msg);
    rc = sn_x509_make_node_cert(path_in("ca.pem"), path_in("other.key"), &req, path_in("x.pem"),
                                path_in("x.key"), NULL, &e);
    CHECK(rc == SC_EINVAL);
    CHECKF(strstr(e.msg, "does not belong"), "%s", e.msg);
    /* A node certificate is not a CA. */
    rc = sn_x509_make_node_cert(path_in("b.pem"), path_in("b.key"), &req, path_in("x.pem"),
                                path_in("x.key"), NULL, &e);
    CHECK(rc == SC_EINVAL);
    CHECK(access(path_in("x.pem"), F_OK) != 0 && access(path_in("x.key"), F_OK) != 0);

    CHECK(sn_x509_spki_pin_file(path_in("missing.pem"), pin, &e) == SC_ENOTFOUND);
    {
        FILE *f = fopen(path_in("garbage.pem"), "w");
        if (f) {
            fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n", f);
            fclose(f);
        }
        rc = sn_x509_spki_pin_file(path_in("garbage.pem"), pin, &e);
        CHECK(rc == SC_EFORMAT);
        /* The OpenSSL reason made it into the message. */
        CHECKF(strstr(e.msg, "PEM_read_X509:") && strstr(e.msg, "error:"), "%s", e.msg);
    }
}

static void test_pins(void)
{
    sc_error e;
    unsigned char pin[SC_PIN_LEN], back[SC_PIN_LEN];
    char b64[SC_PIN_B64_SIZE], hex[SC_PIN_HEX_SIZE], curl[SC_PIN_CURL_SIZE], small[10];

    for (int i = 0; i < SC_PIN_LEN; i++)
        pin[i] = (unsigned char)(i * 37 + 5);
    CHECK(sn_x509_pin_to_b64(pin, b64, sizeof b64) == 0 && strlen(b64) == 44);
    CHECK(sn_x509_pin_to_hex(pin, hex, sizeof hex) == 0 && strlen(hex) == 64);
    CHECK(sn_x509_pin_to_curl(pin, curl, sizeof curl) == 0 && !strncmp(curl, "sha256//", 8) &&
          !strcmp(curl + 8, b64));
    CHECK(sn_x509_pin_to_b64(pin, small, sizeof small) == SC_EINVAL);
    CHECK(sn_x509_pin_to_hex(pin, small, sizeof small) == SC_EINVAL);
    CHECK(sn_x509_pin_to_curl(pin, small, sizeof small) == SC_EINVAL);
    memset(back, 0, sizeof back);
    CHECK(sn_x509_pin_parse(b64, back, &e) == 0 && !memcmp(back, pin, SC_PIN_LEN));
    memset(back, 0, sizeof back);
    CHECK(sn_x509_pin_parse(hex, back, &e) == 0 && !memcmp(back, pin, SC_PIN_LEN));
    memset(back, 0, sizeof back);
    CHECK(sn_x509_pin_parse(curl, back, &e) == 0 && !memcmp(back, pin, SC_PIN_LEN));
    CHECK(sn_x509_pin_parse("", back, &e) == SC_EFORMAT);
    CHECK(sn_x509_pin_parse("sha256//abc", back, &e) == SC_EFORMAT);
    hex[5] = 'g';
    CHECK(sn_x509_pin_parse(hex, back, &e) == SC_EFORMAT);
    /* A different last base64 digit that decodes to the same bytes is not
     * the canonical spelling and is refused. */
    {
        char alt[SC_PIN_B64_SIZE];
        snprintf(alt, sizeof alt, "%s", b64);
        alt[42] = alt[42] == 'A' ? 'B' : (char)(alt[42] ^ 1);
        if (sn_x509_pin_parse(alt, back, &e) == 0)
            CHECK(memcmp(back, pin, SC_PIN_LEN) != 0);
        else
            CHECK(1);
        snprintf(alt, sizeof alt, "%s", b64);
        alt[43] = 'A'; /* '=' replaced: 45 bytes of data would be needed */
        CHECK(sn_x509_pin_parse(alt, back, &e) != 0);
    }
}

static void test_peer_table(void)
{
    sc_error e;
    sn_tls_peers *p = NULL;
    unsigned char a[SC_PIN_LEN], b[SC_PIN_LEN], c[SC_PIN_LEN];
    char id[SC_NODE_ID_MAX + 1];

    memset(a, 1, sizeof a);
    memset(b, 2, sizeof b);
    memset(c, 3, sizeof c);
    CHECK(sn_tls_peers_create(&p, &e) == 0);
    CHECK(sn_tls_peers_add(p, "hospital-a", a, &e) == 0);
    CHECK(sn_tls_peers_add(p, "hospital-a", b, &e) == 0); /* rotation: two pins */
    CHECK(sn_tls_peers_add(p, "hospital-a", b, &e) == 0); /* same pair: no-op */
    CHECK(sn_tls_peers_add(p, "hospital-b", b, &e) == SC_EEXIST);
    CHECK(sn_tls_peers_add(p, "bad id", c, &e) == SC_EINVAL);
    CHECK(sn_tls_peers_lookup(p, a, id, sizeof id) == 0 && !strcmp(id, "hospital-a"));
    CHECK(sn_tls_peers_lookup(p, b, id, sizeof id) == 0 && !strcmp(id, "hospital-a"));
    CHECK(sn_tls_peers_lookup(p, c, id, sizeof id) == SC_ENOTFOUND);
    CHECK(sn_tls_peers_lookup(p, a, id, 4) == SC_EINVAL);
    CHECK(sn_tls_peers_remove_pin(p, a) == 1);
    CHECK(sn_tls_peers_remove_pin(p, a) == 0);
    CHECK(sn_tls_peers_lookup(p, a, id, sizeof id) == SC_ENOTFOUND);
    CHECK(sn_tls_peers_add(p, "hospital-c", c, &e) == 0);
    CHECK(sn_tls_peers_remove_node(p, "hospital-a") == 1);
    CHECK(sn_tls_peers_lookup(p, b, id, sizeof id) == SC_ENOTFOUND);
    CHECK(sn_tls_peers_lookup(p, c, id, sizeof id) == 0 && !strcmp(id, "hospital-c"));
    sn_tls_peers_destroy(p);
    sn_tls_peers_destroy(NULL);

    CHECK(sn_x509_node_id_valid("hospital-a"));
    CHECK(sn_x509_node_id_valid("H.1_x-2"));
    CHECK(!sn_x509_node_id_valid(""));
    CHECK(!sn_x509_node_id_valid(".hidden"));
    CHECK(!sn_x509_node_id_valid("a/b"));
    CHECK(!sn_x509_node_id_valid("a\"b"));
    CHECK(!sn_x509_node_id_valid(
        "a1234567890123456789012345678901234567890123456789012345678901234")); /* 65 */
}

int main(void)
{
    char cmd[128];
    snprintf(dir, sizeof dir, "/tmp/sn_x509_XXXXXX");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    test_ca_and_node();
    test_refusals();
    test_pins();
    test_peer_table();
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return sd_test_finish();
}
