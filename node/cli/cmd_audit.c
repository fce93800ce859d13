/*
 * cmd_audit.c - `sldd audit show|verify|witnesses export`: the node's
 * hash-chained audit log (nd_audit.h), through the admin API when the
 * daemon runs, else straight from the state database.  Checking the log
 * against witnessed heads (nd_witness.h) and exporting the heads a node
 * keeps of a peer always read the database directly (WAL: beside a
 * running daemon too).
 */
#include <dirent.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "nd_cli_words.h"
#include "nd_cli_dir.h"
#include "nd_admin_client.h"
#include "nd_audit.h"
#include "nd_buf.h"
#include "nd_state.h"
#include "nd_witness.h"
#include "sc_keys.h"
#include "nd_node.h"
#include "sc_util.h"
#include "sp_check.h"

static void audit_usage(FILE *f)
{
    fprintf(f, "usage: sldd audit show --dir NODE [--limit N] [--bundle ID] [--json]\n"
               "       sldd audit verify --dir NODE [--witnesses FILE-or-DIR] [--json]\n"
               "       sldd audit witnesses export --dir NODE --node ID [--out FILE]\n"
               "\n"
               "show    the entries, oldest first (the last N with --limit)\n"
               "verify  recompute the hash chain: reports every changed, removed or\n"
               "        reordered entry, and entries removed from the end (against\n"
               "        NODE/audit.head); with --witnesses, also against the heads of\n"
               "        this log that peers witnessed (files from 'witnesses export' on\n"
               "        the peers, or a directory of them): names every entry that a\n"
               "        witnessed head contradicts (rewritten or truncated); exits 1\n"
               "        when anything is wrong or cannot be checked; --json prints the\n"
               "        verdict as one JSON object (intact, entries, problems, ...)\n"
               "witnesses export\n"
               "        on a peer: the audit heads of node ID that this node keeps, as\n"
               "        a file for 'audit verify --witnesses' on ID\n");
}

/* A witness file or every regular file of a directory (by name), each
 * checked against the log. */
static int check_witnesses(sqlite3 *db, const char *dir, const char *path, nd_witness_report *rep,
                           sc_error *e)
{
    nd_node_config cfg;
    uint8_t pk[32], epk[32];
    struct stat sb;
    struct dirent **names = NULL;
    int n = 1, rc;
    if ((rc = nd_node_config_load(dir, &cfg, e)) ||
        (rc = sc_node_keys_load_public(dir, pk, epk, e)))
        return rc;
    if (stat(path, &sb))
        return sc_error_set(e, SC_ENOTFOUND, "--witnesses %s: no such file or directory", path);
    if (S_ISDIR(sb.st_mode) && (n = scandir(path, &names, NULL, alphasort)) < 0)
        return sc_error_set(e, SC_EIO, "--witnesses %s: cannot list the directory", path);
    rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        char file[4200];
        uint8_t *buf = NULL;
        size_t len = 0;
        if (names) {
            int skip = names[i]->d_name[0] == '.';
            if (!skip && (rc = sc_path_join(file, sizeof file, path, names[i]->d_name, e)))
                break;
            if (skip || stat(file, &sb) || !S_ISREG(sb.st_mode))
                continue;
        } else {
            snprintf(file, sizeof file, "%s", path);
        }
        if ((rc = sc_file_read(file, ND_WITNESS_FILE_MAX, 0, &buf, &len, e)))
            break;
        rc = nd_witness_check(db, cfg.id, pk, file, (const char *)buf, len, rep, stdout, e);
        free(buf);
    }
    for (int i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

/* The verdict of verify_local as one JSON object on stdout. */
static void verify_json(const nd_audit_report *rep, const char *problems, int damaged, int ok,
                        const char *witnesses, const nd_witness_report *wr)
{
    nd_buf b;
    nd_buf_init(&b, 0);
    nd_buf_printf(&b, "{\"intact\":%s,\"verified\":%s,\"entries\":%" PRId64,
                  damaged ? "false" : "true", ok ? "true" : "false", rep->entries);
    nd_buf_printf(&b, ",\"last_seq\":%" PRId64 ",\"last_hash\":", rep->last_seq);
    nd_buf_json_str(&b, rep->last_hash);
    if (rep->anchor_present)
        nd_buf_printf(&b, ",\"anchor_seq\":%" PRId64, rep->anchor_seq);
    nd_buf_str(&b, ",\"problems\":[");
    for (const char *p = problems, *nl; p && *p; p = *nl ? nl + 1 : nl) {
        char line[1024];
        nl = strchr(p, '\n');
        if (!nl)
            nl = p + strlen(p);
        snprintf(line, sizeof line, "%.*s", (int)(nl - p), p);
        nd_buf_str(&b, p == problems ? "" : ",");
        nd_buf_json_str(&b, line);
    }
    nd_buf_str(&b, "]");
    if (witnesses)
        nd_buf_printf(&b,
                      ",\"witnessed\":{\"heads\":%" PRId64 ",\"agree\":%" PRId64
                      ",\"contradict\":%" PRId64 ",\"unchecked\":%" PRId64 "}",
                      wr->heads, wr->agree, wr->contradictions, wr->unchecked);
    nd_buf_str(&b, "}\n");
    if (!b.failed)
        fwrite(b.data, 1, b.len, stdout);
    nd_buf_free(&b);
}

static int verify_local(sqlite3 *db, const char *dir, const char *witnesses, int json, sc_error *e)
{
    nd_audit_report rep;
    nd_witness_report wr;
    char *problems = NULL;
    size_t plen = 0;
    FILE *out = json ? open_memstream(&problems, &plen) : stdout;
    if (!out) {
        snprintf(e->msg, sizeof e->msg, "out of memory");
        return 1;
    }
    int rc = nd_audit_verify(db, dir, &rep, out, e);
    if (json)
        fclose(out);
    if (rc) {
        free(problems);
        return 1;
    }
    memset(&wr, 0, sizeof wr);
    if (witnesses && check_witnesses(db, dir, witnesses, &wr, e)) {
        free(problems);
        return 1;
    }
    int damaged = !rep.ok || wr.contradictions;
    int ok = !damaged && (!witnesses || (wr.heads && !wr.unchecked));
    if (json) {
        verify_json(&rep, problems, damaged, ok, witnesses, &wr);
        free(problems);
        return ok ? 0 : 1;
    }
    printf("%s: %" PRId64 " entries", damaged ? "AUDIT LOG DAMAGED" : "audit log intact",
           rep.entries);
    if (rep.entries)
        printf(", last entry %" PRId64 " hash %s", rep.last_seq, rep.last_hash);
    if (rep.anchor_present)
        printf("; anchor (%s) at entry %" PRId64, ND_AUDIT_HEAD_FILE, rep.anchor_seq);
    printf("\n");
    if (witnesses) {
        printf("witnessed heads: %" PRId64 " read, %" PRId64 " agree, %" PRId64
               " contradict the log, %" PRId64 " cannot be checked",
               wr.heads, wr.agree, wr.contradictions, wr.unchecked);
        if (wr.latest_seq)
            printf("; latest agreeing: entry %" PRId64 " witnessed by %s", wr.latest_seq,
                   wr.latest_witness);
        printf("\n");
        if (!wr.heads)
            printf("no witnessed heads in %s: nothing to check the log against\n", witnesses);
        else if (!damaged && wr.unchecked)
            printf("not confirmed: some witnessed heads cannot be checked (see above)\n");
    }
    return ok ? 0 : 1;
}

/* sldd audit witnesses export --dir NODE --node ID [--out FILE] */
static int witnesses_export(int argc, char **argv)
{
    static const struct option opts[] = {{"dir", required_argument, 0, 'd'},
                                         {"node", required_argument, 0, 'N'},
                                         {"out", required_argument, 0, 'o'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *dir = NULL, *node = NULL, *outp = NULL;
    int o;
    optind = 3;
    while ((o = getopt_long(argc, argv, "d:N:o:h", opts, NULL)) != -1) {
        switch (o) {
        case 'd': dir = optarg; break;
        case 'N': node = optarg; break;
        case 'o': outp = optarg; break;
        case 'h': audit_usage(stdout); return 0;
        default: audit_usage(stderr); return 2;
        }
    }
    dir = nd_cli_node_dir(dir);
    if (argc < 3 || strcmp(argv[2], "export") || !node || optind != argc || !sp_valid_id(node)) {
        audit_usage(stderr);
        return 2;
    }
    nd_node_config cfg;
    sqlite3 *db = NULL;
    sc_error e = {0, ""};
    int64_t n = 0;
    int rc = nd_node_config_load(dir, &cfg, &e);
    if (!rc)
        rc = nd_db_open(dir, 0, &db, &e);
    if (!rc)
        rc = nd_witness_schema(db, &e);
    FILE *f = NULL;
    if (!rc && !(f = outp ? fopen(outp, "w") : stdout))
        rc = sc_error_set(&e, SC_EIO, "%s: cannot create", outp);
    if (!rc)
        rc = nd_witness_export(db, cfg.id, node, nd_now_unix(), f, &n, &e);
    if (f && f != stdout && fclose(f) && !rc)
        rc = sc_error_set(&e, SC_EIO, "%s: write failed", outp);
    nd_db_close(db);
    if (rc) {
        fprintf(stderr, "sldd audit: %s\n", e.msg);
        return 1;
    }
    if (!n) {
        fprintf(stderr, "sldd audit: %s keeps no audit head of %s\n", cfg.id, node);
        return 1;
    }
    fprintf(stderr, "%" PRId64 " audit head(s) of %s witnessed by %s exported%s%s\n", n, node,
            cfg.id, outp ? " to " : "", outp ? outp : "");
    return 0;
}

int cmd_audit(int argc, char **argv)
{
    static const struct option opts[] = {{"dir", required_argument, 0, 'd'},
                                         {"limit", required_argument, 0, 'n'},
                                         {"bundle", required_argument, 0, 'b'},
                                         {"json", no_argument, 0, 'j'},
                                         {"witnesses", required_argument, 0, 'w'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *dir = NULL, *bundle = NULL, *witnesses = NULL;
    long long limit = 0;
    int json = 0, o;
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        audit_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    static const char *const subs[] = {"show", "verify", "witnesses", NULL};
    if (nd_cli_check_word("sldd audit", "subcommand", sub, subs))
        return 2;
    if (!strcmp(sub, "witnesses"))
        return witnesses_export(argc, argv);
    optind = 2;
    while ((o = getopt_long(argc, argv, "d:n:b:jw:h", opts, NULL)) != -1) {
        switch (o) {
        case 'd': dir = optarg; break;
        case 'n':
            if (nd_parse_int(optarg, 0, INT64_MAX, &limit)) {
                fprintf(stderr, "sldd audit: --limit '%s' is not a non-negative integer\n", optarg);
                return 2;
            }
            break;
        case 'w': witnesses = optarg; break;
        case 'b': bundle = optarg; break;
        case 'j': json = 1; break;
        case 'h': audit_usage(stdout); return 0;
        default: audit_usage(stderr); return 2;
        }
    }
    dir = nd_cli_node_dir(dir);
    if (optind != argc || (strcmp(sub, "show") && strcmp(sub, "verify")) || limit < 0 ||
        (witnesses && strcmp(sub, "verify")) ||
        (bundle && strspn(bundle, "0123456789abcdef") != strlen(bundle))) {
        audit_usage(stderr);
        return 2;
    }
    int verify = !strcmp(sub, "verify");
    /* verify --json reads the log itself: the daemon's verify answers in text */
    if (!witnesses && !(verify && json) && nd_api_available(dir)) {
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
        status = verify_local(db, dir, witnesses, json, &e);
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
