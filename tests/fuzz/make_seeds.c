/*
 * make_seeds.c - writes the seed corpus of fuzz_receive: for each depth
 * (envelope, statement, payload) valid inputs for a few payload shapes and
 * encodings.  The committed corpus in tests/fuzz/corpus was made with
 * `fuzz_make_seeds tests/fuzz/corpus`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../crypto/fixture.h"

static int put(const char *dir, const char *name, uint8_t mode, const uint8_t *b, size_t n)
{
    char path[4096];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (!f || fputc(mode, f) == EOF || fwrite(b, 1, n, f) != n || fclose(f))
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    fixture F;
    static const int encs[] = {1, 2, 3};
    if (argc != 2 || fx_init(&F))
        return 2;
    for (int i = 0; i < 3; i++) {
        sp_test_params p;
        sc_admin_key *adm[1] = {F.alice};
        uint8_t *pl, *st, *env;
        size_t pn, sn, en;
        char name[64];
        fx_params(&p, 1, i + 1);
        p.encoding = encs[i];
        p.bn = i != 1;
        if (sp_test_bundle_build(&p, &pl, &pn) ||
            fx_statement(pl, pn, "node-a", F.a, adm, 1, &st, &sn) ||
            fx_seal(&F, st, sn, &p, "node-a", F.a, "node-b", F.b->enc_pk, &env, &en))
            return 1;
        snprintf(name, sizeof name, "envelope-%d", i);
        if (put(argv[1], name, 0, env, en))
            return 1;
        snprintf(name, sizeof name, "statement-%d", i);
        if (put(argv[1], name, 1, st, sn))
            return 1;
        snprintf(name, sizeof name, "payload-%d", i);
        if (put(argv[1], name, 2, pl, pn))
            return 1;
        free(pl);
        free(st);
        free(env);
    }
    fx_free(&F);
    return 0;
}
