/*
 * sd_error.h - status codes and error messages for the engine.
 *
 * The engine's names for the one status type of the tree (sb_error.h):
 * every fallible function returns an int status (0 on success, a negative
 * SD_E* code on failure) and, where it has one, writes a human-readable
 * message into an sd_error supplied by the caller.  sd_error IS sb_error
 * (and sc_error), so a message passes between the engine, crypto and the
 * node without copying.  Library code never calls exit().
 */
#ifndef SD_ERROR_H
#define SD_ERROR_H

#include "sb_error.h"

typedef sb_error sd_error;

#define SD_PRINTF SB_PRINTF
#define SD_WUR    SB_WUR

#define sd_error_set       sb_error_set
#define sd_error_wrap      sb_error_wrap
#define sd_error_wrap_code sb_error_wrap_code
#define sd_error_clear     sb_error_clear
#define sd_status_name     sb_status_name

#endif
