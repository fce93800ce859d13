/*
 * nd_report.c - evaluation reports of gastric classifiers (see nd_report.h).
 */
#include "nd_report.h"

#include <math.h>
#include <string.h>
#include <time.h>

#include "sd_plot.h"

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void at_delta(const nd_split_eval *ev, double delta, sd_confusion *cf, double *sen,
                     double *spe, double *hm)
{
    sd_confusion_at(ev->r, ev->label, ev->images, delta, cf);
    *sen = sd_sensitivity(cf);
    *spe = sd_specificity(cf);
    *hm = sd_harmonic_mean(*sen, *spe);
}

static int both_labels(const nd_split_eval *ev)
{
    int pos = 0, neg = 0;
    for (int i = 0; i < ev->images; i++) {
        pos += ev->label[i] == 1;
        neg += ev->label[i] == 0;
    }
    return pos && neg;
}

int nd_report_make(nd_report *rep, nd_infer *inf, const sd_dataset *ds, int split, double delta,
                   sd_error *err)
{
    memset(rep, 0, sizeof *rep);
    rep->delta = delta;
    rep->synthetic = ds->synthetic;
    rep->model = inf->label;
    char spec[64];
    sd_model_spec_label(&inf->m->spec, spec, sizeof spec);
    snprintf(rep->short_model, sizeof rep->short_model, "%s", spec);
    rep->data = ds->dir;
    double t0 = now_seconds();
    int rc = nd_infer_eval_split(inf, ds, split, &rep->ev, err);
    if (rc)
        return rc;
    rep->seconds = now_seconds() - t0;
    if (inf->task.labels)
        rep->task = inf->task;
    else
        sd_task_gastric(&rep->task);
    if (rep->task.rule == SD_RULE_MAJORITY) { /* no threshold: image accuracy only */
        rep->sen = rep->spe = rep->hm = NAN;
        return SD_OK;
    }
    at_delta(&rep->ev, delta, &rep->cf, &rep->sen, &rep->spe, &rep->hm);
    if (both_labels(&rep->ev)) {
        sd_error e2 = {0};
        rep->has_roc =
            sd_roc_compute(rep->ev.r, rep->ev.label, rep->ev.images, &rep->roc, &e2) == 0;
    }
    /* the threshold is chosen on validation images, never on the ones reported */
    nd_split_eval val = {0};
    const nd_split_eval *vp = &rep->ev;
    if (split != SD_SPLIT_VAL) {
        int any = 0;
        for (int i = 0; i < ds->n; i++)
            any |= ds->img[i].split == SD_SPLIT_VAL && ds->img[i].loaded;
        if (!any)
            return SD_OK;
        if ((rc = nd_infer_eval_split(inf, ds, SD_SPLIT_VAL, &val, err)))
            return rc;
        vp = &val;
    }
    if (both_labels(vp)) {
        sd_error e2 = {0};
        if (sd_best_delta(vp->r, vp->label, vp->images, &rep->best_delta, &rep->best_val_hm, &e2) ==
            0) {
            rep->has_best = 1;
            at_delta(&rep->ev, rep->best_delta, &rep->cf_best, &rep->sen_best, &rep->spe_best,
                     &rep->hm_best);
        }
    }
    nd_split_eval_free(&val);
    return SD_OK;
}

void nd_report_free(nd_report *rep)
{
    if (!rep)
        return;
    nd_split_eval_free(&rep->ev);
    sd_roc_free(&rep->roc);
    memset(rep, 0, sizeof *rep);
}

static const char *const cls[3] = {"I", "N", "P"};

/* nd_report_print for a declared task (not gastric): its names and rule. */
static void print_task(const nd_report *rep, FILE *f)
{
    const nd_split_eval *ev = &rep->ev;
    const sd_task *t = &rep->task;
    int K = t->classes;
    fprintf(f, "model:   %s\n", rep->model);
    fprintf(f, "data:    %s%s, split %s: %d images\n", rep->data,
            rep->synthetic ? " (SYNTHETIC)" : "", sd_split_name(ev->split), ev->images);
    fprintf(f, "task:    %s, %s\n", t->name, t->rule_name);
    if (ev->patches) {
        fprintf(f, "\npatch level (%lld labelled patches): accuracy %.4f\n", (long long)ev->patches,
                ev->accuracy);
        fprintf(f, "confusion (rows: truth, columns: prediction)\n%12s", "");
        for (int j = 0; j < K; j++)
            fprintf(f, " %10.10s", t->cls[j]);
        fputc('\n', f);
        for (int i = 0; i < K; i++) {
            int64_t row = 0;
            fprintf(f, "%12.12s", t->cls[i]);
            for (int j = 0; j < K; j++) {
                fprintf(f, " %10lld", (long long)ev->confusion[i * K + j]);
                row += ev->confusion[i * K + j];
            }
            fprintf(f, "   recall %.3f\n",
                    row ? (double)ev->confusion[i * K + i] / (double)row : NAN);
        }
    }
    fprintf(f, "predicted patches over all images:");
    for (int c = 0; c < K; c++)
        fprintf(f, " %s %d", t->cls[c], ev->num[c]);
    fprintf(f, "\n\nimage level: accuracy %.3f (%d of %d images decided as their class)\n",
            ev->images ? (double)ev->correct / ev->images : NAN, ev->correct, ev->images);
    if (t->rule == SD_RULE_RATIO)
        fprintf(f, "at delta %.3f, %s as positive: Sen %.3f  Spe %.3f  HM %.3f  AUC %.3f\n",
                rep->delta, t->label[1], rep->sen, rep->spe, rep->hm,
                rep->has_roc ? rep->roc.auc : NAN);
}

void nd_report_print(const nd_report *rep, FILE *f)
{
    if (rep->task.labels && !sd_task_is_gastric(&rep->task)) {
        print_task(rep, f);
        return;
    }
    const nd_split_eval *ev = &rep->ev;
    fprintf(f, "model:   %s\n", rep->model);
    fprintf(f, "data:    %s%s, split %s: %d images\n", rep->data,
            rep->synthetic ? " (SYNTHETIC)" : "", sd_split_name(ev->split), ev->images);
    if (ev->patches) {
        fprintf(f, "\npatch level (%lld labelled patches): accuracy %.4f\n", (long long)ev->patches,
                ev->accuracy);
        fprintf(f, "confusion (rows: truth, columns: prediction)\n         I        N        P"
                   "    recall  precision\n");
        for (int i = 0; i < 3; i++) {
            int64_t row = 0, col = 0;
            for (int j = 0; j < 3; j++) {
                row += ev->confusion[i * 3 + j];
                col += ev->confusion[j * 3 + i];
            }
            fprintf(f, "%s %8lld %8lld %8lld    %6.3f     %6.3f\n", cls[i],
                    (long long)ev->confusion[i * 3], (long long)ev->confusion[i * 3 + 1],
                    (long long)ev->confusion[i * 3 + 2],
                    row ? (double)ev->confusion[i * 4] / (double)row : NAN,
                    col ? (double)ev->confusion[i * 4] / (double)col : NAN);
        }
    } else {
        fprintf(f, "\npatch level: no masks in this split, so no labelled patches\n");
    }
    fprintf(f, "predicted patches over all images: I %d  N %d  P %d\n", ev->num[0], ev->num[1],
            ev->num[2]);
    const sd_confusion *c = &rep->cf;
    fprintf(f, "\nimage level at delta %.3f: Sen %.3f  Spe %.3f  HM %.3f\n", rep->delta, rep->sen,
            rep->spe, rep->hm);
    fprintf(f,
            "  TP %d  FN %d  TN %d  FP %d  (undetermined: %d gastritis, %d non-gastritis,"
            " counted as errors)\n",
            c->tp, c->fn, c->tn, c->fp, c->und_pos, c->und_neg);
    if (rep->has_roc)
        fprintf(f, "ROC over delta: AUC %.3f (%d gastritis, %d non-gastritis images)\n",
                rep->roc.auc, rep->roc.positives, rep->roc.negatives);
    else
        fprintf(f, "ROC: needs images of both labels\n");
    if (rep->has_best)
        fprintf(f,
                "best delta on the val split: %.4f (val HM %.3f); on this split: Sen %.3f  "
                "Spe %.3f  HM %.3f\n",
                rep->best_delta, rep->best_val_hm, rep->sen_best, rep->spe_best, rep->hm_best);
    else
        fprintf(f, "best delta: not available (the val split needs both labels and a "
                   "determined image)\n");
}

static void jnum(FILE *f, const char *key, double v, int comma)
{
    if (isfinite(v))
        fprintf(f, "\"%s\":%.6g%s", key, v, comma ? "," : "");
    else
        fprintf(f, "\"%s\":null%s", key, comma ? "," : "");
}

static void jstr(FILE *f, const char *key, const char *s)
{
    fprintf(f, "\"%s\":\"", key);
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputs("\",", f);
}

void nd_report_json(const nd_report *rep, FILE *f)
{
    const nd_split_eval *ev = &rep->ev;
    fputc('{', f);
    jstr(f, "model", rep->model);
    jstr(f, "data", rep->data);
    if (rep->bundle)
        jstr(f, "bundle", rep->bundle);
    fprintf(f, "\"synthetic\":%s,\"split\":\"%s\",\"images\":%d,\"patches\":%lld,",
            rep->synthetic ? "true" : "false", sd_split_name(ev->split), ev->images,
            (long long)ev->patches);
    jnum(f, "patch_accuracy", ev->patches ? ev->accuracy : NAN, 1);
    if (rep->task.labels && !sd_task_is_gastric(&rep->task)) {
        const sd_task *t = &rep->task;
        fprintf(f, "\"task\":\"%s\",\"rule\":\"%s\",\"classes\":[", t->name,
                t->rule == SD_RULE_RATIO ? "ratio" : "majority");
        for (int c = 0; c < t->classes; c++)
            fprintf(f, "%s\"%s\"", c ? "," : "", t->cls[c]);
        fputs("],", f);
        jnum(f, "image_accuracy", ev->images ? (double)ev->correct / ev->images : NAN, 1);
    }
    int K = rep->task.labels ? rep->task.classes : 3;
    fputs("\"confusion\":[", f);
    for (int i = 0; i < K * K; i++)
        fprintf(f, "%lld%s", (long long)ev->confusion[i], i < K * K - 1 ? "," : "],");
    fputs("\"predicted\":{", f);
    for (int c = 0; c < K; c++)
        fprintf(f, "%s\"%s\":%d", c ? "," : "", rep->task.cls[c], ev->num[c]);
    fputs("},", f);
    jnum(f, "delta", rep->delta, 1);
    jnum(f, "sen", rep->sen, 1);
    jnum(f, "spe", rep->spe, 1);
    jnum(f, "hm", rep->hm, 1);
    fprintf(f, "\"tp\":%d,\"fn\":%d,\"tn\":%d,\"fp\":%d,\"undetermined\":%d,", rep->cf.tp,
            rep->cf.fn, rep->cf.tn, rep->cf.fp, rep->cf.und_pos + rep->cf.und_neg);
    jnum(f, "auc", rep->has_roc ? rep->roc.auc : NAN, 1);
    jnum(f, "best_delta", rep->has_best ? rep->best_delta : NAN, 1);
    jnum(f, "best_val_hm", rep->has_best ? rep->best_val_hm : NAN, 1);
    jnum(f, "sen_best", rep->has_best ? rep->sen_best : NAN, 1);
    jnum(f, "spe_best", rep->has_best ? rep->spe_best : NAN, 1);
    jnum(f, "hm_best", rep->has_best ? rep->hm_best : NAN, 1);
    fputs("\"r\":[", f);
    for (int i = 0; i < ev->images; i++) {
        if (isfinite(ev->r[i]))
            fprintf(f, "%.6g", ev->r[i]);
        else
            fputs("null", f);
        fputs(i + 1 < ev->images ? "," : "", f);
    }
    fputs("],\"labels\":[", f);
    for (int i = 0; i < ev->images; i++)
        fprintf(f, "%d%s", ev->label[i], i + 1 < ev->images ? "," : "");
    fputs("],", f);
    jnum(f, "seconds", rep->seconds, 0);
    fputc('}', f);
}

int nd_report_roc_png(const nd_report *rep, const char *path, sd_error *err)
{
    if (!rep->has_roc)
        return sd_error_set(err, SD_EINVAL,
                            "no ROC curve: the %s split needs images of both labels",
                            sd_split_name(rep->ev.split));
    char title[200];
    snprintf(title, sizeof title, "%s, %s, %d images", rep->short_model,
             sd_split_name(rep->ev.split), rep->ev.images);
    /* marked: the operating point of "gastritis iff r >= delta" */
    return sd_plot_roc_png(path, &rep->roc, rep->delta, title, rep->synthetic, err);
}
