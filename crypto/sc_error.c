/*
 * sc_error.c - error recording and the names of the crypto status codes.
 */
#include "sc_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int sc_error_set(sc_error *e, int code, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        e->code = code;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

int sc_error_wrap(sc_error *e, const char *fmt, ...)
{
    char prefix[256], old[sizeof e->msg];
    va_list ap;
    if (!e)
        return SC_EINVAL;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    old[sizeof old - 1] = '\0';
    {
        /* Concatenate by hand: the result is truncated on purpose. */
        size_t np = strlen(prefix), no = strlen(old), cap = sizeof e->msg - 1, k = 0;
        for (size_t i = 0; i < np && k < cap; i++)
            e->msg[k++] = prefix[i];
        for (size_t i = 0; i < 2 && k < cap; i++)
            e->msg[k++] = ": "[i];
        for (size_t i = 0; i < no && k < cap; i++)
            e->msg[k++] = old[i];
        e->msg[k] = '\0';
    }
    return e->code;
}

void sc_error_clear(sc_error *e)
{
    if (e) {
        e->code = 0;
        e->msg[0] = '\0';
    }
}

const char *sc_status_name(int code)
{
    switch (code) {
    case SC_OK: return "ok";
    case SC_EINVAL: return "invalid-argument";
    case SC_ENOMEM: return "out-of-memory";
    case SC_EIO: return "io-error";
    case SC_ECRYPTO: return "crypto-failure";
    case SC_EFORMAT: return "bad-format";
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

int sc_status_is_refusal(int code)
{
    return code <= SC_EREFUSE_SIZE && code >= SC_EREFUSE_SEMANTIC;
}
