/*
 * test_job_curves.c - a job's loss and ROC curves (nd_job_curves.h): the
 * files a job writes, the JSON the admin API serves from them (thinned,
 * last point kept, bad lines and non-finite losses skipped), a job without
 * files, and the cap on the loss file.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nd_job_curves.h"
#include "sd_test.h"

static char root[256];

static char *json_of(int64_t job)
{
    nd_buf b;
    sc_error e = {0, ""};
    nd_buf_init(&b, 0);
    CHECKF(nd_curves_json(root, job, &b, &e) == 0, "%s", e.msg);
    char *s = strndup(b.data ? (char *)b.data : "", b.len);
    nd_buf_free(&b);
    return s;
}

static size_t count(const char *s, const char *what)
{
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, what)) != NULL; p++)
        n++;
    return n;
}

int main(void)
{
    char dir[400], path[450];
    sc_error e = {0, ""};
    snprintf(root, sizeof root, "%s/sldd-curves-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(dir, sizeof dir, "%s/jobs", root);
    CHECK(mkdir(dir, 0700) == 0);

    /* a job that wrote nothing (yet) */
    char *s = json_of(7);
    CHECKF(!strcmp(s, "{\"job\":7,\"loss\":[],\"roc\":null}"), "%s", s);
    free(s);

    /* 1000 loss points, a NaN and a damaged line among them */
    snprintf(dir, sizeof dir, "%s/jobs/3", root);
    CHECK(mkdir(dir, 0700) == 0);
    for (int i = 1; i <= 1000; i++)
        CHECK(nd_curves_loss_append(dir, i, i == 500 ? NAN : 2.0 / i, &e) == 0);
    snprintf(path, sizeof path, "%s/loss.txt", dir);
    FILE *f = fopen(path, "a");
    CHECK(f && fputs("garbage\n1001 x\n", f) >= 0 && fclose(f) == 0);
    CHECK(nd_curves_loss_append(dir, 1002, 0.001, &e) == 0);
    nd_eval ev;
    memset(&ev, 0, sizeof ev);
    ev.auc = 0.75;
    ev.roc_n = 3;
    ev.roc_fpr[1] = 0.5f, ev.roc_tpr[1] = 1.0f, ev.roc_fpr[2] = 1.0f, ev.roc_tpr[2] = 1.0f;
    CHECK(nd_curves_roc_write(dir, &ev, &e) == 0);
    s = json_of(3);
    CHECKF(!strncmp(s, "{\"job\":3,\"loss\":[[1,2],", 22), "%.60s", s);
    size_t pts = count(s, "],[") + 1 - 2; /* minus the ROC's 3 points' 2 separators */
    CHECKF(pts > 300 && pts <= ND_CURVES_LOSS_POINTS, "%zu loss points", pts);
    CHECKF(strstr(s, "[1002,0.001]],\"roc\""), "the last point kept: %s",
           strstr(s, "[1002") ? "" : s);
    CHECK(!strstr(s, "nan") && !strstr(s, "garbage") && !strstr(s, "1001"));
    CHECKF(strstr(s, "\"roc\":{\"auc\":0.750000,\"points\":[[0.000000,0.000000],[0.500000,"
                     "1.000000],[1.000000,1.000000]]}}"),
           "%s", strstr(s, "\"roc\""));
    free(s);

    /* no ROC without images of both labels; a full loss file takes no more */
    memset(&ev, 0, sizeof ev);
    ev.auc = NAN;
    snprintf(dir, sizeof dir, "%s/jobs/4", root);
    CHECK(mkdir(dir, 0700) == 0);
    CHECK(nd_curves_roc_write(dir, &ev, &e) == 0);
    snprintf(path, sizeof path, "%s/roc.txt", dir);
    CHECK(access(path, F_OK) != 0);
    snprintf(path, sizeof path, "%s/loss.txt", dir);
    f = fopen(path, "w");
    CHECK(f && ftruncate(fileno(f), ND_CURVES_LOSS_MAX_BYTES) == 0 && fclose(f) == 0);
    CHECK(nd_curves_loss_append(dir, 1, 1.0, &e) == 0);
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && sb.st_size == ND_CURVES_LOSS_MAX_BYTES);

    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", root);
    return sd_test_finish();
}
