/*
 * sd_file.h - opening the files of a data set: regular files only, and
 * only inside the data set's folder; and writing the small files the data
 * commands keep in it (task.json, prepared.json) atomically.
 *
 * A data set is a folder filled by someone else's tools.  Opening a name in
 * it must not block (fopen of a FIFO named images/ID.png waits for a writer
 * for ever), must not read a directory or a device as if it were an image,
 * and must not follow a symbolic link out of the folder.  Files are opened
 * with O_NONBLOCK (so opening a FIFO returns at once), checked with fstat,
 * and, given a root, the real path of the file actually opened
 * (/proc/self/fd) must lie inside that root, so a link swapped after a
 * check cannot lead elsewhere.  Symbolic links that stay inside the folder
 * are followed.
 */
#ifndef SD_FILE_H
#define SD_FILE_H

#include <stdio.h>

#include "sd_error.h"

/* Open path for reading as a stdio stream.  root: NULL, or a folder's real
 * path (sd_file_root) the file must lie inside.  Refused with a message
 * naming path: missing or unreadable (SD_EIO), a directory, a FIFO, a
 * socket or a device (SD_EFORMAT), outside root (SD_EFORMAT). */
int sd_file_open(const char *path, const char *root, FILE **out, sd_error *err) SD_WUR;

/* The real path of dir (every link resolved), malloc'ed, for
 * sd_file_open's root. */
int sd_file_root(const char *dir, char **out, sd_error *err) SD_WUR;

/* Write path whole or not at all: emit(f, ctx) writes the contents into
 * path.tmp, which is flushed, closed and renamed over path; on any failure
 * the temporary is removed and path is left as it was.  SD_EINVAL (path too
 * long) or SD_EIO with a message naming the file. */
int sd_file_write_atomic(const char *path, void (*emit)(FILE *f, const void *ctx), const void *ctx,
                         sd_error *err) SD_WUR;

#endif
