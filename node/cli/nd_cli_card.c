/*
 * nd_cli_card.c - `sldd keys export-card`, `sldd peer add --card` and
 * `sldd peer remove` (see nd_cli_card.h).
 */
#include "nd_cli_dir.h"
#include "nd_cli_card.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nd_audit.h"
#include "nd_card.h"
#include "nd_cli_peer.h"
#include "nd_delivery.h"
#include "nd_lifecycle.h"
#include "nd_roster.h"
#include "nd_state.h"
#include "nd_tlsinit.h"
#include "sb_parse.h"
#include "sc_card.h"
#include "sc_keys.h"
#include "sc_util.h"

/* ---------------------------------------------------------------- export */

static void export_usage(FILE *f)
{
    fprintf(f, "usage: sldd keys export-card --dir NODE --url https://HOST:PORT\n"
               "                             [--valid-days N] [--out FILE]\n"
               "\n"
               "Writes this node's contact card: node id, signing and encryption keys,\n"
               "admins, TLS pin(s) and CA certificate, URL, valid from now for N days\n"
               "(default 30, at most 365), signed with the node's signing key (and its\n"
               "previous key during a rotation).  Peers add it with 'sldd peer add --card'.\n");
}

static int card_write(nd_node *n, const sc_card *c, const char *out, sc_error *e)
{
    char *text = NULL;
    int rc = nd_card_text(n->dir, n->keys, c, &text, e);
    if (rc)
        return rc;
    if (!out) {
        fputs(text, stdout);
    } else {
        rc = sc_file_write_atomic(out, text, strlen(text), 0644, e);
    }
    free(text);
    return rc;
}

int nd_cli_card_export(int argc, char **argv)
{
    static const struct option opts[] = {{"dir", required_argument, 0, 'd'},
                                         {"url", required_argument, 0, 'u'},
                                         {"valid-days", required_argument, 0, 'v'},
                                         {"out", required_argument, 0, 'o'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *dir = NULL, *url = NULL, *out = NULL;
    long long days = 30;
    sc_error e = {0, ""};
    nd_node *n = NULL;
    sc_card c;
    int o;
    optind = 2;
    while ((o = getopt_long(argc, argv, "d:u:v:o:h", opts, NULL)) != -1) {
        switch (o) {
        case 'd': dir = optarg; break;
        case 'u': url = optarg; break;
        case 'o': out = optarg; break;
        case 'v':
            if (sb_parse_i64(optarg, 1, 365, &days)) {
                fprintf(stderr, "sldd keys export-card: --valid-days is 1..365\n");
                return 2;
            }
            break;
        case 'h': export_usage(stdout); return 0;
        default: export_usage(stderr); return 2;
        }
    }
    dir = nd_cli_node_dir(dir);
    if (!url || optind != argc) {
        export_usage(stderr);
        return 2;
    }
    if (nd_node_open(dir, ND_NODE_KEYS, &n, &e) ||
        nd_card_make(n->dir, n->trust, n->cfg.id, url, nd_now_unix(), days, &c, &e) ||
        card_write(n, &c, out, &e)) {
        fprintf(stderr, "sldd keys export-card: %s\n", e.msg);
        nd_node_close(n);
        return 1;
    }
    if (out)
        printf("contact card of %s written to %s, valid until %" PRId64 "\n", c.peer.id, out,
               c.not_after);
    nd_node_close(n);
    return 0;
}

/* ---------------------------------------------------------------- add */

static void audit_or_warn(const char *dir, const char *action, const char *peer,
                          const char *outcome, const char *detail)
{
    sc_error e = {0, ""};
    if (nd_audit_record_user(dir, action, peer, outcome, detail, &e))
        fprintf(stderr, "sldd peer: audit log: %s\n", e.msg);
}

/* A refused card: said on stderr and recorded; returns the exit status. */
static int card_refused(nd_node *n, const char *file, const char *who, const char *why)
{
    char detail[700];
    snprintf(detail, sizeof detail, "contact card %.200s refused: %.400s", file, why);
    fprintf(stderr, "sldd peer add: %s: %s\n", file, why);
    audit_or_warn(n->dir, "peer-add", who ? who : "", "refused", detail);
    return 1;
}

/* The pins in curl form, ';'-separated. */
static int pins_text(const sc_card *c, char *out, size_t cap)
{
    size_t k = 0;
    out[0] = 0;
    for (size_t i = 0; i < c->n_pins; i++) {
        char pc[SC_PIN_CURL_SIZE];
        if (sn_x509_pin_to_curl(c->pins[i], pc, sizeof pc))
            return -1;
        int w = snprintf(out + k, cap - k, "%s%s", i ? ";" : "", pc);
        if (w < 0 || (size_t)w >= cap - k)
            return -1;
        k += (size_t)w;
    }
    return 0;
}

/* Read, parse and check a card against the clock and what we hold.
 * *existed: whether the peer had a record. */
static int card_load(nd_node *n, const char *file, sc_card *c, int *existed, sc_error *e)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    sc_peer old;
    int rc = sc_file_read(file, SC_CARD_MAX, 0, &buf, &len, e);
    if (rc)
        return rc;
    rc = sc_card_parse((const char *)buf, len, c, e);
    free(buf);
    if (rc || (rc = sc_card_check_time(c, nd_now_unix(), n->cfg.clock_skew_seconds, e)))
        return rc;
    if (!strcmp(c->peer.id, n->cfg.id))
        return sc_error_set(e, SC_EINVAL, "this is the card of this node");
    sc_error ignore = {0, ""};
    *existed = n->trust->peer_get(n->trust, c->peer.id, &old, &ignore) == 0;
    if (*existed)
        return sc_card_check_update(c, &old, nd_now_unix(), e);
    return 0;
}

int nd_cli_card_add(nd_node *n, const char *file)
{
    sc_error e = {0, ""};
    sc_card *c = calloc(1, sizeof *c);
    char pins[ND_PINS_MAX], fp[64], detail[900];
    int existed = 0, added = 0, rc;
    if (!c) {
        fprintf(stderr, "sldd peer add: out of memory\n");
        return 1;
    }
    if (card_load(n, file, c, &existed, &e)) {
        rc = card_refused(n, file, c->peer.id, e.msg);
        free(c);
        return rc;
    }
    if (pins_text(c, pins, sizeof pins)) {
        rc = card_refused(n, file, c->peer.id, "pins too long");
        free(c);
        return rc;
    }
    /* the CA first: a peer whose keys are on record but whose certificate
     * does not verify would be refused at its first connection */
    if (c->ca_len && nd_tls_trust_ca(n->dir, c->ca_der, c->ca_len, &added, &e)) {
        if (e.code != SC_EPERM) {
            fprintf(stderr, "sldd peer add: %s\n", e.msg);
            free(c);
            return 1;
        }
        fprintf(stderr, "sldd peer add: warning: %s\n", e.msg);
    }
    /* nd_roster_baseline: what the new peer is assumed to know of our admins */
    if (n->trust->peer_put(n->trust, &c->peer, &e) ||
        nd_cli_peer_set_address(n->dir, c->peer.id, c->url, pins, "card", &e) ||
        nd_roster_baseline(n->dir, n->trust, n->cfg.id, c->peer.id, &e)) {
        fprintf(stderr, "sldd peer add: %s\n", e.msg);
        free(c);
        return 1;
    }
    sc_fingerprint_text(fp, c->peer.sign_pk);
    char prev[96] = "";
    if (c->peer.prev_until > 0)
        snprintf(prev, sizeof prev, ", previous signing key accepted until %" PRId64,
                 c->peer.prev_until);
    snprintf(detail, sizeof detail,
             "contact card %.200s: sign %s, %zu admin(s), %zu TLS pin(s), url %.200s, "
             "valid until %" PRId64 "%s",
             file, fp, c->peer.n_admins, c->n_pins, c->url, c->not_after, prev);
    audit_or_warn(n->dir, existed ? "peer-change" : "peer-add", c->peer.id, "ok", detail);
    printf("%s peer %s from its contact card\n  sign  %s\n  url   %s\n  pins  %s\n%s",
           existed ? "updated" : "added", c->peer.id, fp, c->url, pins,
           added ? "  its CA certificate was added to the node's CA file (restart a running "
                   "node to use it)\n"
                 : "");
    free(c);
    return 0;
}

/* ---------------------------------------------------------------- remove */

/* Queued deliveries to id become refused ("canceled: ..."), each with an
 * audit entry, and their bundles settle; *count how many. */
static int cancel_deliveries(sqlite3 *db, const char *id, const char *actor, const char *why,
                             int *count, sc_error *e)
{
    sqlite3_stmt *st;
    char(*bids)[33] = NULL;
    size_t n = 0, cap = 0;
    int rc, r;
    *count = 0;
    if ((rc = nd_db_begin(db, e)))
        return rc;
    if ((rc = nd_db_prepare(db, &st, e,
                            "SELECT bundle_id FROM deliveries WHERE peer=? AND state=? "
                            "ORDER BY bundle_id",
                            "tt", id, nd_delivery_state_name(ND_DELIVERY_QUEUED)))) {
        nd_db_rollback(db);
        return rc;
    }
    while ((r = nd_db_step(st, e)) == 1) {
        if (n == cap) {
            void *g = realloc(bids, (cap = cap ? 2 * cap : 16) * sizeof *bids);
            if (!g) {
                r = sc_error_set(e, SC_ENOMEM, "out of memory");
                break;
            }
            bids = g;
        }
        snprintf(bids[n++], 33, "%s", nd_col_text(st, 0));
    }
    nd_db_finalize(st);
    rc = r < 0 ? r : 0;
    nd_lifecycle_why w = {actor, "send", id, "canceled", why, NULL};
    for (size_t i = 0; !rc && i < n; i++)
        if (!(rc = nd_delivery_move(db, bids[i], id, ND_DELIVERY_QUEUED, ND_DELIVERY_REFUSED, why,
                                    &w, e)))
            rc = nd_delivery_settle(db, bids[i], e);
    free(bids);
    if (rc || (rc = nd_db_commit(db, e))) {
        nd_db_rollback(db);
        return rc;
    }
    *count = (int)n;
    return 0;
}

int nd_cli_peer_remove(nd_node *n, const char *id, const char *reason)
{
    sc_error e = {0, ""};
    sqlite3 *db = NULL;
    sc_peer p;
    char actor[96], why[400], stamp[32];
    int count = 0, rc = 1;
    time_t now = (time_t)nd_now_unix();
    struct tm tm;
    nd_audit_os_actor(actor, sizeof actor);
    if (reason && (strchr(reason, '\n') || strlen(reason) > 200)) {
        fprintf(stderr, "sldd peer remove: --reason is one line of at most 200 bytes\n");
        return 2;
    }
    if (!gmtime_r(&now, &tm) || !strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(stamp, sizeof stamp, "%lld", (long long)now);
    snprintf(why, sizeof why, "canceled: peer removed by %s at %s%s%s", actor, stamp,
             reason ? ": " : "", reason ? reason : "");
    if (n->trust->peer_get(n->trust, id, &p, &e) || !strcmp(id, n->cfg.id)) {
        fprintf(stderr, "sldd peer remove: %s\n", e.msg[0] ? e.msg : "that is this node");
        return 1;
    }
    /* pins first: from here on the node refuses its connections */
    if (nd_db_open(n->dir, 1, &db, &e) ||
        nd_db_run(db, &e, "DELETE FROM peers WHERE id=?", "t", id) ||
        /* a later `peer add` starts from a new baseline (nd_roster.h) */
        nd_db_run(db, &e, "DELETE FROM peer_roster WHERE peer=?", "t", id) ||
        n->trust->peer_remove(n->trust, id, why + strlen("canceled: peer "), &e) ||
        cancel_deliveries(db, id, actor, why, &count, &e)) {
        fprintf(stderr, "sldd peer remove: %s\n", e.msg);
        goto out;
    }
    char detail[600];
    snprintf(detail, sizeof detail,
             "peer removed%s%s: keys and TLS pins dropped, %d queued "
             "deliver%s canceled",
             reason ? ": " : "", reason ? reason : "", count, count == 1 ? "y" : "ies");
    nd_audit_entry en = {actor, "peer-remove", "", "", id, "ok", detail};
    if (nd_audit_append(db, &en, NULL, &e) || nd_audit_anchor(db, n->dir, &e)) {
        fprintf(stderr, "sldd peer remove: audit log: %s\n", e.msg);
        goto out;
    }
    printf("removed peer %s: its pins are dropped and its bundles refused from now on; "
           "%d queued deliver%s to it canceled\n",
           id, count, count == 1 ? "y" : "ies");
    rc = 0;
out:
    nd_db_close(db);
    return rc;
}
