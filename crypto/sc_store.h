/*
 * sc_store.h - who this node knows: peers and the admins it trusts, and
 * which bundles it has already accepted (replay protection).
 *
 * Both stores are small interfaces (a table of functions plus a context)
 * so that the daemon can move them into its SQLite database without
 * touching the receive path.  The implementations here keep plain files in
 * the node directory: peers/ID.peer (the same text format that `sldd keys
 * export` writes, see docs/keys.md), peers/ID.removed for a removed peer
 * (its last record and who removed it) and an append-only replay.log.
 */
#ifndef SC_STORE_H
#define SC_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "sc_error.h"

#define SC_MAX_ADMINS_PER_NODE 32

typedef struct sc_admin_pub {
    char name[65];
    uint8_t pk[32];
} sc_admin_pub;

/* A node as another node knows it. */
typedef struct sc_peer {
    char id[65];
    uint8_t sign_pk[32];
    uint8_t enc_pk[32];
    size_t n_admins;
    sc_admin_pub admins[SC_MAX_ADMINS_PER_NODE]; /* trusted to approve its bundles */
    /* during a rotation of its signing key: the previous key, accepted
     * until prev_until (unix seconds; 0: none) */
    uint8_t prev_sign_pk[32];
    int64_t prev_until;
    /* not-before of the contact card the record came from (0: none); an
     * older card cannot replace it (sc_card_check_update) */
    int64_t card_time;
} sc_peer;

/* The signing key of p whose key id is kid at time now: sign_pk, or
 * prev_sign_pk inside its overlap; NULL for neither.  *expired (may be
 * NULL) is set when kid is the previous key past its overlap. */
const uint8_t *sc_peer_sign_key(const sc_peer *p, const uint8_t kid[32], int64_t now, int *expired);

typedef struct sc_trust_store sc_trust_store;
struct sc_trust_store {
    void *ctx;
    /* Node `id` (this node included); SC_ENOTFOUND when unknown. */
    int (*peer_get)(sc_trust_store *s, const char *id, sc_peer *out, sc_error *e);
    /* Add or replace a peer (never this node). */
    int (*peer_put)(sc_trust_store *s, const sc_peer *p, sc_error *e);
    /* Remove a peer: afterwards peer_get fails with SC_ENOTFOUND and a
     * message naming `why` (who removed it and when); NULL in stores that
     * cannot remove. */
    int (*peer_remove)(sc_trust_store *s, const char *id, const char *why, sc_error *e);
    /* All peers, malloc'ed array (free()). */
    int (*peer_list)(sc_trust_store *s, sc_peer **out, size_t *n, sc_error *e);
    void (*destroy)(sc_trust_store *s);
};

/* File store over node_dir.  self_id's own record is built from
 * keys/sign.pub, keys/enc.pub and admins/NAME.pub. */
int sc_trust_store_open_files(const char *node_dir, const char *self_id, sc_trust_store **out,
                              sc_error *e) SC_WUR;
/* In-memory store (tests, fuzzing): peer_get finds whatever was put,
 * this node included. */
int sc_trust_store_memory(sc_trust_store **out, sc_error *e) SC_WUR;
void sc_trust_store_destroy(sc_trust_store *s);

/* Text form of a peer record ("sldd-peer: v1", id, sign, enc, admin lines). */
int sc_peer_format(const sc_peer *p, char **out, sc_error *e) SC_WUR;
/* Parse a peer record (text is modified). */
int sc_peer_parse(char *text, sc_peer *out, sc_error *e) SC_WUR;

typedef struct sc_replay_store sc_replay_store;
struct sc_replay_store {
    void *ctx;
    /* 0 if (sender, bundle id, sequence) is new: the id never seen from
     * anyone and the sequence above the last accepted from sender;
     * otherwise SC_EREFUSE_REPLAY_ID or SC_EREFUSE_REPLAY_SEQ. */
    int (*check)(sc_replay_store *s, const char *sender, const uint8_t id[16], uint64_t seq,
                 sc_error *e);
    /* Remember an accepted bundle (durably before returning). */
    int (*record)(sc_replay_store *s, const char *sender, const uint8_t id[16], uint64_t seq,
                  sc_error *e);
    void (*destroy)(sc_replay_store *s);
};

/* Append-only file store at path (created if missing). */
int sc_replay_store_open_file(const char *path, sc_replay_store **out, sc_error *e) SC_WUR;
/* In-memory store, forgotten when destroyed (tests, fuzzing). */
int sc_replay_store_memory(sc_replay_store **out, sc_error *e) SC_WUR;
void sc_replay_store_destroy(sc_replay_store *s);

#endif
