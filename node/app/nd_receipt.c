/*
 * nd_receipt.c - signed delivery receipts (see nd_receipt.h).
 */
#include "nd_receipt.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nd_buf.h"
#include "sc_sign.h"
#include "sc_util.h"
#include "sp_check.h"
#include "sb_parse.h"

int nd_receipt_make(const nd_receipt *r, const sc_node_keys *keys, char **out, size_t *len,
                    sc_error *e)
{
    char bid[33], ph[65], eh[65], sig64[100];
    uint8_t sig[64];
    nd_buf b;
    int rc;
    *out = NULL;
    nd_hex(bid, r->bundle_id, 16);
    nd_hex(ph, r->payload_sha256, 32);
    nd_hex(eh, r->envelope_sha256, 32);
    nd_buf_init(&b, ND_RECEIPT_MAX);
    nd_buf_printf(&b,
                  "sldd-receipt: v1\nreceiver: %s\nsender: %s\nbundle-id: %s\nsequence: %" PRIu64
                  "\npayload-sha256: %s\nenvelope-sha256: %s\nreceived-unix: %" PRId64 "\n",
                  r->receiver, r->sender, bid, r->sequence, ph, eh, r->received_unix);
    if (b.failed) {
        nd_buf_free(&b);
        return sc_error_set(e, SC_ENOMEM, "receipt too large");
    }
    if ((rc =
             sc_pae_sign(sig, ND_TYPE_RECEIPT, (const uint8_t *)b.data, b.len, keys->sign_sk, e))) {
        nd_buf_free(&b);
        return rc;
    }
    sc_b64_encode(sig64, sig, 64);
    nd_buf_printf(&b, "signature: %s\n", sig64);
    *out = nd_buf_take(&b, len);
    return *out ? 0 : sc_error_set(e, SC_ENOMEM, "out of memory");
}

static int parse_u64(const char *v, uint64_t *out)
{
    return sb_parse_u64(v, UINT64_MAX, out) ? -1 : 0;
}

int nd_receipt_verify(const char *text, size_t len, const uint8_t pk[32], nd_receipt *out,
                      sc_error *e)
{
    const char *sigline = NULL;
    uint8_t sig[64];
    memset(out, 0, sizeof *out);
    if (len > ND_RECEIPT_MAX || memchr(text, 0, len))
        return sc_error_set(e, SC_EFORMAT, "receipt: too large or not text");
    for (const char *p = text; p < text + len;) {
        if ((size_t)(text + len - p) > 11 && !strncmp(p, "signature: ", 11)) {
            sigline = p;
            break;
        }
        const char *nl = memchr(p, '\n', (size_t)(text + len - p));
        if (!nl)
            break;
        p = nl + 1;
    }
    if (!sigline)
        return sc_error_set(e, SC_EFORMAT, "receipt: no signature line");
    const char *sv = sigline + 11, *send = memchr(sv, '\n', (size_t)(text + len - sv));
    size_t slen = send ? (size_t)(send - sv) : (size_t)(text + len - sv);
    if (sc_b64_decode_exact(sig, 64, sv, slen, e))
        return sc_error_set(e, SC_EFORMAT, "receipt: bad signature encoding");
    size_t signed_len = (size_t)(sigline - text);
    if (sc_pae_verify(sig, ND_TYPE_RECEIPT, (const uint8_t *)text, signed_len, pk))
        return sc_error_set(e, SC_EREFUSE_NODE_SIG, "receipt: signature does not verify");
    char *copy = malloc(signed_len + 1), *cur, *k, *v;
    if (!copy)
        return sc_error_set(e, SC_ENOMEM, "out of memory");
    memcpy(copy, text, signed_len);
    copy[signed_len] = 0;
    cur = copy;
    int have = 0, r, rc = 0;
    uint64_t x;
    while (!rc && (r = sc_kv_next(&cur, &k, &v)) == 1) {
        if (!strcmp(k, "sldd-receipt"))
            have |= strcmp(v, "v1") ? 0 : 1;
        else if (!strcmp(k, "receiver") && sp_valid_id(v))
            have |= 2, snprintf(out->receiver, sizeof out->receiver, "%s", v);
        else if (!strcmp(k, "sender") && sp_valid_id(v))
            have |= 4, snprintf(out->sender, sizeof out->sender, "%s", v);
        else if (!strcmp(k, "bundle-id") && !nd_unhex(out->bundle_id, 16, v))
            have |= 8;
        else if (!strcmp(k, "sequence") && !parse_u64(v, &out->sequence))
            have |= 16;
        else if (!strcmp(k, "payload-sha256") && !nd_unhex(out->payload_sha256, 32, v))
            have |= 32;
        else if (!strcmp(k, "envelope-sha256") && !nd_unhex(out->envelope_sha256, 32, v))
            have |= 64;
        else if (!strcmp(k, "received-unix") && !parse_u64(v, &x) && x < (uint64_t)INT64_MAX)
            have |= 128, out->received_unix = (int64_t)x;
        else
            rc = sc_error_set(e, SC_EFORMAT, "receipt: bad line '%s'", k);
    }
    free(copy);
    if (!rc && (r < 0 || have != 255))
        rc = sc_error_set(e, SC_EFORMAT, "receipt: incomplete");
    return rc;
}
