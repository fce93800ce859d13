/*
 * nd_dash_session.h - who is signed in to the dashboard, and how they got
 * there (docs/dashboard.md, "Security design").
 *
 * An admin proves possession of their admin key without the daemon ever
 * seeing it: the daemon hands out a random single-use challenge (valid
 * ND_DASH_CHALLENGE_TTL seconds), the browser signs
 *
 *   PAE(ND_DASH_LOGIN_TYPE, "node: ID\nadmin: NAME\nchallenge: HEX\n")
 *
 * with the admin's Ed25519 key (PAE as in sc_sign.h, so a login signature
 * can never pass for an approval and the other way round), and the daemon
 * checks it against this node's own admin roster.  A session is a random
 * 256-bit token (the HttpOnly cookie) with its own random CSRF token, the
 * admin's name and the time of its last use; it ends after idle_seconds
 * without a request, at logout, or when the table is full and it is the
 * oldest.  The table lives on the dashboard's thread only: no locks.
 */
#ifndef ND_DASH_SESSION_H
#define ND_DASH_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "sc_error.h"
#include "sc_store.h"

#define ND_DASH_LOGIN_TYPE    "application/vnd.sldd.dashboard-login; v=1"
#define ND_DASH_SESSIONS      32
#define ND_DASH_CHALLENGES    32
#define ND_DASH_CHALLENGE_TTL 120
#define ND_DASH_IDLE_DEFAULT  900
#define ND_DASH_LOGIN_MSG_MAX 256

typedef struct nd_dash_session {
    char token[65]; /* hex; "" = free slot */
    char csrf[65];  /* hex */
    char admin[65];
    int64_t created, last_used;
} nd_dash_session;

typedef struct nd_dash_challenge {
    char hex[65]; /* "" = free slot */
    int64_t expires;
} nd_dash_challenge;

typedef struct nd_dash_sessions {
    nd_dash_session s[ND_DASH_SESSIONS];
    nd_dash_challenge ch[ND_DASH_CHALLENGES];
    int idle_seconds;
} nd_dash_sessions;

void nd_dash_sessions_init(nd_dash_sessions *ss, int idle_seconds);

/* A fresh challenge (hex of 32 random bytes) into hex, valid until
 * now + ND_DASH_CHALLENGE_TTL; a full table drops its oldest challenge. */
void nd_dash_challenge_new(nd_dash_sessions *ss, int64_t now, char hex[65]);

/* The exact text an admin signs to sign in (NUL-terminated into out);
 * its length, or -1 when a field is too long or holds a newline. */
int nd_dash_login_message(char *out, size_t cap, const char *node, const char *admin,
                          const char *challenge);

/* Open a session for admin `admin` of node `self` that signed challenge
 * (consumed whatever the outcome) with sig_hex (128 hex digits).  SC_EPERM
 * with the reason (unknown or expired challenge, unknown admin, bad
 * signature); on success *out points at the new session. */
int nd_dash_login(nd_dash_sessions *ss, const sc_peer *self, const char *admin,
                  const char *challenge, const char *sig_hex, int64_t now, nd_dash_session **out,
                  sc_error *e) SC_WUR;

/* The live session of cookie token `token`, or NULL: unknown, or idle for
 * idle_seconds or longer (then removed).  With touch, its last use becomes
 * now; without, it does not (the page's own background refresh, which must
 * not keep an unattended session open). */
nd_dash_session *nd_dash_session_find(nd_dash_sessions *ss, const char *token, int64_t now,
                                      int touch);

/* 1 when csrf equals the session's CSRF token (constant time), else 0. */
int nd_dash_csrf_ok(const nd_dash_session *s, const char *csrf);

/* End the session (logout); a NULL session is ignored. */
void nd_dash_session_end(nd_dash_session *s);

#endif
