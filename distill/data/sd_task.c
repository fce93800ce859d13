/*
 * sd_task.c - the declared task of a labelled image set (see sd_task.h):
 * the gastric default, declared tasks, the image-level decision and the
 * task's JSON form (DIR/task.json, prepared.json, the admin API).
 */
#include "sd_task.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sb_json.h"
#include "sd_csv.h"
#include "sd_file.h"

static void copy_name(char *dst, const char *src)
{
    snprintf(dst, SD_TASK_NAME_MAX, "%s", src);
}

void sd_task_gastric(sd_task *t)
{
    memset(t, 0, sizeof *t);
    copy_name(t->name, "gastric");
    t->labels = 2;
    copy_name(t->label[0], "non-gastritis");
    copy_name(t->label[1], "gastritis");
    t->outside = 1;
    copy_name(t->outside_name, "outside stomach");
    t->classes = 3;
    copy_name(t->cls[0], "I");
    copy_name(t->cls[1], "N");
    copy_name(t->cls[2], "P");
    t->rule = SD_RULE_RATIO;
    snprintf(t->rule_name, sizeof t->rule_name, "Eq. 9: r = P/(N+P), gastritis iff r >= delta");
}

int sd_task_is_gastric(const sd_task *t)
{
    return !strcmp(t->name, "gastric") && t->labels == 2 && t->outside && t->classes == 3 &&
           !strcmp(t->cls[1], "N") && !strcmp(t->cls[2], "P");
}

int sd_task_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n >= SD_TASK_NAME_MAX || s[0] == ' ' || s[n - 1] == ' ')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr(" ._+-", s[i]))
            return 0;
    return 1;
}

int sd_task_make(sd_task *t, const char *name, int k, const char *const *labels,
                 const char *outside, sd_error *err)
{
    memset(t, 0, sizeof *t);
    int max = SD_TASK_MAX_CLASSES - (outside ? 1 : 0);
    if (k < 2 || k > max)
        return sd_error_set(err, SD_EINVAL, "a task needs 2..%d image classes, not %d", max, k);
    if (!sd_task_name_ok(name))
        return sd_error_set(err, SD_EINVAL,
                            "task name '%.40s' is not 1-%d characters of letters, digits, "
                            "space and . _ + -",
                            name, SD_TASK_NAME_MAX - 1);
    copy_name(t->name, name);
    t->labels = k;
    t->outside = outside != NULL;
    t->classes = k + t->outside;
    if (outside) {
        copy_name(t->outside_name, outside);
        copy_name(t->cls[0], outside);
    }
    for (int i = 0; i < k + t->outside; i++) {
        const char *s = i < k ? labels[i] : outside;
        if (!sd_task_name_ok(s))
            return sd_error_set(err, SD_EINVAL,
                                "class name '%.40s' is not 1-%d characters of letters, digits, "
                                "space and . _ + -",
                                s, SD_TASK_NAME_MAX - 1);
        for (int j = 0; j < i; j++)
            if (!strcasecmp(s, labels[j]))
                return sd_error_set(err, SD_EINVAL, "class name '%s' is given twice", s);
        if (i < k) {
            copy_name(t->label[i], s);
            copy_name(t->cls[i + t->outside], s);
        }
    }
    if (k == 2) {
        t->rule = SD_RULE_RATIO;
        snprintf(t->rule_name, sizeof t->rule_name,
                 "ratio: r = %.15s/(%.15s+%.15s), %.15s iff r >= delta", t->label[1], t->label[0],
                 t->label[1], t->label[1]);
    } else {
        t->rule = SD_RULE_MAJORITY;
        snprintf(t->rule_name, sizeof t->rule_name, "majority of patch votes");
    }
    return SD_OK;
}

int sd_task_class_of_label(const sd_task *t, int label)
{
    return label + t->outside;
}

int sd_task_label_of_class(const sd_task *t, int cls)
{
    return cls - t->outside;
}

int sd_task_decide(const sd_task *t, const int *num, double delta, double *r)
{
    const int *v = num + t->outside; /* votes per image class */
    long long total = 0;
    int best = 0;
    for (int i = 0; i < t->labels; i++) {
        total += v[i];
        if (v[i] > v[best])
            best = i;
    }
    if (total == 0) {
        *r = NAN;
        return -1;
    }
    if (t->rule == SD_RULE_RATIO) {
        *r = (double)v[1] / (double)total;
        return *r >= delta ? 1 : 0;
    }
    *r = (double)v[best] / (double)total;
    return best;
}

int sd_task_parse_label(const sd_task *t, const char *s)
{
    for (int i = 0; i < t->labels; i++)
        if (!strcasecmp(s, t->label[i]))
            return i;
    /* an integer, possibly written 1.0 or 1.00 by a spreadsheet */
    const char *p = s;
    if (!isdigit((unsigned char)*p))
        return -1;
    long v = 0;
    while (isdigit((unsigned char)*p) && v < 1000)
        v = v * 10 + (*p++ - '0');
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        while (*p == '0')
            p++;
    }
    return *p || v >= t->labels ? -1 : (int)v;
}

void sd_task_label_key(const sd_task *t, int i, char *out, size_t cap)
{
    snprintf(out, cap, "%s", t->label[i]);
    for (char *c = out; *c; c++)
        if (*c == '-')
            *c = '_';
}

static void write_names(FILE *f, const char (*names)[SD_TASK_NAME_MAX], int n)
{
    fputc('[', f);
    for (int i = 0; i < n; i++)
        fprintf(f, "%s\"%s\"", i ? ", " : "", names[i]);
    fputc(']', f);
}

void sd_task_write_json(FILE *f, const sd_task *t, int indent)
{
    const char *sp = "                ";
    int in = indent > 12 ? 12 : indent;
    fprintf(f, "{\n%.*s  \"name\": \"%s\",\n%.*s  \"labels\": ", in, sp, t->name, in, sp);
    write_names(f, t->label, t->labels);
    fprintf(f, ",\n%.*s  \"outside\": ", in, sp);
    if (t->outside)
        fprintf(f, "\"%s\"", t->outside_name);
    else
        fputs("null", f);
    fprintf(f, ",\n%.*s  \"classes\": ", in, sp);
    write_names(f, t->cls, t->classes);
    fprintf(f, ",\n%.*s  \"rule\": \"%s\",\n%.*s  \"rule_name\": \"%s\"", in, sp,
            t->rule == SD_RULE_RATIO ? "ratio" : "majority", in, sp, t->rule_name);
    const sd_split_record *s = &t->split;
    if (s->made) {
        fprintf(f,
                ",\n%.*s  \"split\": {\"val_fraction\": %.17g, \"test_fraction\": %.17g, "
                "\"seed\": %llu",
                in, sp, s->val_fraction, s->test_fraction, (unsigned long long)s->seed);
        static const char *const part[3] = {"train", "val", "test"};
        for (int p = 0; p < 3; p++) {
            fprintf(f, ", \"%s\": {", part[p]);
            for (int i = 0; i < t->labels; i++) {
                char key[SD_TASK_NAME_MAX];
                sd_task_label_key(t, i, key, sizeof key);
                fprintf(f, "%s\"%s\": %d", i ? ", " : "", key, s->moved[p][i]);
            }
            fputc('}', f);
        }
        fputc('}', f);
    }
    fprintf(f, "\n%.*s}", in, sp);
}

/* A JSON array of names into names; the count, or -1. */
static int parse_names(const char *v, char (*names)[SD_TASK_NAME_MAX], int max)
{
    if (!v || *v != '[')
        return -1;
    const char *p = v + 1;
    int n = 0;
    for (;;) {
        while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
            p++;
        if (*p == ']')
            return n;
        if (n == max || sb_json_string(p, names[n], SD_TASK_NAME_MAX) || !sd_task_name_ok(names[n]))
            return -1;
        n++;
        if (!(p = sb_json_skip(p)))
            return -1;
        while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
            p++;
        if (*p == ',')
            p++;
        else if (*p != ']')
            return -1;
    }
}

static int parse_split(sd_task *t, const char *v)
{
    sd_split_record *s = &t->split;
    double d;
    if (sb_json_number(sb_json_member(v, "val_fraction"), &s->val_fraction) ||
        sb_json_number(sb_json_member(v, "test_fraction"), &s->test_fraction) ||
        sb_json_number(sb_json_member(v, "seed"), &d) || !(d >= 0))
        return -1;
    s->seed = (uint64_t)d;
    static const char *const part[3] = {"train", "val", "test"};
    for (int p = 0; p < 3; p++) {
        const char *o = sb_json_member(v, part[p]);
        for (int i = 0; i < t->labels; i++) {
            char key[SD_TASK_NAME_MAX];
            sd_task_label_key(t, i, key, sizeof key);
            if (!o || sb_json_number(sb_json_member(o, key), &d) || !(d >= 0) || d > 1e9)
                return -1;
            s->moved[p][i] = (int)d;
        }
    }
    s->made = 1;
    return 0;
}

int sd_task_parse_json(sd_task *t, const char *obj, const char *what, sd_error *err)
{
    memset(t, 0, sizeof *t);
    char name[SD_TASK_NAME_MAX], outside[SD_TASK_NAME_MAX], rule[16];
    char labels[SD_TASK_MAX_CLASSES][SD_TASK_NAME_MAX];
    const char *o = sb_json_member(obj, "outside");
    int k = parse_names(sb_json_member(obj, "labels"), labels, SD_TASK_MAX_CLASSES);
    if (!obj || *obj != '{' || sb_json_string(sb_json_member(obj, "name"), name, sizeof name) ||
        k < 0 || !o || (!sb_json_is_null(o) && sb_json_string(o, outside, sizeof outside)) ||
        sb_json_string(sb_json_member(obj, "rule"), rule, sizeof rule))
        return sd_error_set(err, SD_EFORMAT, "%s: invalid \"task\"", what);
    const char *lp[SD_TASK_MAX_CLASSES];
    for (int i = 0; i < k; i++)
        lp[i] = labels[i];
    int gastric = !strcmp(name, "gastric");
    int rc = sd_task_make(t, name, k, lp, sb_json_is_null(o) ? NULL : outside, err);
    if (rc)
        return sd_error_wrap(err, "%s: invalid \"task\"", what);
    if (gastric) { /* the paper's short class names and rule */
        sd_task g;
        sd_task_gastric(&g);
        if (k != 2 || !t->outside || strcmp(t->label[0], g.label[0]) ||
            strcmp(t->label[1], g.label[1]))
            return sd_error_set(err, SD_EFORMAT, "%s: task \"gastric\" is not the gastric task",
                                what);
        *t = g;
    }
    int want = t->rule == SD_RULE_RATIO ? !strcmp(rule, "ratio") : !strcmp(rule, "majority");
    if (!want)
        return sd_error_set(err, SD_EFORMAT, "%s: task rule '%s' does not fit %d classes", what,
                            rule, k);
    const char *sv = sb_json_member(obj, "split");
    if (sv && parse_split(t, sv))
        return sd_error_set(err, SD_EFORMAT, "%s: invalid task \"split\"", what);
    return SD_OK;
}

int sd_task_read_dir(sd_task *t, const char *dir, sd_error *err)
{
    char path[4200];
    if (snprintf(path, sizeof path, "%s/task.json", dir) >= (int)sizeof path)
        return sd_error_set(err, SD_EINVAL, "%s: path too long", dir);
    sd_task_gastric(t);
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT
                   ? SD_OK
                   : sd_error_set(err, SD_EIO, "%s: cannot open: %s", path, strerror(errno));
    fclose(f);
    sd_csv raw; /* the whole-file reader, bounded */
    int rc = sd_csv_open(&raw, path, err);
    if (rc)
        return rc;
    rc = sd_task_parse_json(t, raw.buf, path, err);
    sd_csv_close(&raw);
    return rc;
}

static void task_emit(FILE *f, const void *ctx)
{
    sd_task_write_json(f, ctx, 0);
    fputc('\n', f);
}

int sd_task_write_dir(const sd_task *t, const char *dir, sd_error *err)
{
    char path[4200];
    if (snprintf(path, sizeof path, "%s/task.json", dir) >= (int)sizeof path)
        return sd_error_set(err, SD_EINVAL, "%s: path too long", dir);
    return sd_file_write_atomic(path, task_emit, t, err);
}
