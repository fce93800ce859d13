/*
 * sc_envelope.h - per-recipient sealed envelopes and the receive path.
 *
 * Sealing: a fresh 32-byte content key encrypts the signed statement with
 * XChaCha20-Poly1305-IETF, the serialized header as associated data; the
 * key is sealed to the recipient's X25519 key (crypto_box_seal) inside the
 * header; the sender signs PAE(SC_TYPE_ENVELOPE, header || SHA-256(ct)).
 *
 * Receiving (sc_receive) runs the receive order (bundle-format.md §5) and stops
 * at the first refusal with its own SC_EREFUSE_* code:
 *   size cap, envelope parse, header parse, known sender, outer signature,
 *   recipient is us, not expired, not from the future, replay, unseal,
 *   AEAD, statement parse, inner signatures, payload parse within the
 *   memory budget, no unknown fields, payload agrees with header, semantic
 *   validation.
 * It stores nothing: the caller imports the result and then records it in
 * the replay store with sc_receive_commit().
 *
 * Sealing is in sc_seal.c; the whole receive path, signature checks of the
 * statement (sc_statement_verify, declared in sc_sign.h) included, is in
 * sc_receive.c.
 */
#ifndef SC_ENVELOPE_H
#define SC_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include "sc_error.h"
#include "sc_keys.h"
#include "sc_sign.h"
#include "sc_store.h"
#include "sldd.pb-c.h"
#include "sp_budget.h"

#define SC_SEALED_KEY_LEN 80 /* crypto_box_SEALBYTES + 32 */
#define SC_NONCE_LEN      24

typedef struct sc_receive_config {
    size_t max_bytes;    /* size cap of an envelope */
    size_t parse_budget; /* memory for parsing the payload */
    size_t min_admins;   /* distinct admin approvals required */
    int64_t clock_skew;  /* seconds a sender's clock may run ahead */
} sc_receive_config;

/* What a node needs to receive. */
typedef struct sc_receiver {
    const char *self_id;
    const sc_node_keys *keys; /* enc_sk unseals; sign keys unused */
    sc_trust_store *trust;
    sc_replay_store *replay; /* NULL: skip the replay check */
    sc_receive_config cfg;
    int64_t now; /* unix seconds */
} sc_receiver;

/* An accepted bundle. */
typedef struct sc_received {
    char sender[65];
    uint8_t bundle_id[16];
    uint64_t sequence;
    uint8_t *statement; /* decrypted statement bytes, as signed */
    size_t statement_len;
    const uint8_t *payload; /* payload bytes inside the statement */
    size_t payload_len;
    sc_verify_result sigs;    /* payload hash, admins that approved */
    Sldd__V1__Bundle *bundle; /* parsed and validated */
    /* private */
    Sldd__V1__Statement *st_;
    sp_budget st_budget_, budget_;
} sc_received;

/* Seal statement bytes for `recipient`.  Header fields come from the
 * caller (normally the payload, see sc_seal_statement). */
typedef struct sc_envelope_fields {
    const char *sender;
    const char *recipient;
    const uint8_t *bundle_id; /* 16 bytes */
    uint64_t sequence;
    int64_t created_unix, expires_unix;
} sc_envelope_fields;

/* The bytes the sender's outer signature covers: header || SHA-256(ct).
 * Malloc'd (*blen bytes); NULL when out of memory. */
uint8_t *sc_envelope_signed_body(const uint8_t *hdr, size_t hlen, const uint8_t *ct, size_t ctlen,
                                 size_t *blen);

int sc_envelope_seal(const uint8_t *statement, size_t len, const sc_envelope_fields *f,
                     const sc_node_keys *sender_keys, const uint8_t recipient_enc_pk[32],
                     uint8_t **out, size_t *outlen, sc_error *e) SC_WUR;

/* Sender side: check that the statement is signed by this node and
 * approved by enough of its admins (nothing leaves otherwise), that the
 * payload is valid, addressed to recipient and not expired at now; then
 * seal it with the payload's header fields. */
int sc_seal_statement(const uint8_t *statement, size_t len, const char *self_id,
                      const sc_node_keys *keys, sc_trust_store *trust, const char *recipient,
                      size_t min_admins, int64_t now, uint8_t **out, size_t *outlen,
                      sc_error *e) SC_WUR;

/* The full receive order.  *out is set only on success. */
int sc_receive(const sc_receiver *r, const uint8_t *buf, size_t len, sc_received **out,
               sc_error *e) SC_WUR;
/* Record an imported bundle in the replay store. */
int sc_receive_commit(const sc_receiver *r, const sc_received *rec, sc_error *e) SC_WUR;
void sc_received_destroy(sc_received *rec);

/* Inner checks alone, for a statement file (`sldd bundle verify`):
 * statement parse, signatures by the node named in the node signature
 * (which must be known to trust), payload parse, unknown fields, semantic
 * validation.  Same result type; sender/bundle id/sequence come from the
 * payload. */
int sc_verify_statement(const uint8_t *buf, size_t len, sc_trust_store *trust, size_t min_admins,
                        size_t parse_budget, sc_received **out, sc_error *e) SC_WUR;

/* Parse an envelope and its header without verifying anything (inspect). */
int sc_envelope_peek(const uint8_t *buf, size_t len, sp_budget *b, Sldd__V1__Envelope **env,
                     Sldd__V1__EnvelopeHeader **hdr, sc_error *e) SC_WUR;

#endif
