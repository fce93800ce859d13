/*
 * nd_audit.h - the node's audit log: append-only and hash-chained.
 *
 * Every entry records when, who (actor), what (action), which bundle and
 * payload hash, which peer, the outcome and a detail line, and commits to
 * the previous entry: hash_n = SHA-256(canonical(entry_n) || hash_{n-1}),
 * with 32 zero bytes before the first.  Sequence numbers are 1, 2, 3, ...
 * without gaps.  Changing an entry breaks its hash; removing or reordering
 * entries breaks the sequence or the links; removing entries from the end
 * is caught by the anchor file NODE/audit.head (last seq and hash), which
 * the daemon rewrites after each append.  Rewriting the tail together with
 * the anchor is caught only by heads the peers witnessed (nd_witness.h).
 * The canonical encoding is in docs/node.md so that the chain can be
 * checked without sldd.
 *
 * Actions: approval, rejection, state (a bundle moved, nd_lifecycle.h),
 * send, receipt, receive, import, refusal, detection, created, job,
 * peer-add, peer-change, peer-remove, admin-add, key-rotation, tls-init.
 * A change made by a person names the OS user ("user:NAME", docs/admin.md).
 */
#ifndef ND_AUDIT_H
#define ND_AUDIT_H

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>

#include "nd_buf.h"
#include "sc_error.h"

#define ND_AUDIT_HEAD_FILE "audit.head"

typedef struct nd_audit_entry {
    const char *actor; /* "node", "admin:alice", "peer:hospital-b", "user:bob" */
    const char *action;
    const char *bundle_id;      /* hex, or "" */
    const char *payload_sha256; /* hex, or "" */
    const char *peer;           /* or "" */
    const char *outcome;        /* "ok", "refused", "failed", ... */
    const char *detail;         /* free text, or "" */
} nd_audit_entry;

/* The actor of a change a person makes from the command line:
 * "user:NAME" for the effective OS user (getpwuid_r(geteuid())), or
 * "user:uid-N" when the user has no name.  out holds at least 80 bytes. */
void nd_audit_os_actor(char *out, size_t outlen);
/* The same for a process on the other end of a unix socket, from its
 * kernel-given credentials (SO_PEERCRED): "user:NAME", and when the login
 * user of that process (/proc/PID/loginuid, kept across sudo and su) is
 * another one, "user:NAME (login user:OTHER)". */
void nd_audit_cred_actor(unsigned uid, int pid, char *out, size_t outlen);

/* Append one entry.  Inside the caller's transaction when one is open
 * (so the entry commits with the change it records), else in its own.
 * *seq_out (may be NULL) gets the new entry's number. */
int nd_audit_append(sqlite3 *db, const nd_audit_entry *en, int64_t *seq_out, sc_error *e) SC_WUR;

/* One entry from outside the daemon (the CLI): open NODE/state.db, append,
 * re-anchor, close. */
int nd_audit_record(const char *node_dir, const nd_audit_entry *en, sc_error *e) SC_WUR;

/* nd_audit_record of a change made by the OS user running this process
 * (nd_audit_os_actor); bundle and payload hash empty. */
int nd_audit_record_user(const char *node_dir, const char *action, const char *peer,
                         const char *outcome, const char *detail, sc_error *e) SC_WUR;

/* Rewrite NODE/audit.head with the last entry (seq and hash) unless the
 * file already names a later one. */
int nd_audit_anchor(sqlite3 *db, const char *node_dir, sc_error *e) SC_WUR;

/* The canonical bytes an entry's hash covers, given its fields. */
void nd_audit_canonical(nd_buf *b, int64_t seq, int64_t time_unix, const char *actor,
                        const char *action, const char *bundle_id, const char *payload_sha256,
                        const char *peer, const char *outcome, const char *detail,
                        const char *prev_hash_hex);

typedef struct nd_audit_report {
    int64_t entries; /* rows read */
    int64_t last_seq;
    char last_hash[65];
    int ok; /* chain intact and consistent with the anchor */
    int anchor_present;
    int64_t anchor_seq;
    int problems; /* number of problems found */
} nd_audit_report;

/* Walk the whole chain; every problem is described on `out` (may be NULL)
 * as one line ("entry 5: content changed (hash mismatch)").  node_dir may
 * be NULL to skip the anchor. */
int nd_audit_verify(sqlite3 *db, const char *node_dir, nd_audit_report *rep, FILE *out,
                    sc_error *e) SC_WUR;

/* Entries as text lines (newest last) or a JSON array; limit 0 = all,
 * bundle (may be NULL) filters by bundle id prefix. */
int nd_audit_render(sqlite3 *db, nd_buf *b, int json, int64_t limit, const char *bundle,
                    sc_error *e) SC_WUR;

#endif
