/*
 * nd_roster.c - the admin roster each peer knows: receiving cards, pushing
 * ours, and the check before an approval (see nd_roster.h).
 */
#include "nd_roster.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "nd_audit.h"
#include "nd_buf.h"
#include "nd_card.h"
#include "nd_state.h"
#include "sc_card.h"
#include "sc_util.h"

#define CARD_DAYS    30     /* validity of a pushed card */
#define ADMINS_TEXT  4096   /* SC_MAX_ADMINS_PER_NODE x (64 + 1 + 44 + 1) */
#define REFUSED_WAIT 600000 /* ms before a card a peer refused is offered again */
#define IDLE_WAIT    5000

/* p's admins as NAME:BASE64KEY,... */
static void admins_text(const sc_peer *p, char *out, size_t cap)
{
    size_t k = 0;
    out[0] = 0;
    for (size_t i = 0; i < p->n_admins; i++) {
        char b[64];
        sc_b64_encode(b, p->admins[i].pk, 32);
        int w = snprintf(out + k, cap - k, "%s%s:%s", i ? "," : "", p->admins[i].name, b);
        if (w < 0 || (size_t)w >= cap - k)
            return; /* cannot happen within SC_MAX_ADMINS_PER_NODE */
        k += (size_t)w;
    }
}

/* p's admin names, comma-separated. */
static void admin_names(const sc_peer *p, char *out, size_t cap)
{
    size_t k = 0;
    out[0] = 0;
    for (size_t i = 0; i < p->n_admins && k < cap; i++) {
        int w = snprintf(out + k, cap - k, "%s%s", i ? "," : "", p->admins[i].name);
        if (w < 0)
            return;
        k += (size_t)w;
    }
}

static void audit(nd_ctx *c, sqlite3 *db, const nd_audit_entry *en)
{
    sc_error e = {0, ""};
    if (nd_audit_append(db, en, NULL, &e) || nd_audit_anchor(db, c->cfg.dir, &e))
        nd_log(c, "error", "audit: %s", e.msg);
}

/* ---------------------------------------------------------------- receiving */

static void card_answer(nd_roster_srv *r, const sn_card_in *in, sn_response *resp, int status,
                        const char *outcome, const char *detail)
{
    nd_ctx *c = r->ctx;
    char actor[80], text[800];
    snprintf(actor, sizeof actor, "peer:%s", in->sender_node_id);
    snprintf(text, sizeof text, "contact card from %s (%zu bytes): %s",
             in->peer_addr ? in->peer_addr : "?", in->body_len, detail);
    nd_audit_entry en = {
        actor, status == 200 ? "peer-roster" : "refusal", "", "", in->sender_node_id, outcome,
        text};
    if (status != 200) {
        nd_metrics_refusal(&c->metrics, "card");
        nd_log(c, "warn", "refused a contact card of %s: %s", in->sender_node_id, detail);
    } else {
        nd_log(c, "info", "took the contact card of %s: %s", in->sender_node_id, detail);
    }
    audit(c, r->db, &en);
    if (sn_response_printf(resp, status, NULL, "%d %s: %s\n", status, sn_http_reason_phrase(status),
                           detail) != 0)
        resp->status = status;
}

void nd_roster_on_card(void *arg, const sn_card_in *in, sn_response *resp)
{
    nd_roster_srv *r = arg;
    nd_ctx *c = r->ctx;
    sc_error e = {0, ""};
    sc_card *card = calloc(1, sizeof *card);
    sc_peer old;
    char detail[600], names[SC_MAX_ADMINS_PER_NODE * 66], fp[64];
    int64_t now = nd_now_unix();
    int rc;
    if (!card) {
        resp->status = 503;
        return;
    }
    if ((rc = sc_card_parse((const char *)in->body, in->body_len, card, &e))) {
        card_answer(r, in, resp, rc == SC_EFORMAT ? 400 : 422, "refused", e.msg);
        goto out;
    }
    if (strcmp(card->peer.id, in->sender_node_id)) {
        snprintf(detail, sizeof detail,
                 "the card of %.64s, sent by %.64s: a node sends only its own", card->peer.id,
                 in->sender_node_id);
        card_answer(r, in, resp, 403, "refused", detail);
        goto out;
    }
    if ((rc = c->trust->peer_get(c->trust, in->sender_node_id, &old, &e))) {
        card_answer(r, in, resp, 403, "refused", "the sender is not a peer of this node");
        goto out;
    }
    /* not older than the card on record, signed by the key on record or a
     * rotation it vouches for: the rules of `sldd peer add --card` */
    if (sc_card_check_time(card, now, c->cfg.base.clock_skew_seconds, &e) ||
        sc_card_check_update(card, &old, now, &e)) {
        card_answer(r, in, resp, 409, "refused", e.msg);
        goto out;
    }
    /* the address and pins stay those this node has: the TLS pin just
     * authenticated the sender, and an address is an operator's choice */
    if (c->trust->peer_put(c->trust, &card->peer, &e)) {
        nd_log(c, "error", "storing the contact card of %s: %s", in->sender_node_id, e.msg);
        if (sn_response_printf(resp, 503, NULL, "cannot store the card now\n") != 0)
            resp->status = 503;
        goto out;
    }
    admin_names(&card->peer, names, sizeof names);
    sc_fingerprint_text(fp, card->peer.sign_pk);
    snprintf(detail, sizeof detail,
             "keys and admins updated from its card made at %" PRId64 ": sign %s, %zu admin(s): "
             "%.300s",
             card->not_before, fp, card->peer.n_admins, names);
    card_answer(r, in, resp, 200, "ok", detail);
out:
    free(card);
}

/* ---------------------------------------------------------------- pushing */

typedef struct target {
    char id[65], url[ND_URL_MAX], pins[ND_PINS_MAX];
} target;

static size_t push_slot(nd_roster_push_state *ps, const char *peer)
{
    for (size_t i = 0; i < ps->n; i++)
        if (!strcmp(ps->peer[i], peer))
            return i;
    if (ps->n == ND_ROSTER_MAX_PEERS)
        return ND_ROSTER_MAX_PEERS;
    size_t i = ps->n++;
    snprintf(ps->peer[i], sizeof ps->peer[i], "%s", peer);
    ps->next_ms[i] = 0;
    ps->attempts[i] = 0;
    return i;
}

/* The peers with an address whose acknowledged roster is not digest and
 * whose retry is due; *next the ms until the next one is. */
static size_t due_targets(nd_ctx *c, sqlite3 *db, const char *digest, nd_roster_push_state *ps,
                          target *out, int64_t *next)
{
    sqlite3_stmt *st;
    sc_error e = {0, ""};
    size_t n = 0;
    int64_t now = nd_now_ms();
    if (nd_db_prepare(db, &st, &e,
                      "SELECT p.id,p.url,p.pins FROM peers p LEFT JOIN peer_roster r ON "
                      "r.peer=p.id WHERE COALESCE(r.roster_sha256,'')<>? ORDER BY p.id",
                      "t", digest)) {
        nd_log(c, "error", "roster: %s", e.msg);
        return 0;
    }
    while (n < ND_ROSTER_MAX_PEERS && nd_db_step(st, &e) == 1) {
        size_t i = push_slot(ps, nd_col_text(st, 0));
        if (i == ND_ROSTER_MAX_PEERS)
            break;
        if (ps->next_ms[i] > now) {
            if (ps->next_ms[i] - now < *next)
                *next = ps->next_ms[i] - now;
            continue;
        }
        snprintf(out[n].id, sizeof out[n].id, "%s", nd_col_text(st, 0));
        snprintf(out[n].url, sizeof out[n].url, "%s", nd_col_text(st, 1));
        snprintf(out[n].pins, sizeof out[n].pins, "%s", nd_col_text(st, 2));
        n++;
    }
    nd_db_finalize(st);
    return n;
}

/* Record that t acknowledged the roster of self (digest). */
static void acked(nd_ctx *c, sqlite3 *db, const target *t, const sc_peer *self, const char *digest)
{
    sc_error e = {0, ""};
    char admins[ADMINS_TEXT], names[SC_MAX_ADMINS_PER_NODE * 66], detail[700];
    admins_text(self, admins, sizeof admins);
    admin_names(self, names, sizeof names);
    if (nd_db_run(db, &e,
                  "INSERT INTO peer_roster(peer,roster_sha256,admins,acked_unix) VALUES(?,?,?,?) "
                  "ON CONFLICT(peer) DO UPDATE SET roster_sha256=excluded.roster_sha256,"
                  "admins=excluded.admins,acked_unix=excluded.acked_unix",
                  "ttti", t->id, digest, admins, nd_now_unix())) {
        nd_log(c, "error", "roster of %s: %s", t->id, e.msg);
        return;
    }
    snprintf(detail, sizeof detail,
             "contact card taken: it knows admin(s) %.500s (roster %.16s...)", names, digest);
    nd_audit_entry en = {"node", "roster-push", "", "", t->id, "ok", detail};
    audit(c, db, &en);
    nd_log(c, "info", "%s has this node's admins: %s", t->id, names);
}

static void push_one(nd_ctx *c, sqlite3 *db, sn_client *cl, nd_roster_push_state *ps,
                     const target *t, const char *card, const sc_peer *self, const char *digest)
{
    sc_error e = {0, ""};
    sn_client_response resp;
    sn_delivery outcome;
    size_t i = push_slot(ps, t->id);
    int rc = sn_peer_send_card(cl, t->url, t->pins, card, strlen(card), &resp, &outcome, &e);
    if (i == ND_ROSTER_MAX_PEERS) {
        sn_client_response_free(&resp);
        return;
    }
    if (outcome == SN_DELIVERED) {
        ps->attempts[i] = 0;
        acked(c, db, t, self, digest);
    } else if (outcome == SN_REFUSED) {
        char detail[500];
        snprintf(detail, sizeof detail, "contact card refused: HTTP %ld: %.300s", resp.status,
                 resp.body ? (const char *)resp.body : "");
        for (char *p = detail; *p; p++)
            if (*p == '\n' || *p == '\r')
                *p = ' ';
        nd_audit_entry en = {"node", "roster-push", "", "", t->id, "refused", detail};
        audit(c, db, &en);
        nd_log(c, "warn", "%s: %s", t->id, detail);
        ps->next_ms[i] = nd_now_ms() + REFUSED_WAIT;
    } else {
        nd_settings s;
        nd_ctx_settings(c, &s);
        double u = (double)randombytes_random() / 4294967296.0;
        ps->next_ms[i] =
            nd_now_ms() + nd_backoff_ms(s.retry_base_ms, s.retry_max_ms, ps->attempts[i]++, u);
        nd_log(c, "info", "contact card not sent to %s yet: %s", t->id,
               rc ? e.msg : "the peer asked to retry");
    }
    sn_client_response_free(&resp);
}

int64_t nd_roster_push(nd_ctx *c, sqlite3 *db, sn_client *cl, nd_roster_push_state *ps)
{
    sc_error e = {0, ""};
    sc_peer self;
    sc_card *card = NULL;
    target *ts = NULL;
    char digest[65], url[ND_URL_MAX + 32], *text = NULL;
    uint8_t d[32];
    int64_t next = IDLE_WAIT;
    if (c->trust->peer_get(c->trust, c->self_id, &self, &e)) {
        nd_log(c, "error", "roster: %s", e.msg);
        return next;
    }
    nd_card_roster_digest(d, &self);
    nd_hex(digest, d, 32);
    if (!(ts = calloc(ND_ROSTER_MAX_PEERS, sizeof *ts)) || !(card = calloc(1, sizeof *card)))
        goto out;
    size_t n = due_targets(c, db, digest, ps, ts, &next);
    if (!n)
        goto out;
    /* the URL is informational: a receiver keeps the address it has */
    snprintf(url, sizeof url, "https://%s:%d", c->cfg.listen_addr, c->listen_port_bound);
    if (nd_card_make(c->cfg.dir, c->trust, c->self_id, url, nd_now_unix(), CARD_DAYS, card, &e) ||
        nd_card_text(c->cfg.dir, c->keys, card, &text, &e)) {
        nd_log(c, "error", "roster: making this node's contact card: %s", e.msg);
        goto out;
    }
    /* the card is made from the same record as the digest */
    nd_card_roster_digest(d, &card->peer);
    nd_hex(digest, d, 32);
    for (size_t i = 0; i < n && !atomic_load(&c->stopping); i++)
        push_one(c, db, cl, ps, &ts[i], text, &card->peer, digest);
    next = 0;
out:
    free(text);
    free(card);
    free(ts);
    return next;
}

/* ---------------------------------------------------------------- the gate */

/* Whether "NAME:KEY" is an item of the comma-separated list. */
static int listed(const char *list, const char *item)
{
    size_t n = strlen(item);
    for (const char *p = list; (p = strstr(p, item)) != NULL; p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == 0))
            return 1;
    return 0;
}

int nd_roster_check(nd_ctx *c, sqlite3 *db, const char *bid, const char *payload_sha256,
                    const char *audience, const sc_peer *self, const char (*names)[65], size_t n,
                    sc_error *e)
{
    char aud[1024], known[ADMINS_TEXT];
    snprintf(aud, sizeof aud, "%s", audience);
    for (char *save = NULL, *to = strtok_r(aud, ",", &save); to; to = strtok_r(NULL, ",", &save)) {
        int found = 0, rc;
        if ((rc = nd_db_text(db, known, sizeof known, &found, e,
                             "SELECT admins FROM peer_roster WHERE peer=?", "t", to)))
            return rc;
        if (!found)
            continue; /* added before the roster existed: not checked */
        for (size_t i = 0; i < n; i++) {
            char item[160], b[64];
            const sc_admin_pub *pub = NULL;
            for (size_t k = 0; k < self->n_admins; k++)
                if (!strcmp(self->admins[k].name, names[i]))
                    pub = &self->admins[k];
            if (!pub)
                continue;
            sc_b64_encode(b, pub->pk, 32);
            snprintf(item, sizeof item, "%s:%s", pub->name, b);
            if (listed(known, item))
                continue;
            char detail[600];
            snprintf(detail, sizeof detail,
                     "admin %s is not yet known to %s: this node sends its roster to %s as "
                     "soon as it is reachable (check with sldd peer ping %s); approve again "
                     "once it is. Nothing was sealed; the bundle stays pending.",
                     pub->name, to, to, to);
            nd_audit_entry en = {"node", "approval", bid, payload_sha256, to, "refused", detail};
            audit(c, db, &en);
            nd_log(c, "warn", "bundle %.12s: %s", bid, detail);
            return sc_error_set(e, SC_EPERM, "%s", detail);
        }
    }
    return 0;
}

int nd_roster_baseline(const char *node_dir, sc_trust_store *trust, const char *self_id,
                       const char *peer, sc_error *e)
{
    sqlite3 *db = NULL;
    sc_peer self;
    char admins[ADMINS_TEXT];
    int rc = trust->peer_get(trust, self_id, &self, e);
    if (rc)
        return rc;
    admins_text(&self, admins, sizeof admins);
    rc = nd_db_open(node_dir, 1, &db, e);
    if (!rc)
        rc = nd_db_run(db, e,
                       "INSERT OR IGNORE INTO peer_roster(peer,roster_sha256,admins,acked_unix) "
                       "VALUES(?,'',?,0)",
                       "tt", peer, admins);
    nd_db_close(db);
    return rc;
}
