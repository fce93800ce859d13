/*
 * sd_prepared.c - the prepared-index file DIR/prepared.json (see
 * sd_dataset.h and docs/data.md): written by `sldd dataset prepare`, read
 * by every later command.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sd_csv.h"
#include "sd_dataset.h"
#include "sd_file.h"
#include "sb_json.h"

/* ---- prepared.json ---- */

void sd_prepared_write_json(FILE *f, const sd_prepared *p)
{
    fprintf(f,
            "{\n"
            "  \"format\": \"sldd-prepared\",\n"
            "  \"version\": %d,\n"
            "  \"synthetic\": %s,\n"
            "  \"patch\": %d,\n"
            "  \"stride\": %d,\n"
            "  \"patch_resize\": %d,\n"
            "  \"mean\": %.17g,\n"
            "  \"std\": %.17g,\n"
            "  \"labels_sha256\": \"%s\",\n",
            p->version, p->synthetic ? "true" : "false", p->psize, p->stride, p->osize, p->mean,
            p->std, p->labels_sha256);
    if (p->mm_per_pixel > 0) /* the physical grid, when the images had one (docs/dicom.md) */
        fprintf(f, "  \"mm_per_pixel\": %.17g,\n", p->mm_per_pixel);
    sd_task gastric;
    sd_task_gastric(&gastric);
    const sd_task *t = p->task.labels ? &p->task : &gastric;
    fprintf(f, "  \"task\": ");
    sd_task_write_json(f, t, 2);
    fprintf(f, ",\n  \"images\": {\n");
    for (int s = 0; s < SD_SPLIT_COUNT; s++) {
        fprintf(f, "    \"%s\": {", sd_split_name(s));
        for (int k = 0; k < t->labels; k++) {
            char key[SD_TASK_NAME_MAX];
            sd_task_label_key(t, k, key, sizeof key);
            fprintf(f, "%s\"%s\": %d", k ? ", " : "", key, p->images[s][k]);
        }
        fprintf(f, "}%s\n", s + 1 < SD_SPLIT_COUNT ? "," : "");
    }
    fprintf(f, "  },\n  \"patches\": {\n");
    for (int s = 0; s < SD_SPLIT_COUNT; s++) {
        fprintf(f, "    \"%s\": {", sd_split_name(s));
        for (int c = 0; c < t->classes; c++)
            fprintf(f, "\"%s\": %lld, ", t->cls[c], (long long)p->patches[s][c]);
        fprintf(f, "\"discarded\": %lld}%s\n", (long long)p->discarded[s],
                s + 1 < SD_SPLIT_COUNT ? "," : "");
    }
    fprintf(f, "  }\n}\n");
}

static void prepared_emit(FILE *f, const void *ctx)
{
    sd_prepared_write_json(f, ctx);
}

int sd_prepared_write(const char *path, const sd_prepared *p, sd_error *err)
{
    return sd_file_write_atomic(path, prepared_emit, p, err);
}

/* The file written above is read back with the base JSON reader. */
static int get_num(const char *obj, const char *key, double *v)
{
    return sb_json_number(sb_json_member(obj, key), v) ? -1 : 0;
}

int sd_prepared_read(const char *path, sd_prepared *p, sd_error *err)
{
    memset(p, 0, sizeof *p);
    sd_csv raw; /* reuse the whole-file reader */
    int rc = sd_csv_open(&raw, path, err);
    if (rc)
        return rc;
    const char *root = raw.buf;
    double v;
    const char *fmt = sb_json_member(root, "format");
    if (!sb_json_skip(root) || !fmt || strncmp(fmt, "\"sldd-prepared\"", 15)) {
        sd_csv_close(&raw);
        return sd_error_set(err, SD_EFORMAT,
                            "%s: not a prepared-index file (run 'sldd dataset prepare')", path);
    }
    rc = SD_EFORMAT;
    const char *what = "version";
    if (get_num(root, "version", &v) || (p->version = (int)v) != 1)
        goto bad;
    what = "patch";
    if (get_num(root, "patch", &v) || (p->psize = (int)v) < 1)
        goto bad;
    what = "stride";
    if (get_num(root, "stride", &v) || (p->stride = (int)v) < 1)
        goto bad;
    what = "patch_resize";
    if (get_num(root, "patch_resize", &v) || (p->osize = (int)v) < 1 || p->osize > p->psize)
        goto bad;
    what = "mean";
    if (get_num(root, "mean", &p->mean) || !isfinite(p->mean))
        goto bad;
    what = "std";
    if (get_num(root, "std", &p->std) || !(p->std > 0) || !isfinite(p->std))
        goto bad;
    what = "synthetic";
    const char *syn = sb_json_member(root, "synthetic");
    if (!syn)
        goto bad;
    p->synthetic = !strncmp(syn, "true", 4);
    const char *mm = sb_json_member(root, "mm_per_pixel");
    what = "mm_per_pixel";
    if (mm && (sb_json_number(mm, &p->mm_per_pixel) || !(p->mm_per_pixel > 0)))
        goto bad;
    what = "labels_sha256";
    const char *h = sb_json_member(root, "labels_sha256");
    if (!h || *h != '"' || strlen(h) < 66 || h[65] != '"')
        goto bad;
    memcpy(p->labels_sha256, h + 1, 64);
    p->labels_sha256[64] = '\0';
    what = "task";
    const char *task = sb_json_member(root, "task");
    if (!task)
        sd_task_gastric(&p->task); /* files written before tasks were declared */
    else if ((rc = sd_task_parse_json(&p->task, task, path, err))) {
        sd_csv_close(&raw);
        return rc;
    }
    rc = SD_EFORMAT;
    const sd_task *t = &p->task;
    what = "images";
    const char *imgs = sb_json_member(root, "images"), *pat = sb_json_member(root, "patches");
    if (!imgs)
        goto bad;
    what = "patches";
    if (!pat)
        goto bad;
    for (int s = 0; s < SD_SPLIT_COUNT; s++) {
        const char *is = sb_json_member(imgs, sd_split_name(s)),
                   *ps = sb_json_member(pat, sd_split_name(s));
        what = "images";
        if (!is)
            goto bad;
        for (int k = 0; k < t->labels; k++) {
            char key[SD_TASK_NAME_MAX];
            sd_task_label_key(t, k, key, sizeof key);
            if (get_num(is, key, &v))
                goto bad;
            p->images[s][k] = (int)v;
        }
        what = "patches";
        if (!ps)
            goto bad;
        for (int c = 0; c < t->classes; c++) {
            if (get_num(ps, t->cls[c], &v))
                goto bad;
            p->patches[s][c] = (int64_t)v;
        }
        if (get_num(ps, "discarded", &v))
            goto bad;
        p->discarded[s] = (int64_t)v;
    }
    sd_csv_close(&raw);
    return 0;
bad:
    sd_csv_close(&raw);
    return sd_error_set(err, rc, "%s: missing or invalid \"%s\"", path, what);
}
