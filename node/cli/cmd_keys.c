/*
 * cmd_keys.c - `sldd keys show|export`: this node's public keys and
 * fingerprints, and the peer record other nodes import with
 * `sldd peer add --file`.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "nd_cli_dir.h"
#include "sc_keys.h"
#include "nd_node.h"
#include "sc_util.h"

static void keys_usage(FILE *f)
{
    fprintf(f, "usage: sldd keys show --dir NODE\n"
               "       sldd keys export --dir NODE [--out FILE]\n"
               "\n"
               "show:   public keys with their fingerprints (SHA-256 of the key)\n"
               "export: the peer record (node id, keys, admin keys) for other nodes\n");
}

static void show_key(const char *label, const uint8_t pk[32])
{
    char b64[64], hex[65], fp[64];
    uint8_t kid[32];
    sc_b64_encode(b64, pk, 32);
    sc_key_id(kid, pk);
    sc_hex_encode(hex, kid, 32);
    sc_fingerprint_text(fp, pk);
    printf("%s\n  public      %s\n  fingerprint %s\n  key id      %s\n", label, b64, fp, hex);
}

int cmd_keys(int argc, char **argv)
{
    static const struct option opts[] = {{"dir", required_argument, 0, 'd'},
                                         {"out", required_argument, 0, 'o'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *dir = NULL, *out = NULL, *sub;
    sc_error e = {0, ""};
    nd_node *n = NULL;
    sc_peer self;
    int c, rc = 1;
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        keys_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    sub = argv[1];
    optind = 2;
    while ((c = getopt_long(argc, argv, "d:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'o': out = optarg; break;
        case 'h': keys_usage(stdout); return 0;
        default: keys_usage(stderr); return 2;
        }
    }
    dir = nd_cli_node_dir(dir);
    if (optind != argc || (strcmp(sub, "show") && strcmp(sub, "export"))) {
        keys_usage(stderr);
        return 2;
    }
    if (nd_node_open(dir, 0, &n, &e) || n->trust->peer_get(n->trust, n->cfg.id, &self, &e)) {
        fprintf(stderr, "sldd keys: %s\n", e.msg);
        nd_node_close(n);
        return 1;
    }
    if (!strcmp(sub, "show")) {
        printf("node %s\n", self.id);
        show_key("signing key (Ed25519)", self.sign_pk);
        show_key("encryption key (X25519)", self.enc_pk);
        for (size_t i = 0; i < self.n_admins; i++) {
            char label[128];
            snprintf(label, sizeof label, "admin %s (Ed25519)", self.admins[i].name);
            show_key(label, self.admins[i].pk);
        }
        if (!self.n_admins)
            printf("no admins yet: sldd admin add --dir %s --name NAME\n", dir);
        rc = 0;
    } else {
        char *text;
        if (sc_peer_format(&self, &text, &e) == 0) {
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
    }
    nd_node_close(n);
    return rc;
}
