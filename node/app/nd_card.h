/*
 * nd_card.h - this node's own contact card (crypto/sc_card.h), made from
 * the node directory: its keys and admins from the trust store, its TLS
 * pin(s) and CA certificate, a URL and a validity window.  `sldd keys
 * export-card` writes it to a file; the daemon pushes it to its peers
 * (POST /v1/card, docs/keys.md "Roster push").
 */
#ifndef ND_CARD_H
#define ND_CARD_H

#include <stdint.h>

#include "sc_card.h"
#include "sc_keys.h"
#include "sc_store.h"

/* The card of the node self_id in dir, valid from not_before for days. */
int nd_card_make(const char *dir, sc_trust_store *trust, const char *self_id, const char *url,
                 int64_t not_before, int64_t days, sc_card *c, sc_error *e) SC_WUR;

/* Its signed text (malloc'd): signed with keys' signing key, and with the
 * previous key too during a rotation. */
int nd_card_text(const char *dir, const sc_node_keys *keys, const sc_card *c, char **out,
                 sc_error *e) SC_WUR;

/* SHA-256 of what a peer learns from a card about this node's signers:
 * the signing key (and previous key), the encryption key and the admin
 * roster - not the validity window, URL or pins, so a fresh card of an
 * unchanged roster has the same digest. */
void nd_card_roster_digest(uint8_t out[32], const sc_peer *p);

#endif
