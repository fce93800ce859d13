/*
 * nd_cli_bundle.c - `sldd bundle list|show|approve|reject|resend` against
 * a running node (see nd_cli_bundle.h).  `resend` asks the node to send a
 * refused delivery again with the envelope sealed at approval; it signs
 * nothing (the node audits it under the caller's OS user).
 *
 * Approving happens here, in the admin's own process, and trusts the
 * daemon with nothing it shows: the statement to be signed is fetched
 * before the admin is asked, parsed, and
 * must hold this node's bundle with the id the admin named and the id and
 * payload hash the node's view shows; the summary the admin confirms is
 * rendered from that statement's payload (nd_cli_approval.h).  Only then is
 * the admin's key decrypted with the passphrase, the decision signed over
 * those same bytes (bound to the SHA-256 of the payload), and the signed
 * statement sent back to the daemon, which checks it again.
 */
#include "nd_cli_bundle.h"

#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nd_admin_client.h"
#include "nd_buf.h"
#include "nd_cli_approval.h"
#include "nd_cli_dir.h"
#include "nd_config.h"
#include "nd_ctx.h"
#include "nd_views.h"
#include "nd_state.h"
#include "sc_keys.h"
#include "nd_node.h"
#include "nd_objects.h"
#include "sc_sign.h"
#include "sc_util.h"
#include "sldd.pb-c.h"

void nd_cli_bundle_usage(void *file)
{
    fprintf(file, "       sldd bundle list --dir NODE [--json]\n"
                  "       sldd bundle show ID --dir NODE [--json] [--grid PNG]\n"
                  "       sldd bundle approve ID --dir NODE --admin NAME [--yes]\n"
                  "                 [--passphrase-file FILE] [--grid PNG]\n"
                  "       sldd bundle reject ID --dir NODE --admin NAME [--yes]\n"
                  "                 [--passphrase-file FILE] [--grid PNG] [--reason TEXT]\n"
                  "       sldd bundle resend ID --dir NODE [--peer NAME]\n"
                  "  (ID may be a unique prefix; approve and reject need the running node,\n"
                  "  list and show read the node's state directly when it is not running;\n"
                  "  --grid draws the images of the statement to be signed into PNG first,\n"
                  "  and with show the images of the bundle's payload, received ones too;\n"
                  "  --reason, one line, goes into the audit entry of the rejection;\n"
                  "  resend, through the running node too, sends a delivery that a peer\n"
                  "  refused again, the same sealed bytes, once what it refused is fixed)\n");
}

int nd_cli_bundle_wants(int argc, char **argv)
{
    if (argc < 2)
        return 0;
    if (!strcmp(argv[1], "list") || !strcmp(argv[1], "show") || !strcmp(argv[1], "reject") ||
        !strcmp(argv[1], "resend"))
        return 1;
    if (strcmp(argv[1], "approve"))
        return 0;
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "--in") || !strncmp(argv[i], "--in=", 5) || !strcmp(argv[i], "-i"))
            return 0;
    return 1;
}

static int confirm(const char *question)
{
    char ans[16] = "";
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t r = write(fd, question, strlen(question)) < 0 ? -1 : read(fd, ans, sizeof ans - 1);
    close(fd);
    return r > 0 && (ans[0] == 'y' || ans[0] == 'Y');
}

/* Text from the daemon, printed as plain ASCII: a terminal escape in it
 * could hide or restyle what is printed after it (the summary of what is
 * signed), so every byte other than printable ASCII, tab and newline is
 * shown as '?'. */
static void put_untrusted(FILE *f, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fputc((p[i] >= 0x20 && p[i] < 0x7f) || p[i] == '\n' || p[i] == '\t' ? p[i] : '?', f);
}

/* GET path from the node; 0 on a 200 answer, else prints why. */
static int api_get(const char *dir, const char *path, const char *who, nd_api_response *r)
{
    sc_error e = {0, ""};
    if (nd_api_request(dir, "GET", path, NULL, NULL, 0, r, &e)) {
        fprintf(stderr, "%s: %s\n", who, e.msg);
        return -1;
    }
    if (r->status != 200) {
        fprintf(stderr, "%s: ", who);
        put_untrusted(stderr, r->body, r->len);
        return -1;
    }
    return 0;
}

/* The node's view of bundle idp and the statement an approval would sign,
 * fetched before anything is asked.  The statement is parsed and its
 * summary rendered from its own payload; it must be this node's bundle
 * idp, the one the view shows (same id, same payload hash).  0 with the
 * statement in *st and the full id in id; -1 with the reason printed. */
static int fetch_checked(const char *dir, const nd_node_config *cfg, const char *idp,
                         const char *grid, const char *who, nd_api_response *st, char id[33])
{
    char path[128];
    sc_error ce = {0, ""};
    nd_api_response view;
    nd_signed_payload shown, signed_;
    int rc = -1;
    memset(&view, 0, sizeof view);
    snprintf(path, sizeof path, "/v1/bundles/%s?format=text", idp);
    if (api_get(dir, path, who, &view))
        goto out;
    put_untrusted(stdout, view.body, view.len);
    if (nd_cli_view_identity((const char *)view.body, &shown)) {
        fprintf(stderr,
                "%s: the node's view names no bundle id and payload hash; nothing "
                "was signed\n",
                who);
        goto out;
    }
    snprintf(path, sizeof path, "/v1/bundles/%s/statement", shown.bundle_id);
    if (api_get(dir, path, who, st))
        goto out;
    if (nd_cli_statement_check(st->body, st->len, cfg->id, cfg->parse_budget_bytes, NULL, NULL,
                               &signed_, &ce)) {
        fprintf(stderr, "%s: the statement the node serves for %s: %s; nothing was signed\n", who,
                shown.bundle_id, ce.msg);
        goto out;
    }
    if (strncmp(signed_.bundle_id, idp, strlen(idp)) ||
        strcmp(signed_.bundle_id, shown.bundle_id) ||
        strcmp(signed_.payload_sha256, shown.payload_sha256)) {
        fprintf(stderr,
                "%s: MISMATCH: you asked for bundle %s and the node shows bundle %s with payload "
                "sha256 %s, but the statement it serves holds bundle %s with payload sha256 %s; "
                "nothing was signed\n",
                who, idp, shown.bundle_id, shown.payload_sha256, signed_.bundle_id,
                signed_.payload_sha256);
        goto out;
    }
    /* the same checks once more, now printing what the signature covers */
    printf("\n");
    if (nd_cli_statement_check(st->body, st->len, cfg->id, cfg->parse_budget_bytes, stdout, grid,
                               &signed_, &ce) == 0) {
        memcpy(id, signed_.bundle_id, 33);
        rc = 0;
    } else {
        fprintf(stderr, "%s: %s; nothing was signed\n", who, ce.msg);
    }
    fflush(stdout);
out:
    nd_api_response_free(&view);
    return rc;
}

/* The decision path, with the rejection's reason percent-encoded. */
static int decision_path(char *path, size_t cap, const char *id, const char *reason)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n =
        (size_t)snprintf(path, cap, "/v1/bundles/%s/decision%s", id, reason ? "?reason=" : "");
    for (const unsigned char *p = (const unsigned char *)(reason ? reason : ""); *p; p++) {
        if (n + 4 >= cap)
            return -1;
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~", *p)) {
            path[n++] = (char)*p;
        } else {
            path[n++] = '%';
            path[n++] = hex[*p >> 4];
            path[n++] = hex[*p & 15];
        }
    }
    path[n] = 0;
    return 0;
}

static int decide(const char *dir, const char *idp, const char *admin, const char *passfile,
                  const char *grid, int reject, int yes, const char *reason)
{
    char path[1024], prompt[160], id[33];
    const char *who = reject ? "sldd bundle reject" : "sldd bundle approve";
    nd_api_response st, res;
    sc_error e = {0, ""};
    sc_admin_key *k = NULL;
    nd_node_config cfg;
    uint8_t *signed_st = NULL;
    size_t slen = 0, plen = 0;
    char *pass = NULL;
    int status = 1;
    memset(&st, 0, sizeof st);
    memset(&res, 0, sizeof res);
    if (nd_node_config_load(dir, &cfg, &e)) {
        fprintf(stderr, "%s: %s\n", who, e.msg);
        return 1;
    }
    if (fetch_checked(dir, &cfg, idp, grid, who, &st, id))
        goto out;
    if (!yes) {
        char q[200];
        snprintf(q, sizeof q, "%s bundle %.12s as admin %s of node %s? [y/N] ",
                 reject ? "REJECT" : "APPROVE", id, admin, cfg.id);
        int ans = confirm(q);
        if (ans < 0) {
            fprintf(stderr, "%s: no terminal to confirm on; pass --yes\n", who);
            goto out;
        }
        if (!ans) {
            fprintf(stderr, "%s: not confirmed; nothing was signed\n", who);
            goto out;
        }
    }
    snprintf(prompt, sizeof prompt, "passphrase for admin %s: ", admin);
    if (sc_passphrase_get(passfile, prompt, 0, &pass, &plen, &e) ||
        sc_admin_key_load(dir, admin, pass, plen, &k, &e)) {
        fprintf(stderr, "%s: %s\n", who, e.msg);
        goto out;
    }
    if (strcmp(k->node, cfg.id)) {
        fprintf(stderr, "%s: admin %s belongs to node %s, not %s\n", who, k->name, k->node, cfg.id);
        goto out;
    }
    /* exactly the bytes checked and shown above */
    if (sc_statement_approve(st.body, st.len, k,
                             reject ? SLDD__V1__DECISION__DECISION_REJECT
                                    : SLDD__V1__DECISION__DECISION_APPROVE,
                             nd_now_unix(), &signed_st, &slen, &e)) {
        fprintf(stderr, "%s: %s\n", who, e.msg);
        goto out;
    }
    if (decision_path(path, sizeof path, id, reason)) {
        fprintf(stderr, "%s: --reason too long\n", who);
        goto out;
    }
    if (nd_api_request(dir, "POST", path, "application/octet-stream", signed_st, slen, &res, &e)) {
        fprintf(stderr, "%s: %s\n", who, e.msg);
        goto out;
    }
    put_untrusted(res.status == 200 ? stdout : stderr, res.body, res.len);
    status = res.status == 200 ? 0 : 1;
out:
    sc_secret_free(pass, plen + 1);
    sc_admin_key_destroy(k);
    free(signed_st);
    nd_api_response_free(&st);
    nd_api_response_free(&res);
    return status;
}

/* `show --grid`: the images of the bundle's payload as stored at this node
 * (received or own), drawn from the payload bytes. */
static int show_grid(const char *dir, const char *idp, const char *grid, int json)
{
    sc_error e = {0, ""};
    nd_node_config cfg;
    sqlite3 *db = NULL;
    char id[33], ph[65] = "";
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = nd_node_config_load(dir, &cfg, &e) || nd_db_open(dir, 0, &db, &e) ||
             nd_bundle_resolve(db, idp, id, &e) ||
             nd_db_text(db, ph, sizeof ph, NULL, &e,
                        "SELECT payload_sha256 FROM bundles WHERE id=?", "t", id) ||
             nd_object_get(dir, ph, cfg.max_bundle_bytes, &buf, &len, &e) ||
             nd_cli_payload_grid(buf, len, cfg.parse_budget_bytes, grid, &e);
    nd_db_close(db);
    free(buf);
    if (rc) {
        fprintf(stderr, "sldd bundle show: --grid: %s\n", e.msg);
        return 1;
    }
    if (!json)
        printf("  image grid      %s (drawn here from the payload)\n", grid);
    return 0;
}

/* list and show read the state database directly when no daemon runs */
static int offline_view(const char *dir, const char *idp, int json)
{
    nd_ctx c;
    sqlite3 *db = NULL;
    sc_error e = {0, ""};
    nd_buf b;
    char id[33];
    int rc;
    memset(&c, 0, sizeof c);
    nd_buf_init(&b, 0);
    if ((rc = nd_config_load(dir, &c.cfg, &e)) == 0 && (rc = nd_db_open(dir, 0, &db, &e)) == 0) {
        if (!idp)
            rc = nd_view_bundles(db, &b, json, &e);
        else if ((rc = nd_bundle_resolve(db, idp, id, &e)) == 0)
            rc = nd_view_bundle(&c, db, id, &b, json, &e);
    }
    if (!rc && !b.failed)
        fwrite(b.data ? b.data : "", 1, b.len, stdout);
    else
        fprintf(stderr, "sldd bundle: %s\n", e.msg[0] ? e.msg : "out of memory");
    nd_buf_free(&b);
    nd_db_close(db);
    return rc || b.failed ? 1 : 0;
}

/* A peer id as the node writes them: nothing that needs escaping in a query. */
#define PEER_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"

/* POST /v1/bundles/ID/resend[?peer=NAME]: the node's answer printed. */
static int resend(const char *dir, const char *id, const char *peer)
{
    char path[256];
    nd_api_response r;
    sc_error e = {0, ""};
    int status = 1;
    snprintf(path, sizeof path, "/v1/bundles/%s/resend%s%s", id, peer ? "?peer=" : "",
             peer ? peer : "");
    if (nd_api_request(dir, "POST", path, NULL, "", 0, &r, &e)) {
        fprintf(stderr, "sldd bundle resend: %s\n", e.msg);
        return 1;
    }
    put_untrusted(r.status == 200 ? stdout : stderr, r.body, r.len);
    status = r.status == 200 ? 0 : 1;
    nd_api_response_free(&r);
    return status;
}

int nd_cli_bundle(int argc, char **argv)
{
    static const struct option opts[] = {{"dir", required_argument, 0, 'd'},
                                         {"admin", required_argument, 0, 'a'},
                                         {"passphrase-file", required_argument, 0, 'p'},
                                         {"yes", no_argument, 0, 'y'},
                                         {"grid", required_argument, 0, 'g'},
                                         {"json", no_argument, 0, 'j'},
                                         {"reason", required_argument, 0, 'r'},
                                         {"peer", required_argument, 0, 'P'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *dir = NULL, *admin = NULL, *passfile = NULL, *id = NULL, *grid = NULL,
               *reason = NULL, *peer = NULL;
    const char *sub = argv[1];
    int yes = 0, json = 0, o;
    optind = 2;
    while ((o = getopt_long(argc, argv, "d:a:p:g:r:P:yjh", opts, NULL)) != -1) {
        switch (o) {
        case 'P': peer = optarg; break;
        case 'r': reason = optarg; break;
        case 'd': dir = optarg; break;
        case 'a': admin = optarg; break;
        case 'p': passfile = optarg; break;
        case 'g': grid = optarg; break;
        case 'y': yes = 1; break;
        case 'j': json = 1; break;
        case 'h':
            printf("usage:\n");
            nd_cli_bundle_usage(stdout);
            return 0;
        default: nd_cli_bundle_usage(stderr); return 2;
        }
    }
    if (optind < argc)
        id = argv[optind++];
    int list = !strcmp(sub, "list");
    dir = nd_cli_node_dir(dir);
    if (optind != argc || (list ? id != NULL : id == NULL) || (list && grid) ||
        (id && (strlen(id) > 32 || strspn(id, "0123456789abcdef") != strlen(id))) ||
        ((!strcmp(sub, "approve") || !strcmp(sub, "reject")) && !admin) ||
        (reason && (strcmp(sub, "reject") || strlen(reason) > 200 || strchr(reason, '\n'))) ||
        (peer && (strcmp(sub, "resend") || !peer[0] || strlen(peer) > 64 ||
                  strspn(peer, PEER_CHARS) != strlen(peer)))) {
        fprintf(stderr, "usage:\n");
        nd_cli_bundle_usage(stderr);
        return 2;
    }
    char path[128];
    if ((list || !strcmp(sub, "show")) && !nd_api_available(dir)) {
        int rc = offline_view(dir, id, json);
        return rc || !grid ? rc : show_grid(dir, id, grid, json);
    }
    if (list)
        return nd_api_print(dir, json ? "/v1/bundles" : "/v1/bundles?format=text",
                            "sldd bundle list");
    if (!strcmp(sub, "show")) {
        snprintf(path, sizeof path, "/v1/bundles/%s%s", id, json ? "" : "?format=text");
        int rc = nd_api_print(dir, path, "sldd bundle show");
        return rc || !grid ? rc : show_grid(dir, id, grid, json);
    }
    if (!strcmp(sub, "resend"))
        return resend(dir, id, peer);
    return decide(dir, id, admin, passfile, grid, !strcmp(sub, "reject"), yes, reason);
}
