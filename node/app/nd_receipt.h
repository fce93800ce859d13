/*
 * nd_receipt.h - the signed receipt a receiving node returns for a bundle.
 *
 * Text, "key: value" lines, then a signature line:
 *
 *   sldd-receipt: v1
 *   receiver: hospital-b
 *   sender: hospital-a
 *   bundle-id: <32 hex>
 *   sequence: 1
 *   payload-sha256: <64 hex>
 *   envelope-sha256: <64 hex>
 *   received-unix: 1700000000
 *   signature: <base64 Ed25519>
 *
 * The signature is the receiver's node key (Ed25519) over
 * PAE(ND_TYPE_RECEIPT, every byte before the signature line), the same
 * pre-authentication encoding as statements (sc_sign.h).
 */
#ifndef ND_RECEIPT_H
#define ND_RECEIPT_H

#include <stddef.h>
#include <stdint.h>

#include "sc_error.h"
#include "sc_keys.h"

#define ND_TYPE_RECEIPT "application/vnd.sldd.receipt; v=1"
#define ND_RECEIPT_MAX  2048

typedef struct nd_receipt {
    char receiver[65], sender[65];
    uint8_t bundle_id[16];
    uint64_t sequence;
    uint8_t payload_sha256[32], envelope_sha256[32];
    int64_t received_unix;
} nd_receipt;

/* Sign r with the receiver's keys into a malloc'ed text. */
int nd_receipt_make(const nd_receipt *r, const sc_node_keys *keys, char **out, size_t *len,
                    sc_error *e) SC_WUR;
/* Parse text and check its signature against the receiver's signing key. */
int nd_receipt_verify(const char *text, size_t len, const uint8_t receiver_sign_pk[32],
                      nd_receipt *out, sc_error *e) SC_WUR;

#endif
