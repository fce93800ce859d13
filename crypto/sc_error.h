/*
 * sc_error.h - status codes and error messages for the crypto library.
 *
 * Every fallible sc_ function returns 0 or a negative SC_E* code and, given
 * an sc_error, writes a one-line reason into it.  The receive path gives
 * every refusal its own code (SC_EREFUSE_*) so that callers, the audit log
 * and tests can tell them apart; sc_status_name() returns a stable short
 * name for each code.  Library code never calls exit().
 */
#ifndef SC_ERROR_H
#define SC_ERROR_H

#include <stddef.h>

enum {
    SC_OK = 0,
    SC_EINVAL = -1,    /* bad argument */
    SC_ENOMEM = -2,    /* allocation failed */
    SC_EIO = -3,       /* file I/O failed */
    SC_ECRYPTO = -4,   /* a libsodium/OpenSSL call failed unexpectedly */
    SC_EFORMAT = -5,   /* malformed file or message */
    SC_EEXIST = -6,    /* refusing to overwrite something that exists */
    SC_ENOTFOUND = -7, /* no such key, peer or file */
    SC_EPASS = -8,     /* wrong passphrase or corrupted key file */
    SC_EPERM = -9,     /* file permissions too open */

    /* Receive-path refusals, in the order the checks run (docs/bundle-format.md §5). */
    SC_EREFUSE_SIZE = -100,          /* larger than the size cap */
    SC_EREFUSE_ENVELOPE = -101,      /* envelope does not parse */
    SC_EREFUSE_HEADER = -102,        /* header does not parse or is incomplete */
    SC_EREFUSE_UNKNOWN_SENDER = -103,/* sender is not a known peer */
    SC_EREFUSE_OUTER_SIG = -104,     /* outer sender signature invalid */
    SC_EREFUSE_RECIPIENT = -105,     /* addressed to another node */
    SC_EREFUSE_EXPIRED = -106,       /* past its expiry */
    SC_EREFUSE_FUTURE = -107,        /* created in the future beyond skew */
    SC_EREFUSE_REPLAY_ID = -108,     /* bundle id seen before */
    SC_EREFUSE_REPLAY_SEQ = -109,    /* sequence not above the last accepted */
    SC_EREFUSE_UNSEAL = -110,        /* content key does not unseal */
    SC_EREFUSE_AEAD = -111,          /* body fails authentication */
    SC_EREFUSE_STATEMENT = -112,     /* signed statement does not parse */
    SC_EREFUSE_PAYLOAD_TYPE = -113,  /* unexpected payload type */
    SC_EREFUSE_NODE_SIG = -114,      /* node signature missing or invalid */
    SC_EREFUSE_ADMIN_SIGS = -115,    /* too few valid admin approvals */
    SC_EREFUSE_BUDGET = -116,        /* parsing exceeded the memory budget */
    SC_EREFUSE_PARSE = -117,         /* payload does not parse */
    SC_EREFUSE_UNKNOWN_FIELDS = -118,/* payload has fields this version lacks */
    SC_EREFUSE_MISMATCH = -119,      /* payload disagrees with the header */
    SC_EREFUSE_SEMANTIC = -120       /* shapes, counts, floats or enums invalid */
};

typedef struct sc_error {
    int code;
    char msg[512];
} sc_error;

#if defined(__GNUC__)
#define SC_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define SC_WUR __attribute__((warn_unused_result))
#else
#define SC_PRINTF(a, b)
#define SC_WUR
#endif

/* Record code and message in e (e may be NULL); returns code. */
int sc_error_set(sc_error *e, int code, const char *fmt, ...) SC_PRINTF(3, 4);
/* Prefix the existing message with context; returns e->code. */
int sc_error_wrap(sc_error *e, const char *fmt, ...) SC_PRINTF(2, 3);
void sc_error_clear(sc_error *e);
/* Stable short name of a code ("wrong-recipient"), never NULL. */
const char *sc_status_name(int code);
/* True for the SC_EREFUSE_* codes. */
int sc_status_is_refusal(int code);

#endif
