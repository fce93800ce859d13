/*
 * cmd_audit.c - `sldd audit show|verify`: the node's hash-chained audit log
 * (nd_audit.h), through the admin API when the daemon runs, else straight
 * from the state database.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "nd_admin_client.h"
#include "nd_audit.h"
#include "nd_state.h"
#include "sb_parse.h"

static void audit_usage(FILE *f)
{
    fprintf(f,
            "usage: sldd audit show --dir NODE [--limit N] [--bundle ID] [--json]\n"
            "       sldd audit verify --dir NODE\n"
            "\n"
            "show    the entries, oldest first (the last N with --limit)\n"
            "verify  recompute the hash chain: reports every changed, removed or\n"
            "        reordered entry, and entries removed from the end (against\n"
            "        NODE/audit.head); exits 1 when anything is wrong\n");
}

int cmd_audit(int argc, char **argv)
{
    static const struct option opts[] = {{"dir", required_argument, 0, 'd'},
                                         {"limit", required_argument, 0, 'n'},
                                         {"bundle", required_argument, 0, 'b'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *dir = NULL, *bundle = NULL;
    long long limit = 0;
    int json = 0, o;
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        audit_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    optind = 2;
    while ((o = getopt_long(argc, argv, "d:n:b:jh", opts, NULL)) != -1) {
        switch (o) {
        case 'd': dir = optarg; break;
        case 'n':
            if (sb_parse_i64(optarg, 0, LLONG_MAX, &limit)) {
                fprintf(stderr, "sldd audit: --limit '%s' is not a non-negative integer\n", optarg);
                return 2;
            }
            break;
        case 'b': bundle = optarg; break;
        case 'j': json = 1; break;
        case 'h': audit_usage(stdout); return 0;
        default: audit_usage(stderr); return 2;
        }
    }
    if (!dir || optind != argc || (strcmp(sub, "show") && strcmp(sub, "verify")) || limit < 0 ||
        (bundle && strspn(bundle, "0123456789abcdef") != strlen(bundle))) {
        audit_usage(stderr);
        return 2;
    }
    int verify = !strcmp(sub, "verify");
    if (nd_api_available(dir)) {
        char path[256];
        if (verify)
            snprintf(path, sizeof path, "/v1/audit/verify");
        else
            snprintf(path, sizeof path, "/v1/audit?limit=%lld%s%s%s", limit,
                     bundle ? "&bundle=" : "", bundle ? bundle : "", json ? "" : "&format=text");
        return nd_api_print(dir, path, "sldd audit");
    }
    sqlite3 *db = NULL;
    sc_error e = {0, ""};
    if (nd_db_open(dir, 0, &db, &e)) {
        fprintf(stderr, "sldd audit: %s\n", e.msg);
        return 1;
    }
    int status = 1;
    if (verify) {
        nd_audit_report rep;
        if (nd_audit_verify(db, dir, &rep, stdout, &e) == 0) {
            printf("%s: %" PRId64 " entries", rep.ok ? "audit log intact" : "AUDIT LOG DAMAGED",
                   rep.entries);
            if (rep.entries)
                printf(", last entry %" PRId64 " hash %s", rep.last_seq, rep.last_hash);
            if (rep.anchor_present)
                printf("; anchor (%s) at entry %" PRId64, ND_AUDIT_HEAD_FILE, rep.anchor_seq);
            printf("\n");
            status = rep.ok ? 0 : 1;
        }
    } else {
        nd_buf b;
        nd_buf_init(&b, 0);
        if (nd_audit_render(db, &b, json, limit, bundle, &e) == 0 && !b.failed) {
            fwrite(b.data ? b.data : "", 1, b.len, stdout);
            status = 0;
        }
        nd_buf_free(&b);
    }
    if (status && e.msg[0])
        fprintf(stderr, "sldd audit: %s\n", e.msg);
    nd_db_close(db);
    return status;
}
