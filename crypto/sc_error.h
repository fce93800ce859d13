/*
 * sc_error.h - status codes and error messages for the crypto library.
 *
 * The crypto library's names for the one status type of the tree
 * (sb_error.h, where the SC_* codes are listed): every fallible sc_
 * function returns 0 or a negative SC_E* code and, given an sc_error,
 * writes a one-line reason into it.  The receive path gives every refusal
 * its own code (SC_EREFUSE_*) so that callers, the audit log and tests can
 * tell them apart; sc_status_name() returns a stable short name for each
 * code.  sc_error IS sb_error (and sd_error).  Library code never calls
 * exit().
 */
#ifndef SC_ERROR_H
#define SC_ERROR_H

#include "sb_error.h"

typedef sb_error sc_error;

#define SC_PRINTF SB_PRINTF
#define SC_WUR    SB_WUR

#define sc_error_set   sb_error_set
#define sc_error_wrap  sb_error_wrap
#define sc_error_clear sb_error_clear
#define sc_status_name sb_status_name

/* True for the SC_EREFUSE_* codes. */
static inline int sc_status_is_refusal(int code)
{
    return code <= SC_EREFUSE_SIZE && code >= SC_EREFUSE_SEMANTIC;
}

#endif
