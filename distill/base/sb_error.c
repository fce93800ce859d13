/*
 * sb_error.c - recording, wrapping and naming status codes (see sb_error.h).
 */
#include "sb_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int sb_error_set(sb_error *e, int code, const char *fmt, ...)
{
    if (!e)
        return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->code = code;
    return code;
}

/* e->msg = prefix ": " old, cut to the buffer (assembled by hand so that the
 * bound is plain and nothing is formatted into the buffer it reads). */
static void prefix_msg(sb_error *e, const char *prefix)
{
    char old[sizeof e->msg];
    memcpy(old, e->msg, sizeof old);
    old[sizeof old - 1] = '\0';
    size_t cap = sizeof e->msg - 1, at = 0;
    for (const char *p = prefix; *p && at < cap; p++)
        e->msg[at++] = *p;
    for (const char *p = ": "; *p && at < cap; p++)
        e->msg[at++] = *p;
    for (const char *p = old; *p && at < cap; p++)
        e->msg[at++] = *p;
    e->msg[at] = '\0';
}

/* Format the prefix first (an argument may point into e->msg), then, with
 * set_code, give a reasonless failure its status name and the code. */
static void wrap_va(sb_error *e, int set_code, int code, const char *fmt, va_list ap)
{
    char prefix[256];
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    if (set_code) {
        if (!e->msg[0])
            snprintf(e->msg, sizeof e->msg, "%s", sb_status_name(code));
        e->code = code;
    }
    prefix_msg(e, prefix);
}

int sb_error_wrap(sb_error *e, const char *fmt, ...)
{
    if (!e)
        return SB_EINVAL;
    va_list ap;
    va_start(ap, fmt);
    wrap_va(e, 0, 0, fmt, ap);
    va_end(ap);
    return e->code;
}

int sb_error_wrap_code(sb_error *e, int code, const char *fmt, ...)
{
    if (!e)
        return code;
    va_list ap;
    va_start(ap, fmt);
    wrap_va(e, 1, code, fmt, ap);
    va_end(ap);
    return code;
}

void sb_error_clear(sb_error *e)
{
    if (e) {
        e->code = 0;
        e->msg[0] = '\0';
    }
}

const char *sb_status_name(int code)
{
    switch (code) {
    case SB_OK: return "ok";
    case SB_EINVAL: return "invalid-argument";
    case SB_ENOMEM: return "out-of-memory";
    case SB_EIO: return "io-error";
    case SB_EFORMAT: return "bad-format";
    case SD_EBACKEND: return "backend-failure";
    case SD_EUNSUPPORTED: return "unsupported";
    case SD_ECANCELED: return "canceled";
    case SD_EHASH: return "hash-mismatch";
    case SC_ECRYPTO: return "crypto-failure";
    case SC_EEXIST: return "exists";
    case SC_ENOTFOUND: return "not-found";
    case SC_EPASS: return "bad-passphrase";
    case SC_EPERM: return "bad-permissions";
    case SC_EREFUSE_SIZE: return "too-large";
    case SC_EREFUSE_ENVELOPE: return "bad-envelope";
    case SC_EREFUSE_HEADER: return "bad-header";
    case SC_EREFUSE_UNKNOWN_SENDER: return "unknown-sender";
    case SC_EREFUSE_OUTER_SIG: return "bad-outer-signature";
    case SC_EREFUSE_RECIPIENT: return "wrong-recipient";
    case SC_EREFUSE_EXPIRED: return "expired";
    case SC_EREFUSE_FUTURE: return "from-the-future";
    case SC_EREFUSE_REPLAY_ID: return "replayed-bundle-id";
    case SC_EREFUSE_REPLAY_SEQ: return "replayed-sequence";
    case SC_EREFUSE_UNSEAL: return "unseal-failed";
    case SC_EREFUSE_AEAD: return "decryption-failed";
    case SC_EREFUSE_STATEMENT: return "bad-statement";
    case SC_EREFUSE_PAYLOAD_TYPE: return "bad-payload-type";
    case SC_EREFUSE_NODE_SIG: return "bad-node-signature";
    case SC_EREFUSE_ADMIN_SIGS: return "too-few-admin-approvals";
    case SC_EREFUSE_BUDGET: return "memory-budget-exceeded";
    case SC_EREFUSE_PARSE: return "bad-payload";
    case SC_EREFUSE_UNKNOWN_FIELDS: return "unknown-fields";
    case SC_EREFUSE_MISMATCH: return "header-payload-mismatch";
    case SC_EREFUSE_SEMANTIC: return "invalid-payload";
    default: return "unknown-error";
    }
}
