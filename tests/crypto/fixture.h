/*
 * fixture.h - a small federation in memory for the receive-path tests and
 * the fuzz harness: sender node-a with admins alice and bob, receiver
 * node-b, a third node-c, and node-d/mallory whom nobody knows.  Keys come
 * from fixed seeds so runs are reproducible.  Header-only (static
 * functions) so each test executable takes what it uses.
 */
#ifndef SLDD_TEST_FIXTURE_H
#define SLDD_TEST_FIXTURE_H

#include <stdlib.h>
#include <string.h>

#include "sc_envelope.h"
#include "sc_keys.h"
#include "sc_sign.h"
#include "sc_store.h"
#include "sc_util.h"
#include "sldd.pb-c.h"
#include "sp_testbundle.h"

#define FX_CREATED 1767225600 /* 2026-01-01T00:00:00Z */
#define FX_NOW     (FX_CREATED + 60)

typedef struct fixture {
    sc_node_keys *a, *b, *c, *d;
    sc_admin_key *alice, *bob, *mallory;
    sc_trust_store *trust; /* node-b's view */
    sc_replay_store *replay;
    sc_receiver rb;
} fixture;

static inline void fx_seed(uint8_t s[32], int k)
{
    memset(s, 0, 32);
    s[0] = (uint8_t)k;
    s[31] = 0x5d;
}

static inline sc_peer fx_peer(const char *id, const sc_node_keys *k)
{
    sc_peer p;
    memset(&p, 0, sizeof p);
    snprintf(p.id, sizeof p.id, "%s", id);
    memcpy(p.sign_pk, k->sign_pk, 32);
    memcpy(p.enc_pk, k->enc_pk, 32);
    return p;
}

static inline int fx_init(fixture *f)
{
    uint8_t s[32];
    sc_peer pa, pb, pc;
    memset(f, 0, sizeof *f);
    fx_seed(s, 1);
    if (sc_node_keys_from_seed(s, &f->a, NULL))
        return -1;
    fx_seed(s, 2);
    if (sc_node_keys_from_seed(s, &f->b, NULL))
        return -1;
    fx_seed(s, 3);
    if (sc_node_keys_from_seed(s, &f->c, NULL))
        return -1;
    fx_seed(s, 4);
    if (sc_node_keys_from_seed(s, &f->d, NULL))
        return -1;
    fx_seed(s, 11);
    if (sc_admin_key_from_seed("alice", "node-a", s, &f->alice, NULL))
        return -1;
    fx_seed(s, 12);
    if (sc_admin_key_from_seed("bob", "node-a", s, &f->bob, NULL))
        return -1;
    fx_seed(s, 13);
    if (sc_admin_key_from_seed("mallory", "node-a", s, &f->mallory, NULL))
        return -1;
    if (sc_trust_store_memory(&f->trust, NULL) || sc_replay_store_memory(&f->replay, NULL))
        return -1;
    pa = fx_peer("node-a", f->a);
    pa.n_admins = 2;
    snprintf(pa.admins[0].name, sizeof pa.admins[0].name, "alice");
    memcpy(pa.admins[0].pk, f->alice->pk, 32);
    snprintf(pa.admins[1].name, sizeof pa.admins[1].name, "bob");
    memcpy(pa.admins[1].pk, f->bob->pk, 32);
    pb = fx_peer("node-b", f->b);
    pc = fx_peer("node-c", f->c);
    if (f->trust->peer_put(f->trust, &pa, NULL) || f->trust->peer_put(f->trust, &pb, NULL) ||
        f->trust->peer_put(f->trust, &pc, NULL))
        return -1;
    f->rb.self_id = "node-b";
    f->rb.keys = f->b;
    f->rb.trust = f->trust;
    f->rb.replay = f->replay;
    f->rb.cfg.max_bytes = (size_t)64 << 20;
    f->rb.cfg.parse_budget = (size_t)64 << 20;
    f->rb.cfg.min_admins = 1;
    f->rb.cfg.clock_skew = 300;
    f->rb.now = FX_NOW;
    return 0;
}

static inline void fx_free(fixture *f)
{
    sc_node_keys_destroy(f->a);
    sc_node_keys_destroy(f->b);
    sc_node_keys_destroy(f->c);
    sc_node_keys_destroy(f->d);
    sc_admin_key_destroy(f->alice);
    sc_admin_key_destroy(f->bob);
    sc_admin_key_destroy(f->mallory);
    sc_trust_store_destroy(f->trust);
    sc_replay_store_destroy(f->replay);
}

/* Small payload params from node-a to node-b (and node-c). */
static inline void fx_params(sp_test_params *p, uint64_t seq, int id_byte)
{
    static const char *const aud[] = {"node-b", "node-c"};
    sp_test_params_default(p);
    p->sender = "node-a";
    p->audience = aud;
    p->n_audience = 2;
    p->created_unix = FX_CREATED;
    p->expires_unix = FX_CREATED + 86400;
    p->sequence = seq;
    p->bundle_id[0] = (uint8_t)id_byte;
    p->depth = 1;
    p->width = 4;
    p->height = p->width_px = 8;
    p->steps = 2;
    p->per_step = 3;
    p->epochs = 2;
}

/* Statement around payload, signed by `signer` as node_id (NULL: no node
 * signature), approved by admins[0..n) (decision APPROVE). */
static inline int fx_statement(const uint8_t *payload, size_t len, const char *node_id,
                               const sc_node_keys *signer, sc_admin_key *const *admins, size_t n,
                               uint8_t **out, size_t *outlen)
{
    uint8_t *st, *next;
    size_t sl, nl;
    if (sc_statement_wrap(payload, len, &st, &sl, NULL))
        return -1;
    if (signer) {
        if (sc_statement_sign_node(st, sl, node_id, signer, &next, &nl, NULL)) {
            free(st);
            return -1;
        }
        free(st);
        st = next;
        sl = nl;
    }
    for (size_t i = 0; i < n; i++) {
        if (sc_statement_approve(st, sl, admins[i], SLDD__V1__DECISION__DECISION_APPROVE,
                                 FX_CREATED, &next, &nl, NULL)) {
            free(st);
            return -1;
        }
        free(st);
        st = next;
        sl = nl;
    }
    *out = st;
    *outlen = sl;
    return 0;
}

/* Envelope of statement from node-a (keys a) to `to` with enc key enc_pk,
 * header fields from p. */
static inline int fx_seal(const fixture *f, const uint8_t *st, size_t sl, const sp_test_params *p,
                          const char *sender, const sc_node_keys *sender_keys, const char *to,
                          const uint8_t *enc_pk, uint8_t **out, size_t *outlen)
{
    sc_envelope_fields fl;
    (void)f;
    fl.sender = sender;
    fl.recipient = to;
    fl.bundle_id = p->bundle_id;
    fl.sequence = p->sequence;
    fl.created_unix = p->created_unix;
    fl.expires_unix = p->expires_unix;
    return sc_envelope_seal(st, sl, &fl, sender_keys, enc_pk, out, outlen, NULL);
}

/* The standard good envelope a -> b for params p. */
static inline int fx_good(const fixture *f, const sp_test_params *p, uint8_t **out, size_t *outlen)
{
    uint8_t *pl, *st;
    size_t pn, sn;
    sc_admin_key *adm[1];
    int rc;
    adm[0] = f->alice;
    if (sp_test_bundle_build(p, &pl, &pn))
        return -1;
    rc = fx_statement(pl, pn, "node-a", f->a, adm, 1, &st, &sn);
    free(pl);
    if (rc)
        return -1;
    rc = fx_seal(f, st, sn, p, "node-a", f->a, "node-b", f->b->enc_pk, out, outlen);
    free(st);
    return rc;
}

#endif
