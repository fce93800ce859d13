/*
 * sc_sign.c - PAE and statement signing (see sc_sign.h); the verification
 * of a statement's signatures is on the receive path, sc_receive.c.
 */
#include "sc_sign.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sc_util.h"
#include "sp_check.h"

int sc_pae(const char *type, const uint8_t *body, size_t len, uint8_t **out, size_t *outlen,
           sc_error *e)
{
    char head[512];
    size_t tl = strlen(type);
    int hn = snprintf(head, sizeof head, "DSSEv1 %zu %s %zu ", tl, type, len);
    uint8_t *p;
    *out = NULL;
    *outlen = 0;
    if (hn < 0 || (size_t)hn >= sizeof head || len > SIZE_MAX - (size_t)hn)
        return sc_error_set(e, SC_EINVAL, "PAE: type too long");
    p = malloc((size_t)hn + len + 1);
    if (!p)
        return sc_error_set(e, SC_ENOMEM, "PAE: out of memory for %zu bytes", len);
    memcpy(p, head, (size_t)hn);
    if (len)
        memcpy(p + hn, body, len);
    *out = p;
    *outlen = (size_t)hn + len;
    return 0;
}

int sc_pae_sign(uint8_t sig[64], const char *type, const uint8_t *body, size_t len,
                const uint8_t sk[64], sc_error *e)
{
    uint8_t *m;
    size_t ml;
    int rc = sc_pae(type, body, len, &m, &ml, e);
    if (rc)
        return rc;
    if (crypto_sign_detached(sig, NULL, m, ml, sk))
        rc = sc_error_set(e, SC_ECRYPTO, "Ed25519 signing failed");
    free(m);
    return rc;
}

int sc_pae_verify(const uint8_t sig[64], const char *type, const uint8_t *body, size_t len,
                  const uint8_t pk[32])
{
    uint8_t *m;
    size_t ml;
    int ok;
    if (sc_pae(type, body, len, &m, &ml, NULL))
        return -1;
    ok = crypto_sign_verify_detached(sig, m, ml, pk) == 0;
    free(m);
    return ok ? 0 : -1;
}

static int pack_statement(const Sldd__V1__Statement *st, uint8_t **out, size_t *outlen, sc_error *e)
{
    size_t n = sldd__v1__statement__get_packed_size(st);
    *out = malloc(n ? n : 1);
    if (!*out)
        return sc_error_set(e, SC_ENOMEM, "out of memory");
    if (sldd__v1__statement__pack(st, *out) != n) {
        free(*out);
        *out = NULL;
        return sc_error_set(e, SC_EFORMAT, "statement packing failed");
    }
    *outlen = n;
    return 0;
}

int sc_statement_wrap(const uint8_t *payload, size_t len, uint8_t **out, size_t *outlen,
                      sc_error *e)
{
    Sldd__V1__Statement st = SLDD__V1__STATEMENT__INIT;
    st.payload_type = SC_TYPE_BUNDLE;
    st.payload.data = (uint8_t *)payload;
    st.payload.len = len;
    return pack_statement(&st, out, outlen, e);
}

int sc_statement_parse(const uint8_t *buf, size_t len, sp_budget *budget, Sldd__V1__Statement **out,
                       sc_error *e)
{
    sc_error why;
    Sldd__V1__Statement *st = sldd__v1__statement__unpack(sp_budget_allocator(budget), len, buf);
    *out = NULL;
    if (!st)
        return sc_error_set(e, budget->exceeded ? SC_EREFUSE_BUDGET : SC_EREFUSE_STATEMENT,
                            budget->exceeded ? "statement exceeds the parse budget of %zu bytes"
                                             : "signed statement does not parse (%zu bytes)",
                            budget->exceeded ? budget->limit : len);
    if (sp_message_check_unknown(&st->base, &why)) {
        protobuf_c_message_free_unpacked(&st->base, sp_budget_allocator(budget));
        return sc_error_set(e, SC_EREFUSE_STATEMENT, "signed statement: %s", why.msg);
    }
    if (st->n_signatures > SC_MAX_SIGNATURES) {
        protobuf_c_message_free_unpacked(&st->base, sp_budget_allocator(budget));
        return sc_error_set(e, SC_EREFUSE_STATEMENT, "statement has %zu signatures (max %d)",
                            st->n_signatures, SC_MAX_SIGNATURES);
    }
    *out = st;
    return 0;
}

/* Append sig to a parsed statement, repack; only the container is
 * re-serialised, the payload and every signed byte string are copied as
 * they are. */
static int add_signature(const uint8_t *in, size_t len, Sldd__V1__Signature *sig, uint8_t **out,
                         size_t *outlen, sc_error *e)
{
    sp_budget b;
    Sldd__V1__Statement *st;
    Sldd__V1__Signature **sigs;
    int rc;
    sp_budget_init(&b, len * 2 + 65536);
    if ((rc = sc_statement_parse(in, len, &b, &st, e)))
        return rc;
    if (st->n_signatures >= SC_MAX_SIGNATURES) {
        protobuf_c_message_free_unpacked(&st->base, sp_budget_allocator(&b));
        return sc_error_set(e, SC_EINVAL, "statement already has %d signatures", SC_MAX_SIGNATURES);
    }
    sigs = malloc((st->n_signatures + 1) * sizeof *sigs);
    if (!sigs) {
        protobuf_c_message_free_unpacked(&st->base, sp_budget_allocator(&b));
        return sc_error_set(e, SC_ENOMEM, "out of memory");
    }
    if (st->n_signatures)
        memcpy(sigs, st->signatures, st->n_signatures * sizeof *sigs);
    sigs[st->n_signatures] = sig;
    {
        Sldd__V1__Statement copy = *st;
        copy.signatures = sigs;
        copy.n_signatures = st->n_signatures + 1;
        rc = pack_statement(&copy, out, outlen, e);
    }
    free(sigs);
    protobuf_c_message_free_unpacked(&st->base, sp_budget_allocator(&b));
    return rc;
}

/* Payload bytes of statement `in` (parsed into *st with budget b). */
static int statement_payload(const uint8_t *in, size_t len, sp_budget *b, Sldd__V1__Statement **st,
                             sc_error *e)
{
    int rc = sc_statement_parse(in, len, b, st, e);
    if (rc)
        return rc;
    if (strcmp((*st)->payload_type, SC_TYPE_BUNDLE)) {
        protobuf_c_message_free_unpacked(&(*st)->base, sp_budget_allocator(b));
        return sc_error_set(e, SC_EREFUSE_PAYLOAD_TYPE, "payload type '%.80s' is not %s",
                            (*st)->payload_type, SC_TYPE_BUNDLE);
    }
    return 0;
}

int sc_statement_sign_node(const uint8_t *in, size_t len, const char *node_id,
                           const sc_node_keys *keys, uint8_t **out, size_t *outlen, sc_error *e)
{
    sp_budget b;
    Sldd__V1__Statement *st;
    Sldd__V1__Signature sig = SLDD__V1__SIGNATURE__INIT;
    uint8_t sigbytes[64], kid[32];
    int rc;
    sp_budget_init(&b, len * 2 + 65536);
    if ((rc = statement_payload(in, len, &b, &st, e)))
        return rc;
    rc = sc_pae_sign(sigbytes, SC_TYPE_BUNDLE, st->payload.data, st->payload.len, keys->sign_sk, e);
    protobuf_c_message_free_unpacked(&st->base, sp_budget_allocator(&b));
    if (rc)
        return rc;
    sc_key_id(kid, keys->sign_pk);
    sig.role = SLDD__V1__SIGNER_ROLE__SIGNER_ROLE_NODE;
    sig.signer_id = (char *)node_id;
    sig.key_id.data = kid;
    sig.key_id.len = 32;
    sig.sig.data = sigbytes;
    sig.sig.len = 64;
    return add_signature(in, len, &sig, out, outlen, e);
}

int sc_statement_approve(const uint8_t *in, size_t len, const sc_admin_key *k, int decision,
                         int64_t time_unix, uint8_t **out, size_t *outlen, sc_error *e)
{
    sp_budget b;
    Sldd__V1__Statement *st;
    Sldd__V1__Approval ap = SLDD__V1__APPROVAL__INIT;
    Sldd__V1__Signature sig = SLDD__V1__SIGNATURE__INIT;
    uint8_t hash[32], sigbytes[64], kid[32], apbytes[SC_APPROVAL_MAX];
    size_t apn;
    int rc;
    if (decision != SLDD__V1__DECISION__DECISION_APPROVE &&
        decision != SLDD__V1__DECISION__DECISION_REJECT)
        return sc_error_set(e, SC_EINVAL, "decision must be approve or reject");
    sp_budget_init(&b, len * 2 + 65536);
    if ((rc = statement_payload(in, len, &b, &st, e)))
        return rc;
    sc_sha256(hash, st->payload.data, st->payload.len);
    protobuf_c_message_free_unpacked(&st->base, sp_budget_allocator(&b));
    ap.payload_sha256.data = hash;
    ap.payload_sha256.len = 32;
    ap.admin_id = (char *)k->name;
    ap.node_id = (char *)k->node;
    ap.decision = (Sldd__V1__Decision)decision;
    ap.time_unix = time_unix;
    apn = sldd__v1__approval__get_packed_size(&ap);
    if (apn > sizeof apbytes || sldd__v1__approval__pack(&ap, apbytes) != apn)
        return sc_error_set(e, SC_EFORMAT, "approval packing failed");
    if ((rc = sc_pae_sign(sigbytes, SC_TYPE_APPROVAL, apbytes, apn, k->sk, e)))
        return rc;
    sc_key_id(kid, k->pk);
    sig.role = SLDD__V1__SIGNER_ROLE__SIGNER_ROLE_ADMIN;
    sig.signer_id = (char *)k->name;
    sig.key_id.data = kid;
    sig.key_id.len = 32;
    sig.sig.data = sigbytes;
    sig.sig.len = 64;
    sig.approval.data = apbytes;
    sig.approval.len = apn;
    return add_signature(in, len, &sig, out, outlen, e);
}

const char *sc_statement_node_signer(const Sldd__V1__Statement *st)
{
    for (size_t i = 0; i < st->n_signatures; i++)
        if (st->signatures[i]->role == SLDD__V1__SIGNER_ROLE__SIGNER_ROLE_NODE)
            return st->signatures[i]->signer_id;
    return NULL;
}
