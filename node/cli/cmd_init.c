/*
 * cmd_init.c - `sldd init`: create a node directory with its signing and
 * encryption key pairs, a default node.conf and the TLS key and certificate
 * peers pin (the node its own CA, or with --tls --ca-dir a test
 * federation's CA; nd_tlsinit.h): every node can serve from the start.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "nd_cli_dir.h"
#include "nd_config.h"
#include "nd_tlsinit.h"
#include "sc_keys.h"
#include "nd_node.h"

static void init_usage(FILE *f)
{
    fprintf(f, "usage: sldd init --dir NODE --id NAME [--data DIR] [--listen ADDR:PORT]\n"
               "                 [--alt-name NAME]... [--tls --ca-dir CADIR]\n"
               "\n"
               "Creates NODE (mode 0700) with separate Ed25519 signing and X25519\n"
               "encryption key pairs (secret files 0600, never overwritten), node.conf,\n"
               "empty admins/ and peers/ folders and the node's TLS key and certificate\n"
               "in NODE/tls/, signed by the node's own CA (tls/node-ca.pem); prints the\n"
               "TLS pin peers need.  NAME: 1-64 of A-Z a-z 0-9 . _ -\n"
               "\n"
               "  --data DIR        the node's prepared data set (node.conf 'data:')\n"
               "  --tls --ca-dir CADIR  sign the TLS certificate with a test federation's\n"
               "                    CA in CADIR instead (created there, ca.pem + ca.key, by\n"
               "                    the first node that names it).  Real deployments may use\n"
               "                    the hospital's CA: see docs/tls.md, docs/node.md\n"
               "  --listen A:P      where the node serves peers (127.0.0.1:8443)\n"
               "  --alt-name NAME   extra DNS name or IP in the certificate (repeatable)\n");
}

int cmd_init(int argc, char **argv)
{
    static const struct option opts[] = {{"dir", required_argument, 0, 'd'},
                                         {"id", required_argument, 0, 'i'},
                                         {"data", required_argument, 0, 'D'},
                                         {"tls", no_argument, 0, 't'},
                                         {"ca-dir", required_argument, 0, 'c'},
                                         {"listen", required_argument, 0, 'l'},
                                         {"alt-name", required_argument, 0, 'a'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *dir = NULL, *id = NULL, *data = NULL, *ca_dir = NULL, *listen = "127.0.0.1:8443";
    const char *alt[8];
    size_t n_alt = 0;
    int tls = 0;
    uint8_t spk[32], epk[32];
    char fs[64], fe[64];
    sc_error e = {0, ""};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:i:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'i': id = optarg; break;
        case 'D': data = optarg; break;
        case 't': tls = 1; break;
        case 'c': ca_dir = optarg; break;
        case 'l': listen = optarg; break;
        case 'a':
            if (n_alt == sizeof alt / sizeof alt[0]) {
                fprintf(stderr, "sldd init: too many --alt-name\n");
                return 2;
            }
            alt[n_alt++] = optarg;
            break;
        case 'h': init_usage(stdout); return 0;
        default: init_usage(stderr); return 2;
        }
    }
    dir = nd_cli_node_dir(dir);
    if (!id || optind != argc || (tls && !ca_dir) || (!tls && ca_dir) ||
        (data && strchr(data, '\n')) || strchr(listen, '\n')) {
        init_usage(stderr);
        return 2;
    }
    if (nd_node_init(dir, id, &e) || sc_node_keys_load_public(dir, spk, epk, &e)) {
        fprintf(stderr, "sldd init: %s\n", e.msg);
        return 1;
    }
    if (data) {
        char line[4300], abs[4096];
        /* node.conf takes relative paths from the node directory: store where
         * the data set really is */
        if (!realpath(data, abs)) {
            fprintf(stderr, "sldd init: --data %s: %s\n", data, strerror(errno));
            return 1;
        }
        snprintf(line, sizeof line, "data: %s\n", abs);
        if (nd_config_append(dir, line, &e)) {
            fprintf(stderr, "sldd init: %s\n", e.msg);
            return 1;
        }
    }
    {
        unsigned char pin[SC_PIN_LEN];
        char pc[SC_PIN_CURL_SIZE];
        int made_ca = 0;
        nd_tls_req req = {id, alt, n_alt, listen};
        if (nd_tls_init_node(dir, &req, tls ? ca_dir : NULL, pin, &made_ca, &e) ||
            sn_x509_pin_to_curl(pin, pc, sizeof pc)) {
            fprintf(stderr, "sldd init: TLS: %s\n", e.msg);
            return 1;
        }
        if (tls)
            printf("%s federation CA in %s\n", made_ca ? "made the" : "used the", ca_dir);
        printf("TLS certificate %s/tls/node.pem, listening on %s\n"
               "  TLS pin        %s\n",
               dir, listen, pc);
    }
    sc_fingerprint_text(fs, spk);
    sc_fingerprint_text(fe, epk);
    printf("initialised node '%s' in %s\n  signing key    %s\n  encryption key %s\n"
           "Next: 'sldd admin add --dir %s --name ADMIN', then hand peers the contact card\n"
           "of 'sldd keys export-card --dir %s --url https://HOST:PORT'.\n",
           id, dir, fs, fe, dir, dir);
    return 0;
}
