/*
 * cmd_keys.c - `sldd keys`: this node's public keys, fingerprints and TLS
 * pin (show), the peer record and the signed contact card other nodes
 * import (export, export-card: nd_cli_card.c), TLS for a node made before
 * every node had it (tls-init), and rotation of the signing and TLS keys
 * with an overlap (rotate-sign, rotate-tls; docs/keys.md).
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "nd_cli_words.h"
#include "nd_audit.h"
#include "nd_cli_card.h"
#include "nd_cli_dir.h"
#include "sc_keys.h"
#include "nd_node.h"
#include "nd_state.h"
#include "nd_tlsinit.h"
#include "sb_parse.h"
#include "sc_keys.h"
#include "sc_util.h"

static void keys_usage(FILE *f)
{
    fprintf(f, "usage: sldd keys show --dir NODE [--json]\n"
               "       sldd keys export --dir NODE [--out FILE]\n"
               "       sldd keys export-card --dir NODE --url https://HOST:PORT [--valid-days N]\n"
               "                             [--out FILE]\n"
               "       sldd keys tls-init --dir NODE [--listen ADDR:PORT] [--alt-name NAME]...\n"
               "       sldd keys rotate-sign --dir NODE [--overlap-days N]\n"
               "       sldd keys rotate-tls --dir NODE [--alt-name NAME]... | --switch\n"
               "\n"
               "show:        public keys with their fingerprints (SHA-256 of the key) and\n"
               "             the TLS pin peers need\n"
               "export:      the peer record (node id, keys, admin keys)\n"
               "export-card: the signed contact card (keys, admins, TLS pins, URL)\n"
               "tls-init:    a TLS key and certificate for a node made without one\n"
               "rotate-sign: a new signing key; the old one stays valid for N days (7)\n"
               "rotate-tls:  stage a new TLS key (published in the card), then --switch\n"
               "             to it once the peers hold that card\n");
}

static void show_key(const char *label, const uint8_t pk[32], int json, int last)
{
    char b64[64], hex[65], fp[64];
    uint8_t kid[32];
    sc_b64_encode(b64, pk, 32);
    sc_key_id(kid, pk);
    sc_hex_encode(hex, kid, 32);
    sc_fingerprint_text(fp, pk);
    if (json)
        printf("{\"key\":\"%s\",\"public\":\"%s\",\"fingerprint\":\"%s\",\"key_id\":\"%s\"}%s",
               label, b64, fp, hex, last ? "" : ",");
    else
        printf("%s\n  public      %s\n  fingerprint %s\n  key id      %s\n", label, b64, fp, hex);
}

static int keys_show(const char *dir, const sc_peer *self, int json)
{
    unsigned char pin[SC_PIN_LEN], next[SC_PIN_LEN];
    char pc[SC_PIN_CURL_SIZE] = "", nc[SC_PIN_CURL_SIZE] = "";
    sc_error e = {0, ""};
    int have_pin = nd_tls_own_pin(dir, pin, &e) == 0 && !sn_x509_pin_to_curl(pin, pc, sizeof pc);
    int have_next =
        nd_tls_next_pin(dir, next, NULL) == 0 && !sn_x509_pin_to_curl(next, nc, sizeof nc);
    if (json) {
        printf("{\"node\":\"%s\",\"tls_pin\":\"%s\",\"tls_pin_next\":\"%s\",\"keys\":[", self->id,
               pc, nc);
        show_key("sign", self->sign_pk, 1, 0);
        show_key("enc", self->enc_pk, 1, !self->prev_until);
        if (self->prev_until)
            show_key("sign-previous", self->prev_sign_pk, 1, 1);
        printf("],\"sign_previous_until\":%" PRId64 ",\"admins\":[", self->prev_until);
        for (size_t i = 0; i < self->n_admins; i++)
            show_key(self->admins[i].name, self->admins[i].pk, 1, i + 1 == self->n_admins);
        printf("]}\n");
        return 0;
    }
    printf("node %s\n", self->id);
    show_key("signing key (Ed25519)", self->sign_pk, 0, 0);
    if (self->prev_until) {
        printf("previous signing key, accepted until %" PRId64 "\n", self->prev_until);
        show_key("  (previous)", self->prev_sign_pk, 0, 0);
    }
    show_key("encryption key (X25519)", self->enc_pk, 0, 0);
    if (have_pin)
        printf("TLS pin\n  current     %s\n", pc);
    else
        printf("TLS: %s\n", e.msg);
    if (have_next)
        printf("  next        %s (staged: 'sldd keys rotate-tls --switch')\n", nc);
    for (size_t i = 0; i < self->n_admins; i++) {
        char label[128];
        snprintf(label, sizeof label, "admin %s (Ed25519)", self->admins[i].name);
        show_key(label, self->admins[i].pk, 0, 0);
    }
    if (!self->n_admins)
        printf("no admins yet: sldd admin add --dir %s --name NAME\n", dir);
    return 0;
}

static int keys_export(const sc_peer *self, const char *out)
{
    sc_error e = {0, ""};
    char *text;
    int rc = 1;
    if (sc_peer_format(self, &text, &e) == 0) {
        if (!out) {
            fputs(text, stdout);
            rc = 0;
        } else if (sc_file_write_atomic(out, text, strlen(text), 0644, &e) == 0) {
            rc = 0;
        }
        free(text);
    }
    if (rc)
        fprintf(stderr, "sldd keys export: %s\n", e.msg);
    return rc;
}

/* An audit entry for a key change made here; a failure is reported. */
static void keys_audit(const char *dir, const char *action, const char *detail)
{
    sc_error e = {0, ""};
    if (nd_audit_record_user(dir, action, "", "ok", detail, &e))
        fprintf(stderr, "sldd keys: audit log: %s\n", e.msg);
}

typedef struct keys_args {
    const char *dir, *out, *listen;
    const char *alt[8];
    size_t n_alt;
    long long overlap_days;
    int json, do_switch;
} keys_args;

static int keys_tls(const char *sub, const keys_args *a, const nd_node *n)
{
    unsigned char pin[SC_PIN_LEN];
    char pc[SC_PIN_CURL_SIZE], detail[200];
    sc_error e = {0, ""};
    int made = 0, rc;
    nd_tls_req req = {n->cfg.id, a->alt, a->n_alt, a->listen ? a->listen : "127.0.0.1:8443"};
    if (!strcmp(sub, "tls-init"))
        rc = nd_tls_init_node(a->dir, &req, NULL, pin, &made, &e);
    else if (a->do_switch)
        rc = nd_tls_rotate_switch(a->dir, pin, &e);
    else
        rc = nd_tls_rotate_stage(a->dir, &req, pin, &e);
    if (rc || sn_x509_pin_to_curl(pin, pc, sizeof pc)) {
        fprintf(stderr, "sldd keys %s: %s\n", sub, e.msg);
        return 1;
    }
    snprintf(detail, sizeof detail, "%s TLS key %s",
             !strcmp(sub, "tls-init") ? "made the"
             : a->do_switch           ? "switched to the"
                                      : "staged the next",
             pc);
    keys_audit(a->dir, !strcmp(sub, "tls-init") ? "tls-init" : "key-rotation", detail);
    if (!strcmp(sub, "tls-init"))
        printf("TLS certificate %s/tls/node.pem, listening on %s\n  TLS pin        %s\n", a->dir,
               req.listen, pc);
    else if (a->do_switch)
        printf("the node now uses TLS key %s (restart a running node)\n", pc);
    else
        printf("next TLS key staged: %s\nHand peers a new contact card ('sldd keys export-card'),\n"
               "then run 'sldd keys rotate-tls --dir %s --switch'.\n",
               pc, a->dir);
    return 0;
}

static int keys_rotate_sign(const keys_args *a, const nd_node *n)
{
    uint8_t pk[32];
    char fp[64], detail[200];
    sc_error e = {0, ""};
    int64_t now = nd_now_unix(), until = now + a->overlap_days * 86400;
    if (sc_node_sign_rotate(a->dir, n->cfg.id, until, now, pk, &e)) {
        fprintf(stderr, "sldd keys rotate-sign: %s\n", e.msg);
        return 1;
    }
    sc_fingerprint_text(fp, pk);
    snprintf(detail, sizeof detail, "new signing key %s, the previous one accepted until %" PRId64,
             fp, until);
    keys_audit(a->dir, "key-rotation", detail);
    printf("new signing key %s\nthe previous key stays valid until %" PRId64
           " (%lld days): hand peers a new\ncontact card ('sldd keys export-card') before then, "
           "and restart a running node\nso that it signs with the new key.\n",
           fp, until, a->overlap_days);
    return 0;
}

int cmd_keys(int argc, char **argv)
{
    static const struct option opts[] = {{"dir", required_argument, 0, 'd'},
                                         {"out", required_argument, 0, 'o'},
                                         {"json", no_argument, 0, 'j'},
                                         {"listen", required_argument, 0, 'l'},
                                         {"alt-name", required_argument, 0, 'a'},
                                         {"overlap-days", required_argument, 0, 'O'},
                                         {"switch", no_argument, 0, 's'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    keys_args a = {.overlap_days = 7};
    sc_error e = {0, ""};
    nd_node *n = NULL;
    sc_peer self;
    int c, rc = 1;
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        keys_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    static const char *const words[] = {"show",        "export",     "export-card", "tls-init",
                                        "rotate-sign", "rotate-tls", NULL};
    if (nd_cli_check_word("sldd keys", "subcommand", sub, words))
        return 2;
    if (!strcmp(sub, "export-card"))
        return nd_cli_card_export(argc, argv);
    optind = 2;
    while ((c = getopt_long(argc, argv, "d:o:jh", opts, NULL)) != -1) {
        switch (c) {
        case 'd': a.dir = optarg; break;
        case 'o': a.out = optarg; break;
        case 'j': a.json = 1; break;
        case 'l': a.listen = optarg; break;
        case 's': a.do_switch = 1; break;
        case 'a':
            if (a.n_alt == sizeof a.alt / sizeof a.alt[0]) {
                fprintf(stderr, "sldd keys: too many --alt-name\n");
                return 2;
            }
            a.alt[a.n_alt++] = optarg;
            break;
        case 'O':
            if (sb_parse_i64(optarg, 1, 365, &a.overlap_days)) {
                fprintf(stderr, "sldd keys: --overlap-days is 1..365\n");
                return 2;
            }
            break;
        case 'h': keys_usage(stdout); return 0;
        default: keys_usage(stderr); return 2;
        }
    }
    a.dir = nd_cli_node_dir(a.dir);
    static const char *const subs[] = {"show", "export", "tls-init", "rotate-sign", "rotate-tls"};
    int which = -1;
    for (int i = 0; i < 5; i++)
        if (!strcmp(sub, subs[i]))
            which = i;
    if (optind != argc || which < 0 || (a.json && which != 0) || (a.out && which != 1) ||
        (a.listen && which != 2) || (a.n_alt && which != 2 && which != 4) ||
        (a.do_switch && (which != 4 || a.n_alt))) {
        keys_usage(stderr);
        return 2;
    }
    if (a.listen && strchr(a.listen, '\n')) {
        fprintf(stderr, "sldd keys: bad --listen\n");
        return 2;
    }
    if (nd_node_open(a.dir, 0, &n, &e) || n->trust->peer_get(n->trust, n->cfg.id, &self, &e)) {
        fprintf(stderr, "sldd keys: %s\n", e.msg);
        nd_node_close(n);
        return 1;
    }
    switch (which) {
    case 0: rc = keys_show(a.dir, &self, a.json); break;
    case 1: rc = keys_export(&self, a.out); break;
    case 3: rc = keys_rotate_sign(&a, n); break;
    default: rc = keys_tls(sub, &a, n); break;
    }
    nd_node_close(n);
    return rc;
}
