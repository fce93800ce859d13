/*
 * sc_card.h - a node's contact card: one signed text file with everything a
 * peer needs to add it (node id, signing and encryption keys, admin roster,
 * TLS pins, the CA certificate that issued its TLS certificate, its URL) and
 * the window in which the card may be used.  `sldd keys export-card` writes
 * one, `sldd peer add --card` reads one.
 *
 * The card is signed by the node's signing key: Ed25519 over
 * PAE(SC_TYPE_CARD, every byte before the `signature:` line) (sc_sign.h).
 * During a signing-key rotation (sc_node_sign_rotate) the card also names the
 * previous key and the end of its overlap, and carries a second signature by
 * that previous key over the same bytes: a peer holding the old key takes the
 * new one from the card on the old key's word.
 *
 * Only the canonical form is accepted: the lines in the order of
 * docs/keys.md, one space after each colon, `\n` line ends, `#` comment
 * lines (inside the signed bytes) anywhere before `signature:`, nothing after
 * the signatures.
 */
#ifndef SC_CARD_H
#define SC_CARD_H

#include <stddef.h>
#include <stdint.h>

#include "sc_error.h"
#include "sc_store.h"

#define SC_TYPE_CARD     "application/vnd.sldd.card; v=1"
#define SC_CARD_MAX      65536 /* bytes of a card file */
#define SC_CARD_MAX_PINS 4
#define SC_CARD_CA_MAX   8192 /* DER bytes of the CA certificate */
#define SC_CARD_URL_MAX  512

typedef struct sc_card {
    sc_peer peer; /* id, keys, admins; prev_sign_pk/prev_until during a rotation */
    char url[SC_CARD_URL_MAX];
    size_t n_pins;
    uint8_t pins[SC_CARD_MAX_PINS][32]; /* SHA-256 of the TLS keys' SPKI */
    size_t ca_len;                      /* 0: none */
    uint8_t ca_der[SC_CARD_CA_MAX];
    int64_t not_before, not_after; /* unix seconds */
} sc_card;

/* The signed text of c (malloc'd, NUL-terminated).  sign_sk signs; prev_sk
 * (the previous key's secret half) must be given exactly when
 * c->peer.prev_until is set. */
int sc_card_format(const sc_card *c, const uint8_t sign_sk[64], const uint8_t *prev_sk, char **out,
                   sc_error *e) SC_WUR;

/* Parse a card and check its signatures against the keys it names
 * (SC_EFORMAT for a malformed card, SC_ECRYPTO for a signature that does not
 * verify).  Validity and trust are the caller's next steps. */
int sc_card_parse(const char *text, size_t len, sc_card *out, sc_error *e) SC_WUR;

/* SC_EREFUSE_FUTURE before not_before (beyond skew seconds), SC_EREFUSE_EXPIRED
 * after not_after. */
int sc_card_check_time(const sc_card *c, int64_t now, int64_t skew, sc_error *e) SC_WUR;

/* Whether a valid card may replace the record we hold for its node: not
 * older than the card the record came from (its not-before), and the same
 * signing key or a rotation vouched for by the key on record (the card's
 * previous key, inside its overlap).  SC_EPERM otherwise.  sc_card_parse
 * sets c->peer.card_time to the card's not-before, so the record it makes
 * remembers it. */
int sc_card_check_update(const sc_card *c, const sc_peer *on_record, int64_t now,
                         sc_error *e) SC_WUR;

#endif
