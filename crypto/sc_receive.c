/*
 * sc_receive.c - the receive path, in the order a reader checks it (see
 * sc_envelope.h): sc_receive runs the whole receive order on an envelope
 * (size, parse, sender, outer signature, recipient, time, replay, unseal,
 * AEAD), then the inner checks shared with sc_verify_statement (statement
 * parse, node and admin signatures by sc_statement_verify, payload parse
 * within the budget, unknown fields, header agreement, semantic checks).
 *
 * Nothing is decrypted before the outer signature has been checked, and
 * nothing is parsed before its authenticity is established: the envelope
 * and header are the only attacker-controlled bytes parsed before a
 * signature check, and both parses are budgeted.
 */
#include "sc_envelope.h"
#include "sc_sign.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sc_util.h"
#include "sp_check.h"

#define HEADER_MAX 4096

/* ---------------------------------------------------------------- signatures */

/* Check one admin signature; returns 1 approve, 2 reject, 0 not counted. */
static int check_admin(const Sldd__V1__Signature *s, const sc_peer *sender, const uint8_t hash[32],
                       size_t *which)
{
    uint8_t kid[32];
    sp_budget b;
    Sldd__V1__Approval *ap;
    int verdict = 0;
    if (s->key_id.len != 32 || s->sig.len != 64 || s->approval.len > SC_APPROVAL_MAX)
        return 0;
    for (size_t i = 0; i < sender->n_admins; i++) {
        sc_key_id(kid, sender->admins[i].pk);
        if (memcmp(kid, s->key_id.data, 32) || strcmp(sender->admins[i].name, s->signer_id))
            continue;
        if (sc_pae_verify(s->sig.data, SC_TYPE_APPROVAL, s->approval.data, s->approval.len,
                          sender->admins[i].pk))
            return 0;
        sp_budget_init(&b, 65536);
        ap = sldd__v1__approval__unpack(sp_budget_allocator(&b), s->approval.len, s->approval.data);
        if (!ap)
            return 0;
        if (!sp_message_check_unknown(&ap->base, NULL) && ap->payload_sha256.len == 32 &&
            !memcmp(ap->payload_sha256.data, hash, 32) && !strcmp(ap->admin_id, s->signer_id) &&
            !strcmp(ap->node_id, sender->id)) {
            if (ap->decision == SLDD__V1__DECISION__DECISION_APPROVE)
                verdict = 1;
            else if (ap->decision == SLDD__V1__DECISION__DECISION_REJECT)
                verdict = 2;
        }
        protobuf_c_message_free_unpacked(&ap->base, sp_budget_allocator(&b));
        *which = i;
        return verdict;
    }
    return 0;
}

int sc_statement_verify(const Sldd__V1__Statement *st, const sc_peer *sender, size_t min_admins,
                        sc_verify_result *res, sc_error *e)
{
    uint8_t kid[32];
    int seen[SC_MAX_ADMINS_PER_NODE] = {0};
    const char *rejected_by = NULL;
    memset(res, 0, sizeof *res);
    if (strcmp(st->payload_type, SC_TYPE_BUNDLE))
        return sc_error_set(e, SC_EREFUSE_PAYLOAD_TYPE, "payload type '%.80s' is not %s",
                            st->payload_type, SC_TYPE_BUNDLE);
    sc_sha256(res->payload_sha256, st->payload.data, st->payload.len);
    sc_key_id(kid, sender->sign_pk);
    for (size_t i = 0; i < st->n_signatures; i++) {
        const Sldd__V1__Signature *s = st->signatures[i];
        size_t which = 0;
        int v;
        if (s->role == SLDD__V1__SIGNER_ROLE__SIGNER_ROLE_NODE) {
            /* the current key, or the previous one while the caller still
             * accepts it (prev_until set: sc_receive clears it after) */
            const uint8_t *pk = s->key_id.len == 32
                                    ? sc_peer_sign_key(sender, s->key_id.data, INT64_MIN, NULL)
                                    : NULL;
            if (!res->node_ok && pk && !strcmp(s->signer_id, sender->id) && s->sig.len == 64 &&
                !sc_pae_verify(s->sig.data, SC_TYPE_BUNDLE, st->payload.data, st->payload.len, pk))
                res->node_ok = 1;
            else if (!res->node_ok)
                res->n_ignored++;
            continue;
        }
        if (s->role != SLDD__V1__SIGNER_ROLE__SIGNER_ROLE_ADMIN) {
            res->n_ignored++;
            continue;
        }
        v = check_admin(s, sender, res->payload_sha256, &which);
        if (v == 0) {
            res->n_ignored++;
        } else if (v == 2) {
            rejected_by = sender->admins[which].name;
        } else if (!seen[which]) {
            seen[which] = 1;
            memcpy(res->admins[res->n_admins++], sender->admins[which].name, 65);
        }
    }
    if (!res->node_ok)
        return sc_error_set(e, SC_EREFUSE_NODE_SIG,
                            "no valid signature by node '%s' (key %02x%02x%02x%02x...)", sender->id,
                            kid[0], kid[1], kid[2], kid[3]);
    if (rejected_by)
        return sc_error_set(e, SC_EREFUSE_ADMIN_SIGS, "admin '%s' of %s rejected this payload",
                            rejected_by, sender->id);
    /* a caller that asks for no approval at all still gets one checked */
    if (min_admins < 1)
        min_admins = 1;
    if (res->n_admins < min_admins)
        return sc_error_set(e, SC_EREFUSE_ADMIN_SIGS,
                            "%zu valid admin approval(s) of %s, %zu required (%zu signature(s) "
                            "ignored: unknown key, bad signature or other payload)",
                            res->n_admins, sender->id, min_admins, res->n_ignored);
    return 0;
}

/* ---------------------------------------------------------------- envelopes */

void sc_received_destroy(sc_received *rec)
{
    if (!rec)
        return;
    if (rec->bundle)
        protobuf_c_message_free_unpacked(&rec->bundle->base, sp_budget_allocator(&rec->budget_));
    if (rec->st_)
        protobuf_c_message_free_unpacked(&rec->st_->base, sp_budget_allocator(&rec->st_budget_));
    free(rec->statement);
    free(rec);
}

/* Steps shared by sc_receive and sc_verify_statement, from the statement
 * bytes on: statement parse, signatures, payload parse and validation.
 * rec->statement holds the bytes; sender is the node the statement must
 * come from (NULL: take it from the node signature). */
static int inner_checks(sc_received *rec, sc_trust_store *trust, const sc_peer *sender,
                        size_t min_admins, size_t parse_budget, sc_error *e)
{
    sc_peer found;
    sc_error why;
    int rc;
    sp_budget_init(&rec->st_budget_, rec->statement_len + 65536);
    if ((rc = sc_statement_parse(rec->statement, rec->statement_len, &rec->st_budget_, &rec->st_,
                                 e)))
        return rc;
    if (!sender) {
        const char *who = sc_statement_node_signer(rec->st_);
        if (!who)
            return sc_error_set(e, SC_EREFUSE_NODE_SIG, "statement has no node signature");
        if ((rc = trust->peer_get(trust, who, &found, e)))
            return sb_error_wrap_code(e, SC_EREFUSE_UNKNOWN_SENDER, "signed by node '%.64s'", who);
        if (found.prev_until <= (int64_t)time(NULL)) /* a rotation's overlap is over */
            found.prev_until = 0;
        sender = &found;
    }
    if ((rc = sc_statement_verify(rec->st_, sender, min_admins, &rec->sigs, e)))
        return rc;
    rec->payload = rec->st_->payload.data;
    rec->payload_len = rec->st_->payload.len;
    sp_budget_init(&rec->budget_, parse_budget);
    rec->bundle = sldd__v1__bundle__unpack(sp_budget_allocator(&rec->budget_), rec->payload_len,
                                           rec->payload);
    if (!rec->bundle) {
        if (rec->budget_.exceeded)
            return sc_error_set(e, SC_EREFUSE_BUDGET,
                                "payload needs more than the parse budget of %zu bytes",
                                parse_budget);
        return sc_error_set(e, SC_EREFUSE_PARSE, "payload (%zu bytes) does not parse",
                            rec->payload_len);
    }
    if (sp_message_check_unknown(&rec->bundle->base, &why))
        return sc_error_set(e, SC_EREFUSE_UNKNOWN_FIELDS, "%s", why.msg);
    if (strcmp(rec->bundle->sender, sender->id))
        return sc_error_set(e, SC_EREFUSE_MISMATCH, "payload sender '%.64s' is not the signer '%s'",
                            rec->bundle->sender, sender->id);
    if (sp_bundle_validate(rec->bundle, &why))
        return sc_error_set(e, SC_EREFUSE_SEMANTIC, "%s", why.msg);
    memcpy(rec->sender, sender->id, sizeof rec->sender);
    memcpy(rec->bundle_id, rec->bundle->bundle_id.data, 16);
    rec->sequence = rec->bundle->sequence;
    return 0;
}

int sc_verify_statement(const uint8_t *buf, size_t len, sc_trust_store *trust, size_t min_admins,
                        size_t parse_budget, sc_received **out, sc_error *e)
{
    sc_received *rec;
    int rc;
    *out = NULL;
    if (sodium_init() < 0)
        return sc_error_set(e, SC_ECRYPTO, "libsodium failed to initialise");
    rec = calloc(1, sizeof *rec);
    if (!rec || !(rec->statement = malloc(len ? len : 1))) {
        free(rec);
        return sc_error_set(e, SC_ENOMEM, "out of memory");
    }
    memcpy(rec->statement, buf, len);
    rec->statement_len = len;
    if ((rc = inner_checks(rec, trust, NULL, min_admins, parse_budget, e))) {
        sc_received_destroy(rec);
        return rc;
    }
    *out = rec;
    return 0;
}

int sc_envelope_peek(const uint8_t *buf, size_t len, sp_budget *b, Sldd__V1__Envelope **env,
                     Sldd__V1__EnvelopeHeader **hdr, sc_error *e)
{
    sc_error why;
    *env = NULL;
    *hdr = NULL;
    *env = sldd__v1__envelope__unpack(sp_budget_allocator(b), len, buf);
    if (!*env)
        return sc_error_set(e, b->exceeded ? SC_EREFUSE_BUDGET : SC_EREFUSE_ENVELOPE,
                            "envelope does not parse (%zu bytes)", len);
    if (sp_message_check_unknown(&(*env)->base, &why))
        return sc_error_set(e, SC_EREFUSE_ENVELOPE, "%s", why.msg);
    if ((*env)->header.len == 0 || (*env)->header.len > HEADER_MAX)
        return sc_error_set(e, SC_EREFUSE_ENVELOPE, "envelope header has %zu bytes (1..%d)",
                            (*env)->header.len, HEADER_MAX);
    if ((*env)->signature.len != 64)
        return sc_error_set(e, SC_EREFUSE_ENVELOPE, "outer signature has %zu bytes, want 64",
                            (*env)->signature.len);
    if ((*env)->ciphertext.len < crypto_aead_xchacha20poly1305_ietf_ABYTES)
        return sc_error_set(e, SC_EREFUSE_ENVELOPE, "ciphertext too short (%zu bytes)",
                            (*env)->ciphertext.len);
    *hdr = sldd__v1__envelope_header__unpack(sp_budget_allocator(b), (*env)->header.len,
                                             (*env)->header.data);
    if (!*hdr)
        return sc_error_set(e, SC_EREFUSE_HEADER, "envelope header does not parse");
    if (sp_message_check_unknown(&(*hdr)->base, &why))
        return sc_error_set(e, SC_EREFUSE_HEADER, "%s", why.msg);
    if ((*hdr)->format_version != SP_FORMAT_VERSION)
        return sc_error_set(e, SC_EREFUSE_HEADER, "envelope format version %u, this node reads %d",
                            (*hdr)->format_version, SP_FORMAT_VERSION);
    if (!sp_valid_id((*hdr)->sender) || !sp_valid_id((*hdr)->recipient))
        return sc_error_set(e, SC_EREFUSE_HEADER, "header sender or recipient is not a valid id");
    if ((*hdr)->bundle_id.len != SP_BUNDLE_ID_LEN || (*hdr)->sender_key_id.len != 32 ||
        (*hdr)->recipient_key_id.len != 32 || (*hdr)->sealed_key.len != SC_SEALED_KEY_LEN ||
        (*hdr)->nonce.len != SC_NONCE_LEN)
        return sc_error_set(e, SC_EREFUSE_HEADER, "header field of the wrong length");
    if ((*hdr)->sequence < 1 || (*hdr)->created_unix <= 0 ||
        (*hdr)->expires_unix <= (*hdr)->created_unix)
        return sc_error_set(e, SC_EREFUSE_HEADER, "header sequence or times out of range");
    return 0;
}

int sc_receive(const sc_receiver *r, const uint8_t *buf, size_t len, sc_received **out, sc_error *e)
{
    sp_budget ob;
    Sldd__V1__Envelope *env = NULL;
    Sldd__V1__EnvelopeHeader *h = NULL;
    sc_peer peer;
    sc_received *rec = NULL;
    uint8_t kid[32], *ck = NULL, *body = NULL;
    const uint8_t *outer_pk = NULL;
    size_t blen;
    unsigned long long ptlen = 0;
    int rc;

    *out = NULL;
    if (sodium_init() < 0)
        return sc_error_set(e, SC_ECRYPTO, "libsodium failed to initialise");
    /* 1. size cap, before a single byte is parsed */
    if (len > r->cfg.max_bytes)
        return sc_error_set(e, SC_EREFUSE_SIZE, "%zu bytes, larger than the cap of %zu", len,
                            r->cfg.max_bytes);
    /* 2-3. envelope and header structure (copies: len + small overhead) */
    sp_budget_init(&ob, len + 65536);
    if ((rc = sc_envelope_peek(buf, len, &ob, &env, &h, e)))
        goto out;
    /* 4. known sender, with the key we have on record */
    if ((rc = r->trust->peer_get(r->trust, h->sender, &peer, e))) {
        /* a removed peer is named as such; other failures as unknown */
        if (rc != SC_ENOTFOUND || !e || !strstr(e->msg, "was removed"))
            sc_error_set(e, SC_EREFUSE_UNKNOWN_SENDER, "sender '%s' is not a known peer",
                         h->sender);
        rc = SC_EREFUSE_UNKNOWN_SENDER;
        if (e)
            e->code = rc;
        goto out;
    }
    {
        /* the key on record, or the previous one during a rotation's
         * overlap: from here on the statement is checked against it */
        int expired = 0;
        const uint8_t *key = h->sender_key_id.len == 32
                                 ? sc_peer_sign_key(&peer, h->sender_key_id.data, r->now, &expired)
                                 : NULL;
        if (!key) {
            rc = sc_error_set(e, SC_EREFUSE_UNKNOWN_SENDER,
                              expired ? "envelope signed by the previous key of '%s', accepted "
                                        "only until its overlap ended"
                                      : "envelope signed by a key not on record for '%s'",
                              h->sender);
            goto out;
        }
        outer_pk = key;
        if (peer.prev_until <= r->now) /* the statement may name only live keys */
            peer.prev_until = 0;
    }
    /* 5. outer signature over the exact header bytes and the ciphertext hash */
    if (!(body = sc_envelope_signed_body(env->header.data, env->header.len, env->ciphertext.data,
                                         env->ciphertext.len, &blen))) {
        rc = sc_error_set(e, SC_ENOMEM, "out of memory");
        goto out;
    }
    if (sc_pae_verify(env->signature.data, SC_TYPE_ENVELOPE, body, blen, outer_pk)) {
        rc = sc_error_set(e, SC_EREFUSE_OUTER_SIG, "outer signature of '%s' is not valid",
                          h->sender);
        goto out;
    }
    /* 6. addressed to us, sealed to our current key */
    sc_key_id(kid, r->keys->enc_pk);
    if (strcmp(h->recipient, r->self_id)) {
        rc = sc_error_set(e, SC_EREFUSE_RECIPIENT, "addressed to '%s', this node is '%s'",
                          h->recipient, r->self_id);
        goto out;
    }
    if (memcmp(kid, h->recipient_key_id.data, 32)) {
        rc = sc_error_set(e, SC_EREFUSE_RECIPIENT,
                          "sealed to an encryption key of '%s' that is not this node's",
                          h->recipient);
        goto out;
    }
    /* 7. time */
    if (r->now >= h->expires_unix) {
        rc = sc_error_set(e, SC_EREFUSE_EXPIRED, "expired at %" PRId64 ", now %" PRId64,
                          h->expires_unix, r->now);
        goto out;
    }
    if (h->created_unix > r->now + r->cfg.clock_skew) {
        rc = sc_error_set(e, SC_EREFUSE_FUTURE,
                          "created at %" PRId64 ", %" PRId64 " s ahead of now (allowance %" PRId64
                          " s)",
                          h->created_unix, h->created_unix - r->now, r->cfg.clock_skew);
        goto out;
    }
    /* 8. replay */
    if (r->replay &&
        (rc = r->replay->check(r->replay, h->sender, h->bundle_id.data, h->sequence, e)))
        goto out;
    /* 9. unseal the content key */
    ck = sodium_malloc(crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
    if (!ck) {
        rc = sc_error_set(e, SC_ENOMEM, "out of guarded memory");
        goto out;
    }
    if (crypto_box_seal_open(ck, h->sealed_key.data, h->sealed_key.len, r->keys->enc_pk,
                             r->keys->enc_sk)) {
        rc = sc_error_set(e, SC_EREFUSE_UNSEAL, "the content key does not unseal with our key");
        goto out;
    }
    /* 10. AEAD, header bytes as associated data */
    rec = calloc(1, sizeof *rec);
    if (!rec || !(rec->statement = malloc(env->ciphertext.len))) {
        rc = sc_error_set(e, SC_ENOMEM, "out of memory");
        goto out;
    }
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(
            rec->statement, &ptlen, NULL, env->ciphertext.data, env->ciphertext.len,
            env->header.data, env->header.len, h->nonce.data, ck)) {
        rc = sc_error_set(e, SC_EREFUSE_AEAD, "the body does not authenticate");
        goto out;
    }
    rec->statement_len = (size_t)ptlen;
    /* 11-15. statement, signatures, payload parse, unknown fields, validation */
    if ((rc = inner_checks(rec, r->trust, &peer, r->cfg.min_admins, r->cfg.parse_budget, e)))
        goto out;
    /* the signed payload must say what the signed header says */
    {
        const Sldd__V1__Bundle *b = rec->bundle;
        int in_audience = 0;
        for (size_t i = 0; i < b->n_audience; i++)
            in_audience |= !strcmp(b->audience[i], r->self_id);
        if (memcmp(b->bundle_id.data, h->bundle_id.data, 16) || b->sequence != h->sequence ||
            b->created_unix != h->created_unix || b->expires_unix != h->expires_unix) {
            rc = sc_error_set(e, SC_EREFUSE_MISMATCH,
                              "payload id, sequence or times differ from the envelope header");
            goto out;
        }
        if (!in_audience) {
            rc = sc_error_set(e, SC_EREFUSE_MISMATCH, "this node is not in the payload's audience");
            goto out;
        }
    }
    *out = rec;
    rec = NULL;
    rc = 0;
out:
    sc_secret_free(ck, crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
    free(body);
    sc_received_destroy(rec);
    if (h)
        protobuf_c_message_free_unpacked(&h->base, sp_budget_allocator(&ob));
    if (env)
        protobuf_c_message_free_unpacked(&env->base, sp_budget_allocator(&ob));
    return rc;
}

int sc_receive_commit(const sc_receiver *r, const sc_received *rec, sc_error *e)
{
    if (!r->replay)
        return 0;
    return r->replay->record(r->replay, rec->sender, rec->bundle_id, rec->sequence, e);
}
