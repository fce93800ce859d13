/*
 * nd_job_curves.c - a job's loss and ROC curves as files and as JSON (see
 * nd_job_curves.h).
 */
#include "nd_job_curves.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sb_parse.h"
#include "sc_util.h"

#define ROC_FILE_MAX (64u << 10)

int nd_curves_loss_append(const char *job_dir, int64_t iter, double loss, sc_error *e)
{
    char path[1100];
    struct stat sb;
    if (!isfinite(loss))
        return 0;
    snprintf(path, sizeof path, "%s/loss.txt", job_dir);
    if (stat(path, &sb) == 0 && (uint64_t)sb.st_size >= ND_CURVES_LOSS_MAX_BYTES)
        return 0;
    FILE *f = fopen(path, "a");
    if (!f)
        return sc_error_set(e, SC_EIO, "%s: %s", path, strerror(errno));
    int bad = fprintf(f, "%" PRId64 " %.6g\n", iter, loss) < 0;
    if (fclose(f) || bad)
        return sc_error_set(e, SC_EIO, "%s: write failed", path);
    return 0;
}

int nd_curves_roc_write(const char *job_dir, const nd_eval *ev, sc_error *e)
{
    char path[1100], line[64];
    nd_buf b;
    int rc;
    if (ev->roc_n < 2 || !isfinite(ev->auc))
        return 0;
    nd_buf_init(&b, ROC_FILE_MAX);
    snprintf(line, sizeof line, "auc %.6f\n", ev->auc);
    nd_buf_str(&b, line);
    for (int i = 0; i < ev->roc_n; i++)
        nd_buf_printf(&b, "%.6f %.6f\n", (double)ev->roc_fpr[i], (double)ev->roc_tpr[i]);
    snprintf(path, sizeof path, "%s/roc.txt", job_dir);
    rc = b.failed ? sc_error_set(e, SC_ENOMEM, "ROC curve too large")
                  : sc_file_write_atomic(path, b.data, b.len, 0600, e);
    nd_buf_free(&b);
    return rc;
}

/* Two numbers of one line ("A B"), 0 when they parse and are finite. */
static int two_numbers(char *line, double *a, double *b)
{
    char *sp = strchr(line, ' ');
    if (!sp)
        return -1;
    *sp = 0;
    return sb_parse_double(line, -1e300, 1e300, a) || sb_parse_double(sp + 1, -1e300, 1e300, b) ||
                   !isfinite(*a) || !isfinite(*b)
               ? -1
               : 0;
}

/* The file's lines into lines[] (pointers into buf, NULs written); *n. */
static char **split_lines(char *buf, size_t *n)
{
    size_t cap = 1;
    for (const char *p = buf; *p; p++)
        cap += *p == '\n';
    char **lines = malloc(cap * sizeof *lines);
    *n = 0;
    for (char *save = NULL, *p = lines ? strtok_r(buf, "\n", &save) : NULL; p;
         p = strtok_r(NULL, "\n", &save))
        lines[(*n)++] = p;
    return lines;
}

/* Read NODE/jobs/N/name; *buf NULL (and 0) when the file is not there. */
static int read_job_file(const char *node_dir, int64_t job, const char *name, size_t max,
                         uint8_t **buf, sc_error *e)
{
    char path[1100];
    size_t len;
    snprintf(path, sizeof path, "%s/jobs/%" PRId64 "/%s", node_dir, job, name);
    *buf = NULL;
    int rc = sc_file_read(path, max, 0, buf, &len, e);
    if (rc == SC_ENOTFOUND) {
        *buf = NULL;
        return 0;
    }
    return rc;
}

static int loss_json(const char *node_dir, int64_t job, nd_buf *out, sc_error *e)
{
    uint8_t *buf;
    size_t n = 0, shown = 0;
    double it, loss;
    int rc = read_job_file(node_dir, job, "loss.txt", ND_CURVES_LOSS_MAX_BYTES + 4096, &buf, e);
    if (rc)
        return rc;
    char **lines = buf ? split_lines((char *)buf, &n) : NULL;
    if (buf && !lines) {
        free(buf);
        return sc_error_set(e, SC_ENOMEM, "out of memory");
    }
    nd_buf_str(out, "\"loss\":[");
    size_t step =
        n > ND_CURVES_LOSS_POINTS ? (n + ND_CURVES_LOSS_POINTS - 1) / ND_CURVES_LOSS_POINTS : 1;
    for (size_t i = 0; i < n; i++) {
        if (i % step && i != n - 1)
            continue;
        if (two_numbers(lines[i], &it, &loss))
            continue;
        nd_buf_printf(out, "%s[%.0f,%.6g]", shown++ ? "," : "", it, loss);
    }
    nd_buf_str(out, "]");
    free(lines);
    free(buf);
    return 0;
}

static int roc_json(const char *node_dir, int64_t job, nd_buf *out, sc_error *e)
{
    uint8_t *buf;
    size_t n = 0, shown = 0;
    double fpr, tpr, auc;
    int rc = read_job_file(node_dir, job, "roc.txt", ROC_FILE_MAX, &buf, e);
    if (rc)
        return rc;
    char **lines = buf ? split_lines((char *)buf, &n) : NULL;
    if (!lines || n < 3 || strncmp(lines[0], "auc ", 4) ||
        sb_parse_double(lines[0] + 4, 0, 1, &auc) || !isfinite(auc)) {
        nd_buf_str(out, "\"roc\":null");
    } else {
        nd_buf_printf(out, "\"roc\":{\"auc\":%.6f,\"points\":[", auc);
        for (size_t i = 1; i < n; i++)
            if (!two_numbers(lines[i], &fpr, &tpr))
                nd_buf_printf(out, "%s[%.6f,%.6f]", shown++ ? "," : "", fpr, tpr);
        nd_buf_str(out, "]}");
    }
    free(lines);
    free(buf);
    return 0;
}

int nd_curves_json(const char *node_dir, int64_t job, nd_buf *out, sc_error *e)
{
    int rc;
    nd_buf_printf(out, "{\"job\":%" PRId64 ",", job);
    if ((rc = loss_json(node_dir, job, out, e)))
        return rc;
    nd_buf_str(out, ",");
    if ((rc = roc_json(node_dir, job, out, e)))
        return rc;
    nd_buf_str(out, "}");
    return out->failed ? sc_error_set(e, SC_ENOMEM, "curves too large") : 0;
}
