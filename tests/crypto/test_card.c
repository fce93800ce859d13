/*
 * test_card.c - contact cards (sc_card.h) and what a card changes on the
 * receive path: the canonical text round-trips; every flipped byte, an
 * expired or not-yet-valid card, a card signed by another key, and a
 * rotation the key on record did not vouch for are refused; during a
 * signing-key rotation a peer that took the new card accepts bundles signed
 * by the new key and by the old one until the overlap ends, and refuses the
 * old one after; a removed peer's bundle is refused with who removed it;
 * the on-disk rotation of a node's signing key.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "sc_card.h"
#include "sd_test.h"

#define T_UNTIL (FX_NOW + 3600)

/* node-a's card with keys k (and previous keys prev until T_UNTIL) */
static char *make_card(const sc_node_keys *k, const sc_node_keys *prev, const sc_admin_key *adm)
{
    sc_card c;
    char *text = NULL;
    sc_error e = {0, ""};
    memset(&c, 0, sizeof c);
    c.peer = fx_peer("node-a", k);
    if (adm) {
        c.peer.n_admins = 1;
        snprintf(c.peer.admins[0].name, sizeof c.peer.admins[0].name, "%s", adm->name);
        memcpy(c.peer.admins[0].pk, adm->pk, 32);
    }
    if (prev) {
        memcpy(c.peer.prev_sign_pk, prev->sign_pk, 32);
        c.peer.prev_until = T_UNTIL;
    }
    snprintf(c.url, sizeof c.url, "https://a.example.org:8443");
    c.n_pins = 2;
    memset(c.pins[0], 0x11, 32);
    memset(c.pins[1], 0x22, 32);
    c.ca_len = 100;
    for (size_t i = 0; i < c.ca_len; i++)
        c.ca_der[i] = (uint8_t)i;
    c.not_before = FX_NOW - 60;
    c.not_after = FX_NOW + 30 * 86400;
    if (sc_card_format(&c, k->sign_sk, prev ? prev->sign_sk : NULL, &text, &e))
        fprintf(stderr, "make_card: %s\n", e.msg);
    return text;
}

static void test_roundtrip_and_tamper(fixture *f)
{
    sc_error e = {0, ""};
    sc_card c;
    char *text = make_card(f->a, NULL, f->alice);
    CHECK(text != NULL);
    if (!text)
        return;
    size_t len = strlen(text);
    CHECKF(sc_card_parse(text, len, &c, &e) == 0, "%s", e.msg);
    CHECK(!strcmp(c.peer.id, "node-a") && !memcmp(c.peer.sign_pk, f->a->sign_pk, 32) &&
          !memcmp(c.peer.enc_pk, f->a->enc_pk, 32));
    CHECK(c.peer.n_admins == 1 && !strcmp(c.peer.admins[0].name, "alice"));
    CHECK(c.n_pins == 2 && c.pins[1][0] == 0x22 && c.ca_len == 100 && c.ca_der[99] == 99);
    CHECK(!strcmp(c.url, "https://a.example.org:8443") && c.peer.prev_until == 0);
    /* every single flipped byte is refused (content, signature or form) */
    int accepted = 0;
    for (size_t i = 0; i < len; i++) {
        char *t = malloc(len + 1);
        memcpy(t, text, len + 1);
        t[i] ^= 0x01;
        if (sc_card_parse(t, len, &c, NULL) == 0)
            accepted++;
        free(t);
    }
    CHECKF(accepted == 0, "%d of %zu flipped bytes accepted", accepted, len);
    /* the URL changed: the signature names what changed */
    char *t = strdup(text), *u = strstr(t, "a.example.org");
    u[0] = 'b';
    CHECK(sc_card_parse(t, len, &c, &e) == SC_ECRYPTO && strstr(e.msg, "does not verify"));
    free(t);
    /* text after the signature, a line out of order, a missing pin */
    size_t big = len + 32;
    t = malloc(big);
    snprintf(t, big, "%s# more\n", text);
    CHECK(sc_card_parse(t, strlen(t), &c, &e) == SC_EFORMAT);
    free(t);
    t = strdup(text);
    char *pin = strstr(t, "tls-pin: "), *ca = strstr(t, "tls-ca: ");
    memcpy(pin, "tls-pon", 7);
    CHECK(sc_card_parse(t, len, &c, &e) == SC_EFORMAT && strstr(e.msg, "unknown or out of order"));
    (void)ca;
    free(t);
    free(text);
}

static void test_time_and_signer(fixture *f)
{
    sc_error e = {0, ""};
    sc_card c, m;
    char *text = make_card(f->a, NULL, NULL);
    CHECK(text && sc_card_parse(text, strlen(text), &c, &e) == 0);
    CHECK(sc_card_check_time(&c, FX_NOW, 300, &e) == 0);
    CHECK(sc_card_check_time(&c, c.not_after, 300, &e) == SC_EREFUSE_EXPIRED &&
          strstr(e.msg, "expired"));
    CHECK(sc_card_check_time(&c, c.not_before - 301, 300, &e) == SC_EREFUSE_FUTURE);
    CHECK(sc_card_check_time(&c, c.not_before - 299, 300, &e) == 0);
    /* a card signed by another key than the one it names does not verify */
    char *forged = make_card(f->d, NULL, NULL), sb[64], db[64];
    sc_b64_encode(sb, f->a->sign_pk, 32);
    sc_b64_encode(db, f->d->sign_pk, 32);
    char *at = strstr(forged, db);
    CHECK(at != NULL);
    if (at)
        memcpy(at, sb, strlen(sb));
    CHECK(sc_card_parse(forged, strlen(forged), &m, &e) == SC_ECRYPTO);
    free(forged);
    /* mallory's own card for node-a verifies by itself, but the key on
     * record does not vouch for it */
    forged = make_card(f->d, NULL, NULL);
    sc_peer rec = fx_peer("node-a", f->a);
    CHECK(sc_card_parse(forged, strlen(forged), &m, &e) == 0);
    CHECK(sc_card_check_update(&m, &rec, FX_NOW, &e) == SC_EPERM && strstr(e.msg, "another key"));
    CHECK(sc_card_check_update(&c, &rec, FX_NOW, &e) == 0);
    /* an older card than the one on record would roll it back */
    CHECK(c.peer.card_time == c.not_before);
    rec.card_time = c.not_before + 1;
    CHECK(sc_card_check_update(&c, &rec, FX_NOW, &e) == SC_EPERM &&
          strstr(e.msg, "before the card"));
    rec.card_time = c.not_before;
    CHECK(sc_card_check_update(&c, &rec, FX_NOW, &e) == 0);
    char *pt = NULL;
    sc_peer back;
    CHECK(sc_peer_format(&c.peer, &pt, &e) == 0 && sc_peer_parse(pt, &back, &e) == 0 &&
          back.card_time == c.not_before);
    free(pt);
    free(forged);
    free(text);
}

/* Envelope a -> b with the statement signed by st_keys and sealed by
 * env_keys. */
static int envelope(fixture *f, const sc_node_keys *st_keys, const sc_node_keys *env_keys,
                    uint64_t seq, uint8_t **out, size_t *len)
{
    sp_test_params p;
    uint8_t *pl, *st;
    size_t pn, sn;
    sc_admin_key *adm[1] = {f->alice};
    fx_params(&p, seq, (int)seq);
    if (sp_test_bundle_build(&p, &pl, &pn))
        return -1;
    int rc = fx_statement(pl, pn, "node-a", st_keys, adm, 1, &st, &sn);
    free(pl);
    if (rc)
        return -1;
    rc = fx_seal(f, st, sn, &p, "node-a", env_keys, "node-b", f->b->enc_pk, out, len);
    free(st);
    return rc;
}

static int receive_at(fixture *f, const uint8_t *buf, size_t len, int64_t now, sc_error *e)
{
    sc_receiver r = f->rb;
    sc_received *rec = NULL;
    r.now = now;
    r.replay = NULL;
    int rc = sc_receive(&r, buf, len, &rec, e);
    sc_received_destroy(rec);
    return rc;
}

static void test_rotation(fixture *f)
{
    sc_error e = {0, ""};
    sc_node_keys *a2 = NULL;
    uint8_t s[32], *old_env = NULL, *new_env = NULL, *mixed = NULL;
    size_t ol, nl, ml;
    sc_card c;
    sc_peer rec;
    fx_seed(s, 21);
    CHECK(sc_node_keys_from_seed(s, &a2, NULL) == 0);
    memcpy(a2->enc_pk, f->a->enc_pk, 32); /* only the signing key rotates */
    CHECK(envelope(f, f->a, f->a, 1, &old_env, &ol) == 0);
    CHECK(envelope(f, a2, a2, 2, &new_env, &nl) == 0);
    CHECK(envelope(f, f->a, a2, 3, &mixed, &ml) == 0); /* signed before, sealed after */
    /* b holds the old card: the new key is unknown */
    CHECK(receive_at(f, old_env, ol, FX_NOW, &e) == 0);
    CHECK(receive_at(f, new_env, nl, FX_NOW, &e) == SC_EREFUSE_UNKNOWN_SENDER);
    /* the rotation card: new key, old key until T_UNTIL, signed by both */
    char *text = make_card(a2, f->a, f->alice);
    CHECK(text && sc_card_parse(text, strlen(text), &c, &e) == 0);
    CHECK(c.peer.prev_until == T_UNTIL && !memcmp(c.peer.prev_sign_pk, f->a->sign_pk, 32));
    CHECK(f->trust->peer_get(f->trust, "node-a", &rec, &e) == 0);
    CHECKF(sc_card_check_update(&c, &rec, FX_NOW, &e) == 0, "%s", e.msg);
    CHECK(sc_card_check_update(&c, &rec, T_UNTIL, &e) == SC_EPERM && strstr(e.msg, "overlap"));
    /* the previous signature must be the previous key's */
    char *bad = strdup(text), *ps = strstr(bad, "previous-signature: ");
    ps[25] = ps[25] == 'A' ? 'B' : 'A';
    CHECK(sc_card_parse(bad, strlen(bad), &c, &e) != 0);
    free(bad);
    /* the peer takes the card: both keys during the overlap, the new after */
    CHECK(f->trust->peer_put(f->trust, &c.peer, &e) == 0);
    CHECKF(receive_at(f, new_env, nl, FX_NOW, &e) == 0, "%s", e.msg);
    CHECKF(receive_at(f, old_env, ol, FX_NOW, &e) == 0, "%s", e.msg);
    CHECKF(receive_at(f, mixed, ml, FX_NOW, &e) == 0, "%s", e.msg);
    CHECK(receive_at(f, new_env, nl, T_UNTIL + 1, &e) == 0);
    CHECK(receive_at(f, old_env, ol, T_UNTIL + 1, &e) == SC_EREFUSE_UNKNOWN_SENDER &&
          strstr(e.msg, "overlap ended"));
    CHECK(receive_at(f, mixed, ml, T_UNTIL + 1, &e) == SC_EREFUSE_NODE_SIG);
    /* the peer record keeps the previous key across its text form */
    char *pt = NULL;
    sc_peer back;
    CHECK(sc_peer_format(&c.peer, &pt, &e) == 0 && sc_peer_parse(pt, &back, &e) == 0);
    CHECK(back.prev_until == T_UNTIL && !memcmp(back.prev_sign_pk, f->a->sign_pk, 32));
    free(pt);
    /* restore the fixture's record */
    sc_peer pa = fx_peer("node-a", f->a);
    pa.n_admins = 1;
    snprintf(pa.admins[0].name, sizeof pa.admins[0].name, "alice");
    memcpy(pa.admins[0].pk, f->alice->pk, 32);
    CHECK(f->trust->peer_put(f->trust, &pa, &e) == 0);
    free(text);
    free(old_env);
    free(new_env);
    free(mixed);
    sc_node_keys_destroy(a2);
}

static void test_removed_peer(fixture *f, const char *dir)
{
    sc_error e = {0, ""};
    sc_trust_store *t = NULL;
    sc_peer pa, got;
    uint8_t *env = NULL;
    size_t el;
    CHECK(sc_trust_store_open_files(dir, "node-b", &t, &e) == 0);
    if (!t)
        return;
    CHECK(f->trust->peer_get(f->trust, "node-a", &pa, &e) == 0);
    CHECK(t->peer_put(t, &pa, &e) == 0);
    CHECK(envelope(f, f->a, f->a, 4, &env, &el) == 0);
    fixture g = *f;
    g.rb.trust = t;
    CHECKF(receive_at(&g, env, el, FX_NOW, &e) == 0, "%s", e.msg);
    CHECK(t->peer_remove(t, "node-a", "removed by user:carol at 2026-01-01T00:00:00Z", &e) == 0);
    CHECK(t->peer_get(t, "node-a", &got, &e) == SC_ENOTFOUND && strstr(e.msg, "user:carol"));
    CHECK(receive_at(&g, env, el, FX_NOW, &e) == SC_EREFUSE_UNKNOWN_SENDER &&
          strstr(e.msg, "was removed") && strstr(e.msg, "user:carol"));
    CHECK(t->peer_remove(t, "node-b", "x", &e) == SC_EINVAL); /* this node */
    /* added again: known again */
    CHECK(t->peer_put(t, &pa, &e) == 0 && t->peer_get(t, "node-a", &got, &e) == 0);
    sc_trust_store_destroy(t);
    free(env);
}

static void test_sign_rotate_files(const char *dir)
{
    sc_error e = {0, ""};
    sc_node_keys *k = NULL, *k2 = NULL;
    uint8_t pk[32], ppk[32], *psk = NULL;
    int64_t until = 0;
    CHECK(sc_node_keys_generate(&k, &e) == 0 && sc_node_keys_save(k, dir, "node-b", &e) == 0);
    CHECK(sc_node_sign_prev_load(dir, ppk, NULL, &until, NULL) == SC_ENOTFOUND);
    CHECK(sc_node_sign_rotate(dir, "node-b", 1000, 1000, pk, &e) == SC_EINVAL);
    CHECKF(sc_node_sign_rotate(dir, "node-b", 5000, 1000, pk, &e) == 0, "%s", e.msg);
    CHECK(sc_node_keys_load(dir, &k2, &e) == 0 && !memcmp(k2->sign_pk, pk, 32));
    CHECK(k2 && !memcmp(k2->enc_pk, k->enc_pk, 32));
    CHECK(sc_node_sign_prev_load(dir, ppk, &psk, &until, &e) == 0 && until == 5000 &&
          !memcmp(ppk, k->sign_pk, 32) && psk && !memcmp(psk, k->sign_sk, 64));
    if (psk)
        sodium_free(psk);
    /* a second rotation inside the overlap is refused, after it allowed */
    CHECK(sc_node_sign_rotate(dir, "node-b", 9000, 4000, pk, &e) == SC_EEXIST);
    CHECKF(sc_node_sign_rotate(dir, "node-b", 9000, 6000, ppk, &e) == 0, "%s", e.msg);
    CHECK(sc_node_sign_prev_load(dir, ppk, NULL, &until, &e) == 0 && until == 9000 &&
          !memcmp(ppk, pk, 32));
    sc_node_keys_destroy(k);
    sc_node_keys_destroy(k2);
}

int main(void)
{
    fixture f;
    char tmpl[] = "/tmp/sldd-card-XXXXXX", cmd[128];
    if (fx_init(&f)) {
        fprintf(stderr, "fixture failed\n");
        return 1;
    }
    if (!mkdtemp(tmpl))
        return 1;
    test_roundtrip_and_tamper(&f);
    test_time_and_signer(&f);
    test_rotation(&f);
    test_removed_peer(&f, tmpl);
    test_sign_rotate_files(tmpl);
    fx_free(&f);
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpl);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpl);
    return sd_test_finish();
}
