/*
 * nd_card.c - this node's own contact card (see nd_card.h).
 */
#include "nd_card.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nd_tlsinit.h"
#include "sc_util.h"

int nd_card_make(const char *dir, sc_trust_store *trust, const char *self_id, const char *url,
                 int64_t not_before, int64_t days, sc_card *c, sc_error *e)
{
    unsigned char pin[SC_PIN_LEN];
    uint8_t *der = NULL;
    size_t len = 0;
    int rc;
    memset(c, 0, sizeof *c);
    if ((rc = trust->peer_get(trust, self_id, &c->peer, e)) ||
        (rc = nd_tls_own_pin(dir, c->pins[0], e)))
        return rc;
    c->n_pins = 1;
    /* a staged next TLS key is published before the node switches to it */
    rc = nd_tls_next_pin(dir, pin, e);
    if (rc == 0)
        memcpy(c->pins[c->n_pins++], pin, SC_PIN_LEN);
    else if (rc != SC_ENOTFOUND)
        return rc;
    if ((rc = nd_tls_issuer_der(dir, &der, &len, e)))
        return rc;
    if (len > sizeof c->ca_der) {
        free(der);
        return sc_error_set(e, SC_EINVAL, "the CA certificate is larger than %zu bytes",
                            sizeof c->ca_der);
    }
    memcpy(c->ca_der, der, len);
    c->ca_len = len;
    free(der);
    if (strlen(url) >= sizeof c->url)
        return sc_error_set(e, SC_EINVAL, "URL too long");
    snprintf(c->url, sizeof c->url, "%s", url);
    c->not_before = not_before;
    c->not_after = not_before + days * 86400;
    return 0;
}

int nd_card_text(const char *dir, const sc_node_keys *keys, const sc_card *c, char **out,
                 sc_error *e)
{
    uint8_t pk[32], *prev_sk = NULL;
    int64_t until;
    int rc;
    if (c->peer.prev_until > 0 && (rc = sc_node_sign_prev_load(dir, pk, &prev_sk, &until, e)))
        return rc;
    rc = sc_card_format(c, keys->sign_sk, prev_sk, out, e);
    if (prev_sk)
        sodium_free(prev_sk);
    return rc;
}

void nd_card_roster_digest(uint8_t out[32], const sc_peer *p)
{
    crypto_hash_sha256_state h;
    uint8_t until[8];
    for (int i = 0; i < 8; i++)
        until[i] = (uint8_t)((uint64_t)p->prev_until >> (8 * i));
    crypto_hash_sha256_init(&h);
    crypto_hash_sha256_update(&h, (const uint8_t *)"sldd-roster v1", 15);
    crypto_hash_sha256_update(&h, p->sign_pk, 32);
    crypto_hash_sha256_update(&h, p->enc_pk, 32);
    crypto_hash_sha256_update(&h, p->prev_sign_pk, 32);
    crypto_hash_sha256_update(&h, until, 8);
    for (size_t i = 0; i < p->n_admins; i++) {
        /* names are [A-Za-z0-9._-]: NUL-terminated, they cannot run together */
        crypto_hash_sha256_update(&h, (const uint8_t *)p->admins[i].name,
                                  strlen(p->admins[i].name) + 1);
        crypto_hash_sha256_update(&h, p->admins[i].pk, 32);
    }
    crypto_hash_sha256_final(&h, out);
}
