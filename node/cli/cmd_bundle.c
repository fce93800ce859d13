/*
 * cmd_bundle.c - `sldd bundle ...`: every step of a bundle's life by hand,
 * on files, without a daemon:
 *   make-test  a payload of realistic shape with random contents
 *   inspect    every field and the size of each part (payload, statement
 *              or envelope); exits 1 when what it shows would be refused
 *   sign       add this node's signature (wrapping a payload first)
 *   approve    add an admin's approval bound to the payload hash
 *   seal       encrypt a signed, approved statement for one peer
 *   open       the full receive order; refusals name their reason
 *   verify     the inner checks of a statement
 * The approval workflow through the node (list, show, approve ID, reject)
 * is nd_cli_bundle.c; the help shows the two groups apart.  The formats
 * are in docs/bundle-format.md.
 */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "nd_cli_words.h"
#include "nd_audit.h"
#include "nd_cli_dir.h"
#include "nd_cli_approval.h"
#include "nd_cli_bundle.h"
#include "sc_envelope.h"
#include "sc_keys.h"
#include "nd_node.h"
#include "sc_sign.h"
#include "sc_util.h"
#include "sldd.pb-c.h"
#include "sp_budget.h"
#include "sp_check.h"
#include "sp_encoding.h"
#include "sp_print.h"
#include "sp_testbundle.h"
#include "sb_parse.h"

#define INSPECT_MAX ((size_t)1 << 30)

enum { K_UNKNOWN, K_PAYLOAD, K_STATEMENT, K_ENVELOPE };

typedef struct bopts {
    const char *dir, *in, *out, *to, *admin, *passfile, *type, *encoding, *sender, *payload_out;
    int reject, yes, small, no_record;
    int64_t now, created, expires;
    uint64_t seed, sequence;
    long min_admins;
    int64_t depth, width; /* make-test: ConvNet shape, 0 = default */
} bopts;

static void bundle_usage(FILE *f)
{
    fprintf(f, "usage: sldd bundle SUBCOMMAND [OPTIONS]\n"
               "\n"
               "The approval workflow, through the node (its jobs' bundles, received ones):\n");
    nd_cli_bundle_usage(f);
    fprintf(f, "\n"
               "By hand, on files, without a daemon (tests, other implementations):\n"
               "       sldd bundle make-test --out FILE [--dir NODE | --sender ID] [--to A,B]\n"
               "                 [--encoding float32|float16|uint8] [--seed N] [--sequence N]\n"
               "                 [--created T] [--expires T] [--small] [--depth D] [--width W]\n"
               "       sldd bundle inspect FILE [--type payload|statement|envelope] [--dir NODE]\n"
               "       sldd bundle sign --dir NODE --in FILE --out FILE\n"
               "       sldd bundle approve --in FILE --out FILE --dir NODE --admin NAME\n"
               "                 [--reject] [--yes] [--passphrase-file FILE]\n"
               "       sldd bundle seal --dir NODE --in STATEMENT --to PEER --out FILE\n"
               "       sldd bundle open --dir NODE --in ENVELOPE [--out STATEMENT]\n"
               "                 [--payload-out FILE] [--no-record]\n"
               "       sldd bundle verify --dir NODE --in STATEMENT [--min-admins N (1..32)]\n"
               "  (approve with --in signs an approval into a statement file, the by-hand\n"
               "  form of 'approve ID'; --now T (unix seconds) replaces the clock for seal,\n"
               "  open and make-test; inspect exits 1 when what it shows would be refused;\n"
               "  open exits 1 and prints 'refused (REASON): detail' for a refused bundle)\n");
}

static int parse_i64(const char *s, int64_t *out)
{
    long long v;
    if (sb_parse_i64(s, INT64_MIN, INT64_MAX, &v))
        return -1;
    *out = (int64_t)v;
    return 0;
}

static int read_input(const char *path, size_t max, uint8_t **buf, size_t *len)
{
    sc_error e = {0, ""};
    if (sc_file_read(path, max, 0, buf, len, &e)) {
        fprintf(stderr, "sldd bundle: %s\n", e.msg);
        return -1;
    }
    return 0;
}

static int write_output(const char *path, const uint8_t *buf, size_t len)
{
    sc_error e = {0, ""};
    if (sc_file_write_atomic(path, buf, len, 0644, &e)) {
        fprintf(stderr, "sldd bundle: %s\n", e.msg);
        return -1;
    }
    return 0;
}

/* Which of the three messages buf holds.  There is no magic number on the
 * wire; each parse is strict (no unknown fields) and a statement is
 * recognised by its payload type. */
static int detect(const uint8_t *buf, size_t len)
{
    sp_budget b;
    int kind = K_UNKNOWN;
    {
        Sldd__V1__Envelope *env;
        Sldd__V1__EnvelopeHeader *h;
        sp_budget_init(&b, len + 65536);
        if (sc_envelope_peek(buf, len, &b, &env, &h, NULL) == 0)
            kind = K_ENVELOPE;
        if (h)
            protobuf_c_message_free_unpacked(&h->base, sp_budget_allocator(&b));
        if (env)
            protobuf_c_message_free_unpacked(&env->base, sp_budget_allocator(&b));
        if (kind)
            return kind;
    }
    {
        Sldd__V1__Statement *st;
        sp_budget_init(&b, len + 65536);
        if (sc_statement_parse(buf, len, &b, &st, NULL) == 0) {
            if (!strncmp(st->payload_type, "application/vnd.sldd.", 21))
                kind = K_STATEMENT;
            protobuf_c_message_free_unpacked(&st->base, sp_budget_allocator(&b));
        }
        if (kind)
            return kind;
    }
    {
        Sldd__V1__Bundle *bd;
        sp_budget_init(&b, len * 8 + 65536);
        bd = sldd__v1__bundle__unpack(sp_budget_allocator(&b), len, buf);
        if (bd) {
            kind = K_PAYLOAD;
            protobuf_c_message_free_unpacked(&bd->base, sp_budget_allocator(&b));
        }
    }
    return kind;
}

static int kind_of(const bopts *o, const uint8_t *buf, size_t len)
{
    if (o->type) {
        if (!strcmp(o->type, "payload"))
            return K_PAYLOAD;
        if (!strcmp(o->type, "statement"))
            return K_STATEMENT;
        if (!strcmp(o->type, "envelope"))
            return K_ENVELOPE;
        return K_UNKNOWN;
    }
    return detect(buf, len);
}

static void print_hex_line(const char *label, const uint8_t *p, size_t n)
{
    printf("%-22s ", label);
    sp_print_hex(stdout, p, n);
    putchar('\n');
}

/* Print a payload with its validation verdict. */
static int inspect_payload(const uint8_t *buf, size_t len)
{
    sp_budget b;
    Sldd__V1__Bundle *bd;
    sb_error why;
    uint8_t h[32];
    sp_budget_init(&b, len * 8 + 65536);
    bd = sldd__v1__bundle__unpack(sp_budget_allocator(&b), len, buf);
    if (!bd) {
        printf("payload: does not parse (%zu bytes)\n", len);
        return 1;
    }
    sc_sha256(h, buf, len);
    print_hex_line("payload sha256", h, 32);
    sp_bundle_print(stdout, bd, len);
    int rc = 1; /* a payload that would be refused is a failure, not a report */
    if (sp_message_check_unknown(&bd->base, &why))
        printf("unknown fields: %s\n", why.msg);
    else if (sp_bundle_validate(bd, &why))
        printf("validation: INVALID: %s\n", why.msg);
    else {
        printf("validation: ok\n");
        rc = 0;
    }
    protobuf_c_message_free_unpacked(&bd->base, sp_budget_allocator(&b));
    return rc;
}

static const char *role_name(int r)
{
    return r == SLDD__V1__SIGNER_ROLE__SIGNER_ROLE_NODE    ? "node"
           : r == SLDD__V1__SIGNER_ROLE__SIGNER_ROLE_ADMIN ? "admin"
                                                           : "INVALID";
}

static int inspect_statement(const uint8_t *buf, size_t len)
{
    sp_budget b;
    Sldd__V1__Statement *st;
    sc_error e = {0, ""};
    uint8_t h[32];
    int rc;
    sp_budget_init(&b, len + 65536);
    if (sc_statement_parse(buf, len, &b, &st, &e)) {
        printf("statement: %s\n", e.msg);
        return 1;
    }
    sc_sha256(h, st->payload.data, st->payload.len);
    printf("signed statement, %zu bytes\n%-22s %s\n%-22s %zu\n", len, "payload type",
           st->payload_type, "payload bytes", st->payload.len);
    printf("%-22s %zu\n", "signatures", st->n_signatures);
    for (size_t i = 0; i < st->n_signatures; i++) {
        const Sldd__V1__Signature *s = st->signatures[i];
        printf("  [%zu] %-5s %-16s key id ", i, role_name(s->role), s->signer_id);
        sp_print_hex(stdout, s->key_id.data, s->key_id.len < 8 ? s->key_id.len : 8);
        printf("... sig %zu bytes\n", s->sig.len);
        if (s->approval.len) {
            Sldd__V1__Approval *ap =
                sldd__v1__approval__unpack(NULL, s->approval.len, s->approval.data);
            if (!ap) {
                printf("      approval does not parse\n");
                continue;
            }
            printf("      %s by %s for node %s at %" PRId64 ", payload hash %s\n",
                   ap->decision == SLDD__V1__DECISION__DECISION_APPROVE  ? "APPROVED"
                   : ap->decision == SLDD__V1__DECISION__DECISION_REJECT ? "REJECTED"
                                                                         : "no decision",
                   ap->admin_id, ap->node_id, ap->time_unix,
                   ap->payload_sha256.len == 32 && !memcmp(ap->payload_sha256.data, h, 32)
                       ? "matches"
                       : "DOES NOT MATCH");
            sldd__v1__approval__free_unpacked(ap, NULL);
        }
    }
    rc = inspect_payload(st->payload.data, st->payload.len);
    protobuf_c_message_free_unpacked(&st->base, sp_budget_allocator(&b));
    return rc;
}

static void print_time_line(const char *label, int64_t t)
{
    char tb[64] = "?";
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm))
        strftime(tb, sizeof tb, "%Y-%m-%dT%H:%M:%SZ", &tm);
    printf("%-22s %" PRId64 " (%s)\n", label, t, tb);
}

static int inspect_envelope(const uint8_t *buf, size_t len, const char *dir)
{
    sp_budget b;
    Sldd__V1__Envelope *env;
    Sldd__V1__EnvelopeHeader *h;
    sc_error e = {0, ""};
    uint8_t ch[32];
    int rc = 0;
    sp_budget_init(&b, len + 65536);
    if (sc_envelope_peek(buf, len, &b, &env, &h, &e)) {
        printf("envelope: %s\n", e.msg);
        rc = 1;
        goto out;
    }
    printf("sealed envelope, %zu bytes\n", len);
    printf("%-22s %u\n%-22s %s\n%-22s %s\n", "format version", h->format_version, "sender",
           h->sender, "recipient", h->recipient);
    print_hex_line("bundle id", h->bundle_id.data, h->bundle_id.len);
    printf("%-22s %" PRIu64 "\n", "sequence", h->sequence);
    print_time_line("created", h->created_unix);
    print_time_line("expires", h->expires_unix);
    print_hex_line("sender key id", h->sender_key_id.data, h->sender_key_id.len);
    print_hex_line("recipient key id", h->recipient_key_id.data, h->recipient_key_id.len);
    print_hex_line("nonce", h->nonce.data, h->nonce.len);
    sc_sha256(ch, env->ciphertext.data, env->ciphertext.len);
    print_hex_line("ciphertext sha256", ch, 32);
    printf("parts (bytes):\n  %-20s %zu\n  %-20s %zu (sealed key %zu)\n  %-20s %zu\n"
           "  %-20s %zu\n",
           "total", len, "header", env->header.len, h->sealed_key.len, "ciphertext",
           env->ciphertext.len, "outer signature", env->signature.len);
    if (dir) {
        nd_node *n = NULL;
        sc_peer p;
        if (nd_node_open(dir, 0, &n, &e) == 0 &&
            n->trust->peer_get(n->trust, h->sender, &p, &e) == 0) {
            uint8_t kid[32], *body = malloc(env->header.len + 32);
            sc_key_id(kid, p.sign_pk);
            if (body) {
                memcpy(body, env->header.data, env->header.len);
                memcpy(body + env->header.len, ch, 32);
            }
            const char *verdict = !body || memcmp(kid, h->sender_key_id.data, 32)
                                      ? "by a key not on record"
                                  : sc_pae_verify(env->signature.data, SC_TYPE_ENVELOPE, body,
                                                  env->header.len + 32, p.sign_pk)
                                      ? "INVALID"
                                      : "valid";
            printf("%-22s %s\n", "outer signature", verdict);
            if (strcmp(verdict, "valid"))
                rc = 1;
            free(body);
        } else {
            printf("%-22s not checked: %s\n", "outer signature", e.msg);
        }
        nd_node_close(n);
    }
out:
    if (h)
        protobuf_c_message_free_unpacked(&h->base, sp_budget_allocator(&b));
    if (env)
        protobuf_c_message_free_unpacked(&env->base, sp_budget_allocator(&b));
    return rc;
}

static int do_inspect(const bopts *o)
{
    uint8_t *buf;
    size_t len;
    int rc, kind;
    if (!o->in) {
        bundle_usage(stderr);
        return 2;
    }
    if (read_input(o->in, INSPECT_MAX, &buf, &len))
        return 1;
    kind = kind_of(o, buf, len);
    switch (kind) {
    case K_ENVELOPE: rc = inspect_envelope(buf, len, o->dir); break;
    case K_STATEMENT: rc = inspect_statement(buf, len); break;
    case K_PAYLOAD:
        printf("payload, %zu bytes\n", len);
        rc = inspect_payload(buf, len);
        break;
    default:
        fprintf(stderr, "sldd bundle inspect: %s is not a payload, statement or envelope\n", o->in);
        rc = 1;
    }
    free(buf);
    return rc;
}

static int split_list(char *s, const char **out, size_t max)
{
    size_t n = 0;
    for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
        if (n == max || !sp_valid_id(tok))
            return -1;
        out[n++] = tok;
    }
    return (int)n;
}

static int do_make_test(const bopts *o)
{
    sp_test_params p;
    static const char *aud[64];
    char audbuf[4096], sender[65];
    uint8_t *buf;
    size_t len;
    int na;
    nd_node *n = NULL;
    sc_error e = {0, ""};
    int64_t now = o->now ? o->now : (int64_t)time(NULL);
    if (!o->out) {
        bundle_usage(stderr);
        return 2;
    }
    if (sodium_init() < 0)
        return 1;
    sp_test_params_default(&p);
    if (o->small) {
        p.depth = 1;
        p.width = 4;
        p.height = p.width_px = 8;
        p.steps = 2;
        p.per_step = 3;
        p.epochs = 2;
    }
    if (o->depth)
        p.depth = (uint32_t)o->depth;
    if (o->width)
        p.width = (uint32_t)o->width;
    snprintf(audbuf, sizeof audbuf, "%s", o->to ? o->to : "node-b");
    na = split_list(audbuf, aud, 64);
    if (na < 1) {
        fprintf(stderr, "sldd bundle make-test: bad --to list\n");
        return 2;
    }
    p.audience = aud;
    p.n_audience = (size_t)na;
    if (o->encoding && (p.encoding = sp_encoding_parse(o->encoding)) < 0) {
        fprintf(stderr, "sldd bundle make-test: unknown encoding %s\n", o->encoding);
        return 2;
    }
    p.seed = o->seed ? o->seed : 1;
    randombytes_buf(p.bundle_id, sizeof p.bundle_id);
    p.created_unix = o->created ? o->created : now;
    if (o->dir) {
        if (nd_node_open(o->dir, 0, &n, &e) || nd_node_sequence_next(o->dir, &p.sequence, &e)) {
            fprintf(stderr, "sldd bundle make-test: %s\n", e.msg);
            nd_node_close(n);
            return 1;
        }
        snprintf(sender, sizeof sender, "%s", n->cfg.id); /* n is closed below */
        p.sender = sender;
        p.expires_unix = p.created_unix + n->cfg.bundle_ttl_seconds;
    } else {
        p.sender = o->sender ? o->sender : "node-a";
        p.sequence = o->sequence ? o->sequence : 1;
        p.expires_unix = p.created_unix + 30 * 86400;
    }
    if (o->sequence)
        p.sequence = o->sequence;
    if (o->expires)
        p.expires_unix = o->expires;
    if (!sp_valid_id(p.sender) || sp_test_bundle_build(&p, &buf, &len)) {
        fprintf(stderr, "sldd bundle make-test: could not build the payload\n");
        nd_node_close(n);
        return 1;
    }
    nd_node_close(n);
    if (write_output(o->out, buf, len)) {
        free(buf);
        return 1;
    }
    printf("test payload (random contents) from %s, sequence %" PRIu64 ", %zu bytes -> %s\n",
           p.sender, p.sequence, len, o->out);
    free(buf);
    return 0;
}

/* Statement bytes from a payload or statement file; *payload_out points
 * into a parsed copy so the caller can show and check it. */
static int load_statement(const char *path, uint8_t **st, size_t *sl)
{
    uint8_t *buf;
    size_t len;
    sc_error e = {0, ""};
    int kind;
    if (read_input(path, INSPECT_MAX, &buf, &len))
        return -1;
    kind = detect(buf, len);
    if (kind == K_STATEMENT) {
        *st = buf;
        *sl = len;
        return 0;
    }
    if (kind != K_PAYLOAD) {
        fprintf(stderr, "sldd bundle: %s is not a payload or a statement\n", path);
        free(buf);
        return -1;
    }
    if (sc_statement_wrap(buf, len, st, sl, &e)) {
        fprintf(stderr, "sldd bundle: %s\n", e.msg);
        free(buf);
        return -1;
    }
    free(buf);
    return 0;
}

/* Parse and validate the payload of a statement, which must come from
 * node `self`; with summary, print what an approval of it covers.  Prints
 * the reason and returns -1 otherwise. */
static int check_own_payload(const uint8_t *st, size_t sl, const nd_node_config *self, int summary)
{
    nd_signed_payload p;
    sc_error e = {0, ""};
    if (nd_cli_statement_check(st, sl, self->id, self->parse_budget_bytes, summary ? stdout : NULL,
                               NULL, &p, &e)) {
        fprintf(stderr, "sldd bundle: %s\n", e.msg);
        return -1;
    }
    return 0;
}

static int do_sign(const bopts *o)
{
    nd_node *n = NULL;
    sc_error e = {0, ""};
    uint8_t *st = NULL, *out = NULL;
    size_t sl, ol;
    int rc = 1;
    if (!o->in || !o->out) {
        bundle_usage(stderr);
        return 2;
    }
    if (nd_node_open(o->dir, ND_NODE_KEYS, &n, &e)) {
        fprintf(stderr, "sldd bundle sign: %s\n", e.msg);
        return 1;
    }
    if (load_statement(o->in, &st, &sl) == 0 && check_own_payload(st, sl, &n->cfg, 0) == 0) {
        if (sc_statement_sign_node(st, sl, n->cfg.id, n->keys, &out, &ol, &e))
            fprintf(stderr, "sldd bundle sign: %s\n", e.msg);
        else if (write_output(o->out, out, ol) == 0) {
            printf("signed by node %s -> %s (%zu bytes)\n", n->cfg.id, o->out, ol);
            rc = 0;
        }
    }
    free(st);
    free(out);
    nd_node_close(n);
    return rc;
}

/* Ask on the terminal; 1 for yes. */
static int confirm_tty(const char *question)
{
    char ans[16] = "";
    ssize_t r;
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (write(fd, question, strlen(question)) < 0) {
        close(fd);
        return -1;
    }
    r = read(fd, ans, sizeof ans - 1);
    close(fd);
    return r > 0 && (ans[0] == 'y' || ans[0] == 'Y');
}

static int do_approve(const bopts *o)
{
    nd_node *n = NULL;
    sc_error e = {0, ""};
    sc_admin_key *k = NULL;
    uint8_t *st = NULL, *out = NULL;
    char *pass = NULL, prompt[160];
    size_t sl, ol, plen = 0;
    int rc = 1, decision = o->reject ? SLDD__V1__DECISION__DECISION_REJECT
                                     : SLDD__V1__DECISION__DECISION_APPROVE;
    if (!o->in || !o->out || !o->admin) {
        bundle_usage(stderr);
        return 2;
    }
    if (nd_node_open(o->dir, 0, &n, &e)) {
        fprintf(stderr, "sldd bundle approve: %s\n", e.msg);
        return 1;
    }
    if (load_statement(o->in, &st, &sl) || check_own_payload(st, sl, &n->cfg, 1))
        goto out;
    if (!o->yes) {
        char q[200];
        int ans;
        snprintf(q, sizeof q, "%s this payload as admin %s? [y/N] ",
                 o->reject ? "REJECT" : "APPROVE", o->admin);
        ans = confirm_tty(q);
        if (ans < 0) {
            fprintf(stderr, "sldd bundle approve: no terminal to confirm on; pass --yes\n");
            goto out;
        }
        if (!ans) {
            fprintf(stderr, "sldd bundle approve: not confirmed; nothing written\n");
            goto out;
        }
    }
    snprintf(prompt, sizeof prompt, "passphrase for admin %s: ", o->admin);
    if (sc_passphrase_get(o->passfile, prompt, 0, &pass, &plen, &e) ||
        sc_admin_key_load(o->dir, o->admin, pass, plen, &k, &e)) {
        fprintf(stderr, "sldd bundle approve: %s\n", e.msg);
        goto out;
    }
    if (strcmp(k->node, n->cfg.id)) {
        fprintf(stderr, "sldd bundle approve: admin %s belongs to node %s, not %s\n", k->name,
                k->node, n->cfg.id);
        goto out;
    }
    if (sc_statement_approve(st, sl, k, decision, o->now ? o->now : (int64_t)time(NULL), &out, &ol,
                             &e)) {
        fprintf(stderr, "sldd bundle approve: %s\n", e.msg);
        goto out;
    }
    if (write_output(o->out, out, ol) == 0) {
        printf("%s by admin %s -> %s\n", o->reject ? "rejected" : "approved", k->name, o->out);
        rc = 0;
    }
out:
    sc_secret_free(pass, plen + 1);
    sc_admin_key_destroy(k);
    free(st);
    free(out);
    nd_node_close(n);
    return rc;
}

static int do_seal(const bopts *o)
{
    nd_node *n = NULL;
    sc_error e = {0, ""};
    uint8_t *st = NULL, *out = NULL;
    size_t sl, ol;
    int rc = 1;
    if (!o->in || !o->out || !o->to) {
        bundle_usage(stderr);
        return 2;
    }
    if (nd_node_open(o->dir, ND_NODE_KEYS, &n, &e)) {
        fprintf(stderr, "sldd bundle seal: %s\n", e.msg);
        return 1;
    }
    if (read_input(o->in, n->cfg.max_bundle_bytes, &st, &sl))
        goto out;
    if (sc_seal_statement(st, sl, n->cfg.id, n->keys, n->trust, o->to, n->cfg.min_admin_approvals,
                          o->now ? o->now : (int64_t)time(NULL), &out, &ol, &e)) {
        fprintf(stderr, "sldd bundle seal: %s\n", e.msg);
        goto out;
    }
    if (ol > n->cfg.max_bundle_bytes) {
        fprintf(stderr, "sldd bundle seal: envelope of %zu bytes exceeds max-bundle-bytes %zu\n",
                ol, n->cfg.max_bundle_bytes);
        goto out;
    }
    if (write_output(o->out, out, ol) == 0) {
        printf("sealed for %s -> %s (%zu bytes)\n", o->to, o->out, ol);
        rc = 0;
    }
out:
    free(st);
    free(out);
    nd_node_close(n);
    return rc;
}

static void print_accepted(const sc_received *rec)
{
    char hex[65];
    printf("accepted bundle from %s\n", rec->sender);
    sc_hex_encode(hex, rec->bundle_id, 16);
    printf("%-22s %s\n%-22s %" PRIu64 "\n", "bundle id", hex, "sequence", rec->sequence);
    sc_hex_encode(hex, rec->sigs.payload_sha256, 32);
    printf("%-22s %s\n%-22s %s", "payload sha256", hex, "approved by",
           rec->sigs.n_admins ? "" : "(none)");
    for (size_t i = 0; i < rec->sigs.n_admins; i++)
        printf("%s%s", i ? ", " : "", rec->sigs.admins[i]);
    printf("\n");
}

/* A refused `bundle open` is in the audit log like a refusal at the
 * daemon, with the OS user who ran it as the actor. */
static void open_refusal_audit(const bopts *o, const sc_error *why)
{
    char detail[700];
    sc_error e = {0, ""};
    snprintf(detail, sizeof detail, "bundle open %.200s: %s: %.400s", o->in,
             sc_status_name(why->code), why->msg);
    if (nd_audit_record_user(o->dir, "refusal", "", "refused", detail, &e))
        fprintf(stderr, "sldd bundle open: audit log: %s\n", e.msg);
}

static int do_open(const bopts *o)
{
    nd_node *n = NULL;
    sc_error e = {0, ""};
    sc_received *rec = NULL;
    sc_receiver r;
    uint8_t *buf = NULL;
    size_t len;
    int rc = 1;
    if (!o->in) {
        bundle_usage(stderr);
        return 2;
    }
    if (nd_node_open(o->dir, ND_NODE_KEYS | ND_NODE_REPLAY, &n, &e)) {
        fprintf(stderr, "sldd bundle open: %s\n", e.msg);
        return 1;
    }
    /* the size cap applies before the file is even read */
    if (sc_file_read(o->in, n->cfg.max_bundle_bytes, 0, &buf, &len, &e)) {
        if (sc_status_is_refusal(e.code))
            printf("refused (%s): %s\n", sc_status_name(e.code), e.msg);
        else
            fprintf(stderr, "sldd bundle open: %s\n", e.msg);
        goto out;
    }
    memset(&r, 0, sizeof r);
    r.self_id = n->cfg.id;
    r.keys = n->keys;
    r.trust = n->trust;
    r.replay = n->replay;
    r.cfg.max_bytes = n->cfg.max_bundle_bytes;
    r.cfg.parse_budget = n->cfg.parse_budget_bytes;
    r.cfg.min_admins = n->cfg.min_admin_approvals;
    r.cfg.clock_skew = n->cfg.clock_skew_seconds;
    r.now = o->now ? o->now : (int64_t)time(NULL);
    if (sc_receive(&r, buf, len, &rec, &e)) {
        printf("refused (%s): %s\n", sc_status_name(e.code), e.msg);
        open_refusal_audit(o, &e);
        goto out;
    }
    if ((o->out && write_output(o->out, rec->statement, rec->statement_len)) ||
        (o->payload_out && write_output(o->payload_out, rec->payload, rec->payload_len)))
        goto out;
    if (!o->no_record && sc_receive_commit(&r, rec, &e)) {
        fprintf(stderr, "sldd bundle open: recording the bundle id: %s\n", e.msg);
        goto out;
    }
    print_accepted(rec);
    rc = 0;
out:
    sc_received_destroy(rec);
    free(buf);
    nd_node_close(n);
    return rc;
}

static int do_verify(const bopts *o)
{
    nd_node *n = NULL;
    sc_error e = {0, ""};
    sc_received *rec = NULL;
    uint8_t *buf = NULL;
    size_t len;
    int rc = 1;
    if (!o->in) {
        bundle_usage(stderr);
        return 2;
    }
    if (nd_node_open(o->dir, 0, &n, &e)) {
        fprintf(stderr, "sldd bundle verify: %s\n", e.msg);
        return 1;
    }
    if (read_input(o->in, n->cfg.max_bundle_bytes, &buf, &len))
        goto out;
    if (sc_verify_statement(buf, len, n->trust,
                            o->min_admins >= 0 ? (size_t)o->min_admins : n->cfg.min_admin_approvals,
                            n->cfg.parse_budget_bytes, &rec, &e)) {
        printf("refused (%s): %s\n", sc_status_name(e.code), e.msg);
        goto out;
    }
    printf("statement verified: ");
    print_accepted(rec);
    rc = 0;
out:
    sc_received_destroy(rec);
    free(buf);
    nd_node_close(n);
    return rc;
}

int cmd_bundle(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, 0, 'd'},      {"in", required_argument, 0, 'i'},
        {"out", required_argument, 0, 'o'},      {"to", required_argument, 0, 't'},
        {"admin", required_argument, 0, 'a'},    {"passphrase-file", required_argument, 0, 'p'},
        {"type", required_argument, 0, 'T'},     {"encoding", required_argument, 0, 'e'},
        {"sender", required_argument, 0, 's'},   {"payload-out", required_argument, 0, 'P'},
        {"reject", no_argument, 0, 'R'},         {"yes", no_argument, 0, 'y'},
        {"small", no_argument, 0, 'S'},          {"no-record", no_argument, 0, 'N'},
        {"now", required_argument, 0, 'n'},      {"created", required_argument, 0, 'c'},
        {"expires", required_argument, 0, 'x'},  {"seed", required_argument, 0, 'k'},
        {"sequence", required_argument, 0, 'q'}, {"min-admins", required_argument, 0, 'm'},
        {"depth", required_argument, 0, 'D'},    {"width", required_argument, 0, 'W'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
    bopts o;
    const char *sub;
    int c;
    int64_t v;
    memset(&o, 0, sizeof o);
    o.min_admins = -1;
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        bundle_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    static const char *const subs[] = {"list",   "show",      "approve", "reject",
                                       "resend", "make-test", "inspect", "sign",
                                       "seal",   "open",      "verify",  NULL};
    if (nd_cli_check_word("sldd bundle", "subcommand", argv[1], subs))
        return 2;
    /* list, show, approve ID, reject ID, resend ID: through the running node */
    if (nd_cli_bundle_wants(argc, argv))
        return nd_cli_bundle(argc, argv);
    sub = argv[1];
    optind = 2;
    while ((c = getopt_long(argc, argv, "d:i:o:t:a:p:T:e:s:P:RySNn:c:x:k:q:m:D:W:h", opts, NULL)) !=
           -1) {
        switch (c) {
        case 'd': o.dir = optarg; break;
        case 'i': o.in = optarg; break;
        case 'o': o.out = optarg; break;
        case 't': o.to = optarg; break;
        case 'a': o.admin = optarg; break;
        case 'p': o.passfile = optarg; break;
        case 'T': o.type = optarg; break;
        case 'e': o.encoding = optarg; break;
        case 's': o.sender = optarg; break;
        case 'P': o.payload_out = optarg; break;
        case 'R': o.reject = 1; break;
        case 'y': o.yes = 1; break;
        case 'S': o.small = 1; break;
        case 'N': o.no_record = 1; break;
        case 'h': bundle_usage(stdout); return 0;
        case 'D':
        case 'W':
            if (parse_i64(optarg, &v) || v < 1 || v > 100000) {
                fprintf(stderr, "sldd bundle: --%s wants 1..100000, not '%s'\n",
                        c == 'D' ? "depth" : "width", optarg);
                return 2;
            }
            *(c == 'D' ? &o.depth : &o.width) = v;
            break;
        case 'n':
        case 'c':
        case 'x':
        case 'k':
        case 'q':
        case 'm':
            if (parse_i64(optarg, &v) || v < 0) {
                fprintf(stderr, "sldd bundle: bad number '%s'\n", optarg);
                return 2;
            }
            if (c == 'n')
                o.now = v;
            else if (c == 'c')
                o.created = v;
            else if (c == 'x')
                o.expires = v;
            else if (c == 'k')
                o.seed = (uint64_t)v;
            else if (c == 'q')
                o.sequence = (uint64_t)v;
            else if (v < 1 || v > 32) {
                fprintf(stderr, "sldd bundle verify: --min-admins is 1..32: an unapproved "
                                "statement never verifies\n");
                return 2;
            } else
                o.min_admins = (long)v;
            break;
        default: bundle_usage(stderr); return 2;
        }
    }
    if (optind < argc && !o.in && !strcmp(sub, "inspect"))
        o.in = argv[optind++];
    if (optind != argc) {
        bundle_usage(stderr);
        return 2;
    }
    if (strcmp(sub, "make-test") && strcmp(sub, "inspect"))
        o.dir = nd_cli_node_dir(o.dir);
    if (!strcmp(sub, "make-test"))
        return do_make_test(&o);
    if (!strcmp(sub, "inspect"))
        return do_inspect(&o);
    if (!strcmp(sub, "sign"))
        return do_sign(&o);
    if (!strcmp(sub, "approve"))
        return do_approve(&o);
    if (!strcmp(sub, "seal"))
        return do_seal(&o);
    if (!strcmp(sub, "open"))
        return do_open(&o);
    if (!strcmp(sub, "verify"))
        return do_verify(&o);
    fprintf(stderr, "sldd bundle: unknown subcommand '%s'\n", sub);
    bundle_usage(stderr);
    return 2;
}
