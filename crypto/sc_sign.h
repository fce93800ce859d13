/*
 * sc_sign.h - signed statements: payload bytes plus signatures.
 *
 * Every signature is Ed25519 over a DSSE-style pre-authentication
 * encoding, PAE(type, body) = "DSSEv1" SP len(type) SP type SP len(body)
 * SP body (lengths in ASCII decimal), so a signature made for one kind of
 * message can never be replayed as another.  The node signs
 * PAE(SC_TYPE_BUNDLE, payload); an admin signs PAE(SC_TYPE_APPROVAL,
 * approval) where the Approval names SHA-256 of the payload bytes.  The
 * exact bytes signed travel in the statement; nothing is re-serialised to
 * be verified.
 */
#ifndef SC_SIGN_H
#define SC_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "sc_error.h"
#include "sc_keys.h"
#include "sc_store.h"
#include "sldd.pb-c.h"
#include "sp_budget.h"

#define SC_TYPE_BUNDLE    "application/vnd.sldd.bundle+protobuf; v=1"
#define SC_TYPE_APPROVAL  "application/vnd.sldd.approval+protobuf; v=1"
#define SC_TYPE_ENVELOPE  "application/vnd.sldd.envelope+protobuf; v=1"
#define SC_MAX_SIGNATURES 64

/* PAE(type, body) into a malloc'ed buffer. */
int sc_pae(const char *type, const uint8_t *body, size_t len, uint8_t **out, size_t *outlen,
           sc_error *e) SC_WUR;
/* Ed25519 sign / verify of PAE(type, body). */
int sc_pae_sign(uint8_t sig[64], const char *type, const uint8_t *body, size_t len,
                const uint8_t sk[64], sc_error *e) SC_WUR;
/* 0 if valid, -1 if not (or on allocation failure). */
int sc_pae_verify(const uint8_t sig[64], const char *type, const uint8_t *body, size_t len,
                  const uint8_t pk[32]);

/* A statement around payload bytes, with no signatures yet. */
int sc_statement_wrap(const uint8_t *payload, size_t len, uint8_t **out, size_t *outlen,
                      sc_error *e) SC_WUR;
/* Parse statement bytes (budgeted, no unknown fields): SC_EREFUSE_STATEMENT
 * on failure.  Free with protobuf_c_message_free_unpacked(.., alloc). */
int sc_statement_parse(const uint8_t *buf, size_t len, sp_budget *budget, Sldd__V1__Statement **out,
                       sc_error *e) SC_WUR;
/* Add the node signature; the result is a new serialized statement. */
int sc_statement_sign_node(const uint8_t *st, size_t len, const char *node_id,
                           const sc_node_keys *keys, uint8_t **out, size_t *outlen,
                           sc_error *e) SC_WUR;
/* Add admin k's decision (Sldd__V1__Decision) made at time_unix. */
int sc_statement_approve(const uint8_t *st, size_t len, const sc_admin_key *k, int decision,
                         int64_t time_unix, uint8_t **out, size_t *outlen, sc_error *e) SC_WUR;

/* The most bytes an Approval may take (one is about 150). */
#define SC_APPROVAL_MAX 1024

typedef struct sc_verify_result {
    uint8_t payload_sha256[32];
    int node_ok;
    size_t n_admins; /* distinct trusted admins that approved */
    char admins[SC_MAX_ADMINS_PER_NODE][65];
    size_t n_ignored; /* signatures by unknown keys or invalid */
} sc_verify_result;

/* Check the signatures of a parsed statement made by node `sender`:
 * payload type (SC_EREFUSE_PAYLOAD_TYPE), a valid node signature by
 * sender's key (SC_EREFUSE_NODE_SIG), at least min_admins distinct admins
 * of sender approving SHA-256 of the payload and none rejecting it
 * (SC_EREFUSE_ADMIN_SIGS).  min_admins below 1 counts as 1: no caller can
 * verify a statement without an admin's approval.  Fills res even on
 * refusal. */
int sc_statement_verify(const Sldd__V1__Statement *st, const sc_peer *sender, size_t min_admins,
                        sc_verify_result *res, sc_error *e) SC_WUR;

/* Signer id of the first NODE signature, or NULL. */
const char *sc_statement_node_signer(const Sldd__V1__Statement *st);

#endif
