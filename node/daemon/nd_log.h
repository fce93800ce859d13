/*
 * nd_log.h - the daemon's log lines, as text or as JSON lines.
 *
 * Text:  2026-11-27T11:56:17.015Z node-a info  message key=value ...
 * JSON:  {"ts":"2026-11-27T11:56:17.015Z","level":"info","node":"node-a",
 *         "msg":"message","fields":{"key":"value"}}
 * one object per line, every string escaped by nd_buf_json_str (quotes,
 * backslashes, control characters as \uXXXX, bytes that are not UTF-8 as
 * U+FFFD), so a line always parses whatever a peer put into a message.  In text, control
 * characters other than newline and tab become '?' (no forged lines from
 * a peer's input; the start-up checks' multi-line reports keep their
 * newlines).
 *
 * Levels: error (the node cannot do something it should, or someone is
 * refused as unknown: a TLS pin mismatch, an unknown sender), warn
 * (refused input from a known peer, a retry), info (what happened), test.
 */
#ifndef ND_LOG_H
#define ND_LOG_H

#include <time.h>

#include "nd_buf.h"

typedef enum nd_log_format { ND_LOG_TEXT = 0, ND_LOG_JSON = 1 } nd_log_format;

/* "text" or "json" -> *out; -1 for anything else. */
int nd_log_format_parse(const char *name, nd_log_format *out);

/* One log line, with its newline, into out.  kv: NULL, or pairs key,
 * value ending with a NULL key; a NULL value leaves its key out. */
void nd_log_line(nd_buf *out, nd_log_format f, const struct timespec *ts, const char *node,
                 const char *level, const char *msg, const char *const *kv);

#endif
