/*
 * sc_seal.c - the sending side of the envelope (see sc_envelope.h):
 * sc_seal_statement checks that a statement may leave this node (the same
 * inner checks a receiver runs, sc_receive.c) and sc_envelope_seal makes
 * the per-recipient envelope.
 */
#include "sc_envelope.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sc_util.h"
#include "sp_check.h"

uint8_t *sc_envelope_signed_body(const uint8_t *hdr, size_t hlen, const uint8_t *ct, size_t ctlen,
                                 size_t *blen)
{
    uint8_t *b = malloc(hlen + 32);
    if (!b)
        return NULL;
    memcpy(b, hdr, hlen);
    sc_sha256(b + hlen, ct, ctlen);
    *blen = hlen + 32;
    return b;
}

int sc_envelope_seal(const uint8_t *statement, size_t len, const sc_envelope_fields *f,
                     const sc_node_keys *keys, const uint8_t recipient_enc_pk[32], uint8_t **out,
                     size_t *outlen, sc_error *e)
{
    Sldd__V1__EnvelopeHeader h = SLDD__V1__ENVELOPE_HEADER__INIT;
    Sldd__V1__Envelope env = SLDD__V1__ENVELOPE__INIT;
    uint8_t skid[32], rkid[32], sealed[SC_SEALED_KEY_LEN], nonce[SC_NONCE_LEN], sig[64];
    uint8_t *ck = NULL, *hdr = NULL, *ct = NULL, *body = NULL;
    size_t hlen, blen = 0;
    unsigned long long ctlen = 0;
    int rc = 0;

    *out = NULL;
    *outlen = 0;
    if (sodium_init() < 0)
        return sc_error_set(e, SC_ECRYPTO, "libsodium failed to initialise");
    if (len > SIZE_MAX - crypto_aead_xchacha20poly1305_ietf_ABYTES)
        return sc_error_set(e, SC_EINVAL, "statement too large");
    ck = sodium_malloc(crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
    if (!ck)
        return sc_error_set(e, SC_ENOMEM, "out of guarded memory");
    crypto_aead_xchacha20poly1305_ietf_keygen(ck);
    randombytes_buf(nonce, sizeof nonce);
    if (crypto_box_seal(sealed, ck, crypto_aead_xchacha20poly1305_ietf_KEYBYTES,
                        recipient_enc_pk)) {
        rc = sc_error_set(e, SC_ECRYPTO, "sealing the content key failed");
        goto out;
    }
    sc_key_id(skid, keys->sign_pk);
    sc_key_id(rkid, recipient_enc_pk);
    h.format_version = SP_FORMAT_VERSION;
    h.sender = (char *)f->sender;
    h.recipient = (char *)f->recipient;
    h.bundle_id.data = (uint8_t *)f->bundle_id;
    h.bundle_id.len = SP_BUNDLE_ID_LEN;
    h.sequence = f->sequence;
    h.created_unix = f->created_unix;
    h.expires_unix = f->expires_unix;
    h.sender_key_id.data = skid;
    h.sender_key_id.len = 32;
    h.recipient_key_id.data = rkid;
    h.recipient_key_id.len = 32;
    h.sealed_key.data = sealed;
    h.sealed_key.len = sizeof sealed;
    h.nonce.data = nonce;
    h.nonce.len = sizeof nonce;
    hlen = sldd__v1__envelope_header__get_packed_size(&h);
    hdr = malloc(hlen);
    ct = malloc(len + crypto_aead_xchacha20poly1305_ietf_ABYTES);
    if (!hdr || !ct) {
        rc = sc_error_set(e, SC_ENOMEM, "out of memory");
        goto out;
    }
    if (sldd__v1__envelope_header__pack(&h, hdr) != hlen) {
        rc = sc_error_set(e, SC_EFORMAT, "header packing failed");
        goto out;
    }
    if (crypto_aead_xchacha20poly1305_ietf_encrypt(ct, &ctlen, statement, len, hdr, hlen, NULL,
                                                   nonce, ck)) {
        rc = sc_error_set(e, SC_ECRYPTO, "encryption failed");
        goto out;
    }
    if (!(body = sc_envelope_signed_body(hdr, hlen, ct, (size_t)ctlen, &blen))) {
        rc = sc_error_set(e, SC_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = sc_pae_sign(sig, SC_TYPE_ENVELOPE, body, blen, keys->sign_sk, e)))
        goto out;
    env.header.data = hdr;
    env.header.len = hlen;
    env.ciphertext.data = ct;
    env.ciphertext.len = (size_t)ctlen;
    env.signature.data = sig;
    env.signature.len = 64;
    *outlen = sldd__v1__envelope__get_packed_size(&env);
    *out = malloc(*outlen);
    if (!*out) {
        rc = sc_error_set(e, SC_ENOMEM, "out of memory");
        goto out;
    }
    if (sldd__v1__envelope__pack(&env, *out) != *outlen) {
        free(*out);
        *out = NULL;
        rc = sc_error_set(e, SC_EFORMAT, "envelope packing failed");
    }
out:
    sc_secret_free(ck, crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
    free(hdr);
    free(ct);
    free(body);
    return rc;
}

int sc_seal_statement(const uint8_t *statement, size_t len, const char *self_id,
                      const sc_node_keys *keys, sc_trust_store *trust, const char *recipient,
                      size_t min_admins, int64_t now, uint8_t **out, size_t *outlen, sc_error *e)
{
    sc_received *rec = NULL;
    sc_peer to;
    sc_envelope_fields f;
    int rc, in_audience = 0;
    uint8_t kid[32];
    *out = NULL;
    if ((rc = sc_verify_statement(statement, len, trust, min_admins, (size_t)256 << 20, &rec, e)))
        return sc_error_wrap(e, "will not seal");
    if (strcmp(rec->sender, self_id)) {
        rc = sc_error_set(e, SC_EINVAL, "will not seal: the statement is from '%s', not this node",
                          rec->sender);
        goto out;
    }
    sc_key_id(kid, keys->sign_pk);
    for (size_t i = 0; i < rec->bundle->n_audience; i++)
        in_audience |= !strcmp(rec->bundle->audience[i], recipient);
    if (!in_audience) {
        rc = sc_error_set(e, SC_EINVAL, "will not seal: '%s' is not in the payload's audience",
                          recipient);
        goto out;
    }
    if (now >= rec->bundle->expires_unix) {
        rc = sc_error_set(e, SC_EINVAL, "will not seal: the payload expired at %" PRId64,
                          rec->bundle->expires_unix);
        goto out;
    }
    if ((rc = trust->peer_get(trust, recipient, &to, e)))
        goto out;
    f.sender = self_id;
    f.recipient = recipient;
    f.bundle_id = rec->bundle_id;
    f.sequence = rec->sequence;
    f.created_unix = rec->bundle->created_unix;
    f.expires_unix = rec->bundle->expires_unix;
    rc = sc_envelope_seal(statement, len, &f, keys, to.enc_pk, out, outlen, e);
out:
    sc_received_destroy(rec);
    return rc;
}
