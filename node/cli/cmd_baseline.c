/*
 * cmd_baseline.c - `sldd baseline`: the reference point for a distilled
 * set.  The same fixed theta_0 trained with the same T = S x E SGD steps on
 * S x n random real training samples with hard labels, at the constant step
 * size of a fixed grid that scores best on the validation split (HM on
 * gastric data and two-class sets, image accuracy under a task's majority
 * rule, accuracy on Fashion-MNIST; patch accuracy where the image-level
 * figure is undefined for the split).  Prints a line per step size as it is scored,
 * line-buffered so that a redirected run shows its progress.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "nd_buf.h"
#include "nd_data.h"
#include "sd_distill.h"
#include "sd_init.h"

static void baseline_usage(FILE *f)
{
    fprintf(f, "usage: sldd baseline --data SOURCE [options]\n"
               "\n"
               "The reference point for a distilled set: the same fixed theta_0 trained with\n"
               "the same T = S x E SGD steps on S x n RANDOM real training samples with their\n"
               "hard labels (balanced over the classes when n is a multiple of the class\n"
               "count).  The constant step size is chosen from 0.001 .. 0.3 on the validation\n"
               "split: by image-level HM on a gastric data set (and any two-class task), by\n"
               "image accuracy under a task's majority rule (3+ classes), by accuracy on\n"
               "Fashion-MNIST.  Where that figure is undefined at every step size (validation\n"
               "images of one label only), the choice falls back to validation patch accuracy,\n"
               "and says so; with neither defined it is refused.  Prints one line per step\n"
               "size as it is scored, then the figure that chose it and the test figures.\n"
               "\n"
               "  --data SOURCE          a gastric data set prepared by 'sldd dataset prepare',\n"
               "                         or 'fashion-mnist'\n"
               "  --arch NAME            as 'sldd distill' (default: lenet for fashion-mnist,\n"
               "                         convnet-bn else)\n"
               "  --depth D --width W    ConvNet depth and width (3, 128); ResNet base width:\n"
               "                         give the distilled network's to compare with it\n"
               "  --images-per-step n    samples per step (10)\n"
               "  --steps S              steps (10)\n"
               "  --epochs-inner E       passes over the S steps (3); T = S x E\n"
               "  --seed S               seed of theta_0 and of the sample draw (0)\n"
               "  --device cpu|cuda      compute backend (cpu)\n");
}

typedef struct baseline_args {
    const char *data, *arch, *device;
    long long n, S, E, seed, depth, width;
} baseline_args;

/* -1 to go on, else the exit status (0 after --help). */
static int baseline_parse(int argc, char **argv, baseline_args *a)
{
    static const struct option opts[] = {{"data", required_argument, 0, 'd'},
                                         {"arch", required_argument, 0, 'a'},
                                         {"depth", required_argument, 0, 'p'},
                                         {"width", required_argument, 0, 'w'},
                                         {"images-per-step", required_argument, 0, 'n'},
                                         {"steps", required_argument, 0, 's'},
                                         {"epochs-inner", required_argument, 0, 'e'},
                                         {"seed", required_argument, 0, 'r'},
                                         {"device", required_argument, 0, 'D'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    long long v;
    int o, idx = 0;
    *a = (baseline_args){.device = "cpu", .n = 10, .S = 10, .E = 3};
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, &idx)) != -1) {
        long long *dst = o == 'n'   ? &a->n
                         : o == 's' ? &a->S
                         : o == 'e' ? &a->E
                         : o == 'r' ? &a->seed
                         : o == 'p' ? &a->depth
                         : o == 'w' ? &a->width
                                    : NULL;
        if (dst) {
            /* --depth and --width: the ranges of 'sldd distill' (nd_distill.c) */
            long long hi = o == 'r' ? INT64_MAX : o == 'p' ? 16 : o == 'w' ? 4096 : 100000;
            if (nd_parse_int(optarg, o == 'r' ? 0 : 1, hi, &v)) {
                fprintf(stderr, "sldd baseline: --%s '%s' is not an integer in %d..%lld\n",
                        opts[idx].name, optarg, o == 'r' ? 0 : 1, hi);
                return 2;
            }
            *dst = v;
            continue;
        }
        switch (o) {
        case 'd': a->data = optarg; break;
        case 'a': a->arch = optarg; break;
        case 'D': a->device = optarg; break;
        case 'h': baseline_usage(stdout); return 0;
        default: baseline_usage(stderr); return 2;
        }
    }
    if (!a->data || optind != argc) {
        baseline_usage(stderr);
        return 2;
    }
    return -1;
}

/* dd as a distilled set of S x n images with hard labels and theta_0's
 * hash, its arrays allocated (images and labels still empty). */
static int baseline_set(sd_distilled *dd, const baseline_args *a, const nd_data *ds, sd_error *err)
{
    sd_model *m = NULL;
    if (sd_model_spec_parse_arch(&dd->spec, a->arch ? a->arch : ds->default_arch, err))
        return -1;
    dd->spec.depth = (int)a->depth; /* 0: the architecture's default */
    dd->spec.width = (int)a->width;
    dd->spec.in_c = ds->train.c;
    dd->spec.in_h = ds->train.h;
    dd->spec.in_w = ds->train.w;
    dd->spec.classes = ds->train.classes;
    if (sd_model_create(&m, &dd->spec, err))
        return -1;
    dd->spec = m->spec;
    size_t M = (size_t)(a->S * a->n),
           D = (size_t)ds->train.c * (size_t)ds->train.h * (size_t)ds->train.w;
    dd->seed = (uint64_t)a->seed;
    dd->steps = (int)a->S;
    dd->images_per_step = (int)a->n;
    dd->epochs_inner = (int)a->E;
    dd->label_param = SD_LABEL_RAW;
    dd->bn_mode = SD_BN_BATCH;
    dd->n_bn = m->n_bn;
    dd->images = malloc(M * D * sizeof(float));
    dd->labels = calloc(M * (size_t)m->spec.classes, sizeof(float));
    dd->step_sizes = malloc((size_t)(a->S * a->E) * sizeof(float));
    dd->theta_bn = calloc(m->n_bn + 1, sizeof(float));
    sd_real *th0 = malloc(m->n_theta * sizeof *th0);
    int rc = !dd->images || !dd->labels || !dd->step_sizes || !dd->theta_bn || !th0;
    if (!rc)
        rc = sd_init_theta(m, dd->seed, th0, err) ||
             sd_theta_sha256(th0, m->n_theta, dd->theta0_sha256, err);
    free(th0);
    sd_model_destroy(m);
    return rc ? -1 : 0;
}

/* With a balanced draw, every class needs a training sample: name the
 * classes that have none.  0, or -1 after the message. */
static int baseline_classes(const sd_distilled *dd, const baseline_args *a, const nd_data *ds)
{
    int K = dd->spec.classes;
    int64_t have[16] = {0};
    if (a->n % K != 0 || K > 16)
        return 0;
    for (int64_t i = 0; i < ds->train.count; i++) {
        int lab = nd_data_train_label(ds, i);
        if (lab >= 0 && lab < K)
            have[lab]++;
    }
    char missing[256] = "";
    int nmiss = 0;
    for (int k = 0; k < K; k++)
        if (!have[k]) {
            size_t at = strlen(missing);
            snprintf(missing + at, sizeof missing - at, "%s%s", nmiss++ ? ", " : "",
                     ds->class_names[k]);
        }
    if (!nmiss)
        return 0;
    fprintf(stderr,
            "sldd baseline: the training split has no sample of class %s: a draw balanced over "
            "the %d classes (--images-per-step %lld, a multiple of %d) needs every class; "
            "give an --images-per-step that is not a multiple of %d for a draw at random\n",
            missing, K, a->n, K, K);
    return -1;
}

/* Random real samples into dd's images and one-hot labels, one class after
 * another when n is a multiple of the class count.  A candidate's label is
 * looked up before its pixels are fetched. */
static int baseline_draw(sd_distilled *dd, const baseline_args *a, const nd_data *ds,
                         sd_backend *be, sd_error *err)
{
    int K = dd->spec.classes;
    size_t M = (size_t)(a->S * a->n),
           D = (size_t)ds->train.c * (size_t)ds->train.h * (size_t)ds->train.w;
    int64_t cnt = ds->train.count, want = 0;
    size_t got = 0;
    sd_real *one = NULL, *xb = malloc(M * D * sizeof *xb);
    int *lb = malloc(M * sizeof *lb), rc = -1;
    if (!xb || !lb) {
        fprintf(stderr, "sldd baseline: out of memory\n");
        goto out;
    }
    if (baseline_classes(dd, a, ds))
        goto out;
    if (be->alloc(be, err, D * sizeof(sd_real), (void **)&one)) {
        fprintf(stderr, "sldd baseline: %s\n", err->msg);
        goto out;
    }
    for (uint64_t tries = 0; got < M && tries < 1000000; tries++) {
        int64_t j = (int64_t)(((uint64_t)sd_uniform_u32((uint64_t)a->seed, 7, tries) << 32 |
                               sd_uniform_u32((uint64_t)a->seed, 8, tries)) %
                              (uint64_t)cnt);
        int lab = nd_data_train_label(ds, j);
        if (a->n % K == 0 && lab != (int)(want % K))
            continue;
        if (ds->train.fetch(ds->train.ctx, be, &j, 1, one, &lab, err) ||
            be->download(be, err, xb + got * D, one, D * sizeof(sd_real))) {
            fprintf(stderr, "sldd baseline: %s\n", err->msg);
            goto out;
        }
        lb[got++] = lab;
        want++;
    }
    if (got < M) {
        fprintf(stderr,
                "sldd baseline: found only %zu of %zu samples in 1,000,000 draws: class %s "
                "is too rare in the training split\n",
                got, M, ds->class_names[want % K]);
        goto out;
    }
    for (size_t i = 0; i < M * D; i++)
        dd->images[i] = (float)xb[i];
    for (size_t i = 0; i < M; i++)
        dd->labels[i * (size_t)K + (size_t)lb[i]] = 1;
    rc = 0;
out:
    if (one)
        be->free(be, one);
    free(xb);
    free(lb);
    return rc;
}

/* Replay dd with constant step size lr and evaluate on split. */
static int baseline_eval(sd_distilled *dd, const baseline_args *a, nd_data *ds, sd_backend *be,
                         double lr, int split, nd_eval *ev, sd_error *err)
{
    sd_model *rm = NULL;
    sd_real *theta = NULL;
    int rc;
    for (long long t = 0; t < a->S * a->E; t++)
        dd->step_sizes[t] = (float)lr;
    if (sd_replay(dd, be, &rm, &theta, err))
        return -1;
    rc = rm->n_bn ? sd_bn_recompute(rm, be, theta, &ds->train, 20, 256, (uint64_t)a->seed,
                                    dd->theta_bn, err)
                  : 0;
    if (!rc)
        rc = nd_data_evaluate_theta(ds, rm, theta, dd->theta_bn, be, split, ev, err);
    be->free(be, theta);
    sd_model_destroy(rm);
    return rc ? -1 : 0;
}

/* The image-level figure a prepared set's task is scored by: HM under the
 * rule "ratio" (gastric data and two-class sets), image accuracy under
 * "majority" (HM is undefined there); NULL for Fashion-MNIST (samples only). */
static const char *baseline_image_figure(const nd_data *ds)
{
    if (!ds->gastric)
        return NULL;
    return ds->prep.task.rule == SD_RULE_MAJORITY ? "image accuracy" : "HM";
}

/* The validation figure of one step size: the task's image-level figure
 * (above), or sample (patch) accuracy with by_accuracy or on
 * Fashion-MNIST; NAN where undefined. */
static double baseline_score(const nd_data *ds, const nd_eval *ev, int by_accuracy)
{
    if (!ds->gastric || by_accuracy)
        return ev->samples ? ev->accuracy : NAN;
    return ds->prep.task.rule == SD_RULE_MAJORITY ? ev->image_accuracy : ev->hm;
}

/* Score every step size of the grid on the validation split and pick the
 * best: by the task's image-level figure (HM, or image accuracy under the
 * majority rule) or accuracy, falling back to patch accuracy where the
 * image-level figure is undefined at every step size.  The step size into
 * *best, or -1 after the message. */
static int baseline_choose(sd_distilled *dd, const baseline_args *a, nd_data *ds, sd_backend *be,
                           double *best)
{
    static const double grid[] = {0.001, 0.003, 0.01, 0.03, 0.1, 0.3};
    enum { G = sizeof grid / sizeof grid[0] };
    double img[G], acc[G];
    sd_error err = {0};
    nd_eval ev;
    const char *figure = baseline_image_figure(ds);
    for (int g = 0; g < G; g++) {
        char fig[64] = "";
        if (baseline_eval(dd, a, ds, be, grid[g], SD_SPLIT_VAL, &ev, &err)) {
            fprintf(stderr, "sldd baseline: %s\n", err.msg);
            return -1;
        }
        img[g] = baseline_score(ds, &ev, 0);
        acc[g] = baseline_score(ds, &ev, 1);
        char h[16] = "undefined", p[16] = "undefined";
        if (isfinite(img[g]))
            snprintf(h, sizeof h, "%.4f", img[g]);
        if (isfinite(acc[g]))
            snprintf(p, sizeof p, "%.4f", acc[g]);
        if (figure)
            snprintf(fig, sizeof fig, "%s %s  ", figure, h);
        printf("step size %-6g validation %s%s %s\n", grid[g], fig,
               figure ? "patch accuracy" : "accuracy", p);
    }
    /* HM is undefined for a split, not for a model: it needs images of both
     * labels, whatever the step size (image accuracy needs images) */
    int by_image = 0;
    for (int g = 0; g < G; g++)
        by_image |= figure && isfinite(img[g]);
    const double *score = by_image ? img : acc;
    int pick = -1;
    for (int g = 0; g < G; g++)
        if (isfinite(score[g]) && (pick < 0 || score[g] > score[pick]))
            pick = g;
    if (pick < 0) {
        fprintf(stderr,
                "sldd baseline: cannot choose a step size: the validation split gives no "
                "defined %s%s at any step size (%s)\n",
                figure ? figure : "accuracy", figure ? " or patch accuracy" : "",
                figure ? "it needs images of every label, or masks for labelled patches"
                       : "it has no samples");
        return -1;
    }
    if (figure && !by_image)
        printf("validation %s is undefined at every step size (%s): chosen by validation patch "
               "accuracy\n",
               figure,
               ds->prep.task.rule == SD_RULE_MAJORITY
                   ? "no validation image gave a decision"
                   : "the validation images are of one label only");
    printf("chosen step size %g (validation %s %.4f)\n", grid[pick],
           by_image ? figure
           : figure ? "patch accuracy"
                    : "accuracy",
           score[pick]);
    *best = grid[pick];
    return 0;
}

int cmd_baseline(int argc, char **argv)
{
    baseline_args a;
    int rc = baseline_parse(argc, argv, &a);
    if (rc >= 0)
        return rc;
    /* one line per step size as it is scored, also into a pipe or a file:
     * each takes minutes on real data */
    setvbuf(stdout, NULL, _IOLBF, 0);
    sd_error err = {0};
    nd_data ds;
    if (nd_data_open(&ds, a.data, 0, &err)) {
        fprintf(stderr, "sldd baseline: %s\n", err.msg);
        return 1;
    }
    int status = 1;
    sd_backend *be = NULL;
    sd_distilled dd = {0};
    if (sd_backend_create(&be, a.device, &err) || baseline_set(&dd, &a, &ds, &err)) {
        fprintf(stderr, "sldd baseline: %s\n", err.msg[0] ? err.msg : "out of memory");
        goto done;
    }
    if (baseline_draw(&dd, &a, &ds, be, &err))
        goto done;
    char label[64];
    sd_model_spec_label(&dd.spec, label, sizeof label);
    printf("baseline %s on %s: %lld random real samples, T = %lld steps, on %s\n", label, a.data,
           a.S * a.n, a.S * a.E, be->name);
    double best_lr;
    if (baseline_choose(&dd, &a, &ds, be, &best_lr))
        goto done;
    nd_eval ev;
    if (baseline_eval(&dd, &a, &ds, be, best_lr, SD_SPLIT_TEST, &ev, &err)) {
        fprintf(stderr, "sldd baseline: %s\n", err.msg);
        goto done;
    }
    printf("baseline: %zu random real samples, %lld steps of size %g\n", (size_t)(a.S * a.n),
           a.S * a.E, best_lr);
    nd_eval_print(&ds, &ev, stdout);
    status = 0;
done:
    sd_distilled_free(&dd);
    sd_backend_destroy(be);
    nd_data_close(&ds);
    return status;
}
