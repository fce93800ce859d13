/*
 * cmd_train.c - `sldd train`: ordinary training of the same architectures
 * on real samples, from the same theta_0 that distillation starts from (the
 * paper's baselines: a network trained on N random real patches per class,
 * or on all of them).  Evaluates like `sldd evaluate` and saves the weights
 * in the format of nd_weights.h, for `sldd detect --weights`.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "nd_buf.h"
#include "nd_data.h"
#include "nd_infer.h"
#include "nd_report.h"
#include "nd_weights.h"
#include "sd_dataview.h"
#include "sd_init.h"
#include "sd_plot.h"
#include "sd_train.h"
#include "sb_parse.h"

static void train_usage(FILE *f)
{
    fprintf(f, "usage: sldd train --data SOURCE --arch NAME [options]\n"
               "\n"
               "Ordinary training on real samples with hard labels, starting from the same\n"
               "initial weights theta_0 (same --arch, --width, --seed) that 'sldd distill'\n"
               "starts from.  Batch norm uses batch statistics while training; theta_bn is\n"
               "then recomputed over real batches, as for a distilled set.  Prints the\n"
               "evaluation of 'sldd evaluate' and writes DIR/weights.sldw (for 'sldd detect\n"
               "--weights'), DIR/result.json and DIR/curves.png.\n"
               "\n"
               "  --data SOURCE        a gastric data set prepared by 'sldd dataset prepare',\n"
               "                       or 'fashion-mnist'\n"
               "  --arch NAME          lenet, convnet, alexnet, vgg16, vgg19, resnet18, resnet34,\n"
               "                       googlenet; '-bn' suffix for batch norm\n"
               "  --depth D --width W  ConvNet depth and width (3, 128); ResNet base width\n"
               "  --seed S             seed of theta_0, of the sample draw and the shuffle (0)\n"
               "  --per-class N        train on N random samples of each class (all)\n"
               "  --optimizer O        sgd (momentum 0.9) or adam (sgd)\n"
               "  --lr L               learning rate (0.01 sgd, 0.001 adam)\n"
               "  --momentum M         SGD momentum (0.9)\n"
               "  --weight-decay W     L2 weight decay (0)\n"
               "  --epochs N           passes over the training samples (10)\n"
               "  --batch B            samples per step (64)\n"
               "  --decay-epochs N     multiply lr by 0.1 every N epochs (never)\n"
               "  --max-steps N        stop after N steps\n"
               "  --split S            evaluate on val or test (test)\n"
               "  --delta D            image-level threshold (0.4)\n"
               "  --out DIR            output directory (nothing written without it)\n"
               "  --device D           cpu (default) or cuda\n"
               "  --quiet              no progress lines\n");
}

typedef struct train_progress {
    int quiet;
    int cap, n;
    double *epoch, *loss;
} train_progress;

static int on_train_progress(void *vctx, const sd_train_progress *p)
{
    train_progress *c = vctx;
    if (!p->epoch_done)
        return 0;
    if (c->n < c->cap) {
        c->epoch[c->n] = p->epoch;
        c->loss[c->n] = p->epoch_loss;
        c->n++;
    }
    if (!c->quiet)
        fprintf(stderr, "epoch %d/%d  step %lld/%lld  loss %.4f  lr %.4g  %.1f s\n", p->epoch,
                p->epochs, (long long)p->step, (long long)p->steps, p->epoch_loss, p->lr,
                p->seconds);
    return 0;
}

static int parse_pos(const char *s, double *out, int allow_zero)
{
    double v;
    if (sb_parse_double(s, 0, INFINITY, &v) || (!allow_zero && v == 0))
        return -1;
    *out = v;
    return 0;
}

typedef struct train_opts {
    sd_train_config cfg;
    const char *data, *arch, *out, *device;
    long long per_class, depth, width, seed;
    int quiet, split, lr_set;
    double delta;
} train_opts;

enum {
    O_DATA = 256,
    O_ARCH,
    O_DEPTH,
    O_WIDTH,
    O_SEED,
    O_PERCLASS,
    O_OPT,
    O_LR,
    O_MOM,
    O_WD,
    O_EPOCHS,
    O_BATCH,
    O_DECAY,
    O_MAXSTEPS,
    O_SPLIT,
    O_DELTA,
    O_OUT,
    O_DEVICE,
    O_QUIET
};

static const struct option train_options[] = {{"data", required_argument, 0, O_DATA},
                                              {"arch", required_argument, 0, O_ARCH},
                                              {"depth", required_argument, 0, O_DEPTH},
                                              {"width", required_argument, 0, O_WIDTH},
                                              {"seed", required_argument, 0, O_SEED},
                                              {"per-class", required_argument, 0, O_PERCLASS},
                                              {"optimizer", required_argument, 0, O_OPT},
                                              {"lr", required_argument, 0, O_LR},
                                              {"momentum", required_argument, 0, O_MOM},
                                              {"weight-decay", required_argument, 0, O_WD},
                                              {"epochs", required_argument, 0, O_EPOCHS},
                                              {"batch", required_argument, 0, O_BATCH},
                                              {"decay-epochs", required_argument, 0, O_DECAY},
                                              {"max-steps", required_argument, 0, O_MAXSTEPS},
                                              {"split", required_argument, 0, O_SPLIT},
                                              {"delta", required_argument, 0, O_DELTA},
                                              {"out", required_argument, 0, O_OUT},
                                              {"device", required_argument, 0, O_DEVICE},
                                              {"quiet", no_argument, 0, O_QUIET},
                                              {"help", no_argument, 0, 'h'},
                                              {0, 0, 0, 0}};

/* One option c (long name `name`, argument optarg) into o; 0, or the
 * exit status 2 after a message. */
static int train_option(train_opts *o, int c, const char *name)
{
    long long v;
#define INTOPT(dst, lo, hi)                                                                  \
    do {                                                                                     \
        if (nd_parse_int(optarg, lo, hi, &v)) {                                              \
            fprintf(stderr, "sldd train: --%s '%s' is not an integer in %lld..%lld\n", name, \
                    optarg, (long long)(lo), (long long)(hi));                               \
            return 2;                                                                        \
        }                                                                                    \
        dst = v;                                                                             \
    } while (0)
#define DBLOPT(dst, zero_ok)                                                            \
    do {                                                                                \
        if (parse_pos(optarg, &dst, zero_ok)) {                                         \
            fprintf(stderr, "sldd train: --%s '%s' is not a %s number\n", name, optarg, \
                    zero_ok ? "non-negative" : "positive");                             \
            return 2;                                                                   \
        }                                                                               \
    } while (0)
    switch (c) {
    case O_DATA: o->data = optarg; break;
    case O_ARCH: o->arch = optarg; break;
    case O_DEPTH: INTOPT(o->depth, 1, 16); break;
    case O_WIDTH: INTOPT(o->width, 1, 4096); break;
    case O_SEED: INTOPT(o->seed, 0, INT64_MAX); break;
    case O_PERCLASS: INTOPT(o->per_class, 1, INT64_MAX); break;
    case O_OPT:
        if (!strcmp(optarg, "sgd"))
            o->cfg.optimizer = SD_OPT_SGD;
        else if (!strcmp(optarg, "adam"))
            o->cfg.optimizer = SD_OPT_ADAM;
        else {
            fprintf(stderr, "sldd train: --optimizer is sgd or adam, not '%s'\n", optarg);
            return 2;
        }
        break;
    case O_LR:
        DBLOPT(o->cfg.lr, 0);
        o->lr_set = 1;
        break;
    case O_MOM:
        DBLOPT(o->cfg.momentum, 1);
        if (o->cfg.momentum >= 1) {
            fprintf(stderr, "sldd train: --momentum must be below 1\n");
            return 2;
        }
        break;
    case O_WD: DBLOPT(o->cfg.weight_decay, 1); break;
    case O_EPOCHS: INTOPT(o->cfg.epochs, 1, 1000000); break;
    case O_BATCH: INTOPT(o->cfg.batch, 1, 65536); break;
    case O_DECAY: INTOPT(o->cfg.decay_epochs, 1, 1000000); break;
    case O_MAXSTEPS: INTOPT(o->cfg.max_steps, 1, INT64_MAX); break;
    case O_SPLIT:
        if (!strcmp(optarg, "val"))
            o->split = SD_SPLIT_VAL;
        else if (!strcmp(optarg, "test"))
            o->split = SD_SPLIT_TEST;
        else {
            fprintf(stderr, "sldd train: --split is val or test, not '%s'\n", optarg);
            return 2;
        }
        break;
    case O_DELTA:
        DBLOPT(o->delta, 1);
        if (o->delta > 1) {
            fprintf(stderr, "sldd train: --delta must be in [0,1]\n");
            return 2;
        }
        break;
    case O_OUT: o->out = optarg; break;
    case O_DEVICE: o->device = optarg; break;
    case O_QUIET: o->quiet = 1; break;
    }
#undef INTOPT
#undef DBLOPT
    return 0;
}

/* -1 to go on, else the exit status (0 after --help). */
static int train_parse(int argc, char **argv, train_opts *o)
{
    int c, idx = 0, rc;
    memset(o, 0, sizeof *o);
    sd_train_config_defaults(&o->cfg);
    o->device = "cpu";
    o->split = SD_SPLIT_TEST;
    o->delta = SD_DETECT_DELTA;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", train_options, &idx)) != -1) {
        if (c == 'h') {
            train_usage(stdout);
            return 0;
        }
        if (c == '?' || c == ':') {
            fprintf(stderr, "sldd train: unknown or incomplete option '%s'\n", argv[optind - 1]);
            train_usage(stderr);
            return 2;
        }
        if ((rc = train_option(o, c, train_options[idx].name)))
            return rc;
    }
    if (optind < argc) {
        fprintf(stderr, "sldd train: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!o->data || !o->arch) {
        fprintf(stderr, "sldd train: --data SOURCE and --arch NAME are required\n");
        return 2;
    }
    if (!o->lr_set && o->cfg.optimizer == SD_OPT_ADAM)
        o->cfg.lr = 0.001;
    o->cfg.seed = (uint64_t)o->seed;
    return -1;
}

/* Everything one training run holds; train_run_free releases it. */
typedef struct train_run {
    nd_data ds;
    sd_backend *be;
    sd_model *m;
    sd_real *theta, *th0;
    float *bn, *theta_host;
    int32_t *labels;
    int64_t *sub_idx, n_sub, taken[16];
    sd_subset_data sub;
    sd_data_view train_view;
    train_progress tp;
    nd_infer inf;
    nd_report rep;
    char label[64];
    double acc;
} train_run;

static void train_run_free(train_run *r)
{
    nd_report_free(&r->rep);
    nd_infer_free(&r->inf);
    free(r->tp.epoch);
    free(r->tp.loss);
    sd_subset_data_free(&r->sub);
    free(r->sub_idx);
    free(r->labels);
    free(r->theta_host);
    free(r->th0);
    free(r->bn);
    if (r->be)
        r->be->free(r->be, r->theta);
    sd_model_destroy(r->m);
    sd_backend_destroy(r->be);
    nd_data_close(&r->ds);
}

/* The per-class sample draw: r->train_view becomes the subset. */
static int train_subset(train_run *r, const train_opts *o, sd_error *err)
{
    int K = r->m->spec.classes;
    int64_t cnt = r->ds.train.count;
    if (K > 16) {
        fprintf(stderr, "sldd train: --per-class supports at most 16 classes\n");
        return -1;
    }
    r->labels = malloc((size_t)cnt * sizeof *r->labels);
    if (!r->labels) {
        fprintf(stderr, "sldd train: out of memory\n");
        return -1;
    }
    /* labels without cutting a single patch */
    for (int64_t i = 0; i < cnt; i++)
        r->labels[i] = r->ds.gastric ? r->ds.ix[SD_SPLIT_TRAIN].p[i].label : r->ds.fm[0].y[i];
    if (sd_train_balanced_subset(r->labels, cnt, K, o->per_class, o->cfg.seed, &r->sub_idx,
                                 &r->n_sub, r->taken, err)) {
        fprintf(stderr, "sldd train: %s\n", err->msg);
        return -1;
    }
    r->sub = (sd_subset_data){.base = &r->ds.train, .index = r->sub_idx, .count = r->n_sub};
    sd_data_view_subset(&r->train_view, &r->sub);
    return 0;
}

/* Model, backend, output directory, sample draw and theta_0 on the device. */
static int train_setup(train_run *r, const train_opts *o, sd_model_spec *spec, sd_error *err)
{
    spec->in_c = r->ds.train.c;
    spec->in_h = r->ds.train.h;
    spec->in_w = r->ds.train.w;
    spec->classes = r->ds.train.classes;
    if (sd_model_create(&r->m, spec, err) || sd_backend_create(&r->be, o->device, err)) {
        fprintf(stderr, "sldd train: %s\n", err->msg);
        return -1;
    }
    if (o->out && mkdir(o->out, 0755) && errno != EEXIST) {
        fprintf(stderr, "sldd train: cannot create %s: %s\n", o->out, strerror(errno));
        return -1;
    }
    if (o->per_class > 0 && train_subset(r, o, err))
        return -1;
    sd_model *m = r->m;
    r->theta_host = malloc(m->n_theta * sizeof *r->theta_host);
    r->th0 = malloc(m->n_theta * sizeof *r->th0);
    r->bn = calloc(m->n_bn + 1, sizeof *r->bn);
    if (!r->theta_host || !r->th0 || !r->bn ||
        r->be->alloc(r->be, err, m->n_theta * sizeof(sd_real), (void **)&r->theta)) {
        fprintf(stderr, "sldd train: out of memory\n");
        return -1;
    }
    if (sd_init_theta(m, o->cfg.seed, r->th0, err) ||
        r->be->upload(r->be, err, r->theta, r->th0, m->n_theta * sizeof *r->th0)) {
        fprintf(stderr, "sldd train: initial weights: %s\n", err->msg);
        return -1;
    }
    sd_model_spec_label(&m->spec, r->label, sizeof r->label);
    return 0;
}

static void train_announce(const train_run *r, const train_opts *o)
{
    fprintf(stderr, "training %s on %s: %lld samples", r->label, o->data,
            (long long)r->train_view.count);
    if (o->per_class > 0) {
        fprintf(stderr, " (");
        for (int k = 0; k < r->m->spec.classes; k++)
            fprintf(stderr, "%s%s %lld", k ? ", " : "", r->ds.class_names[k],
                    (long long)r->taken[k]);
        fprintf(stderr, ")");
    }
    fprintf(stderr, ", %s lr %g, %d epochs of batch %d on %s\n",
            o->cfg.optimizer == SD_OPT_ADAM ? "adam" : "sgd", o->cfg.lr, o->cfg.epochs,
            o->cfg.batch, r->be->name);
}

/* The evaluation, as 'sldd evaluate' does it, printed. */
static int train_evaluate(train_run *r, const train_opts *o, sd_error *err)
{
    nd_data *ds = &r->ds;
    if (ds->gastric) {
        if (nd_infer_from_theta(&r->inf, &r->m->spec, r->theta, r->bn, ds->prep.psize,
                                ds->prep.stride, ds->prep.osize, ds->prep.mean, ds->prep.std, r->be,
                                err)) {
            fprintf(stderr, "sldd train: %s\n", err->msg);
            return -1;
        }
        snprintf(r->inf.label, sizeof r->inf.label, "trained %s (%lld samples)", r->label,
                 (long long)r->train_view.count);
        r->inf.task = ds->prep.task; /* the weights file keeps it (nd_weights.h) */
        if (nd_report_make(&r->rep, &r->inf, ds->ds, o->split, o->delta, err)) {
            fprintf(stderr, "sldd train: %s\n", err->msg);
            return -1;
        }
        nd_report_print(&r->rep, stdout);
        return 0;
    }
    const sd_data_view *ev = o->split == SD_SPLIT_VAL ? &ds->val : &ds->test;
    if (sd_evaluate(r->m, r->be, r->theta, r->bn, ev, 0, &r->acc, NULL, NULL, err)) {
        fprintf(stderr, "sldd train: %s\n", err->msg);
        return -1;
    }
    printf("trained %s: %s accuracy %.4f over %lld samples\n", r->label, sd_split_name(o->split),
           r->acc, (long long)ev->count);
    return 0;
}

/* OUT/weights.sldw with the provenance line `how`. */
static int train_write_weights(train_run *r, const train_opts *o, const char *how)
{
    char path[4096];
    sd_model *m = r->m;
    sd_error err = {0};
    if (r->be->download(r->be, &err, r->th0, r->theta, m->n_theta * sizeof *r->th0)) {
        fprintf(stderr, "sldd train: %s\n", err.msg);
        return -1;
    }
    for (size_t i = 0; i < m->n_theta; i++)
        r->theta_host[i] = (float)r->th0[i];
    nd_weights w = {.spec = m->spec,
                    .theta = r->theta_host,
                    .n_theta = m->n_theta,
                    .theta_bn = r->bn,
                    .n_bn = m->n_bn,
                    .seed = o->cfg.seed,
                    .synthetic = r->ds.synthetic};
    if (r->ds.gastric) {
        w.norm_mean = r->ds.prep.mean;
        w.norm_std = r->ds.prep.std;
        w.patch_size = r->ds.prep.psize;
        w.patch_stride = r->ds.prep.stride;
        w.patch_resize = r->ds.prep.osize;
        w.task = r->ds.prep.task;
    } else {
        w.norm_mean = SD_FMNIST_MEAN;
        w.norm_std = SD_FMNIST_STD;
    }
    snprintf(w.data, sizeof w.data, "%s", o->data);
    snprintf(w.trained, sizeof w.trained, "%s", how);
    snprintf(path, sizeof path, "%s/weights.sldw", o->out);
    if (nd_weights_write(path, &w, &err)) {
        fprintf(stderr, "sldd train: %s\n", err.msg);
        return -1;
    }
    printf("weights: %s\n", path);
    return 0;
}

/* OUT/result.json and OUT/curves.png. */
static int train_write_result(train_run *r, const train_opts *o)
{
    char path[4096];
    sd_error err = {0};
    const train_progress *tp = &r->tp;
    snprintf(path, sizeof path, "%s/result.json", o->out);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "sldd train: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    /* undefined figures are null (nd_buf_json_fig), as in nd_report_json */
    nd_buf b;
    nd_buf_init(&b, 0);
    nd_buf_str(&b, "{\"kind\":\"train\",\"arch\":");
    nd_buf_json_str(&b, r->label);
    nd_buf_printf(&b,
                  ",\"samples\":%lld,\"per_class\":%lld,\"optimizer\":\"%s\",\"lr\":%g,"
                  "\"epochs\":%d,\"batch\":%d,\"seed\":%lld,",
                  (long long)r->train_view.count, o->per_class,
                  o->cfg.optimizer == SD_OPT_ADAM ? "adam" : "sgd", o->cfg.lr, o->cfg.epochs,
                  o->cfg.batch, o->seed);
    nd_buf_json_fig(&b, "final_loss", tp->n ? tp->loss[tp->n - 1] : NAN);
    nd_buf_str(&b, ",\"report\":");
    if (!r->ds.gastric) {
        nd_buf_str(&b, "{");
        nd_buf_json_fig(&b, "accuracy", r->acc);
        nd_buf_str(&b, "}");
    }
    if (!b.failed)
        fputs(b.data, f);
    nd_buf_free(&b);
    if (r->ds.gastric)
        nd_report_json(&r->rep, f);
    fputs("}\n", f);
    if (ferror(f) | fclose(f)) {
        fprintf(stderr, "sldd train: cannot write %s\n", path);
        return -1;
    }
    snprintf(path, sizeof path, "%s/curves.png", o->out);
    const double *ys[1] = {tp->loss};
    const char *names[1] = {"training loss (epoch mean)"};
    if (tp->n >= 2 &&
        sd_plot_lines_png(path, "training", "epoch", "", tp->epoch, tp->n, ys, names, 1, 0, &err))
        fprintf(stderr, "sldd train: %s\n", err.msg);
    return 0;
}

int cmd_train(int argc, char **argv)
{
    train_opts o;
    int rc = train_parse(argc, argv, &o);
    if (rc >= 0)
        return rc;
    sd_model_spec spec = {0};
    sd_error err = {0};
    if (sd_model_spec_parse_arch(&spec, o.arch, &err)) {
        fprintf(stderr, "sldd train: %s\n", err.msg);
        return 2;
    }
    spec.depth = (int)o.depth;
    spec.width = (int)o.width;

    train_run r;
    memset(&r, 0, sizeof r);
    if (nd_data_open(&r.ds, o.data, 0, &err)) {
        fprintf(stderr, "sldd train: %s\n", err.msg);
        return 1;
    }
    int status = 1;
    r.train_view = r.ds.train;
    r.tp.quiet = o.quiet;
    r.acc = NAN;
    if (train_setup(&r, &o, &spec, &err))
        goto done;
    if (!o.quiet)
        train_announce(&r, &o);
    r.tp.cap = o.cfg.epochs + 1;
    r.tp.epoch = calloc((size_t)r.tp.cap, sizeof *r.tp.epoch);
    r.tp.loss = calloc((size_t)r.tp.cap, sizeof *r.tp.loss);
    if (!r.tp.epoch || !r.tp.loss) {
        fprintf(stderr, "sldd train: out of memory\n");
        goto done;
    }
    if (sd_train(r.m, r.be, &r.train_view, &o.cfg, r.theta, r.bn, on_train_progress, &r.tp, &err)) {
        fprintf(stderr, "sldd train: %s\n", err.msg);
        goto done;
    }
    char how[256];
    snprintf(how, sizeof how, "trained with %s lr %g, %d epochs of batch %d on %lld samples%s",
             o.cfg.optimizer == SD_OPT_ADAM ? "adam" : "sgd", o.cfg.lr, o.cfg.epochs, o.cfg.batch,
             (long long)r.train_view.count, o.per_class > 0 ? " (per-class budget)" : "");
    if (train_evaluate(&r, &o, &err))
        goto done;
    if (o.out && (train_write_weights(&r, &o, how) || train_write_result(&r, &o)))
        goto done;
    status = 0;
done:
    train_run_free(&r);
    return status;
}
