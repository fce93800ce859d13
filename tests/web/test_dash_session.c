/*
 * test_dash_session.c - the dashboard's sign-in and sessions
 * (nd_dash_session.h) and its listen-address parser (nd_dash.h).
 */
#include <sodium.h>
#include <string.h>

#include "nd_dash.h"
#include "nd_dash_session.h"
#include "sc_sign.h"
#include "sd_test.h"

static uint8_t g_pk[32], g_sk[64], g_other_sk[64];

static void self_peer(sc_peer *p)
{
    memset(p, 0, sizeof *p);
    snprintf(p->id, sizeof p->id, "node-a");
    p->n_admins = 1;
    snprintf(p->admins[0].name, sizeof p->admins[0].name, "alice");
    memcpy(p->admins[0].pk, g_pk, 32);
}

/* hex of the signature by sk over the login message of (node, admin, ch) */
static void sign_login(char out[129], const uint8_t *sk, const char *node, const char *admin,
                       const char *ch, const char *type)
{
    char msg[ND_DASH_LOGIN_MSG_MAX];
    uint8_t sig[64];
    sc_error e = {0, ""};
    int n = nd_dash_login_message(msg, sizeof msg, node, admin, ch);
    CHECK(n > 0);
    CHECK(sc_pae_sign(sig, type, (const uint8_t *)msg, (size_t)n, sk, &e) == 0);
    sodium_bin2hex(out, 129, sig, 64);
}

static void test_login(void)
{
    nd_dash_sessions ss;
    sc_peer self;
    nd_dash_session *s = NULL;
    sc_error e = {0, ""};
    char ch[65], sig[129];
    self_peer(&self);
    nd_dash_sessions_init(&ss, 60);

    /* the right key over the right challenge opens a session */
    nd_dash_challenge_new(&ss, 1000, ch);
    sign_login(sig, g_sk, "node-a", "alice", ch, ND_DASH_LOGIN_TYPE);
    CHECK(nd_dash_login(&ss, &self, "alice", ch, sig, 1001, &s, &e) == 0);
    CHECK(s && strlen(s->token) == 64 && strlen(s->csrf) == 64 && strcmp(s->token, s->csrf));
    CHECK(s && !strcmp(s->admin, "alice"));
    char token[65];
    memcpy(token, s->token, 65);
    CHECK(nd_dash_session_find(&ss, token, 1002, 1) == s);
    CHECK(nd_dash_csrf_ok(s, s->csrf));

    /* the same challenge again: single use */
    CHECK(nd_dash_login(&ss, &self, "alice", ch, sig, 1003, &s, &e) == SC_EPERM);

    /* another key, a signature for another node, the approval's type,
     * an unknown admin, an expired challenge, a made-up one */
    nd_dash_challenge_new(&ss, 1000, ch);
    sign_login(sig, g_other_sk, "node-a", "alice", ch, ND_DASH_LOGIN_TYPE);
    CHECK(nd_dash_login(&ss, &self, "alice", ch, sig, 1001, &s, &e) == SC_EPERM);
    nd_dash_challenge_new(&ss, 1000, ch);
    sign_login(sig, g_sk, "node-b", "alice", ch, ND_DASH_LOGIN_TYPE);
    CHECK(nd_dash_login(&ss, &self, "alice", ch, sig, 1001, &s, &e) == SC_EPERM);
    nd_dash_challenge_new(&ss, 1000, ch);
    sign_login(sig, g_sk, "node-a", "alice", ch, SC_TYPE_APPROVAL);
    CHECK(nd_dash_login(&ss, &self, "alice", ch, sig, 1001, &s, &e) == SC_EPERM);
    nd_dash_challenge_new(&ss, 1000, ch);
    sign_login(sig, g_sk, "node-a", "bob", ch, ND_DASH_LOGIN_TYPE);
    CHECK(nd_dash_login(&ss, &self, "bob", ch, sig, 1001, &s, &e) == SC_EPERM);
    CHECK(strstr(e.msg, "not an admin") != NULL);
    nd_dash_challenge_new(&ss, 1000, ch);
    sign_login(sig, g_sk, "node-a", "alice", ch, ND_DASH_LOGIN_TYPE);
    CHECK(nd_dash_login(&ss, &self, "alice", ch, sig, 1000 + ND_DASH_CHALLENGE_TTL, &s, &e) ==
          SC_EPERM);
    CHECK(nd_dash_login(&ss, &self, "alice", "00", sig, 1001, &s, &e) == SC_EPERM);
    /* a malformed signature */
    nd_dash_challenge_new(&ss, 1000, ch);
    CHECK(nd_dash_login(&ss, &self, "alice", ch, "zz", 1001, &s, &e) == SC_EPERM);
    /* a newline would let a name forge another line of the message */
    char msg[ND_DASH_LOGIN_MSG_MAX];
    CHECK(nd_dash_login_message(msg, sizeof msg, "node-a", "alice\nchallenge: 00", ch) == -1);

    /* the first session is still there; idle for 60 s it is not */
    s = nd_dash_session_find(&ss, token, 1061, 1);
    CHECK(s != NULL);
    CHECK(nd_dash_session_find(&ss, token, 1061 + 59, 1) != NULL);
    CHECK(nd_dash_session_find(&ss, token, 1061 + 59 + 60, 1) == NULL);
    CHECK(nd_dash_session_find(&ss, token, 1061 + 59 + 61, 1) == NULL); /* removed */
    CHECK(nd_dash_session_find(&ss, NULL, 1000, 1) == NULL);

    /* a background refresh sees the session but does not keep it alive */
    nd_dash_challenge_new(&ss, 2000, ch);
    sign_login(sig, g_sk, "node-a", "alice", ch, ND_DASH_LOGIN_TYPE);
    CHECK(nd_dash_login(&ss, &self, "alice", ch, sig, 2000, &s, &e) == 0);
    if (s) {
        memcpy(token, s->token, 65);
        CHECK(nd_dash_session_find(&ss, token, 2050, 0) == s);
        CHECK(nd_dash_session_find(&ss, token, 2059, 0) == s);
        CHECK(nd_dash_session_find(&ss, token, 2060, 0) == NULL);
    }
    CHECK(nd_dash_session_find(&ss, "", 1000, 1) == NULL);
}

static void test_csrf_and_logout(void)
{
    nd_dash_sessions ss;
    sc_peer self;
    nd_dash_session *s = NULL;
    sc_error e = {0, ""};
    char ch[65], sig[129], token[65], wrong[65];
    self_peer(&self);
    nd_dash_sessions_init(&ss, 0);
    CHECK(ss.idle_seconds == ND_DASH_IDLE_DEFAULT);
    nd_dash_challenge_new(&ss, 5, ch);
    sign_login(sig, g_sk, "node-a", "alice", ch, ND_DASH_LOGIN_TYPE);
    CHECK(nd_dash_login(&ss, &self, "alice", ch, sig, 5, &s, &e) == 0);
    if (!s)
        return;
    memcpy(token, s->token, 65);
    memcpy(wrong, s->csrf, 65);
    wrong[10] = wrong[10] == 'a' ? 'b' : 'a';
    CHECK(!nd_dash_csrf_ok(s, wrong));
    CHECK(!nd_dash_csrf_ok(s, NULL));
    CHECK(!nd_dash_csrf_ok(s, ""));
    CHECK(!nd_dash_csrf_ok(s, s->token));
    CHECK(!nd_dash_csrf_ok(NULL, s->csrf));
    nd_dash_session_end(s);
    CHECK(nd_dash_session_find(&ss, token, 6, 1) == NULL);
    nd_dash_session_end(NULL);

    /* a full table: the oldest session gives way, the others stay */
    char first[65] = "";
    for (int i = 0; i <= ND_DASH_SESSIONS; i++) {
        nd_dash_challenge_new(&ss, 100 + i, ch);
        sign_login(sig, g_sk, "node-a", "alice", ch, ND_DASH_LOGIN_TYPE);
        CHECK(nd_dash_login(&ss, &self, "alice", ch, sig, 100 + i, &s, &e) == 0);
        if (i == 0 && s)
            memcpy(first, s->token, 65);
        if (i == 1 && s)
            memcpy(token, s->token, 65);
    }
    CHECK(nd_dash_session_find(&ss, first, 200, 1) == NULL);
    CHECK(nd_dash_session_find(&ss, token, 200, 1) != NULL);
}

static void test_listen(void)
{
    char host[64];
    int port = -1, lo = -1;
    sc_error e = {0, ""};
    CHECK(nd_dash_parse_listen("127.0.0.1:8080", host, sizeof host, &port, &lo, &e) == 0);
    CHECK(!strcmp(host, "127.0.0.1") && port == 8080 && lo == 1);
    CHECK(nd_dash_parse_listen("127.9.0.1:0", host, sizeof host, &port, &lo, &e) == 0 && lo == 1);
    CHECK(nd_dash_parse_listen("[::1]:443", host, sizeof host, &port, &lo, &e) == 0);
    CHECK(!strcmp(host, "::1") && port == 443 && lo == 1);
    CHECK(nd_dash_parse_listen("0.0.0.0:8443", host, sizeof host, &port, &lo, &e) == 0 && lo == 0);
    CHECK(nd_dash_parse_listen("10.1.2.3:8443", host, sizeof host, &port, &lo, &e) == 0 && lo == 0);
    CHECK(nd_dash_parse_listen("[::]:8443", host, sizeof host, &port, &lo, &e) == 0 && lo == 0);
    CHECK(nd_dash_parse_listen("8081", host, sizeof host, &port, &lo, &e) == 0);
    CHECK(!strcmp(host, "127.0.0.1") && port == 8081 && lo == 1);
    CHECK(nd_dash_parse_listen("", host, sizeof host, &port, &lo, &e) == SC_EINVAL);
    CHECK(nd_dash_parse_listen("localhost:8080", host, sizeof host, &port, &lo, &e) == SC_EINVAL);
    CHECK(nd_dash_parse_listen("127.0.0.1", host, sizeof host, &port, &lo, &e) == SC_EINVAL);
    CHECK(nd_dash_parse_listen("127.0.0.1:65536", host, sizeof host, &port, &lo, &e) == SC_EINVAL);
    CHECK(nd_dash_parse_listen("127.0.0.1:80x", host, sizeof host, &port, &lo, &e) == SC_EINVAL);
    CHECK(nd_dash_parse_listen(":80", host, sizeof host, &port, &lo, &e) == SC_EINVAL);
    CHECK(nd_dash_parse_listen("[::1]80", host, sizeof host, &port, &lo, &e) == SC_EINVAL);
}

static void test_host(void)
{
    CHECK(nd_dash_host_ok("127.0.0.1:8080"));
    CHECK(nd_dash_host_ok("127.0.0.1"));
    CHECK(nd_dash_host_ok("[::1]:8080"));
    CHECK(nd_dash_host_ok("localhost:8080"));
    CHECK(!nd_dash_host_ok("evil.example:8080"));
    CHECK(!nd_dash_host_ok("127.0.0.1.evil.example"));
    CHECK(!nd_dash_host_ok("[::1"));
    CHECK(!nd_dash_host_ok("[::1]x"));
    CHECK(!nd_dash_host_ok(""));
    CHECK(!nd_dash_host_ok(NULL));
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    uint8_t opk[32];
    crypto_sign_keypair(g_pk, g_sk);
    crypto_sign_keypair(opk, g_other_sk);
    test_login();
    test_csrf_and_logout();
    test_listen();
    test_host();
    return sd_test_finish();
}
