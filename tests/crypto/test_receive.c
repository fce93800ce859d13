/*
 * test_receive.c - the receive order (docs/bundle-format.md §5), one refusal at a time:
 * every check has a test that reaches it and sees its own code and a
 * reason; plus every single-byte flip and every truncation of a sealed
 * bundle, and the PAE encoding against the DSSE specification's example.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../sd_test.h"
#include "fixture.h"
#include "sp_budget.h"

static fixture F;

/* Receive buf; return the code (0 accepted), check that a refusal has a
 * reason; never commits. */
static int recv_code(const uint8_t *buf, size_t len, const sc_receiver *r)
{
    sc_received *rec = NULL;
    sc_error e = {0, ""};
    int rc = sc_receive(r ? r : &F.rb, buf, len, &rec, &e);
    if (rc) {
        if (!sc_status_is_refusal(rc) || !e.msg[0] || rec) {
            fprintf(stderr, "refusal without reason or with a result: %d '%s'\n", rc, e.msg);
            return 1000;
        }
    } else if (!rec) {
        return 1001;
    }
    sc_received_destroy(rec);
    return rc;
}

#define EXPECT(code, buf, len, r, what)                                                           \
    do {                                                                                          \
        int got_ = recv_code(buf, len, r);                                                        \
        CHECKF(got_ == (code), "%s: got %d (%s), want %d (%s)", what, got_, sc_status_name(got_), \
               code, sc_status_name(code));                                                       \
    } while (0)

/* Re-sign a (possibly modified) envelope with `keys` as its outer signer. */
static void resign(Sldd__V1__Envelope *env, const sc_node_keys *keys)
{
    uint8_t *body = malloc(env->header.len + 32);
    memcpy(body, env->header.data, env->header.len);
    sc_sha256(body + env->header.len, env->ciphertext.data, env->ciphertext.len);
    if (sc_pae_sign(env->signature.data, SC_TYPE_ENVELOPE, body, env->header.len + 32,
                    keys->sign_sk, NULL))
        abort();
    free(body);
}

static uint8_t *pack_env(const Sldd__V1__Envelope *env, size_t *len)
{
    uint8_t *out;
    *len = sldd__v1__envelope__get_packed_size(env);
    out = malloc(*len);
    sldd__v1__envelope__pack(env, out);
    return out;
}

static void test_pae(void)
{
    uint8_t *m;
    size_t ml;
    const char *want = "DSSEv1 29 http://example.com/HelloWorld 11 hello world";
    CHECK(sc_pae("http://example.com/HelloWorld", (const uint8_t *)"hello world", 11, &m, &ml,
                 NULL) == 0);
    CHECK(ml == strlen(want) && memcmp(m, want, ml) == 0);
    free(m);
    CHECK(sc_pae("t", NULL, 0, &m, &ml, NULL) == 0);
    CHECK(ml == 13 && memcmp(m, "DSSEv1 1 t 0 ", 13) == 0);
    free(m);
}

static void test_good_and_replay(void)
{
    sp_test_params p;
    uint8_t *env;
    size_t len;
    sc_received *rec = NULL;
    sc_error e = {0, ""};
    fx_params(&p, 5, 1);
    CHECK(fx_good(&F, &p, &env, &len) == 0);
    CHECKF(sc_receive(&F.rb, env, len, &rec, &e) == 0, "good bundle refused: %s", e.msg);
    if (rec) {
        CHECK(!strcmp(rec->sender, "node-a") && rec->sequence == 5);
        CHECK(rec->sigs.node_ok && rec->sigs.n_admins == 1 &&
              !strcmp(rec->sigs.admins[0], "alice"));
        CHECK(rec->bundle && rec->bundle->distilled->steps == 2);
        CHECK(sc_receive_commit(&F.rb, rec, &e) == 0);
        sc_received_destroy(rec);
    }
    /* the same envelope again */
    EXPECT(SC_EREFUSE_REPLAY_ID, env, len, NULL, "replayed envelope");
    free(env);
    /* a new bundle id with the same sequence, and an older one */
    fx_params(&p, 5, 2);
    CHECK(fx_good(&F, &p, &env, &len) == 0);
    EXPECT(SC_EREFUSE_REPLAY_SEQ, env, len, NULL, "same sequence, new id");
    free(env);
    fx_params(&p, 4, 3);
    CHECK(fx_good(&F, &p, &env, &len) == 0);
    EXPECT(SC_EREFUSE_REPLAY_SEQ, env, len, NULL, "older sequence");
    free(env);
    fx_params(&p, 6, 4);
    CHECK(fx_good(&F, &p, &env, &len) == 0);
    EXPECT(0, env, len, NULL, "next sequence");
    free(env);
}

static void test_header_checks(void)
{
    sp_test_params p;
    uint8_t *pl, *st, *env;
    size_t pn, sn, len;
    sc_admin_key *adm[1] = {F.alice};
    sc_receiver r = F.rb;
    fx_params(&p, 100, 10);
    CHECK(sp_test_bundle_build(&p, &pl, &pn) == 0);
    CHECK(fx_statement(pl, pn, "node-a", F.a, adm, 1, &st, &sn) == 0);

    /* another recipient: for node-c, delivered to node-b */
    CHECK(fx_seal(&F, st, sn, &p, "node-a", F.a, "node-c", F.c->enc_pk, &env, &len) == 0);
    EXPECT(SC_EREFUSE_RECIPIENT, env, len, NULL, "addressed to node-c");
    free(env);
    /* addressed to node-b but sealed to another key */
    CHECK(fx_seal(&F, st, sn, &p, "node-a", F.a, "node-b", F.c->enc_pk, &env, &len) == 0);
    EXPECT(SC_EREFUSE_RECIPIENT, env, len, NULL, "sealed to node-c's key");
    free(env);

    /* the good one, at various times */
    CHECK(fx_seal(&F, st, sn, &p, "node-a", F.a, "node-b", F.b->enc_pk, &env, &len) == 0);
    r.now = p.expires_unix;
    EXPECT(SC_EREFUSE_EXPIRED, env, len, &r, "expired");
    r.now = p.expires_unix - 1;
    EXPECT(0, env, len, &r, "one second before expiry");
    r.now = p.created_unix - 301;
    EXPECT(SC_EREFUSE_FUTURE, env, len, &r, "from the future");
    r.now = p.created_unix - 299;
    EXPECT(0, env, len, &r, "within the clock skew");
    /* size cap */
    r = F.rb;
    r.cfg.max_bytes = len - 1;
    EXPECT(SC_EREFUSE_SIZE, env, len, &r, "over the size cap");
    r.cfg.max_bytes = len;
    EXPECT(0, env, len, &r, "exactly the size cap");
    /* parse budget */
    r = F.rb;
    r.cfg.parse_budget = pn / 2;
    EXPECT(SC_EREFUSE_BUDGET, env, len, &r, "over the parse budget");
    /* min admins */
    r = F.rb;
    r.cfg.min_admins = 2;
    EXPECT(SC_EREFUSE_ADMIN_SIGS, env, len, &r, "one admin, two required");
    free(env);

    /* unknown sender */
    CHECK(fx_seal(&F, st, sn, &p, "node-d", F.d, "node-b", F.b->enc_pk, &env, &len) == 0);
    EXPECT(SC_EREFUSE_UNKNOWN_SENDER, env, len, NULL, "unknown sender node-d");
    free(env);
    /* known sender name, unknown signing key */
    CHECK(fx_seal(&F, st, sn, &p, "node-a", F.d, "node-b", F.b->enc_pk, &env, &len) == 0);
    EXPECT(SC_EREFUSE_UNKNOWN_SENDER, env, len, NULL, "node-a with node-d's key");
    free(env);
    /* right key id in the header, signature by another key */
    CHECK(fx_seal(&F, st, sn, &p, "node-a", F.a, "node-b", F.b->enc_pk, &env, &len) == 0);
    {
        Sldd__V1__Envelope *e = sldd__v1__envelope__unpack(NULL, len, env);
        uint8_t *e2;
        size_t l2;
        resign(e, F.d);
        e2 = pack_env(e, &l2);
        EXPECT(SC_EREFUSE_OUTER_SIG, e2, l2, NULL, "outer signature by another key");
        free(e2);
        /* ciphertext changed, outer signature redone by the real sender */
        e->ciphertext.data[e->ciphertext.len / 2] ^= 1;
        resign(e, F.a);
        e2 = pack_env(e, &l2);
        EXPECT(SC_EREFUSE_AEAD, e2, l2, NULL, "tampered ciphertext, re-signed");
        free(e2);
        e->ciphertext.data[e->ciphertext.len / 2] ^= 1;
        /* sealed key changed */
        {
            Sldd__V1__EnvelopeHeader *h =
                sldd__v1__envelope_header__unpack(NULL, e->header.len, e->header.data);
            uint8_t *hb;
            size_t hl = sldd__v1__envelope_header__get_packed_size(h);
            h->sealed_key.data[40] ^= 1;
            hb = malloc(hl);
            sldd__v1__envelope_header__pack(h, hb);
            free(e->header.data);
            e->header.data = hb;
            e->header.len = hl;
            resign(e, F.a);
            e2 = pack_env(e, &l2);
            EXPECT(SC_EREFUSE_UNSEAL, e2, l2, NULL, "tampered sealed key, re-signed");
            free(e2);
            sldd__v1__envelope_header__free_unpacked(h, NULL);
        }
        /* a header that is not a header */
        free(e->header.data);
        e->header.data = malloc(5);
        memcpy(e->header.data, "\xff\xff\xff\xff\x0f", 5);
        e->header.len = 5;
        resign(e, F.a);
        e2 = pack_env(e, &l2);
        EXPECT(SC_EREFUSE_HEADER, e2, l2, NULL, "garbage header");
        free(e2);
        sldd__v1__envelope__free_unpacked(e, NULL);
    }
    free(env);
    free(st);

    /* header disagrees with the payload */
    {
        sp_test_params q = p;
        q.bundle_id[5] ^= 0x40;
        CHECK(fx_statement(pl, pn, "node-a", F.a, adm, 1, &st, &sn) == 0);
        CHECK(fx_seal(&F, st, sn, &q, "node-a", F.a, "node-b", F.b->enc_pk, &env, &len) == 0);
        EXPECT(SC_EREFUSE_MISMATCH, env, len, NULL, "header bundle id differs from payload");
        free(env);
        free(st);
    }
    free(pl);
    /* node-b not in the audience */
    {
        static const char *const only_c[] = {"node-c"};
        sp_test_params q = p;
        q.audience = only_c;
        q.n_audience = 1;
        CHECK(sp_test_bundle_build(&q, &pl, &pn) == 0);
        CHECK(fx_statement(pl, pn, "node-a", F.a, adm, 1, &st, &sn) == 0);
        CHECK(fx_seal(&F, st, sn, &q, "node-a", F.a, "node-b", F.b->enc_pk, &env, &len) == 0);
        EXPECT(SC_EREFUSE_MISMATCH, env, len, NULL, "not in the audience");
        free(env);
        free(st);
        free(pl);
    }
}

/* Seal arbitrary statement bytes from node-a to node-b with params p. */
static void expect_statement(int code, const uint8_t *st, size_t sn, const sp_test_params *p,
                             size_t min_admins, const char *what)
{
    uint8_t *env;
    size_t len;
    sc_receiver r = F.rb;
    r.cfg.min_admins = min_admins;
    CHECK(fx_seal(&F, st, sn, p, "node-a", F.a, "node-b", F.b->enc_pk, &env, &len) == 0);
    EXPECT(code, env, len, &r, what);
    free(env);
}

static void test_inner_checks(void)
{
    sp_test_params p;
    uint8_t *pl, *st, *st2;
    size_t pn, sn, sn2;
    fx_params(&p, 200, 20);
    CHECK(sp_test_bundle_build(&p, &pl, &pn) == 0);
    {
        sc_admin_key *two[2] = {F.alice, F.bob}, *twice[2] = {F.alice, F.alice};
        sc_admin_key *unknown[1] = {F.mallory}, *one[1] = {F.alice};
        CHECK(fx_statement(pl, pn, "node-a", F.a, two, 2, &st, &sn) == 0);
        expect_statement(0, st, sn, &p, 2, "two distinct admins, two required");
        free(st);
        CHECK(fx_statement(pl, pn, "node-a", F.a, twice, 2, &st, &sn) == 0);
        expect_statement(SC_EREFUSE_ADMIN_SIGS, st, sn, &p, 2, "the same admin twice");
        free(st);
        CHECK(fx_statement(pl, pn, "node-a", F.a, unknown, 1, &st, &sn) == 0);
        expect_statement(SC_EREFUSE_ADMIN_SIGS, st, sn, &p, 1, "approval by an unknown admin key");
        free(st);
        CHECK(fx_statement(pl, pn, "node-a", F.a, NULL, 0, &st, &sn) == 0);
        expect_statement(SC_EREFUSE_ADMIN_SIGS, st, sn, &p, 1, "no approval at all");
        expect_statement(SC_EREFUSE_ADMIN_SIGS, st, sn, &p, 0,
                         "no approval, none asked for: one is required anyway");
        free(st);
        CHECK(fx_statement(pl, pn, NULL, NULL, one, 1, &st, &sn) == 0);
        expect_statement(SC_EREFUSE_NODE_SIG, st, sn, &p, 1, "no node signature");
        free(st);
        CHECK(fx_statement(pl, pn, "node-a", F.d, one, 1, &st, &sn) == 0);
        expect_statement(SC_EREFUSE_NODE_SIG, st, sn, &p, 1, "node signature by another key");
        free(st);
        /* a rejection by a trusted admin vetoes */
        CHECK(fx_statement(pl, pn, "node-a", F.a, one, 1, &st, &sn) == 0);
        CHECK(sc_statement_approve(st, sn, F.bob, SLDD__V1__DECISION__DECISION_REJECT, FX_CREATED,
                                   &st2, &sn2, NULL) == 0);
        expect_statement(SC_EREFUSE_ADMIN_SIGS, st2, sn2, &p, 1, "rejected by bob");
        free(st2);
        free(st);
    }
    /* an approval lifted from another payload's statement */
    {
        sp_test_params q = p;
        uint8_t *ql, *qs;
        size_t qn, qsn;
        sc_admin_key *one[1] = {F.alice};
        Sldd__V1__Statement *a, *b;
        q.seed = 99;
        CHECK(sp_test_bundle_build(&q, &ql, &qn) == 0);
        CHECK(fx_statement(ql, qn, "node-a", F.a, one, 1, &qs, &qsn) == 0);
        CHECK(fx_statement(pl, pn, "node-a", F.a, NULL, 0, &st, &sn) == 0);
        a = sldd__v1__statement__unpack(NULL, qsn, qs);
        b = sldd__v1__statement__unpack(NULL, sn, st);
        {
            Sldd__V1__Signature *sigs[2] = {b->signatures[0], a->signatures[1]};
            Sldd__V1__Statement mix = *b;
            mix.signatures = sigs;
            mix.n_signatures = 2;
            sn2 = sldd__v1__statement__get_packed_size(&mix);
            st2 = malloc(sn2);
            sldd__v1__statement__pack(&mix, st2);
            expect_statement(SC_EREFUSE_ADMIN_SIGS, st2, sn2, &p, 1, "approval of another payload");
            free(st2);
        }
        sldd__v1__statement__free_unpacked(a, NULL);
        sldd__v1__statement__free_unpacked(b, NULL);
        free(qs);
        free(st);
        free(ql);
    }
    /* wrong payload type, unknown field in the statement */
    {
        Sldd__V1__Statement s = SLDD__V1__STATEMENT__INIT;
        s.payload_type = "application/json";
        s.payload.data = pl;
        s.payload.len = pn;
        sn = sldd__v1__statement__get_packed_size(&s);
        st = malloc(sn + 3);
        sldd__v1__statement__pack(&s, st);
        expect_statement(SC_EREFUSE_PAYLOAD_TYPE, st, sn, &p, 0, "payload type");
        st[sn] = (9 << 3);
        st[sn + 1] = 1;
        s.payload_type = SC_TYPE_BUNDLE;
        free(st);
        sn = sldd__v1__statement__get_packed_size(&s);
        st = malloc(sn + 2);
        sldd__v1__statement__pack(&s, st);
        st[sn] = (9 << 3);
        st[sn + 1] = 1;
        expect_statement(SC_EREFUSE_STATEMENT, st, sn + 2, &p, 0, "unknown field in statement");
        expect_statement(SC_EREFUSE_STATEMENT, st, sn - 1, &p, 0, "truncated statement");
        free(st);
    }
    /* payload-level refusals, all properly signed and approved */
    {
        sc_admin_key *one[1] = {F.alice};
        uint8_t *u = malloc(pn + 3);
        memcpy(u, pl, pn);
        u[pn] = (uint8_t)((99 << 3) | 0x80);
        u[pn + 1] = (uint8_t)((99 << 3) >> 7);
        u[pn + 2] = 1;
        CHECK(fx_statement(u, pn + 3, "node-a", F.a, one, 1, &st, &sn) == 0);
        expect_statement(SC_EREFUSE_UNKNOWN_FIELDS, st, sn, &p, 1, "unknown field in payload");
        free(st);
        CHECK(fx_statement(u, pn - 1, "node-a", F.a, one, 1, &st, &sn) == 0);
        expect_statement(SC_EREFUSE_PARSE, st, sn, &p, 1, "truncated payload");
        free(st);
        free(u);
        {
            Sldd__V1__Bundle *b = sldd__v1__bundle__unpack(NULL, pn, pl);
            size_t bn;
            b->distilled->step_sizes[1] = 0.0f;
            bn = sldd__v1__bundle__get_packed_size(b);
            u = malloc(bn);
            sldd__v1__bundle__pack(b, u);
            CHECK(fx_statement(u, bn, "node-a", F.a, one, 1, &st, &sn) == 0);
            expect_statement(SC_EREFUSE_SEMANTIC, st, sn, &p, 1, "step size 0");
            free(st);
            free(u);
            b->distilled->step_sizes[1] = 0.01f;
            char *orig_sender = b->sender;
            b->sender = "node-c";
            bn = sldd__v1__bundle__get_packed_size(b);
            u = malloc(bn);
            sldd__v1__bundle__pack(b, u);
            b->sender = orig_sender; /* "node-c" is a literal */
            CHECK(fx_statement(u, bn, "node-a", F.a, one, 1, &st, &sn) == 0);
            expect_statement(SC_EREFUSE_MISMATCH, st, sn, &p, 1, "payload claims another sender");
            free(st);
            free(u);
            sldd__v1__bundle__free_unpacked(b, NULL);
        }
    }
    free(pl);
}

static void test_flips_and_truncations(void)
{
    sp_test_params p;
    uint8_t *env;
    size_t len, accepted = 0, unreasoned = 0;
    int hist[200] = {0};
    fx_params(&p, 300, 30);
    CHECK(fx_good(&F, &p, &env, &len) == 0);
    EXPECT(0, env, len, NULL, "baseline before flips");
    for (size_t i = 0; i < len; i++) {
        int rc;
        env[i] ^= 0x01;
        rc = recv_code(env, len, NULL);
        if (rc == 0)
            accepted++;
        else if (rc >= 1000)
            unreasoned++;
        else
            hist[-rc - 100 < 200 && -rc >= 100 ? -rc - 100 : 199]++;
        env[i] ^= 0x01;
        /* a second pattern per byte: all bits */
        env[i] ^= 0xff;
        rc = recv_code(env, len, NULL);
        if (rc == 0)
            accepted++;
        else if (rc >= 1000)
            unreasoned++;
        env[i] ^= 0xff;
    }
    CHECKF(accepted == 0, "%zu of %zu flipped envelopes accepted", accepted, 2 * len);
    CHECK(unreasoned == 0);
    for (size_t n = 0; n < len; n++) {
        int rc = recv_code(env, n, NULL);
        if (rc == 0)
            accepted++;
        else if (rc >= 1000)
            unreasoned++;
    }
    CHECKF(accepted == 0, "%zu truncations accepted", accepted);
    CHECK(unreasoned == 0);
    printf("flips of a %zu-byte envelope refused as:", len);
    for (int i = 0; i < 200; i++)
        if (hist[i])
            printf(" %s %d", sc_status_name(-100 - i), hist[i]);
    printf("\n");
    EXPECT(0, env, len, NULL, "baseline after flips");
    free(env);
}

/* A statement signed by a node not in the trust store: the refusal wraps the
 * store's reason whole (it was once formatted into the buffer it read). */
static void test_statement_unknown_signer(void)
{
    sp_test_params p;
    uint8_t *pl, *st;
    size_t pn, sn;
    sc_admin_key *one[1] = {F.alice};
    sc_received *rec = NULL;
    sc_error e = {0, ""};
    fx_params(&p, 200, 20);
    CHECK(sp_test_bundle_build(&p, &pl, &pn) == 0);
    CHECK(fx_statement(pl, pn, "node-d", F.d, one, 1, &st, &sn) == 0);
    int rc = sc_verify_statement(st, sn, F.trust, 1, 1 << 24, &rec, &e);
    CHECKF(rc == SC_EREFUSE_UNKNOWN_SENDER, "rc %d: %s", rc, e.msg);
    CHECKF(!strcmp(e.msg, "signed by node 'node-d': node 'node-d' is not a known peer"), "%s",
           e.msg);
    sc_received_destroy(rec);
    free(st);
    free(pl);
}

int main(void)
{
    if (fx_init(&F)) {
        fprintf(stderr, "fixture setup failed\n");
        return 1;
    }
    test_pae();
    test_good_and_replay();
    test_header_checks();
    test_inner_checks();
    test_flips_and_truncations();
    test_statement_unknown_signer();
    fx_free(&F);
    return sd_test_finish();
}
