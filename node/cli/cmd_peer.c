/*
 * cmd_peer.c - `sldd peer add|list|show|remove`: the nodes this node
 * exchanges bundles with, their keys and the admins trusted to approve their
 * bundles.  Compare fingerprints with the peer out of band before adding.
 * Contact cards and removal are in nd_cli_card.c, addresses in
 * nd_cli_peer.c.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "nd_buf.h"
#include "nd_cli_words.h"
#include "nd_audit.h"
#include "nd_cli_card.h"
#include "nd_cli_dir.h"
#include "nd_cli_ping.h"
#include "nd_cli_peer.h"
#include "sc_keys.h"
#include "nd_node.h"
#include "nd_roster.h"
#include "sc_util.h"
#include "sp_check.h"

static void peer_usage(FILE *f)
{
    fprintf(f, "usage: sldd peer add --dir NODE --card CARDFILE\n"
               "       sldd peer add --dir NODE --file PEERFILE [--id PEER]\n"
               "       sldd peer add --dir NODE --id PEER --sign-key B64 --enc-key B64\n"
               "                     [--admin NAME=B64]...\n"
               "       sldd peer list --dir NODE [--json]\n"
               "       sldd peer show --dir NODE --id PEER [--json]\n"
               "       sldd peer remove --dir NODE PEER [--reason TEXT]\n"
               "       sldd peer address --dir NODE --id PEER --url https://HOST:PORT\n"
               "                         --tls-pin PIN[;PIN...]\n"
               "       sldd peer ping NAME [--dir NODE] [--timeout SECONDS]\n"
               "\n"
               "CARDFILE is the peer's signed contact card ('sldd keys export-card'):\n"
               "keys, admins, TLS pins and CA, URL, in one step; a card that is\n"
               "tampered with, expired, or signed by a key the record on file does not\n"
               "vouch for is refused.  PEERFILE is what 'sldd keys export' wrote (keys\n"
               "only; then 'peer address').  'peer remove' drops the peer's keys and\n"
               "pins, cancels the deliveries queued to it and refuses its bundles from\n"
               "then on.  With a running node 'peer list' also shows addresses and\n"
               "deliveries.\n");
}

/* One peer as a JSON object: id, key fingerprints, admins. */
static void print_peer_json(const sc_peer *p)
{
    char fs[64], fe[64];
    nd_buf b;
    nd_buf_init(&b, 0);
    sc_fingerprint_text(fs, p->sign_pk);
    sc_fingerprint_text(fe, p->enc_pk);
    nd_buf_str(&b, "{\"id\":");
    nd_buf_json_str(&b, p->id);
    nd_buf_str(&b, ",\"sign_fingerprint\":");
    nd_buf_json_str(&b, fs);
    nd_buf_str(&b, ",\"enc_fingerprint\":");
    nd_buf_json_str(&b, fe);
    nd_buf_str(&b, ",\"admins\":[");
    for (size_t i = 0; i < p->n_admins; i++) {
        char fa[64];
        sc_fingerprint_text(fa, p->admins[i].pk);
        nd_buf_str(&b, i ? ",{\"name\":" : "{\"name\":");
        nd_buf_json_str(&b, p->admins[i].name);
        nd_buf_str(&b, ",\"fingerprint\":");
        nd_buf_json_str(&b, fa);
        nd_buf_str(&b, "}");
    }
    nd_buf_str(&b, "]}");
    if (!b.failed)
        fwrite(b.data, 1, b.len, stdout);
    nd_buf_free(&b);
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

typedef struct peer_args {
    const char *dir, *id, *file, *card, *sk, *ek, *reason;
    int json;
    const char *admins[SC_MAX_ADMINS_PER_NODE];
    size_t n_admins;
} peer_args;

/* The peer record `peer add` names: from --file, or from --id and the keys.
 * 0, or the exit status after a message. */
static int peer_record(const peer_args *a, sc_peer *p)
{
    sc_error e = {0, ""};
    if (a->file) {
        uint8_t *buf;
        size_t len;
        int rc;
        if (sc_file_read(a->file, 65536, 0, &buf, &len, &e)) {
            fprintf(stderr, "sldd peer add: %s\n", e.msg);
            return 1;
        }
        rc = sc_peer_parse((char *)buf, p, &e);
        free(buf);
        if (rc) {
            fprintf(stderr, "sldd peer add: %s: %s\n", a->file, e.msg);
            return 1;
        }
        if (a->id && strcmp(a->id, p->id)) {
            fprintf(stderr, "sldd peer add: %s describes node '%s', not '%s'\n", a->file, p->id,
                    a->id);
            return 1;
        }
        return 0;
    }
    if (!a->id || !a->sk || !a->ek) {
        peer_usage(stderr);
        return 2;
    }
    memset(p, 0, sizeof *p);
    if (!sp_valid_id(a->id)) {
        fprintf(stderr, "sldd peer add: '%s' is not a valid node id\n", a->id);
        return 1;
    }
    snprintf(p->id, sizeof p->id, "%s", a->id);
    if (sc_b64_decode_exact(p->sign_pk, 32, a->sk, strlen(a->sk), &e) ||
        sc_b64_decode_exact(p->enc_pk, 32, a->ek, strlen(a->ek), &e)) {
        fprintf(stderr, "sldd peer add: key: %s\n", e.msg);
        return 1;
    }
    return 0;
}

/* The --admin NAME=B64 options, added to p. */
static int peer_admins(const peer_args *a, sc_peer *p)
{
    sc_error e = {0, ""};
    for (size_t i = 0; i < a->n_admins; i++) {
        const char *eq = strchr(a->admins[i], '=');
        sc_admin_pub *ad;
        size_t nl = eq ? (size_t)(eq - a->admins[i]) : 0;
        if (p->n_admins == SC_MAX_ADMINS_PER_NODE || !eq || nl == 0 || nl > 64) {
            fprintf(stderr, "sldd peer add: --admin wants NAME=KEY\n");
            return -1;
        }
        ad = &p->admins[p->n_admins];
        memcpy(ad->name, a->admins[i], nl);
        ad->name[nl] = 0;
        if (!sp_valid_id(ad->name) || sc_b64_decode_exact(ad->pk, 32, eq + 1, strlen(eq + 1), &e)) {
            fprintf(stderr, "sldd peer add: bad --admin %s\n", a->admins[i]);
            return -1;
        }
        p->n_admins++;
    }
    return 0;
}

static int peer_add(nd_node *n, const peer_args *a)
{
    sc_error e = {0, ""};
    sc_peer p;
    int rc = peer_record(a, &p);
    if (rc)
        return rc;
    if (peer_admins(a, &p))
        return 1;
    sc_peer old;
    sc_error ignore = {0, ""};
    int existed = n->trust->peer_get(n->trust, p.id, &old, &ignore) == 0;
    if (n->trust->peer_put(n->trust, &p, &e)) {
        fprintf(stderr, "sldd peer add: %s\n", e.msg);
        return 1;
    }
    /* what the new peer is assumed to know of our admins (nd_roster.h) */
    if (nd_roster_baseline(n->dir, n->trust, n->cfg.id, p.id, &e)) {
        fprintf(stderr, "sldd peer add: %s\n", e.msg);
        return 1;
    }
    char fp[64], detail[300];
    sc_fingerprint_text(fp, p.sign_pk);
    snprintf(detail, sizeof detail, "peer record from %.200s: sign %s, %zu admin(s)",
             a->file ? a->file : "the command line", fp, p.n_admins);
    if (nd_audit_record_user(n->dir, existed ? "peer-change" : "peer-add", p.id, "ok", detail, &e))
        fprintf(stderr, "sldd peer add: audit log: %s\n", e.msg);
    printf("added peer ");
    print_peer(&p);
    return 0;
}

static int peer_list(nd_node *n, int json)
{
    sc_error e = {0, ""};
    sc_peer *list;
    size_t cnt;
    if (n->trust->peer_list(n->trust, &list, &cnt, &e)) {
        fprintf(stderr, "sldd peer list: %s\n", e.msg);
        return 1;
    }
    if (json) {
        printf("[");
        for (size_t i = 0; i < cnt; i++) {
            printf(i ? ",\n " : "\n ");
            print_peer_json(&list[i]);
        }
        printf("\n]\n");
        free(list);
        return 0;
    }
    for (size_t i = 0; i < cnt; i++)
        print_peer(&list[i]);
    if (!cnt)
        printf("no peers\n");
    free(list);
    return 0;
}

static int peer_show(nd_node *n, const char *id, int json)
{
    sc_error e = {0, ""};
    sc_peer p;
    if (n->trust->peer_get(n->trust, id, &p, &e)) {
        fprintf(stderr, "sldd peer show: %s\n", e.msg);
        return 1;
    }
    if (json) {
        print_peer_json(&p);
        printf("\n");
    } else {
        print_peer(&p);
    }
    return 0;
}

int cmd_peer(int argc, char **argv)
{
    static const struct option opts[] = {{"dir", required_argument, 0, 'd'},
                                         {"id", required_argument, 0, 'i'},
                                         {"file", required_argument, 0, 'f'},
                                         {"sign-key", required_argument, 0, 's'},
                                         {"enc-key", required_argument, 0, 'x'},
                                         {"admin", required_argument, 0, 'a'},
                                         {"card", required_argument, 0, 'c'},
                                         {"reason", required_argument, 0, 'r'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    peer_args a;
    sc_error e = {0, ""};
    nd_node *n = NULL;
    int c, rc;
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        peer_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    static const char *const subs[] = {"add", "list", "show", "remove", "address", "ping", NULL};
    if (nd_cli_check_word("sldd peer", "subcommand", argv[1], subs))
        return 2;
    /* peer address, and peer list from a running node */
    if (nd_cli_peer_wants(argc, argv))
        return nd_cli_peer(argc, argv);
    if (!strcmp(argv[1], "ping"))
        return nd_cli_peer_ping(argc, argv);
    const char *sub = argv[1];
    memset(&a, 0, sizeof a);
    optind = 2;
    while ((c = getopt_long(argc, argv, "d:i:f:s:x:a:c:r:jh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': a.card = optarg; break;
        case 'j': a.json = 1; break;
        case 'r': a.reason = optarg; break;
        case 'd': a.dir = optarg; break;
        case 'i': a.id = optarg; break;
        case 'f': a.file = optarg; break;
        case 's': a.sk = optarg; break;
        case 'x': a.ek = optarg; break;
        case 'a':
            if (a.n_admins == SC_MAX_ADMINS_PER_NODE) {
                fprintf(stderr, "sldd peer: too many --admin\n");
                return 2;
            }
            a.admins[a.n_admins++] = optarg;
            break;
        case 'h': peer_usage(stdout); return 0;
        default: peer_usage(stderr); return 2;
        }
    }
    a.dir = nd_cli_node_dir(a.dir);
    /* `peer remove NAME` names the peer without --id */
    if (!strcmp(sub, "remove") && !a.id && optind + 1 == argc)
        a.id = argv[optind++];
    if (optind != argc || (a.card && (a.file || a.sk || a.ek || a.n_admins)) ||
        (a.reason && strcmp(sub, "remove")) ||
        (a.json && strcmp(sub, "list") && strcmp(sub, "show"))) {
        peer_usage(stderr);
        return 2;
    }
    if (nd_node_open(a.dir, 0, &n, &e)) {
        fprintf(stderr, "sldd peer: %s\n", e.msg);
        return 1;
    }
    if (!strcmp(sub, "add") && a.card)
        rc = nd_cli_card_add(n, a.card);
    else if (!strcmp(sub, "add"))
        rc = peer_add(n, &a);
    else if (!strcmp(sub, "remove") && a.id)
        rc = nd_cli_peer_remove(n, a.id, a.reason);
    else if (!strcmp(sub, "list"))
        rc = peer_list(n, a.json);
    else if (!strcmp(sub, "show") && a.id)
        rc = peer_show(n, a.id, a.json);
    else {
        peer_usage(stderr);
        rc = 2;
    }
    nd_node_close(n);
    return rc;
}
