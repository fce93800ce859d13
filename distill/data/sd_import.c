/*
 * sd_import.c - a data set folder from a PNG folder and a labels CSV (see
 * sd_import.h): read and check the CSV, settle the classes, make the split,
 * then copy the files and write labels.csv and task.json.
 */
#include "sd_import.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "sd_csv.h"
#include "sd_dataset.h"
#include "sd_file.h"

typedef struct row {
    char *file, *label;
    int split; /* SD_SPLIT_*, -1: not given (train) */
    int cls;
    char id[SD_ID_MAX];
    int line;
} row;

typedef struct rows {
    row *r;
    int n, cap;
} rows;

static void rows_free(rows *R)
{
    for (int i = 0; i < R->n; i++) {
        free(R->r[i].file);
        free(R->r[i].label);
    }
    free(R->r);
}

static int col_of(char **f, int nf, const char *const *names)
{
    for (int i = 0; i < nf; i++)
        for (int k = 0; names[k]; k++)
            if (!strcasecmp(f[i], names[k]))
                return i;
    return -1;
}

static int parse_split(const char *s)
{
    if (!*s)
        return -1;
    if (!strcasecmp(s, "train") || !strcasecmp(s, "training"))
        return SD_SPLIT_TRAIN;
    if (!strcasecmp(s, "val") || !strcasecmp(s, "valid") || !strcasecmp(s, "validation"))
        return SD_SPLIT_VAL;
    if (!strcasecmp(s, "test"))
        return SD_SPLIT_TEST;
    return -2;
}

static int safe_relative(const char *f)
{
    if (!*f || f[0] == '/' || strlen(f) > 1000)
        return 0;
    for (const char *p = f; *p; p = strchr(p, '/') ? strchr(p, '/') + 1 : p + strlen(p))
        if (!strncmp(p, "..", 2) && (p[2] == '/' || !p[2]))
            return 0;
    return 1;
}

static int read_rows(const char *path, rows *R, sd_error *err)
{
    static const char *const fcols[] = {"file", "filename", "image", "path", "id", NULL};
    static const char *const lcols[] = {"label", "class", NULL};
    static const char *const scols[] = {"split", NULL};
    sd_csv c;
    int rc = sd_csv_open(&c, path, err);
    if (rc)
        return rc;
    char *f[SD_CSV_MAX_FIELDS];
    int nf = 0, line = 0;
    rc = sd_csv_next(&c, f, &nf, &line, err);
    int cf = -1, cl = -1, cs = -1;
    if (rc == 1) {
        cf = col_of(f, nf, fcols);
        cl = col_of(f, nf, lcols);
        cs = col_of(f, nf, scols);
    }
    if (rc >= 0 && (cf < 0 || cl < 0)) {
        rc = sd_error_set(err, SD_EFORMAT,
                          "%s line 1: the header needs a file column (file, filename, image, "
                          "path or id) and a label column (label or class)",
                          path);
        goto out;
    }
    while (rc >= 0 && (rc = sd_csv_next(&c, f, &nf, &line, err)) == 1) {
        if (nf <= cf || nf <= cl) {
            rc = sd_error_set(err, SD_EFORMAT, "%s line %d: %d field%s, too few", path, line, nf,
                              nf == 1 ? "" : "s");
            goto out;
        }
        int split = cs >= 0 && cs < nf ? parse_split(f[cs]) : -1;
        if (split == -2) {
            rc = sd_error_set(err, SD_EFORMAT,
                              "%s line %d: split '%.40s' is not train, val or test (any case)",
                              path, line, f[cs]);
            goto out;
        }
        if (!safe_relative(f[cf])) {
            rc = sd_error_set(err, SD_EFORMAT,
                              "%s line %d: file '%.80s' must be a relative path inside the image "
                              "folder (no '..')",
                              path, line, f[cf]);
            goto out;
        }
        if (R->n == R->cap) {
            int cap = R->cap ? 2 * R->cap : 256;
            row *nr = realloc(R->r, (size_t)cap * sizeof *nr);
            if (!nr) {
                rc = sd_error_set(err, SD_ENOMEM, "out of memory");
                goto out;
            }
            R->r = nr;
            R->cap = cap;
        }
        row *r = &R->r[R->n];
        memset(r, 0, sizeof *r);
        r->file = strdup(f[cf]);
        r->label = strdup(f[cl]);
        r->split = split;
        r->line = line;
        R->n++;
        if (!r->file || !r->label) {
            rc = sd_error_set(err, SD_ENOMEM, "out of memory");
            goto out;
        }
    }
    if (rc == 0 && R->n == 0)
        rc = sd_error_set(err, SD_EFORMAT, "%s: no images listed", path);
out:
    sd_csv_close(&c);
    return rc < 0 ? rc : 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The task: declared names, or the distinct label names sorted, or
 * class0..classK-1 when every label is a number. */
static int settle_task(const sd_import_opts *o, rows *R, sd_task *t, sd_error *err)
{
    const char *name = o->task_name ? o->task_name : "images";
    if (o->class_names)
        return sd_task_make(t, name, o->n_class_names, o->class_names, o->outside, err);
    sd_task probe; /* numbers only: 0..9 parse against a ten-class task */
    const char *ten[SD_TASK_MAX_CLASSES] = {"c0", "c1", "c2", "c3", "c4",
                                            "c5", "c6", "c7", "c8", "c9"};
    int rc = sd_task_make(&probe, "probe", SD_TASK_MAX_CLASSES, ten, NULL, err);
    int numeric = 1, maxv = 0;
    for (int i = 0; i < R->n && numeric && !rc; i++) {
        int v = isdigit((unsigned char)R->r[i].label[0])
                    ? sd_task_parse_label(&probe, R->r[i].label)
                    : -1;
        numeric = v >= 0;
        maxv = v > maxv ? v : maxv;
    }
    if (rc)
        return rc;
    const char *names[SD_TASK_MAX_CLASSES];
    char buf[SD_TASK_MAX_CLASSES][SD_TASK_NAME_MAX];
    int k = 0;
    if (numeric) {
        for (k = 0; k <= maxv; k++) {
            snprintf(buf[k], sizeof buf[k], "class%d", k);
            names[k] = buf[k];
        }
    } else {
        for (int i = 0; i < R->n; i++) {
            int seen = 0;
            for (int j = 0; j < k && !seen; j++)
                seen = !strcasecmp(names[j], R->r[i].label);
            if (seen)
                continue;
            if (k == SD_TASK_MAX_CLASSES)
                return sd_error_set(err, SD_EINVAL, "%s: more than %d classes", o->labels,
                                    SD_TASK_MAX_CLASSES);
            names[k++] = R->r[i].label;
        }
        qsort(names, (size_t)k, sizeof names[0], cmp_str);
    }
    return sd_task_make(t, name, k, names, o->outside, err);
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Move round(n_c * fraction) of each class's training images to val and
 * test, chosen by a seeded shuffle of the class's rows in CSV order. */
static int make_split(const sd_import_opts *o, rows *R, sd_task *t, sd_error *err)
{
    sd_split_record *s = &t->split;
    for (int i = 0; i < R->n; i++) {
        if (R->r[i].split == SD_SPLIT_VAL && o->val_fraction > 0)
            return sd_error_set(err, SD_EINVAL,
                                "%s line %d: the CSV already names a val split; drop "
                                "--val-fraction or the CSV's val rows",
                                o->labels, R->r[i].line);
        if (R->r[i].split == SD_SPLIT_TEST && o->test_fraction > 0)
            return sd_error_set(err, SD_EINVAL,
                                "%s line %d: the CSV already names a test split; drop "
                                "--test-fraction or the CSV's test rows",
                                o->labels, R->r[i].line);
        if (R->r[i].split < 0)
            R->r[i].split = SD_SPLIT_TRAIN;
    }
    if (!(o->val_fraction > 0) && !(o->test_fraction > 0))
        return SD_OK;
    int *idx = malloc((size_t)R->n * sizeof *idx);
    if (!idx)
        return sd_error_set(err, SD_ENOMEM, "out of memory");
    s->made = 1;
    s->val_fraction = o->val_fraction;
    s->test_fraction = o->test_fraction;
    s->seed = o->seed;
    for (int c = 0; c < t->labels; c++) {
        int n = 0;
        for (int i = 0; i < R->n; i++)
            if (R->r[i].cls == c && R->r[i].split == SD_SPLIT_TRAIN)
                idx[n++] = i;
        uint64_t st = o->seed ^ (0xD1B54A32D192ED03ULL * (uint64_t)(c + 1));
        for (int i = n - 1; i > 0; i--) {
            int j = (int)(splitmix(&st) % (uint64_t)(i + 1));
            int x = idx[i];
            idx[i] = idx[j];
            idx[j] = x;
        }
        int nv = (int)floor(n * o->val_fraction + 0.5), nt = (int)floor(n * o->test_fraction + 0.5);
        if (nv + nt > n)
            nt = n - nv;
        for (int i = 0; i < nv + nt; i++)
            R->r[idx[i]].split = i < nv ? SD_SPLIT_VAL : SD_SPLIT_TEST;
        s->moved[SD_SPLIT_TRAIN][c] = n - nv - nt;
        s->moved[SD_SPLIT_VAL][c] = nv;
        s->moved[SD_SPLIT_TEST][c] = nt;
    }
    free(idx);
    return SD_OK;
}

/* An id from the file name: its stem with other characters as '_', made
 * unique with the row number. */
static void make_ids(rows *R)
{
    for (int i = 0; i < R->n; i++) {
        row *r = &R->r[i];
        const char *b = strrchr(r->file, '/');
        b = b ? b + 1 : r->file;
        size_t n = strcspn(b, ".");
        n = n > 40 ? 40 : n;
        snprintf(r->id, sizeof r->id, "%.*s", (int)n, b);
        for (char *p = r->id; *p; p++)
            if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
                *p = '_';
        int clash = !r->id[0];
        for (int j = 0; j < i && !clash; j++)
            clash = !strcmp(R->r[j].id, r->id);
        if (clash)
            snprintf(r->id + strlen(r->id), sizeof r->id - strlen(r->id), "%sr%d",
                     r->id[0] ? "_" : "", i + 1);
    }
}

static int copy_file(const char *from, const char *root, const char *to, sd_error *err)
{
    FILE *in = NULL;
    int rc = sd_file_open(from, root, &in, err);
    if (rc)
        return rc;
    FILE *out = fopen(to, "wb");
    if (!out) {
        fclose(in);
        return sd_error_set(err, SD_EIO, "%s: cannot create: %s", to, strerror(errno));
    }
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            break;
    if (ferror(in))
        rc = sd_error_set(err, SD_EIO, "%s: read failed", from);
    if (fclose(out) != 0 && !rc)
        rc = sd_error_set(err, SD_EIO, "%s: write failed: %s", to, strerror(errno));
    fclose(in);
    return rc;
}

static int make_dir(const char *path, sd_error *err)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return sd_error_set(err, SD_EIO, "%s: cannot create: %s", path, strerror(errno));
    return SD_OK;
}

static int write_set(const sd_import_opts *o, rows *R, sd_import_report *rep, sd_error *err)
{
    char path[4200], to[4200];
    char *iroot = NULL, *mroot = NULL;
    int rc = sd_file_root(o->images, &iroot, err);
    if (!rc && o->masks)
        rc = sd_file_root(o->masks, &mroot, err);
    if (!rc)
        rc = make_dir(o->out_dir, err);
    snprintf(path, sizeof path, "%s/images", o->out_dir);
    if (!rc)
        rc = make_dir(path, err);
    snprintf(path, sizeof path, "%s/masks", o->out_dir);
    if (!rc && o->masks)
        rc = make_dir(path, err);
    for (int i = 0; !rc && i < R->n; i++) {
        row *r = &R->r[i];
        snprintf(path, sizeof path, "%s/%s", o->images, r->file);
        snprintf(to, sizeof to, "%s/images/%s.png", o->out_dir, r->id);
        if ((rc = copy_file(path, iroot, to, err)))
            break;
        rep->images++;
        if (!o->masks)
            continue;
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", o->masks, r->file);
        snprintf(to, sizeof to, "%s/masks/%s.png", o->out_dir, r->id);
        if (stat(path, &st) == 0) {
            rc = copy_file(path, mroot, to, err);
            rep->with_mask += !rc;
        } else if (remove(to) != 0 && errno != ENOENT) {
            rc = sd_error_set(err, SD_EIO, "%s: cannot remove: %s", to, strerror(errno));
        }
    }
    free(iroot);
    free(mroot);
    if (rc)
        return rc;
    snprintf(path, sizeof path, "%s/labels.csv", o->out_dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return sd_error_set(err, SD_EIO, "%s: cannot create: %s", path, strerror(errno));
    fprintf(f, "id,label,split\n");
    for (int i = 0; i < R->n; i++)
        fprintf(f, "%s,%d,%s\n", R->r[i].id, R->r[i].cls, sd_split_name(R->r[i].split));
    if (fclose(f) != 0)
        return sd_error_set(err, SD_EIO, "%s: write failed: %s", path, strerror(errno));
    return sd_task_write_dir(&rep->task, o->out_dir, err);
}

int sd_import_folder(const sd_import_opts *o, sd_import_report *rep, sd_error *err)
{
    memset(rep, 0, sizeof *rep);
    if (!(o->val_fraction >= 0 && o->test_fraction >= 0 && o->val_fraction + o->test_fraction < 1))
        return sd_error_set(err, SD_EINVAL,
                            "--val-fraction and --test-fraction must be >= 0 and sum below 1");
    if (o->outside && !o->masks)
        return sd_error_set(err, SD_EINVAL, "a region-outside class needs masks");
    rows R = {0};
    int rc = read_rows(o->labels, &R, err);
    if (!rc)
        rc = settle_task(o, &R, &rep->task, err);
    for (int i = 0; !rc && i < R.n; i++) {
        R.r[i].cls = sd_task_parse_label(&rep->task, R.r[i].label);
        if (R.r[i].cls < 0)
            rc = sd_error_set(err, SD_EFORMAT,
                              "%s line %d: label '%.40s' is not one of the classes (a name or "
                              "0..%d)",
                              o->labels, R.r[i].line, R.r[i].label, rep->task.labels - 1);
    }
    if (!rc)
        rc = make_split(o, &R, &rep->task, err);
    if (!rc) {
        make_ids(&R);
        rc = write_set(o, &R, rep, err);
    }
    rows_free(&R);
    return rc;
}
