/*
 * sc_card.c - contact cards: canonical text, signatures, validity and the
 * rule for replacing a peer's record (see sc_card.h).
 */
#include "sc_card.h"

#include <inttypes.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sc_keys.h"
#include "sc_sign.h"
#include "sc_util.h"
#include "sp_check.h"

/* The lines of a card in their order, each allowed min..max times. */
enum {
    K_MAGIC,
    K_ID,
    K_URL,
    K_NOT_BEFORE,
    K_NOT_AFTER,
    K_SIGN,
    K_SIGN_PREV,
    K_ENC,
    K_ADMIN,
    K_PIN,
    K_CA,
    K_SIG,
    K_PREV_SIG,
    K_COUNT
};
static const struct {
    const char *key;
    int min, max;
} order[K_COUNT] = {
    {"sldd-card", 1, 1},
    {"id", 1, 1},
    {"url", 1, 1},
    {"not-before", 1, 1},
    {"not-after", 1, 1},
    {"sign", 1, 1},
    {"sign-previous", 0, 1},
    {"enc", 1, 1},
    {"admin", 0, SC_MAX_ADMINS_PER_NODE},
    {"tls-pin", 1, SC_CARD_MAX_PINS},
    {"tls-ca", 0, 1},
    {"signature", 1, 1},
    {"previous-signature", 0, 1},
};

/* ------------------------------------------------------------ writing */

static int put(char *buf, size_t cap, size_t *n, sc_error *e, const char *fmt, ...) SC_PRINTF(5, 6);
static int put(char *buf, size_t cap, size_t *n, sc_error *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf + *n, cap - *n, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= cap - *n)
        return sc_error_set(e, SC_EINVAL, "contact card too long");
    *n += (size_t)k;
    return 0;
}

static int put_body(const sc_card *c, char *buf, size_t cap, size_t *n, sc_error *e)
{
    char b[64], fp[64];
    int rc;
    const sc_peer *p = &c->peer;
    if (!sp_valid_id(p->id) || strncmp(c->url, "https://", 8) || strpbrk(c->url, " \n") ||
        c->n_pins < 1 || c->n_pins > SC_CARD_MAX_PINS || c->ca_len > SC_CARD_CA_MAX ||
        c->not_before >= c->not_after || c->not_before < 0)
        return sc_error_set(e, SC_EINVAL, "contact card: bad id, URL, pins or validity");
    sc_b64_encode(b, p->sign_pk, 32);
    sc_fingerprint_text(fp, p->sign_pk);
    if ((rc = put(buf, cap, n, e,
                  "sldd-card: v1\nid: %s\nurl: %s\nnot-before: %" PRId64 "\nnot-after: %" PRId64
                  "\nsign: %s\n# sign fingerprint %s\n",
                  p->id, c->url, c->not_before, c->not_after, b, fp)))
        return rc;
    if (p->prev_until > 0) {
        sc_b64_encode(b, p->prev_sign_pk, 32);
        if ((rc = put(buf, cap, n, e, "sign-previous: %s %" PRId64 "\n", b, p->prev_until)))
            return rc;
    }
    sc_b64_encode(b, p->enc_pk, 32);
    sc_fingerprint_text(fp, p->enc_pk);
    if ((rc = put(buf, cap, n, e, "enc: %s\n# enc fingerprint %s\n", b, fp)))
        return rc;
    for (size_t i = 0; i < p->n_admins; i++) {
        sc_b64_encode(b, p->admins[i].pk, 32);
        if ((rc = put(buf, cap, n, e, "admin: %s %s\n", p->admins[i].name, b)))
            return rc;
    }
    for (size_t i = 0; i < c->n_pins; i++) {
        sc_b64_encode(b, c->pins[i], 32);
        if ((rc = put(buf, cap, n, e, "tls-pin: sha256//%s\n", b)))
            return rc;
    }
    if (c->ca_len) {
        char *ca = malloc(sc_b64_len(c->ca_len));
        if (!ca)
            return sc_error_set(e, SC_ENOMEM, "out of memory");
        sc_b64_encode(ca, c->ca_der, c->ca_len);
        rc = put(buf, cap, n, e, "tls-ca: %s\n", ca);
        free(ca);
    }
    return rc;
}

int sc_card_format(const sc_card *c, const uint8_t sign_sk[64], const uint8_t *prev_sk, char **out,
                   sc_error *e)
{
    size_t cap = 4096 + c->peer.n_admins * 160 + 2 * c->ca_len, n = 0;
    char *buf = malloc(cap), b[128];
    uint8_t sig[64], pk[32];
    int rc;
    *out = NULL;
    if (!buf)
        return sc_error_set(e, SC_ENOMEM, "out of memory");
    if ((c->peer.prev_until > 0) != (prev_sk != NULL)) {
        free(buf);
        return sc_error_set(e, SC_EINVAL, "contact card: previous key and its secret go together");
    }
    /* sign only with the keys the card names */
    if (crypto_sign_ed25519_sk_to_pk(pk, sign_sk) || memcmp(pk, c->peer.sign_pk, 32) ||
        (prev_sk &&
         (crypto_sign_ed25519_sk_to_pk(pk, prev_sk) || memcmp(pk, c->peer.prev_sign_pk, 32)))) {
        free(buf);
        return sc_error_set(e, SC_EINVAL, "contact card: a secret key does not match the card");
    }
    if ((rc = put_body(c, buf, cap, &n, e)) ||
        (rc = sc_pae_sign(sig, SC_TYPE_CARD, (const uint8_t *)buf, n, sign_sk, e)))
        goto fail;
    sc_b64_encode(b, sig, 64);
    size_t body = n;
    if ((rc = put(buf, cap, &n, e, "signature: %s\n", b)))
        goto fail;
    if (prev_sk) {
        if ((rc = sc_pae_sign(sig, SC_TYPE_CARD, (const uint8_t *)buf, body, prev_sk, e)))
            goto fail;
        sc_b64_encode(b, sig, 64);
        if ((rc = put(buf, cap, &n, e, "previous-signature: %s\n", b)))
            goto fail;
    }
    *out = buf;
    return 0;
fail:
    free(buf);
    return rc;
}

/* ------------------------------------------------------------ reading */

/* Base64 of exactly want bytes (want 0: 1..max bytes, length in *got), in
 * the one canonical spelling. */
static int b64_canon(uint8_t *out, size_t want, size_t max, size_t *got, const char *in,
                     const char *what, sc_error *e)
{
    size_t n = 0, inlen = strlen(in);
    if (sodium_base642bin(out, want ? want : max, in, inlen, NULL, &n, NULL,
                          sodium_base64_VARIANT_ORIGINAL) ||
        (want && n != want) || n == 0)
        return sc_error_set(e, SC_EFORMAT, "contact card: %s is not valid base64 of the right size",
                            what);
    char *re = malloc(sc_b64_len(n));
    if (!re)
        return sc_error_set(e, SC_ENOMEM, "out of memory");
    sc_b64_encode(re, out, n);
    int same = strcmp(re, in) == 0;
    free(re);
    if (!same)
        return sc_error_set(e, SC_EFORMAT, "contact card: %s is not in canonical base64", what);
    if (got)
        *got = n;
    return 0;
}

/* A decimal time without sign or leading zeros. */
static int time_canon(const char *v, int64_t *out, const char *what, sc_error *e)
{
    long long t;
    char re[32];
    if (sb_parse_i64(v, 0, INT64_MAX, &t))
        return sc_error_set(e, SC_EFORMAT, "contact card: %s is not a time", what);
    snprintf(re, sizeof re, "%lld", t);
    if (strcmp(re, v))
        return sc_error_set(e, SC_EFORMAT, "contact card: %s is not in canonical form", what);
    *out = (int64_t)t;
    return 0;
}

static int take(sc_card *c, int k, char *v, uint8_t sig[2][64], sc_error *e)
{
    sc_peer *p = &c->peer;
    char *sp;
    switch (k) {
    case K_MAGIC:
        return strcmp(v, "v1")
                   ? sc_error_set(e, SC_EFORMAT, "contact card version '%.20s' unknown", v)
                   : 0;
    case K_ID:
        if (!sp_valid_id(v))
            return sc_error_set(e, SC_EFORMAT, "contact card: '%.80s' is not a node id", v);
        memcpy(p->id, v, strlen(v) + 1);
        return 0;
    case K_URL:
        if (strncmp(v, "https://", 8) || strlen(v) >= sizeof c->url || strchr(v, ' ') || !v[8])
            return sc_error_set(e, SC_EFORMAT, "contact card: URL must be https://HOST:PORT");
        memcpy(c->url, v, strlen(v) + 1);
        return 0;
    case K_NOT_BEFORE: return time_canon(v, &c->not_before, "not-before", e);
    case K_NOT_AFTER: return time_canon(v, &c->not_after, "not-after", e);
    case K_SIGN: return b64_canon(p->sign_pk, 32, 32, NULL, v, "sign", e);
    case K_ENC: return b64_canon(p->enc_pk, 32, 32, NULL, v, "enc", e);
    case K_SIGN_PREV:
        if (!(sp = strchr(v, ' ')))
            return sc_error_set(e, SC_EFORMAT, "contact card: sign-previous wants 'KEY UNTIL'");
        *sp++ = 0;
        if (b64_canon(p->prev_sign_pk, 32, 32, NULL, v, "sign-previous", e))
            return e ? e->code : SC_EFORMAT;
        if (time_canon(sp, &p->prev_until, "sign-previous until", e))
            return SC_EFORMAT;
        return p->prev_until > 0 ? 0 : sc_error_set(e, SC_EFORMAT, "contact card: sign-previous 0");
    case K_ADMIN: {
        sc_admin_pub *a = &p->admins[p->n_admins];
        if (!(sp = strchr(v, ' ')))
            return sc_error_set(e, SC_EFORMAT, "contact card: admin wants 'NAME KEY'");
        *sp++ = 0;
        if (!sp_valid_id(v))
            return sc_error_set(e, SC_EFORMAT, "contact card: admin name '%.80s' is not valid", v);
        for (size_t i = 0; i < p->n_admins; i++)
            if (!strcmp(p->admins[i].name, v))
                return sc_error_set(e, SC_EFORMAT, "contact card: admin '%s' twice", v);
        memcpy(a->name, v, strlen(v) + 1);
        if (b64_canon(a->pk, 32, 32, NULL, sp, "admin key", e))
            return SC_EFORMAT;
        p->n_admins++;
        return 0;
    }
    case K_PIN:
        if (strncmp(v, "sha256//", 8))
            return sc_error_set(e, SC_EFORMAT, "contact card: tls-pin wants sha256//BASE64");
        return b64_canon(c->pins[c->n_pins++], 32, 32, NULL, v + 8, "tls-pin", e);
    case K_CA: return b64_canon(c->ca_der, 0, SC_CARD_CA_MAX, &c->ca_len, v, "tls-ca", e);
    case K_SIG: return b64_canon(sig[0], 64, 64, NULL, v, "signature", e);
    default: return b64_canon(sig[1], 64, 64, NULL, v, "previous-signature", e);
    }
}

int sc_card_parse(const char *text, size_t len, sc_card *out, sc_error *e)
{
    int count[K_COUNT] = {0}, pos = 0, rc = 0;
    uint8_t sig[2][64];
    size_t body = 0;
    char line[SC_CARD_CA_MAX * 2];
    memset(out, 0, sizeof *out);
    if (len > SC_CARD_MAX || memchr(text, 0, len))
        return sc_error_set(e, SC_EFORMAT, "contact card: larger than %d bytes or binary",
                            SC_CARD_MAX);
    for (size_t at = 0; at < len && !rc;) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t ll = nl ? (size_t)(nl - (text + at)) : 0;
        if (!nl || ll >= sizeof line)
            return sc_error_set(e, SC_EFORMAT, "contact card: line %s",
                                nl ? "too long" : "without \\n");
        memcpy(line, text + at, ll);
        line[ll] = 0;
        size_t start = at;
        at += ll + 1;
        if (line[0] == '#') {
            if (pos >= K_SIG)
                return sc_error_set(e, SC_EFORMAT, "contact card: text after the signature");
            continue;
        }
        char *colon = strstr(line, ": ");
        if (!colon || colon[2] == ' ' || !colon[2])
            return sc_error_set(e, SC_EFORMAT, "contact card: malformed line '%.40s'", line);
        *colon = 0;
        int k = pos;
        while (k < K_COUNT && strcmp(order[k].key, line))
            k++;
        if (k == K_COUNT)
            return sc_error_set(e, SC_EFORMAT, "contact card: '%.40s' unknown or out of order",
                                line);
        for (int j = pos; j < k; j++)
            if (count[j] < order[j].min)
                return sc_error_set(e, SC_EFORMAT, "contact card: '%s' missing", order[j].key);
        if (count[k] == order[k].max)
            return sc_error_set(e, SC_EFORMAT, "contact card: too many '%s' lines", line);
        if (k == K_SIG)
            body = start;
        count[k]++;
        pos = k;
        rc = take(out, k, colon + 2, sig, e);
    }
    if (rc)
        return rc;
    for (int j = pos; j < K_COUNT; j++)
        if (count[j] < order[j].min)
            return sc_error_set(e, SC_EFORMAT, "contact card: '%s' missing", order[j].key);
    if ((out->peer.prev_until > 0) != (count[K_PREV_SIG] == 1))
        return sc_error_set(e, SC_EFORMAT,
                            "contact card: sign-previous and previous-signature go together");
    if (out->not_before >= out->not_after)
        return sc_error_set(e, SC_EFORMAT, "contact card: not-before is not before not-after");
    out->peer.card_time = out->not_before;
    if (sc_pae_verify(sig[0], SC_TYPE_CARD, (const uint8_t *)text, body, out->peer.sign_pk))
        return sc_error_set(e, SC_ECRYPTO,
                            "contact card of '%s': the signature does not verify with its signing "
                            "key (changed after signing, or signed by another key)",
                            out->peer.id);
    if (count[K_PREV_SIG] &&
        sc_pae_verify(sig[1], SC_TYPE_CARD, (const uint8_t *)text, body, out->peer.prev_sign_pk))
        return sc_error_set(e, SC_ECRYPTO,
                            "contact card of '%s': the previous key's signature does not verify",
                            out->peer.id);
    return 0;
}

int sc_card_check_time(const sc_card *c, int64_t now, int64_t skew, sc_error *e)
{
    if (now + skew < c->not_before)
        return sc_error_set(e, SC_EREFUSE_FUTURE,
                            "contact card of '%s' is valid only from %" PRId64 " (now %" PRId64 ")",
                            c->peer.id, c->not_before, now);
    if (now >= c->not_after)
        return sc_error_set(e, SC_EREFUSE_EXPIRED,
                            "contact card of '%s' expired at %" PRId64 " (now %" PRId64
                            "): ask the peer for a new one",
                            c->peer.id, c->not_after, now);
    return 0;
}

int sc_card_check_update(const sc_card *c, const sc_peer *on_record, int64_t now, sc_error *e)
{
    /* a card older than the one we hold would roll back keys, admins or
     * pins the peer has since changed */
    if (c->not_before < on_record->card_time)
        return sc_error_set(e, SC_EPERM,
                            "contact card of '%s' was made at %" PRId64
                            ", before the card on record (%" PRId64 "): ask the peer for its "
                            "current card",
                            c->peer.id, c->not_before, on_record->card_time);
    if (!memcmp(c->peer.sign_pk, on_record->sign_pk, 32))
        return 0;
    if (c->peer.prev_until > 0 && !memcmp(c->peer.prev_sign_pk, on_record->sign_pk, 32)) {
        if (now < c->peer.prev_until)
            return 0;
        return sc_error_set(e, SC_EPERM,
                            "contact card of '%s' names a new signing key, but the overlap of the "
                            "key on record ended at %" PRId64 ": compare fingerprints with the "
                            "peer, then 'sldd peer remove' and add the card again",
                            c->peer.id, c->peer.prev_until);
    }
    return sc_error_set(e, SC_EPERM,
                        "contact card of '%s' is signed by another key than the one on record and "
                        "the key on record does not vouch for it: compare fingerprints with the "
                        "peer, then 'sldd peer remove' and add the card again",
                        c->peer.id);
}
