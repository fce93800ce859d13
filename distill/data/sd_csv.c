/* sd_csv.c - in-place CSV record reader (see sd_csv.h). */
#include "sd_csv.h"

#include "sd_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sd_csv_open(sd_csv *c, const char *path, sd_error *err)
{
    return sd_csv_open_in(c, path, NULL, err);
}

int sd_csv_open_in(sd_csv *c, const char *path, const char *root, sd_error *err)
{
    memset(c, 0, sizeof *c);
    FILE *f = NULL;
    int orc = sd_file_open(path, root, &f, err);
    if (orc)
        return orc;
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap + 1);
    int rc = 0;
    while (buf) {
        if (len == cap) {
            if (cap >= SD_CSV_MAX_BYTES) {
                rc = sd_error_set(err, SD_EFORMAT, "%s: larger than %zu MiB", path,
                                  SD_CSV_MAX_BYTES >> 20);
                break;
            }
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f))
                rc = sd_error_set(err, SD_EIO, "%s: read error: %s", path, strerror(errno));
            break;
        }
    }
    fclose(f);
    if (!buf)
        return sd_error_set(err, SD_ENOMEM, "%s: out of memory", path);
    if (!rc && memchr(buf, '\0', len))
        rc = sd_error_set(err, SD_EFORMAT, "%s: contains NUL bytes; not a text CSV file", path);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[len] = '\0';
    c->path = strdup(path);
    if (!c->path) {
        free(buf);
        return sd_error_set(err, SD_ENOMEM, "%s: out of memory", path);
    }
    c->buf = buf;
    c->len = len;
    c->line = 1;
    /* UTF-8 byte-order mark, as spreadsheet exports write it */
    if (len >= 3 && (unsigned char)buf[0] == 0xEF && (unsigned char)buf[1] == 0xBB &&
        (unsigned char)buf[2] == 0xBF)
        c->pos = 3;
    return 0;
}

void sd_csv_close(sd_csv *c)
{
    if (!c)
        return;
    free(c->buf);
    free(c->path);
    memset(c, 0, sizeof *c);
}

static int is_blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

int sd_csv_next(sd_csv *c, char **fields, int *nfields, int *line, sd_error *err)
{
    char *b = c->buf;
    for (;;) {
        /* skip blank lines */
        size_t p = c->pos;
        while (p < c->len && is_blank(b[p]))
            p++;
        if (p >= c->len)
            return 0;
        if (b[p] == '\n' || b[p] == '\r') {
            if (b[p] == '\r' && p + 1 < c->len && b[p + 1] == '\n')
                p++;
            c->pos = p + 1;
            c->line++;
            continue;
        }
        break;
    }
    *line = c->line;
    int n = 0;
    size_t p = c->pos;
    for (;;) {
        /* one field: [blanks] ( "quoted" | bare ) [blanks] */
        while (p < c->len && is_blank(b[p]))
            p++;
        char *start = b + p, *w = b + p;
        if (p < c->len && b[p] == '"') {
            p++;
            for (;;) {
                if (p >= c->len)
                    return sd_error_set(err, SD_EFORMAT, "%s line %d: unterminated quoted field",
                                        c->path, *line);
                if (b[p] == '"') {
                    if (p + 1 < c->len && b[p + 1] == '"') {
                        *w++ = '"';
                        p += 2;
                        continue;
                    }
                    p++;
                    break;
                }
                if (b[p] == '\n')
                    c->line++;
                *w++ = b[p++];
            }
            while (p < c->len && is_blank(b[p]))
                p++;
            if (p < c->len && b[p] != ',' && b[p] != '\n' && b[p] != '\r')
                return sd_error_set(err, SD_EFORMAT,
                                    "%s line %d: unexpected text after a closing quote", c->path,
                                    c->line);
        } else {
            while (p < c->len && b[p] != ',' && b[p] != '\n' && b[p] != '\r')
                *w++ = b[p++];
            while (w > start && is_blank(w[-1]))
                w--;
        }
        char sep = p < c->len ? b[p] : '\0';
        *w = '\0'; /* w <= b + p, so this never overwrites unread input but sep */
        if (n >= SD_CSV_MAX_FIELDS)
            return sd_error_set(err, SD_EFORMAT, "%s line %d: more than %d fields", c->path, *line,
                                SD_CSV_MAX_FIELDS);
        fields[n++] = start;
        if (sep == ',') {
            p++;
            continue;
        }
        /* end of record */
        if (sep == '\r' && p + 1 < c->len && b[p + 1] == '\n')
            p++;
        if (sep)
            p++;
        c->pos = p;
        c->line++;
        *nfields = n;
        return 1;
    }
}
