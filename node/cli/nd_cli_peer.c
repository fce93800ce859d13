/*
 * nd_cli_peer.c - `sldd peer address` and daemon-backed `sldd peer list`
 * (see nd_cli_peer.h).
 */
#include "nd_cli_peer.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "nd_admin_api.h"
#include "nd_admin_client.h"
#include "nd_buf.h"
#include "nd_cli_dir.h"
#include "nd_state.h"
#include "nd_node.h"

static const char *find_dir(int argc, char **argv)
{
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            return argv[i + 1];
        if (!strncmp(argv[i], "--dir=", 6))
            return argv[i] + 6;
    }
    return NULL;
}

int nd_cli_peer_wants(int argc, char **argv)
{
    if (argc < 2)
        return 0;
    if (!strcmp(argv[1], "address"))
        return 1;
    const char *dir = nd_cli_node_dir(find_dir(argc, argv));
    return !strcmp(argv[1], "list") && dir && nd_api_available(dir);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: sldd peer address --dir NODE --id PEER --url https://HOST:PORT\n"
               "                         --tls-pin PIN[;PIN...]\n"
               "       sldd peer list --dir NODE [--json]\n"
               "\n"
               "address  where PEER's node listens and the pin of its TLS key (what its\n"
               "         'sldd init --tls' printed; up to four, ';'-separated, during a\n"
               "         key change).  PEER's keys must be known ('sldd peer add').\n");
}

int nd_cli_peer(int argc, char **argv)
{
    static const struct option opts[] = {{"dir", required_argument, 0, 'd'},
                                         {"id", required_argument, 0, 'i'},
                                         {"url", required_argument, 0, 'u'},
                                         {"tls-pin", required_argument, 0, 'p'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *dir = NULL, *id = NULL, *url = NULL, *pins = NULL;
    int json = 0, o;
    optind = 2;
    while ((o = getopt_long(argc, argv, "d:i:u:p:jh", opts, NULL)) != -1) {
        switch (o) {
        case 'd': dir = optarg; break;
        case 'i': id = optarg; break;
        case 'u': url = optarg; break;
        case 'p': pins = optarg; break;
        case 'j': json = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    dir = nd_cli_node_dir(dir);
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "list"))
        return nd_api_print(dir, json ? "/v1/peers" : "/v1/peers?format=text", "sldd peer list");
    if (!id || !url || !pins) {
        usage(stderr);
        return 2;
    }
    sc_error e = {0, ""};
    if (strchr(id, '\n') || strchr(url, '\n') || strchr(pins, '\n')) {
        fprintf(stderr, "sldd peer address: bad value\n");
        return 2;
    }
    nd_node *n = NULL;
    sc_peer p;
    int status = 1;
    if (nd_node_open(dir, 0, &n, &e) || n->trust->peer_get(n->trust, id, &p, &e) ||
        !strcmp(id, n->cfg.id)) {
        fprintf(stderr, "sldd peer address: %s\n",
                e.msg[0] ? e.msg : "that is this node, not a peer");
    } else if (nd_cli_peer_set_address(dir, id, url, pins, "cli", &e)) {
        fprintf(stderr, "sldd peer address: %s\n", e.msg);
    } else {
        printf("peer %s: %s\n", id, url);
        status = 0;
    }
    nd_node_close(n);
    return status;
}

int nd_cli_peer_set_address(const char *dir, const char *id, const char *url, const char *pins,
                            const char *source, sc_error *e)
{
    int rc;
    if (nd_api_available(dir)) {
        /* the running node takes it (and answers with its own check) */
        nd_buf b;
        nd_api_response r;
        nd_buf_init(&b, 4096);
        nd_buf_printf(&b, "id: %s\nurl: %s\npins: %s\n", id, url, pins);
        if (b.failed) {
            nd_buf_free(&b);
            return sc_error_set(e, SC_ENOMEM, "out of memory");
        }
        rc = nd_api_request(dir, "POST", "/v1/peers", "text/plain", b.data, b.len, &r, e);
        nd_buf_free(&b);
        if (rc)
            return rc;
        rc = r.status == 200 ? 0
                             : sc_error_set(e, SC_EINVAL, "the node refused the address: %.300s",
                                            r.body ? (const char *)r.body : "");
        nd_api_response_free(&r);
        return rc;
    }
    /* no daemon: write the state database directly */
    sqlite3 *db = NULL;
    rc = nd_db_open(dir, 1, &db, e);
    if (!rc)
        rc = nd_peer_set(db, id, url, pins, source, e);
    nd_db_close(db);
    return rc;
}
