/*
 * cmd_peer.c - `sldd peer add|list|show`: the nodes this node exchanges
 * bundles with, their keys and the admins trusted to approve their
 * bundles.  Compare fingerprints with the peer out of band before adding.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "nd_cli_peer.h"
#include "sc_keys.h"
#include "sc_node.h"
#include "sc_util.h"
#include "sp_check.h"

static void peer_usage(FILE *f)
{
    fprintf(f,
            "usage: sldd peer add --dir NODE --file PEERFILE [--id PEER]\n"
            "       sldd peer add --dir NODE --id PEER --sign-key B64 --enc-key B64\n"
            "                     [--admin NAME=B64]...\n"
            "       sldd peer list --dir NODE\n"
            "       sldd peer show --dir NODE --id PEER\n"
            "       sldd peer address --dir NODE --id PEER --url https://HOST:PORT\n"
            "                         --tls-pin PIN[;PIN...]\n"
            "\n"
            "PEERFILE is what the peer's 'sldd keys export' wrote.  Adding a peer\n"
            "that exists replaces its record.  'peer address' says where the peer's\n"
            "node listens and pins its TLS key; with a running node 'peer list' also\n"
            "shows addresses and deliveries.\n");
}

static void print_peer(const sc_peer *p)
{
    char fs[64], fe[64];
    sc_fingerprint_text(fs, p->sign_pk);
    sc_fingerprint_text(fe, p->enc_pk);
    printf("%s\n  sign  %s\n  enc   %s\n", p->id, fs, fe);
    for (size_t i = 0; i < p->n_admins; i++) {
        char fa[64];
        sc_fingerprint_text(fa, p->admins[i].pk);
        printf("  admin %-16s %s\n", p->admins[i].name, fa);
    }
}

int cmd_peer(int argc, char **argv)
{
    static const struct option opts[] = {{"dir", required_argument, 0, 'd'},
                                         {"id", required_argument, 0, 'i'},
                                         {"file", required_argument, 0, 'f'},
                                         {"sign-key", required_argument, 0, 's'},
                                         {"enc-key", required_argument, 0, 'x'},
                                         {"admin", required_argument, 0, 'a'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *dir = NULL, *id = NULL, *file = NULL, *sk = NULL, *ek = NULL, *sub;
    const char *admins[SC_MAX_ADMINS_PER_NODE];
    size_t n_admins = 0;
    sc_error e = {0, ""};
    sc_node *n = NULL;
    sc_peer p;
    int c, rc = 1;
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        peer_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    /* peer address, and peer list from a running node */
    if (nd_cli_peer_wants(argc, argv))
        return nd_cli_peer(argc, argv);
    sub = argv[1];
    optind = 2;
    while ((c = getopt_long(argc, argv, "d:i:f:s:x:a:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'i': id = optarg; break;
        case 'f': file = optarg; break;
        case 's': sk = optarg; break;
        case 'x': ek = optarg; break;
        case 'a':
            if (n_admins == SC_MAX_ADMINS_PER_NODE) {
                fprintf(stderr, "sldd peer: too many --admin\n");
                return 2;
            }
            admins[n_admins++] = optarg;
            break;
        case 'h': peer_usage(stdout); return 0;
        default: peer_usage(stderr); return 2;
        }
    }
    if (!dir || optind != argc) {
        peer_usage(stderr);
        return 2;
    }
    if (sc_node_open(dir, 0, &n, &e)) {
        fprintf(stderr, "sldd peer: %s\n", e.msg);
        return 1;
    }
    if (!strcmp(sub, "add")) {
        if (file) {
            uint8_t *buf;
            size_t len;
            if (sc_file_read(file, 65536, 0, &buf, &len, &e)) {
                fprintf(stderr, "sldd peer add: %s\n", e.msg);
                goto out;
            }
            rc = sc_peer_parse((char *)buf, &p, &e);
            free(buf);
            if (rc) {
                fprintf(stderr, "sldd peer add: %s: %s\n", file, e.msg);
                rc = 1;
                goto out;
            }
            rc = 1;
            if (id && strcmp(id, p.id)) {
                fprintf(stderr, "sldd peer add: %s describes node '%s', not '%s'\n", file, p.id, id);
                goto out;
            }
        } else {
            if (!id || !sk || !ek) {
                peer_usage(stderr);
                rc = 2;
                goto out;
            }
            memset(&p, 0, sizeof p);
            if (!sp_valid_id(id)) {
                fprintf(stderr, "sldd peer add: '%s' is not a valid node id\n", id);
                goto out;
            }
            snprintf(p.id, sizeof p.id, "%s", id);
            if (sc_b64_decode_exact(p.sign_pk, 32, sk, strlen(sk), &e) ||
                sc_b64_decode_exact(p.enc_pk, 32, ek, strlen(ek), &e)) {
                fprintf(stderr, "sldd peer add: key: %s\n", e.msg);
                goto out;
            }
        }
        for (size_t i = 0; i < n_admins; i++) {
            const char *eq = strchr(admins[i], '=');
            sc_admin_pub *a;
            size_t nl = eq ? (size_t)(eq - admins[i]) : 0;
            if (p.n_admins == SC_MAX_ADMINS_PER_NODE || !eq || nl == 0 || nl > 64) {
                fprintf(stderr, "sldd peer add: --admin wants NAME=KEY\n");
                goto out;
            }
            a = &p.admins[p.n_admins];
            memcpy(a->name, admins[i], nl);
            a->name[nl] = 0;
            if (!sp_valid_id(a->name) || sc_b64_decode_exact(a->pk, 32, eq + 1, strlen(eq + 1), &e)) {
                fprintf(stderr, "sldd peer add: bad --admin %s\n", admins[i]);
                goto out;
            }
            p.n_admins++;
        }
        if (n->trust->peer_put(n->trust, &p, &e)) {
            fprintf(stderr, "sldd peer add: %s\n", e.msg);
            goto out;
        }
        printf("added peer ");
        print_peer(&p);
        rc = 0;
    } else if (!strcmp(sub, "list")) {
        sc_peer *list;
        size_t cnt;
        if (n->trust->peer_list(n->trust, &list, &cnt, &e)) {
            fprintf(stderr, "sldd peer list: %s\n", e.msg);
            goto out;
        }
        for (size_t i = 0; i < cnt; i++)
            print_peer(&list[i]);
        if (!cnt)
            printf("no peers\n");
        free(list);
        rc = 0;
    } else if (!strcmp(sub, "show") && id) {
        if (n->trust->peer_get(n->trust, id, &p, &e)) {
            fprintf(stderr, "sldd peer show: %s\n", e.msg);
            goto out;
        }
        print_peer(&p);
        rc = 0;
    } else {
        peer_usage(stderr);
        rc = 2;
    }
out:
    sc_node_close(n);
    return rc;
}
