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
    fprintf(f,
            "usage: sldd train --data SOURCE --arch NAME [options]\n"
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

int cmd_train(int argc, char **argv)
{
    sd_train_config cfg;
    sd_train_config_defaults(&cfg);
    const char *data = NULL, *arch = NULL, *out = NULL, *device = "cpu";
    long long per_class = 0, depth = 0, width = 0, seed = 0, v;
    int quiet = 0, split = SD_SPLIT_TEST, lr_set = 0;
    double delta = SD_DETECT_DELTA;
    enum { O_DATA = 256, O_ARCH, O_DEPTH, O_WIDTH, O_SEED, O_PERCLASS, O_OPT, O_LR, O_MOM, O_WD,
           O_EPOCHS, O_BATCH, O_DECAY, O_MAXSTEPS, O_SPLIT, O_DELTA, O_OUT, O_DEVICE, O_QUIET };
    static const struct option opts[] = {
        {"data", required_argument, 0, O_DATA},         {"arch", required_argument, 0, O_ARCH},
        {"depth", required_argument, 0, O_DEPTH},       {"width", required_argument, 0, O_WIDTH},
        {"seed", required_argument, 0, O_SEED},
        {"per-class", required_argument, 0, O_PERCLASS},
        {"optimizer", required_argument, 0, O_OPT},     {"lr", required_argument, 0, O_LR},
        {"momentum", required_argument, 0, O_MOM},
        {"weight-decay", required_argument, 0, O_WD},
        {"epochs", required_argument, 0, O_EPOCHS},     {"batch", required_argument, 0, O_BATCH},
        {"decay-epochs", required_argument, 0, O_DECAY},
        {"max-steps", required_argument, 0, O_MAXSTEPS},
        {"split", required_argument, 0, O_SPLIT},       {"delta", required_argument, 0, O_DELTA},
        {"out", required_argument, 0, O_OUT},           {"device", required_argument, 0, O_DEVICE},
        {"quiet", no_argument, 0, O_QUIET},             {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int c, idx = 0;
    optind = 1;
    opterr = 0;
#define INTOPT(dst, lo, hi)                                                                  \
    do {                                                                                     \
        if (nd_parse_int(optarg, lo, hi, &v)) {                                                  \
            fprintf(stderr, "sldd train: --%s '%s' is not an integer in %lld..%lld\n",       \
                    opts[idx].name, optarg, (long long)(lo), (long long)(hi));               \
            return 2;                                                                        \
        }                                                                                    \
        dst = v;                                                                             \
    } while (0)
#define DBLOPT(dst, zero_ok)                                                                 \
    do {                                                                                     \
        if (parse_pos(optarg, &dst, zero_ok)) {                                              \
            fprintf(stderr, "sldd train: --%s '%s' is not a %s number\n", opts[idx].name,    \
                    optarg, zero_ok ? "non-negative" : "positive");                          \
            return 2;                                                                        \
        }                                                                                    \
    } while (0)
    while ((c = getopt_long(argc, argv, "h", opts, &idx)) != -1) {
        switch (c) {
        case O_DATA: data = optarg; break;
        case O_ARCH: arch = optarg; break;
        case O_DEPTH: INTOPT(depth, 1, 16); break;
        case O_WIDTH: INTOPT(width, 1, 4096); break;
        case O_SEED: INTOPT(seed, 0, INT64_MAX); break;
        case O_PERCLASS: INTOPT(per_class, 1, INT64_MAX); break;
        case O_OPT:
            if (!strcmp(optarg, "sgd"))
                cfg.optimizer = SD_OPT_SGD;
            else if (!strcmp(optarg, "adam"))
                cfg.optimizer = SD_OPT_ADAM;
            else {
                fprintf(stderr, "sldd train: --optimizer is sgd or adam, not '%s'\n", optarg);
                return 2;
            }
            break;
        case O_LR: DBLOPT(cfg.lr, 0); lr_set = 1; break;
        case O_MOM:
            DBLOPT(cfg.momentum, 1);
            if (cfg.momentum >= 1) {
                fprintf(stderr, "sldd train: --momentum must be below 1\n");
                return 2;
            }
            break;
        case O_WD: DBLOPT(cfg.weight_decay, 1); break;
        case O_EPOCHS: INTOPT(cfg.epochs, 1, 1000000); break;
        case O_BATCH: INTOPT(cfg.batch, 1, 65536); break;
        case O_DECAY: INTOPT(cfg.decay_epochs, 1, 1000000); break;
        case O_MAXSTEPS: INTOPT(cfg.max_steps, 1, INT64_MAX); break;
        case O_SPLIT:
            if (!strcmp(optarg, "val"))
                split = SD_SPLIT_VAL;
            else if (!strcmp(optarg, "test"))
                split = SD_SPLIT_TEST;
            else {
                fprintf(stderr, "sldd train: --split is val or test, not '%s'\n", optarg);
                return 2;
            }
            break;
        case O_DELTA:
            DBLOPT(delta, 1);
            if (delta > 1) {
                fprintf(stderr, "sldd train: --delta must be in [0,1]\n");
                return 2;
            }
            break;
        case O_OUT: out = optarg; break;
        case O_DEVICE: device = optarg; break;
        case O_QUIET: quiet = 1; break;
        case 'h': train_usage(stdout); return 0;
        default:
            fprintf(stderr, "sldd train: unknown or incomplete option '%s'\n", argv[optind - 1]);
            train_usage(stderr);
            return 2;
        }
    }
#undef INTOPT
#undef DBLOPT
    if (optind < argc) {
        fprintf(stderr, "sldd train: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!data || !arch) {
        fprintf(stderr, "sldd train: --data SOURCE and --arch NAME are required\n");
        return 2;
    }
    if (!lr_set && cfg.optimizer == SD_OPT_ADAM)
        cfg.lr = 0.001;
    cfg.seed = (uint64_t)seed;
    sd_model_spec spec = {0};
    sd_error err = {0};
    if (sd_model_spec_parse_arch(&spec, arch, &err)) {
        fprintf(stderr, "sldd train: %s\n", err.msg);
        return 2;
    }
    spec.depth = (int)depth;
    spec.width = (int)width;

    nd_data ds;
    if (nd_data_open(&ds, data, 0, &err)) {
        fprintf(stderr, "sldd train: %s\n", err.msg);
        return 1;
    }
    int status = 1;
    sd_backend *be = NULL;
    sd_model *m = NULL;
    sd_real *theta = NULL, *th0 = NULL;
    float *bn = NULL, *theta_host = NULL;
    int32_t *labels = NULL;
    int64_t *sub_idx = NULL, n_sub = 0, taken[16] = {0};
    sd_subset_data sub = {0};
    sd_data_view train_view = ds.train;
    train_progress tp = {quiet, 0, 0, NULL, NULL};
    nd_infer inf = {0};
    nd_report rep = {0};
    char path[4096], msg[1024];
    spec.in_c = ds.train.c;
    spec.in_h = ds.train.h;
    spec.in_w = ds.train.w;
    spec.classes = ds.train.classes;
    if (sd_model_create(&m, &spec, &err) || sd_backend_create(&be, device, &err)) {
        fprintf(stderr, "sldd train: %s\n", err.msg);
        goto done;
    }
    if (out && mkdir(out, 0755) && errno != EEXIST) {
        fprintf(stderr, "sldd train: cannot create %s: %s\n", out, strerror(errno));
        goto done;
    }
    int K = m->spec.classes;
    if (per_class > 0) {
        if (K > 16) {
            fprintf(stderr, "sldd train: --per-class supports at most 16 classes\n");
            goto done;
        }
        int64_t cnt = ds.train.count;
        labels = malloc((size_t)cnt * sizeof *labels);
        if (!labels) {
            fprintf(stderr, "sldd train: out of memory\n");
            goto done;
        }
        /* labels without cutting a single patch */
        for (int64_t i = 0; i < cnt; i++)
            labels[i] = ds.gastric ? ds.ix[SD_SPLIT_TRAIN].p[i].label : ds.fm[0].y[i];
        if (sd_train_balanced_subset(labels, cnt, K, per_class, cfg.seed, &sub_idx, &n_sub, taken,
                                     &err)) {
            fprintf(stderr, "sldd train: %s\n", err.msg);
            goto done;
        }
        sub = (sd_subset_data){.base = &ds.train, .index = sub_idx, .count = n_sub};
        sd_data_view_subset(&train_view, &sub);
    }
    theta_host = malloc(m->n_theta * sizeof *theta_host);
    th0 = malloc(m->n_theta * sizeof *th0);
    bn = calloc(m->n_bn + 1, sizeof *bn);
    if (!theta_host || !th0 || !bn || be->alloc(be, &err, m->n_theta * sizeof(sd_real), (void **)&theta)) {
        fprintf(stderr, "sldd train: out of memory\n");
        goto done;
    }
    if (sd_init_theta(m, cfg.seed, th0, &err) ||
        be->upload(be, &err, theta, th0, m->n_theta * sizeof *th0)) {
        fprintf(stderr, "sldd train: initial weights: %s\n", err.msg);
        goto done;
    }
    char label[64];
    sd_model_spec_label(&m->spec, label, sizeof label);
    if (!quiet) {
        fprintf(stderr, "training %s on %s: %lld samples", label, data,
                (long long)train_view.count);
        if (per_class > 0) {
            fprintf(stderr, " (");
            for (int k = 0; k < K; k++)
                fprintf(stderr, "%s%s %lld", k ? ", " : "", ds.class_names[k],
                        (long long)taken[k]);
            fprintf(stderr, ")");
        }
        fprintf(stderr, ", %s lr %g, %d epochs of batch %d on %s\n",
                cfg.optimizer == SD_OPT_ADAM ? "adam" : "sgd", cfg.lr, cfg.epochs, cfg.batch,
                be->name);
    }
    tp.cap = cfg.epochs + 1;
    tp.epoch = calloc((size_t)tp.cap, sizeof *tp.epoch);
    tp.loss = calloc((size_t)tp.cap, sizeof *tp.loss);
    if (!tp.epoch || !tp.loss) {
        fprintf(stderr, "sldd train: out of memory\n");
        goto done;
    }
    if (sd_train(m, be, &train_view, &cfg, theta, bn, on_train_progress, &tp, &err)) {
        fprintf(stderr, "sldd train: %s\n", err.msg);
        goto done;
    }
    char how[256];
    snprintf(how, sizeof how, "trained with %s lr %g, %d epochs of batch %d on %lld samples%s",
             cfg.optimizer == SD_OPT_ADAM ? "adam" : "sgd", cfg.lr, cfg.epochs, cfg.batch,
             (long long)train_view.count, per_class > 0 ? " (per-class budget)" : "");
    /* evaluation, as 'sldd evaluate' does it */
    double acc = NAN;
    if (ds.gastric) {
        if (nd_infer_from_theta(&inf, &m->spec, theta, bn, ds.prep.psize, ds.prep.stride,
                                ds.prep.osize, ds.prep.mean, ds.prep.std, be, msg, sizeof msg)) {
            fprintf(stderr, "sldd train: %s\n", msg);
            goto done;
        }
        snprintf(inf.label, sizeof inf.label, "trained %s (%lld samples)", label,
                 (long long)train_view.count);
        if (nd_report_make(&rep, &inf, ds.ds, split, delta, &err)) {
            fprintf(stderr, "sldd train: %s\n", err.msg);
            goto done;
        }
        nd_report_print(&rep, stdout);
    } else {
        const sd_data_view *ev = split == SD_SPLIT_VAL ? &ds.val : &ds.test;
        if (sd_evaluate(m, be, theta, bn, ev, 0, &acc, NULL, NULL, &err)) {
            fprintf(stderr, "sldd train: %s\n", err.msg);
            goto done;
        }
        printf("trained %s: %s accuracy %.4f over %lld samples\n", label, sd_split_name(split),
               acc, (long long)ev->count);
    }
    if (out) {
        if (be->download(be, &err, th0, theta, m->n_theta * sizeof *th0)) {
            fprintf(stderr, "sldd train: %s\n", err.msg);
            goto done;
        }
        for (size_t i = 0; i < m->n_theta; i++)
            theta_host[i] = (float)th0[i];
        nd_weights w = {.spec = m->spec, .theta = theta_host, .n_theta = m->n_theta,
                        .bn = bn, .n_bn = m->n_bn, .seed = cfg.seed, .synthetic = ds.synthetic};
        if (ds.gastric) {
            w.norm_mean = ds.prep.mean;
            w.norm_std = ds.prep.std;
            w.patch_size = ds.prep.psize;
            w.patch_stride = ds.prep.stride;
            w.patch_resize = ds.prep.osize;
        } else {
            w.norm_mean = SD_FMNIST_MEAN;
            w.norm_std = SD_FMNIST_STD;
        }
        snprintf(w.data, sizeof w.data, "%s", data);
        snprintf(w.trained, sizeof w.trained, "%s", how);
        snprintf(path, sizeof path, "%s/weights.sldw", out);
        if (nd_weights_write(path, &w, msg, sizeof msg)) {
            fprintf(stderr, "sldd train: %s\n", msg);
            goto done;
        }
        printf("weights: %s\n", path);
        snprintf(path, sizeof path, "%s/result.json", out);
        FILE *f = fopen(path, "w");
        if (!f) {
            fprintf(stderr, "sldd train: cannot write %s: %s\n", path, strerror(errno));
            goto done;
        }
        fprintf(f, "{\"kind\":\"train\",\"arch\":\"%s\",\"samples\":%lld,\"per_class\":%lld,"
                   "\"optimizer\":\"%s\",\"lr\":%g,\"epochs\":%d,\"batch\":%d,\"seed\":%lld,"
                   "\"final_loss\":%.6g,\"report\":",
                label, (long long)train_view.count, per_class,
                cfg.optimizer == SD_OPT_ADAM ? "adam" : "sgd", cfg.lr, cfg.epochs, cfg.batch,
                seed, tp.n ? tp.loss[tp.n - 1] : 0.0);
        if (ds.gastric)
            nd_report_json(&rep, f);
        else
            fprintf(f, "{\"accuracy\":%.6f}", acc);
        fputs("}\n", f);
        if (fclose(f)) {
            fprintf(stderr, "sldd train: cannot write %s\n", path);
            goto done;
        }
        snprintf(path, sizeof path, "%s/curves.png", out);
        const double *ys[1] = {tp.loss};
        const char *names[1] = {"training loss (epoch mean)"};
        if (tp.n >= 2 &&
            sd_plot_lines_png(path, "training", "epoch", "", tp.epoch, tp.n, ys, names, 1, 0,
                              &err))
            fprintf(stderr, "sldd train: %s\n", err.msg);
    }
    status = 0;
done:
    nd_report_free(&rep);
    nd_infer_free(&inf);
    free(tp.epoch);
    free(tp.loss);
    sd_subset_data_free(&sub);
    free(sub_idx);
    free(labels);
    free(theta_host);
    free(th0);
    free(bn);
    if (be)
        be->free(be, theta);
    sd_model_destroy(m);
    sd_backend_destroy(be);
    nd_data_close(&ds);
    return status;
}
