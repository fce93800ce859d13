/*
 * fuzz_receive.c - libFuzzer harness over the whole receive path.
 *
 * Random bytes almost never get past the outer signature, so the first
 * input byte picks how deep the rest goes:
 *   0  the rest is an envelope, received as is (size cap, envelope and
 *      header parsing, sender lookup, outer signature);
 *   1  the rest is a signed statement: the harness seals it as node-a for
 *      node-b, so the fuzzer reaches decryption, statement parsing and
 *      signature checking;
 *   2  the rest is a payload: the harness wraps it in a statement, signs it
 *      as node-a, approves it as alice and seals it, so the fuzzer reaches
 *      payload parsing under the memory budget, the unknown-field walk,
 *      the header/payload agreement and semantic validation.
 * Every input must end in acceptance or a refusal with a reason; anything
 * else aborts.  Keys come from fixed seeds (tests/crypto/fixture.h).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../crypto/fixture.h"
#include "sp_budget.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static fixture F;
static int ready, verbose;

static void receive(const uint8_t *buf, size_t len)
{
    sc_received *rec = NULL;
    sc_error e = {0, ""};
    int rc = sc_receive(&F.rb, buf, len, &rec, &e);
    if (verbose) /* SLDD_FUZZ_VERBOSE=1: show what each input came to */
        fprintf(stderr, "%s: %s\n", sc_status_name(rc), rc ? e.msg : "accepted");
    if (rc == 0) {
        if (!rec || !rec->bundle)
            abort();
        sc_received_destroy(rec);
        return;
    }
    /* a refusal: never a result, always a refusal code and a reason */
    if (rec || !e.msg[0] || !(sc_status_is_refusal(rc) || rc == SC_ENOMEM))
        abort();
}

/* Header fields for sealing: from the payload when it parses, else fixed. */
static void fields_from(const uint8_t *payload, size_t len, sp_test_params *p)
{
    sp_budget b;
    Sldd__V1__Bundle *bd;
    fx_params(p, 1, 0);
    sp_budget_init(&b, 16 * len + 65536);
    bd = sldd__v1__bundle__unpack(sp_budget_allocator(&b), len, payload);
    if (!bd)
        return;
    if (bd->bundle_id.len == 16)
        memcpy(p->bundle_id, bd->bundle_id.data, 16);
    if (bd->sequence)
        p->sequence = bd->sequence;
    if (bd->created_unix > 0 && bd->expires_unix > bd->created_unix) {
        p->created_unix = bd->created_unix;
        p->expires_unix = bd->expires_unix;
    }
    protobuf_c_message_free_unpacked(&bd->base, sp_budget_allocator(&b));
}

static void seal_and_receive(const uint8_t *st, size_t sl, const uint8_t *payload, size_t pl)
{
    sp_test_params p;
    uint8_t *env = NULL;
    size_t el;
    fields_from(payload, pl, &p);
    if (fx_seal(&F, st, sl, &p, "node-a", F.a, "node-b", F.b->enc_pk, &env, &el))
        return;
    receive(env, el);
    free(env);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ready) {
        if (fx_init(&F))
            abort();
        verbose = getenv("SLDD_FUZZ_VERBOSE") != NULL;
        ready = 1;
    }
    if (size < 1)
        return 0;
    switch (data[0] % 3) {
    case 0: receive(data + 1, size - 1); break;
    case 1: {
        sp_budget b;
        Sldd__V1__Statement *st = NULL;
        sp_budget_init(&b, 4 * size + 65536);
        if (sc_statement_parse(data + 1, size - 1, &b, &st, NULL) == 0) {
            seal_and_receive(data + 1, size - 1, st->payload.data, st->payload.len);
            protobuf_c_message_free_unpacked(&st->base, sp_budget_allocator(&b));
        } else {
            seal_and_receive(data + 1, size - 1, NULL, 0);
        }
        break;
    }
    default: {
        sc_admin_key *adm[1] = {F.alice};
        uint8_t *st;
        size_t sl;
        if (fx_statement(data + 1, size - 1, "node-a", F.a, adm, 1, &st, &sl) == 0) {
            seal_and_receive(st, sl, data + 1, size - 1);
            free(st);
        }
        break;
    }
    }
    return 0;
}
