/*
 * test_dash_proto.c - the dashboard signs decisions exactly as the CLI
 * does: for the same statement, admin key, decision and time, the page's
 * signDecision (node/web/dash-proto.js with the vendored libsodium, run in
 * Node.js by proto_check.mjs) yields the same bytes as sc_statement_approve,
 * signature included (Ed25519 is deterministic), and the node's checks
 * accept them.  Skipped (77) without node.
 *
 * usage: test_dash_proto PROTO_CHECK.mjs WEB_DIR SODIUM_DIR
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sc_sign.h"
#include "sc_util.h"
#include "sd_test.h"

static char *hex_of(const uint8_t *p, size_t n)
{
    char *h = malloc(2 * n + 1);
    if (h)
        sc_hex_encode(h, p, n);
    return h;
}

/* Run the page's code on (st, admin, decision, time); its output lines. */
static int run_page(char **argv, const uint8_t *st, size_t sl, const sc_admin_key *k, int decision,
                    long long t, char *out, size_t cap, char *sha, size_t shacap)
{
    char path[] = "/tmp/sldd-dash-proto-XXXXXX", cmd[2048];
    int fd = mkstemp(path);
    char *sth = hex_of(st, sl), *skh = hex_of(k->sk, 64), *pkh = hex_of(k->pk, 32);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    int rc = -1;
    if (!f || !sth || !skh || !pkh)
        goto out;
    fprintf(f,
            "{\"statement\":\"%s\",\"sk\":\"%s\",\"pk\":\"%s\",\"name\":\"%s\",\"node\":\"%s\","
            "\"decision\":\"%s\",\"time\":%lld}\n",
            sth, skh, pkh, k->name, k->node, decision == 1 ? "approve" : "reject", t);
    if (fclose(f)) {
        f = NULL;
        goto out;
    }
    f = NULL;
    snprintf(cmd, sizeof cmd, "node '%s' '%s' '%s' '%s'", argv[1], path, argv[2], argv[3]);
    FILE *p = popen(cmd, "r");
    if (p) {
        if (fgets(out, (int)cap, p) && fgets(sha, (int)shacap, p))
            rc = 0;
        if (pclose(p))
            rc = -1;
    }
out:
    if (f)
        fclose(f);
    if (fd >= 0)
        unlink(path);
    free(sth);
    free(skh);
    free(pkh);
    out[strcspn(out, "\n")] = 0;
    sha[strcspn(sha, "\n")] = 0;
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: test_dash_proto PROTO_CHECK.mjs WEB_DIR SODIUM_DIR\n");
        return 2;
    }
    if (system("node --version > /dev/null 2>&1")) {
        printf("SKIP: node not installed\n");
        return SD_TEST_SKIP;
    }
    if (sodium_init() < 0)
        return 1;
    static uint8_t node_sk[64], admin_sk[64];
    sc_node_keys nk = {{0}, {0}, node_sk, NULL};
    sc_admin_key ak = {"alice", "hospital-a", {0}, admin_sk};
    sc_error e = {0, ""};
    uint8_t payload[300], *st = NULL, *signed_st = NULL, *mine = NULL;
    size_t sl = 0, ssl = 0, ml = 0;
    crypto_sign_keypair(nk.sign_pk, node_sk);
    crypto_sign_keypair(ak.pk, admin_sk);
    randombytes_buf(payload, sizeof payload);
    CHECK(sc_statement_wrap(payload, sizeof payload, &st, &sl, &e) == 0);
    CHECK(sc_statement_sign_node(st, sl, "hospital-a", &nk, &signed_st, &ssl, &e) == 0);
    char *page = malloc(1 << 20), sha[80] = "";
    for (int decision = 1; page && signed_st && decision <= 2; decision++) {
        const long long t = 1796500000LL + decision;
        CHECK(sc_statement_approve(signed_st, ssl, &ak, decision, t, &mine, &ml, &e) == 0);
        CHECK(run_page(argv, signed_st, ssl, &ak, decision, t, page, 1 << 20, sha, sizeof sha) ==
              0);
        char *want = mine ? hex_of(mine, ml) : NULL;
        CHECKF(want && !strcmp(page, want), "decision %d:\n page %s\n  CLI %s", decision, page,
               want ? want : "?");
        uint8_t h[32];
        char hh[65];
        sc_sha256(h, payload, sizeof payload);
        sc_hex_encode(hh, h, 32);
        CHECKF(!strcmp(sha, hh), "payload hash %s, want %s", sha, hh);
        free(want);
        free(mine);
        mine = NULL;
    }
    free(page);
    free(st);
    free(signed_st);
    return sd_test_finish();
}
