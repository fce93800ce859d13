/*
 * sd_csv.h - a small CSV reader for label files (RFC 4180 quoting, CRLF or
 * LF line ends, a UTF-8 byte-order mark tolerated, blank lines skipped).
 *
 * The whole file is read into memory (at most SD_CSV_MAX_BYTES) and parsed
 * in place; fields are NUL-terminated pointers into that buffer, trimmed of
 * surrounding spaces and tabs (quoted content is kept as is).
 */
#ifndef SD_CSV_H
#define SD_CSV_H

#include <stddef.h>

#include "sd_error.h"

#define SD_CSV_MAX_BYTES  ((size_t)256 << 20)
#define SD_CSV_MAX_FIELDS 256

typedef struct sd_csv {
    char *path; /* for messages */
    char *buf;  /* file contents, NUL-terminated, rewritten in place */
    size_t len;
    size_t pos;
    int line; /* current physical line (1-based) */
} sd_csv;

/* Read path into memory.  Fails with SD_EIO (missing/unreadable) or
 * SD_EFORMAT (not a regular file, too large, contains NUL bytes). */
int sd_csv_open(sd_csv *c, const char *path, sd_error *err) SD_WUR;
/* The same for a file that must lie inside root (a real path; sd_file.h). */
int sd_csv_open_in(sd_csv *c, const char *path, const char *root, sd_error *err) SD_WUR;
void sd_csv_close(sd_csv *c);

/* Next non-blank record.  Returns 1 with fields[0..*nfields) and *line (the
 * line the record starts on), 0 at the end of the file, or a negative
 * status on a syntax error (unterminated quote, text after a closing
 * quote).  Records with more than SD_CSV_MAX_FIELDS fields are refused. */
int sd_csv_next(sd_csv *c, char **fields, int *nfields, int *line, sd_error *err);

#endif
