/*
 * cmd_evaluate.c - `sldd evaluate`: a replayed payload or trained weights on
 * a labelled data set.  For gastric data: patch accuracy with per-class
 * figures and the confusion matrix, image-level Sen / Spe / HM at delta
 * (Eqs. 10-12), the ROC curve and AUC over delta, and the delta that
 * maximises HM on the validation split.  For Fashion-MNIST: accuracy,
 * per-class recall and the confusion matrix.
 *
 * `sldd replay` is the same command restricted to payloads: Algorithm 2
 * followed by evaluation.  At a receiving site `--bundle ID --dir NODE`
 * evaluates a received bundle (its stored theta_opt, nd_detect.h) on the
 * node's own data set (node.conf `data:`) unless --data names another.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "nd_buf.h"
#include "nd_cli_dir.h"
#include "nd_config.h"
#include "nd_data.h"
#include "nd_buf.h"
#include "nd_detect.h"
#include "nd_infer.h"
#include "nd_report.h"
#include "sd_distill.h"
#include "sb_parse.h"

static void evaluate_usage(FILE *f, const char *cmd)
{
    int replay = !strcmp(cmd, "replay");
    fprintf(f,
            "usage: sldd %s %s --data SOURCE [--split val|test]\n"
            "                     [--delta D] [--roc OUT.png] [--json] [--device cpu|cuda]\n"
            "%s\n",
            cmd, replay ? "--model PAYLOAD" : "(--model PAYLOAD | --weights FILE)",
            replay ? ""
                   : "       sldd evaluate --bundle ID --dir NODE [--data SOURCE] [--split ...]\n"
                     "                     [--delta D] [--roc OUT.png] [--json]\n");
    if (replay)
        fprintf(f, "Replays a distilled payload (Algorithm 2: theta_0 rebuilt from its seed, the\n"
                   "learned steps applied in order, theta_bn for prediction) and evaluates the\n"
                   "result like 'sldd evaluate'.\n\n");
    else
        fprintf(f, "Evaluates a replayed payload or trained weights on labelled data.\n\n");
    fprintf(f,
            "  --model PAYLOAD   a distilled payload (sldd distill DIR/payload.pb)\n"
            "%s"
            "  --data SOURCE     a gastric data set directory (labels.csv, images/, masks/),\n"
            "                    or 'fashion-mnist'; with --bundle the node's own by default\n"
            "  --split S         val or test (test)\n"
            "  --delta D         image-level threshold in [0,1] (0.4)\n"
            "  --roc OUT.png     write the ROC curve of the split (gastric data)\n"
            "  --json            print every figure as one JSON object instead of the text\n"
            "  --device D        compute backend: cpu (default) or cuda\n"
            "\n"
            "Gastric data: patch accuracy (images with masks), per-class recall and precision,\n"
            "the I/N/P confusion matrix; per image r = Num(P)/(Num(N)+Num(P)) and\n"
            "Sen, Spe, HM at delta; the ROC curve and AUC over delta; and the delta that\n"
            "maximises HM on the val split, applied to the evaluated split.\n",
            replay ? ""
                   : "  --weights FILE    trained weights (sldd train DIR/weights.sldw)\n"
                     "  --bundle ID       a bundle in NODE's store (received or own; a unique\n"
                     "                    prefix), with --dir NODE\n");
}

/* Fashion-MNIST (or any non-patch data nd_data opens): accuracy and the
 * confusion matrix of the replayed / trained model. */
static int evaluate_plain(nd_infer *inf, const char *source, int split, int json,
                          const char *bundle, const char *cmd)
{
    sd_error err = {0};
    nd_data ds;
    if (nd_data_open(&ds, source, 0, &err)) {
        fprintf(stderr, "sldd %s: %s\n", cmd, err.msg);
        return 1;
    }
    int status = 1;
    const sd_data_view *v = split == SD_SPLIT_VAL ? &ds.val : &ds.test;
    const sd_model_spec *s = &inf->m->spec;
    if (v->c != s->in_c || v->h != s->in_h || v->w != s->in_w || v->classes != s->classes) {
        fprintf(stderr,
                "sldd %s: the model takes %dx%dx%d inputs with %d classes, %s has %dx%dx%d with "
                "%d: wrong model for this data\n",
                cmd, s->in_c, s->in_h, s->in_w, s->classes, source, v->c, v->h, v->w, v->classes);
        goto out;
    }
    int K = s->classes;
    int64_t *conf = calloc((size_t)K * (size_t)K, sizeof *conf);
    double acc = 0;
    if (!conf || sd_weights_evaluate(inf->w, v, 0, &acc, conf, NULL, &err)) {
        fprintf(stderr, "sldd %s: %s\n", cmd, conf ? err.msg : "out of memory");
        free(conf);
        goto out;
    }
    if (json) {
        nd_buf b;
        nd_buf_init(&b, 0);
        nd_buf_str(&b, "{");
        if (bundle) {
            nd_buf_str(&b, "\"bundle\":");
            nd_buf_json_str(&b, bundle);
            nd_buf_str(&b, ",");
        }
        nd_buf_str(&b, "\"data\":");
        nd_buf_json_str(&b, source);
        nd_buf_printf(&b, ",\"split\":\"%s\",\"samples\":%lld,", sd_split_name(split),
                      (long long)v->count);
        nd_buf_json_fig(&b, "accuracy", v->count ? acc : NAN);
        nd_buf_str(&b, ",\"confusion\":[");
        for (int i = 0; i < K * K; i++)
            nd_buf_printf(&b, "%lld%s", (long long)conf[i], i + 1 < K * K ? "," : "]}\n");
        if (b.failed) {
            fprintf(stderr, "sldd %s: out of memory\n", cmd);
            nd_buf_free(&b);
            free(conf);
            goto out;
        }
        fputs(b.data, stdout);
        nd_buf_free(&b);
    } else {
        printf("model:   %s\ndata:    %s, split %s: %lld samples\naccuracy %.4f\n", inf->label,
               source, sd_split_name(split), (long long)v->count, acc);
        printf("confusion (rows: truth, columns: prediction)\n%10s", "");
        for (int j = 0; j < K; j++)
            printf(" %7.7s", ds.class_names ? ds.class_names[j] : "?");
        printf("   recall\n");
        for (int i = 0; i < K; i++) {
            int64_t row = 0;
            printf("%10.10s", ds.class_names ? ds.class_names[i] : "?");
            for (int j = 0; j < K; j++) {
                printf(" %7lld", (long long)conf[i * K + j]);
                row += conf[i * K + j];
            }
            if (row)
                printf("   %.3f\n", (double)conf[i * K + i] / (double)row);
            else
                printf("   undefined\n");
        }
    }
    free(conf);
    status = 0;
out:
    nd_data_close(&ds);
    return status;
}

typedef struct evaluate_args {
    const char *cmd, *model, *weights, *data, *roc, *device, *bundle, *dir;
    int replay, split, fmnist, json;
    double delta;
} evaluate_args;

/* --bundle without --data: the node's own data set (node.conf data:). */
static int evaluate_node_data(evaluate_args *a)
{
    static nd_config cfg; /* a->data points into it until the command ends */
    sc_error e = {0, ""};
    if (nd_config_load(a->dir, &cfg, &e)) {
        fprintf(stderr, "sldd evaluate: %s\n", e.msg);
        return -1;
    }
    if (!cfg.data[0]) {
        fprintf(stderr,
                "sldd evaluate: node %s has no data set (node.conf 'data:'); give "
                "--data SOURCE\n",
                a->dir);
        return -1;
    }
    a->data = cfg.data;
    return 0;
}

/* -1 to go on, else the exit status (0 after --help). */
static int evaluate_parse(int argc, char **argv, evaluate_args *a)
{
    enum {
        O_MODEL = 256,
        O_WEIGHTS,
        O_DATA,
        O_SPLIT,
        O_DELTA,
        O_ROC,
        O_JSON,
        O_DEVICE,
        O_BUNDLE,
        O_DIR
    };
    static const struct option opts[] = {{"model", required_argument, 0, O_MODEL},
                                         {"weights", required_argument, 0, O_WEIGHTS},
                                         {"data", required_argument, 0, O_DATA},
                                         {"split", required_argument, 0, O_SPLIT},
                                         {"delta", required_argument, 0, O_DELTA},
                                         {"roc", required_argument, 0, O_ROC},
                                         {"json", no_argument, 0, O_JSON},
                                         {"device", required_argument, 0, O_DEVICE},
                                         {"bundle", required_argument, 0, O_BUNDLE},
                                         {"dir", required_argument, 0, O_DIR},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *cmd = a->cmd;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_MODEL: a->model = optarg; break;
        case O_WEIGHTS:
            if (a->replay) {
                fprintf(stderr, "sldd replay: replays payloads only; use 'sldd evaluate "
                                "--weights' for trained weights\n");
                return 2;
            }
            a->weights = optarg;
            break;
        case O_DATA: a->data = optarg; break;
        case O_SPLIT:
            if (!strcmp(optarg, "val"))
                a->split = SD_SPLIT_VAL;
            else if (!strcmp(optarg, "test"))
                a->split = SD_SPLIT_TEST;
            else {
                fprintf(stderr, "sldd %s: --split is val or test, not '%s'\n", cmd, optarg);
                return 2;
            }
            break;
        case O_DELTA: {
            if (sb_parse_double(optarg, 0, 1, &a->delta)) {
                fprintf(stderr, "sldd %s: --delta '%s' is not a number in [0,1]\n", cmd, optarg);
                return 2;
            }
            break;
        }
        case O_ROC: a->roc = optarg; break;
        case O_JSON: a->json = 1; break;
        case O_DEVICE: a->device = optarg; break;
        case O_BUNDLE: a->bundle = optarg; break;
        case O_DIR: a->dir = optarg; break;
        case 'h': evaluate_usage(stdout, cmd); return 0;
        default:
            fprintf(stderr, "sldd %s: unknown or incomplete option '%s'\n", cmd, argv[optind - 1]);
            evaluate_usage(stderr, cmd);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sldd %s: unexpected argument '%s'\n", cmd, argv[optind]);
        return 2;
    }
    if (a->replay && (a->bundle || a->dir)) {
        fprintf(stderr, "sldd replay: --bundle is for 'sldd evaluate'\n");
        return 2;
    }
    if (!!a->model + !!a->weights + !!a->bundle != 1) {
        fprintf(stderr, a->replay ? "sldd replay: --model PAYLOAD is required\n"
                                  : "sldd evaluate: give exactly one of --model PAYLOAD, "
                                    "--weights FILE or --bundle ID\n");
        return 2;
    }
    if (a->dir && !a->bundle) {
        fprintf(stderr, "sldd evaluate: --dir NODE is for --bundle ID\n");
        return 2;
    }
    if (a->bundle)
        a->dir = nd_cli_node_dir(a->dir);
    if (a->bundle && !a->data && evaluate_node_data(a)) {
        return 1;
    }
    if (!a->data) {
        fprintf(stderr, "sldd %s: --data SOURCE is required\n", cmd);
        return 2;
    }
    a->fmnist = !strcmp(a->data, "fashion-mnist");
    if (a->fmnist && a->roc) {
        fprintf(stderr, "sldd %s: --roc needs gastric data (image-level detection)\n", cmd);
        return 2;
    }
    return -1;
}

/* --roc of a gastric report, then the report as text or (--json) JSON. */
static int evaluate_outputs(const evaluate_args *a, const nd_report *rep)
{
    sd_error err = {0};
    if (a->roc && nd_report_roc_png(rep, a->roc, &err)) {
        fprintf(stderr, "sldd %s: ROC: %s\n", a->cmd, err.msg);
        return -1;
    }
    if (a->json) {
        nd_report_json(rep, stdout);
        putchar('\n');
        return 0;
    }
    nd_report_print(rep, stdout);
    if (a->roc)
        printf("ROC curve: %s\n", a->roc);
    return 0;
}

int cmd_evaluate(int argc, char **argv)
{
    evaluate_args a = {0};
    a.cmd = !strcmp(argv[0], "replay") ? "replay" : "evaluate";
    a.replay = !strcmp(a.cmd, "replay");
    a.device = "cpu";
    a.split = SD_SPLIT_TEST;
    a.delta = SD_DETECT_DELTA;
    int rc = evaluate_parse(argc, argv, &a);
    if (rc >= 0)
        return rc;
    const char *cmd = a.cmd;
    sd_error err = {0};
    sd_backend *be = NULL;
    nd_infer inf = {0};
    sd_dataset *ds = NULL;
    nd_report rep = {0};
    int status = 1;
    if (sd_backend_create(&be, a.device, &err)) {
        fprintf(stderr, "sldd %s: %s\n", cmd, err.msg);
        goto out;
    }
    /* the data set is checked before the (possibly long) replay */
    if (!a.fmnist && sd_dataset_open(&ds, a.data, SD_LOAD_VAL | SD_LOAD_TEST, &err)) {
        fprintf(stderr, "sldd %s: %s\n", cmd, err.msg);
        goto out;
    }
    char bid[33] = "";
    if ((a.bundle  ? nd_bundle_classifier(a.dir, a.bundle, be, &inf, bid, NULL, &err)
         : a.model ? nd_infer_from_payload_file(&inf, a.model, be, &err)
                   : nd_infer_from_weights_file(&inf, a.weights, be, &err))) {
        fprintf(stderr, "sldd %s: %s\n", cmd, err.msg);
        goto out;
    }
    if (a.bundle && !a.json)
        printf("bundle:  %s, evaluated on %s\n", bid, a.data);
    if (a.fmnist) {
        status = evaluate_plain(&inf, a.data, a.split, a.json, a.bundle ? bid : NULL, cmd);
        goto out;
    }
    if (nd_infer_check_gastric(&inf, &err)) {
        fprintf(stderr, "sldd %s: %s: %s\n", cmd,
                a.model     ? a.model
                : a.weights ? a.weights
                            : a.bundle,
                err.msg);
        goto out;
    }
    if (nd_report_make(&rep, &inf, ds, a.split, a.delta, &err)) {
        fprintf(stderr, "sldd %s: %s\n", cmd, err.msg);
        goto out;
    }
    rep.bundle = a.bundle ? bid : NULL;
    if (evaluate_outputs(&a, &rep))
        goto out;
    status = 0;
out:
    nd_report_free(&rep);
    nd_infer_free(&inf);
    sd_dataset_destroy(ds);
    sd_backend_destroy(be);
    return status;
}
