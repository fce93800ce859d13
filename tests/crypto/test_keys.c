/*
 * test_keys.c - the node directory: key files (0600, O_EXCL, permission
 * check, secret matches public), admin keys under a passphrase, the file
 * peer store and peer records, the replay file across restarts, the
 * sequence counter and node.conf (min-admin-approvals never below 1).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../sd_test.h"
#include "sc_keys.h"
#include "nd_node.h"
#include "sc_store.h"
#include "sc_util.h"

static char dir[256];

static int mode_of(const char *rel)
{
    char p[512];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    return stat(p, &st) ? -1 : (int)(st.st_mode & 0777);
}

static void test_node_dir(void)
{
    sc_error e = {0, ""};
    sc_node_keys *k = NULL, *k2 = NULL;
    nd_node_config c;
    uint8_t spk[32], epk[32];
    char p[512];
    CHECKF(nd_node_init(dir, "node-a", &e) == 0, "%s", e.msg);
    CHECK(mode_of("") == 0700);
    CHECK(mode_of("keys/sign.key") == 0600 && mode_of("keys/enc.key") == 0600);
    CHECK(mode_of("node.conf") == 0600);
    CHECK(nd_node_init(dir, "node-a", &e) == SC_EEXIST);
    CHECK(nd_node_init("/nonexistent-dir/x", "bad/id", &e) == SC_EINVAL);
    CHECKF(sc_node_keys_load(dir, &k, &e) == 0, "%s", e.msg);
    CHECK(sc_node_keys_load_public(dir, spk, epk, &e) == 0);
    CHECK(k && !memcmp(k->sign_pk, spk, 32) && !memcmp(k->enc_pk, epk, 32));
    CHECK(k && memcmp(k->sign_pk, k->enc_pk, 32) != 0);
    CHECK(nd_node_config_load(dir, &c, &e) == 0);
    CHECK(!strcmp(c.id, "node-a") && c.max_bundle_bytes == (size_t)64 << 20 &&
          c.min_admin_approvals == 1);
    /* keys are never overwritten */
    CHECK(sc_node_keys_save(k, dir, "node-a", &e) == SC_EEXIST);
    /* a secret file readable by others is refused */
    snprintf(p, sizeof p, "%s/keys/enc.key", dir);
    CHECK(chmod(p, 0644) == 0);
    CHECK(sc_node_keys_load(dir, &k2, &e) == SC_EPERM && k2 == NULL);
    CHECK(strstr(e.msg, "chmod 600") != NULL);
    CHECK(chmod(p, 0600) == 0);
    /* a secret that does not match its public key is refused */
    {
        uint8_t *buf;
        size_t len;
        char *sec;
        CHECK(sc_file_read(p, 4096, 0, &buf, &len, &e) == 0);
        sec = strstr((char *)buf, "secret: ");
        CHECK(sec != NULL);
        if (sec) {
            /* a character in the middle: the first one encodes bits of byte 0
             * that X25519 clamps away, so changing it may change nothing */
            char orig = sec[18];
            sec[18] = orig == 'A' ? 'B' : 'A';
            CHECK(unlink(p) == 0);
            CHECK(sc_file_create_excl(p, buf, len, 0600, &e) == 0);
            CHECK(sc_node_keys_load(dir, &k2, &e) == SC_EFORMAT);
            sec[18] = orig;
            CHECK(unlink(p) == 0);
            CHECK(sc_file_create_excl(p, buf, len, 0600, &e) == 0);
        }
        free(buf);
    }
    CHECK(sc_node_keys_load(dir, &k2, &e) == 0);
    sc_node_keys_destroy(k2);
    sc_node_keys_destroy(k);
}

static void test_admin(void)
{
    sc_error e = {0, ""};
    uint8_t pk[32], pk2[32];
    sc_admin_key *a = NULL;
    const char *pass = "correct horse battery";
    CHECKF(sc_admin_key_create(dir, "node-a", "alice", pass, strlen(pass), SC_KDF_INTERACTIVE, pk,
                               &e) == 0,
           "%s", e.msg);
    CHECK(mode_of("admins/alice.key") == 0600);
    CHECK(sc_admin_key_create(dir, "node-a", "alice", pass, strlen(pass), SC_KDF_INTERACTIVE, pk2,
                              &e) == SC_EEXIST);
    CHECK(sc_admin_pub_load(dir, "alice", pk2, &e) == 0 && !memcmp(pk, pk2, 32));
    CHECK(sc_admin_key_load(dir, "alice", "wrong horse", 11, &a, &e) == SC_EPASS && !a);
    CHECKF(sc_admin_key_load(dir, "alice", pass, strlen(pass), &a, &e) == 0, "%s", e.msg);
    CHECK(a && !memcmp(a->pk, pk, 32) && !strcmp(a->name, "alice") && !strcmp(a->node, "node-a"));
    sc_admin_key_destroy(a);
    /* the passphrase source order: file, then environment */
    {
        char pf[512], *got;
        size_t gl;
        FILE *f;
        snprintf(pf, sizeof pf, "%s/pass.txt", dir);
        f = fopen(pf, "w");
        fputs("from the file\n", f);
        fclose(f);
        setenv("SLDD_PASSPHRASE", "from the environment", 1);
        /* a file group or others may read is refused, whatever it holds */
        CHECK(chmod(pf, 0640) == 0);
        CHECK(sc_passphrase_get(pf, "p: ", 0, &got, &gl, &e) == SC_EPERM &&
              strstr(e.msg, "chmod 600") && strstr(e.msg, pf));
        CHECK(chmod(pf, 0600) == 0);
        CHECK(sc_passphrase_get(pf, "p: ", 0, &got, &gl, &e) == 0);
        CHECK(gl == 13 && !strcmp(got, "from the file"));
        sc_secret_free(got, gl + 1);
        CHECK(sc_passphrase_get(NULL, "p: ", 0, &got, &gl, &e) == 0);
        CHECK(!strcmp(got, "from the environment"));
        sc_secret_free(got, gl + 1);
        setenv("SLDD_PASSPHRASE", "short", 1);
        CHECK(sc_passphrase_get(NULL, "p: ", 1, &got, &gl, &e) == SC_EPASS);
        unsetenv("SLDD_PASSPHRASE");
    }
}

static void test_peers(void)
{
    sc_error e = {0, ""};
    sc_trust_store *t = NULL;
    sc_peer p, q, self;
    sc_peer *list = NULL;
    size_t n = 0;
    char *text;
    memset(&p, 0, sizeof p);
    snprintf(p.id, sizeof p.id, "node-b");
    memset(p.sign_pk, 7, 32);
    memset(p.enc_pk, 9, 32);
    p.n_admins = 1;
    snprintf(p.admins[0].name, sizeof p.admins[0].name, "carol");
    memset(p.admins[0].pk, 3, 32);
    CHECK(sc_trust_store_open_files(dir, "node-a", &t, &e) == 0);
    CHECK(t->peer_get(t, "node-b", &q, &e) == SC_ENOTFOUND);
    CHECK(t->peer_put(t, &p, &e) == 0);
    CHECK(t->peer_get(t, "node-b", &q, &e) == 0);
    CHECK(!memcmp(&p, &q, sizeof p));
    CHECK(t->peer_get(t, "../node-b", &q, &e) == SC_ENOTFOUND);
    CHECK(t->peer_get(t, "node-a", &self, &e) == 0);
    CHECK(self.n_admins == 1 && !strcmp(self.admins[0].name, "alice"));
    snprintf(p.id, sizeof p.id, "node-a");
    CHECK(t->peer_put(t, &p, &e) == SC_EINVAL); /* never overwrite ourselves */
    CHECK(t->peer_list(t, &list, &n, &e) == 0 && n == 1 && !strcmp(list[0].id, "node-b"));
    free(list);
    sc_trust_store_destroy(t);
    /* text round trip */
    snprintf(p.id, sizeof p.id, "node-b");
    CHECK(sc_peer_format(&p, &text, &e) == 0);
    CHECK(sc_peer_parse(text, &q, &e) == 0 && !memcmp(&p, &q, sizeof p));
    free(text);
    {
        char bad[] = "sldd-peer: v1\nid: x/y\nsign: AAAA\nenc: AAAA\n";
        CHECK(sc_peer_parse(bad, &q, &e) == SC_EFORMAT);
    }
}

static void test_replay_file(void)
{
    sc_error e = {0, ""};
    sc_replay_store *r = NULL;
    char path[512];
    uint8_t id1[16] = {1}, id2[16] = {2}, id3[16] = {3};
    snprintf(path, sizeof path, "%s/replay.log", dir);
    CHECK(sc_replay_store_open_file(path, &r, &e) == 0);
    CHECK(r->check(r, "node-b", id1, 3, &e) == 0);
    CHECK(r->record(r, "node-b", id1, 3, &e) == 0);
    sc_replay_store_destroy(r);
    CHECK(sc_replay_store_open_file(path, &r, &e) == 0); /* after a restart */
    CHECK(r->check(r, "node-b", id1, 9, &e) == SC_EREFUSE_REPLAY_ID);
    CHECK(r->check(r, "node-b", id2, 3, &e) == SC_EREFUSE_REPLAY_SEQ);
    CHECK(r->check(r, "node-c", id2, 1, &e) == 0); /* sequences are per sender */
    CHECK(r->check(r, "node-b", id2, 4, &e) == 0);
    CHECK(r->record(r, "node-b", id2, 4, &e) == 0);
    CHECK(r->check(r, "node-b", id3, 4, &e) == SC_EREFUSE_REPLAY_SEQ);
    sc_replay_store_destroy(r);
}

static void test_sequence(void)
{
    sc_error e = {0, ""};
    uint64_t s1 = 0, s2 = 0, s3 = 0;
    CHECK(nd_node_sequence_next(dir, &s1, &e) == 0);
    CHECK(nd_node_sequence_next(dir, &s2, &e) == 0);
    CHECK(nd_node_sequence_next(dir, &s3, &e) == 0);
    CHECK(s1 == 1 && s2 == 2 && s3 == 3);
}

/* approval cannot be configured away: 0 is refused, naming the key, and
 * the values around it behave */
static void test_min_approvals(void)
{
    static const struct {
        const char *line;
        int rc;
        size_t want;
    } cases[] = {{"min-admin-approvals: 2\n", 0, 2},
                 {"min-admin-approvals: 1\n", 0, 1},
                 {"min-admin-approvals: 0\n", SC_EFORMAT, 0},
                 {"min-admin-approvals: -1\n", SC_EFORMAT, 0},
                 {"min-admin-approvals: 33\n", SC_EFORMAT, 0}};
    char path[512];
    uint8_t *orig;
    size_t olen;
    sc_error e = {0, ""};
    nd_node_config c;
    snprintf(path, sizeof path, "%s/node.conf", dir);
    CHECK(sc_file_read(path, 65536, 0, &orig, &olen, &e) == 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        FILE *f = fopen(path, "a");
        CHECK(f && fputs(cases[i].line, f) >= 0 && fclose(f) == 0);
        int rc = nd_node_config_load(dir, &c, &e);
        CHECKF(rc == cases[i].rc, "%s: %d (%s)", cases[i].line, rc, e.msg);
        if (!rc)
            CHECK(c.min_admin_approvals == cases[i].want);
        else
            CHECKF(strstr(e.msg, "min-admin-approvals") != NULL, "%s", e.msg);
        if (strstr(cases[i].line, ": 0"))
            CHECKF(strstr(e.msg, "must be at least 1") != NULL, "%s", e.msg);
        CHECK(sc_file_write_atomic(path, orig, olen, 0600, &e) == 0);
    }
    free(orig);
}

int main(void)
{
    char cmd[600];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/sldd-test-keys-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        return 1;
    size_t dl = strlen(dir);
    snprintf(dir + dl, sizeof dir - dl, "/node");
    test_node_dir();
    test_admin();
    test_peers();
    test_replay_file();
    test_sequence();
    test_min_approvals();
    dir[strlen(dir) - 5] = 0;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return sd_test_finish();
}
