/*
 * nd_dash_session.c - dashboard sign-in by challenge and signature, and the
 * session table (see nd_dash_session.h).
 */
#include "nd_dash_session.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "sc_sign.h"
#include "sc_util.h"

void nd_dash_sessions_init(nd_dash_sessions *ss, int idle_seconds)
{
    memset(ss, 0, sizeof *ss);
    ss->idle_seconds = idle_seconds > 0 ? idle_seconds : ND_DASH_IDLE_DEFAULT;
}

static void random_hex(char out[65])
{
    uint8_t r[32];
    randombytes_buf(r, sizeof r);
    sc_hex_encode(out, r, sizeof r);
    sodium_memzero(r, sizeof r);
}

void nd_dash_challenge_new(nd_dash_sessions *ss, int64_t now, char hex[65])
{
    size_t slot = 0;
    for (size_t i = 0; i < ND_DASH_CHALLENGES; i++) {
        if (!ss->ch[i].hex[0] || ss->ch[i].expires <= now) {
            slot = i;
            break;
        }
        if (ss->ch[i].expires < ss->ch[slot].expires)
            slot = i;
    }
    random_hex(ss->ch[slot].hex);
    ss->ch[slot].expires = now + ND_DASH_CHALLENGE_TTL;
    memcpy(hex, ss->ch[slot].hex, 65);
}

int nd_dash_login_message(char *out, size_t cap, const char *node, const char *admin,
                          const char *challenge)
{
    if (strchr(node, '\n') || strchr(admin, '\n') || strchr(challenge, '\n'))
        return -1;
    int n = snprintf(out, cap, "node: %s\nadmin: %s\nchallenge: %s\n", node, admin, challenge);
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

/* Take challenge hex out of the table: 0 when it was there and live. */
static int take_challenge(nd_dash_sessions *ss, const char *hex, int64_t now)
{
    if (strlen(hex) != 64)
        return -1;
    for (size_t i = 0; i < ND_DASH_CHALLENGES; i++) {
        nd_dash_challenge *c = &ss->ch[i];
        if (c->hex[0] && !sodium_memcmp(c->hex, hex, 64)) {
            int live = c->expires > now;
            memset(c, 0, sizeof *c);
            return live ? 0 : -1;
        }
    }
    return -1;
}

static nd_dash_session *new_session(nd_dash_sessions *ss, const char *admin, int64_t now)
{
    nd_dash_session *s = &ss->s[0];
    for (size_t i = 0; i < ND_DASH_SESSIONS; i++) {
        nd_dash_session *t = &ss->s[i];
        if (!t->token[0] || now - t->last_used >= ss->idle_seconds) {
            s = t;
            break;
        }
        if (t->last_used < s->last_used)
            s = t;
    }
    memset(s, 0, sizeof *s);
    random_hex(s->token);
    random_hex(s->csrf);
    snprintf(s->admin, sizeof s->admin, "%s", admin);
    s->created = s->last_used = now;
    return s;
}

int nd_dash_login(nd_dash_sessions *ss, const sc_peer *self, const char *admin,
                  const char *challenge, const char *sig_hex, int64_t now, nd_dash_session **out,
                  sc_error *e)
{
    char msg[ND_DASH_LOGIN_MSG_MAX];
    uint8_t sig[64];
    size_t siglen = 0;
    const sc_admin_pub *pub = NULL;
    *out = NULL;
    if (take_challenge(ss, challenge, now))
        return sc_error_set(e, SC_EPERM, "unknown or expired challenge; sign in again");
    for (size_t k = 0; k < self->n_admins; k++)
        if (!strcmp(self->admins[k].name, admin))
            pub = &self->admins[k];
    if (!pub)
        return sc_error_set(e, SC_EPERM, "'%.64s' is not an admin of node %s", admin, self->id);
    int ml = nd_dash_login_message(msg, sizeof msg, self->id, admin, challenge);
    if (ml < 0 || strlen(sig_hex) != 128 ||
        sodium_hex2bin(sig, sizeof sig, sig_hex, 128, NULL, &siglen, NULL) || siglen != 64 ||
        sc_pae_verify(sig, ND_DASH_LOGIN_TYPE, (const uint8_t *)msg, (size_t)ml, pub->pk))
        return sc_error_set(e, SC_EPERM, "the signature is not admin %.64s's over the challenge",
                            admin);
    *out = new_session(ss, admin, now);
    return 0;
}

nd_dash_session *nd_dash_session_find(nd_dash_sessions *ss, const char *token, int64_t now,
                                      int touch)
{
    if (!token || strlen(token) != 64)
        return NULL;
    for (size_t i = 0; i < ND_DASH_SESSIONS; i++) {
        nd_dash_session *s = &ss->s[i];
        if (!s->token[0] || sodium_memcmp(s->token, token, 64))
            continue;
        if (now - s->last_used >= ss->idle_seconds) {
            memset(s, 0, sizeof *s);
            return NULL;
        }
        if (touch)
            s->last_used = now;
        return s;
    }
    return NULL;
}

int nd_dash_csrf_ok(const nd_dash_session *s, const char *csrf)
{
    return s && csrf && strlen(csrf) == 64 && !sodium_memcmp(s->csrf, csrf, 64);
}

void nd_dash_session_end(nd_dash_session *s)
{
    if (s)
        sodium_memzero(s, sizeof *s);
}
