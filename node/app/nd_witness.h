/*
 * nd_witness.h - witnessed audit heads: the tail of a node's audit log,
 * signed by the node and kept by its peers, so that rewriting the tail
 * together with NODE/audit.head no longer verifies as intact.
 *
 * A head is (node, seq, hash of entry seq, time) as text, signed by the
 * node's Ed25519 key over PAE(ND_TYPE_AUDIT_HEAD, every byte before the
 * signature line), like a receipt (nd_receipt.h):
 *
 *   sldd-audit-head: v1
 *   node: hospital-a
 *   seq: 42
 *   hash: <64 hex: the hash of audit entry 42>
 *   time-unix: 1700000000
 *   signature: <base64 Ed25519>
 *
 * Only this canonical form is accepted (no other spacing, order, comments
 * or line ends), so a stored head can be written out again byte for byte.
 * The daemon signs its head every N entries or M seconds and at a clean
 * stop and sends it to its peers (POST /v1/audit-head); a peer keeps the
 * heads it accepts in the table witness_heads of its state store under the
 * rules of nd_witness_store.  `sldd audit witnesses export` on the peer
 * writes them out and `sldd audit verify --witnesses` on the node checks
 * its log against them (nd_witness_check).  docs/node.md has the rules.
 */
#ifndef ND_WITNESS_H
#define ND_WITNESS_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sc_error.h"

#define ND_TYPE_AUDIT_HEAD      "application/vnd.sldd.audit-head; v=1"
#define ND_AUDIT_HEAD_MAX       512    /* a signed head is about 250 bytes */
#define ND_WITNESS_MAX_PER_NODE 100000 /* heads a peer keeps of one node */
#define ND_WITNESS_FILE_MAX     ((size_t)64 << 20)

typedef struct nd_audit_head {
    char node[65];
    int64_t seq;       /* >= 1 */
    char hash[65];     /* lowercase hex */
    int64_t time_unix; /* when the node signed it, by its clock */
} nd_audit_head;

/* CREATE TABLE IF NOT EXISTS witness_heads (works on any schema version). */
int nd_witness_schema(sqlite3 *db, sc_error *e) SC_WUR;

/* The last entry of the local audit log as a head of node; h->seq is 0
 * when the log is empty. */
int nd_audit_head_current(sqlite3 *db, const char *node, int64_t now, nd_audit_head *h,
                          sc_error *e) SC_WUR;

/* The signed text of h (malloc'ed, *len bytes, NUL-terminated). */
int nd_audit_head_sign(const nd_audit_head *h, const uint8_t sign_sk[64], char **out, size_t *len,
                       sc_error *e) SC_WUR;

/* Parse a signed head and check its signature with pk: SC_EFORMAT when it
 * is not a canonical head, SC_EREFUSE_NODE_SIG when the signature fails. */
int nd_audit_head_verify(const char *text, size_t len, const uint8_t pk[32], nd_audit_head *out,
                         sc_error *e) SC_WUR;

typedef enum nd_witness_verdict {
    ND_WITNESS_STORED = 0,    /* new, kept */
    ND_WITNESS_DUPLICATE = 1, /* the same seq and hash is already kept: nothing changes */
    ND_WITNESS_CONFLICT = 2,  /* a different hash is already kept for this seq */
    ND_WITNESS_BACKWARDS = 3, /* seq below the highest kept of that node */
    ND_WITNESS_FULL = 4       /* ND_WITNESS_MAX_PER_NODE heads kept already */
} nd_witness_verdict;

typedef struct nd_witness_result {
    nd_witness_verdict verdict;
    nd_audit_head head; /* the head sent (when it parsed) */
    char reason[400];   /* for a refusal: what is kept that it contradicts */
} nd_witness_result;

/*
 * Consider a head sent by the authenticated node `sender`, whose signing
 * key this node knows (sender_pk), received at `now`.  The head must be
 * canonical (SC_EFORMAT), signed by sender_pk (SC_EREFUSE_NODE_SIG), of
 * the sender itself - a node vouches only for its own log (SC_EPERM) - and
 * not signed more than skew seconds in the future (SC_EREFUSE_FUTURE).
 * Then, in one transaction: DUPLICATE, CONFLICT, BACKWARDS or FULL as
 * above, or STORED.  Nothing already kept is ever replaced or removed.
 * Returns 0 with res->verdict, a refusal code above, or SC_EIO.
 */
int nd_witness_store(sqlite3 *db, const char *sender, const uint8_t sender_pk[32], const char *text,
                     size_t len, int64_t now, int64_t skew, nd_witness_result *res,
                     sc_error *e) SC_WUR;

/*
 * The heads kept of `node`, oldest first, as an export file of witness
 * self_id (format in docs/node.md) appended to out.  *count (may be NULL)
 * gets the number of heads.
 */
int nd_witness_export(sqlite3 *db, const char *self_id, const char *node, int64_t now, FILE *out,
                      int64_t *count, sc_error *e) SC_WUR;

typedef struct nd_witness_report {
    int64_t heads;          /* records read */
    int64_t agree;          /* the log has that hash at that seq */
    int64_t contradictions; /* rewritten or truncated */
    int64_t unchecked;      /* malformed, not this node's, not signed by its key */
    int64_t latest_seq;     /* highest seq that agrees (0: none) */
    char latest_witness[65];
    int64_t latest_received;
} nd_witness_report;

/*
 * Check the audit log of node self_id (whose signing key is pk) against
 * one export file (text, len; name for the messages).  Each contradiction
 * and each record that cannot be checked is one line on out (may be
 * NULL); rep accumulates over calls (zero it first).  Returns 0, or a
 * database error.
 */
int nd_witness_check(sqlite3 *db, const char *self_id, const uint8_t pk[32], const char *name,
                     const char *text, size_t len, nd_witness_report *rep, FILE *out,
                     sc_error *e) SC_WUR;

#endif
