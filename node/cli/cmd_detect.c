/*
 * cmd_detect.c - `sldd detect IMAGE.png`: gastritis detection on one whole
 * X-ray image (paper §3.3, Eq. 9) with a replayed payload or trained
 * weights, printing the decision, r and the patch counts, and writing a
 * heat map of the patch classes.
 *
 * The options are gathered into detect_opts first and the classifier is
 * built in detect_load_model(); another model source (say, an imported
 * bundle in a node directory) is one more option in opts[], one more field
 * and one more branch there.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "nd_buf.h"
#include "nd_detect.h"
#include "nd_dicom_file.h"
#include "nd_dicom_results.h"
#include "nd_infer.h"
#include "sd_png.h"
#include "sb_parse.h"

typedef struct detect_opts {
    const char *image;
    const char *model;  /* --model payload.pb */
    const char *bundle; /* --bundle ID --dir NODE: an imported bundle (nd_detect.h) */
    const char *node_dir;
    const char *weights;   /* --weights FILE (sldd train) */
    const char *heatmap;   /* --heatmap OUT.png */
    const char *dicom_out; /* --dicom-out DIR: SC + SR (docs/dicom.md) */
    const char *device;
    double delta;
    int json;
    int repeat; /* --repeat N: run detection N times (timing) */
} detect_opts;

static void detect_usage(FILE *f)
{
    fprintf(f, "usage: sldd detect IMAGE.png (--model PAYLOAD | --weights FILE |\n"
               "                   --bundle ID --dir NODE) [--delta D]\n"
               "                   [--heatmap OUT.png] [--device cpu|cuda] [--json]\n"
               "                   [--dicom-out DIR]\n"
               "\n"
               "Gastritis detection on a whole gastric X-ray image (paper Eq. 9).  The image\n"
               "is cut into the patch grid the model was made for (patch size, stride, resize\n"
               "and normalisation come from the model), every patch is classified as I\n"
               "(outside the stomach), N or P, and\n"
               "    r = Num(P) / (Num(N) + Num(P)),  gastritis iff r >= delta.\n"
               "With no N or P patch the result is 'undetermined'.\n"
               "\n"
               "  --model PAYLOAD    a distilled payload (sldd distill DIR/payload.pb), replayed\n"
               "                     from the shared initial weights (Algorithm 2)\n"
               "  --weights FILE     trained weights (sldd train DIR/weights.sldw)\n"
               "  --bundle ID        a bundle held by node NODE (--dir): one it imported (state\n"
               "                     available) or its own; the detection is audited there.\n"
               "                     Its theta_opt, stored at import, is loaded on --device\n"
               "                     without replaying (a bundle without one is replayed once\n"
               "                     and its theta_opt stored)\n"
               "  --delta D          decision threshold in [0,1] (0.4, the paper's)\n"
               "  --heatmap OUT.png  write the image with N patches green and P patches red\n"
               "  --dicom-out DIR    IMAGE is DICOM: write DIR/heatmap-sc.dcm (Secondary\n"
               "                     Capture) and DIR/report-sr.dcm (TID 1500 SR) under its\n"
               "                     study (docs/dicom.md); they carry the patient's identity\n"
               "  --device D         compute backend: cpu (default) or cuda\n"
               "  --json             print one JSON object instead of text\n"
               "  --repeat N         classify the image N times and report the best time\n"
               "\n"
               "Exit status: 0 when detection ran (whatever the decision), 1 on bad input,\n"
               "2 on a usage error.\n");
}

/* Does the PNG carry a text chunk saying it is synthetic (what `sldd dataset
 * synth` writes)?  Only the chunk framing is walked; anything odd is "no". */
static int png_says_synthetic(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    unsigned char sig[8], hdr[8];
    int found = 0;
    if (fread(sig, 1, 8, f) != 8 || memcmp(sig, "\x89PNG\r\n\x1a\n", 8)) {
        fclose(f);
        return 0;
    }
    for (int chunks = 0; !found && chunks < 10000 && fread(hdr, 1, 8, f) == 8; chunks++) {
        unsigned long len = (unsigned long)hdr[0] << 24 | (unsigned long)hdr[1] << 16 |
                            (unsigned long)hdr[2] << 8 | hdr[3];
        if (len > (1ul << 30))
            break;
        if ((!memcmp(hdr + 4, "tEXt", 4) || !memcmp(hdr + 4, "iTXt", 4)) && len < 65536) {
            char *buf = malloc(len + 1);
            if (!buf || fread(buf, 1, len, f) != len) {
                free(buf);
                break;
            }
            buf[len] = '\0';
            for (unsigned long i = 0; i + 9 <= len && !found; i++)
                found = !memcmp(buf + i, "SYNTHETIC", 9);
            free(buf);
            if (fseek(f, 4, SEEK_CUR))
                break;
        } else if (!memcmp(hdr + 4, "IEND", 4) || fseek(f, (long)len + 4, SEEK_CUR)) {
            break;
        }
    }
    fclose(f);
    return found;
}

static int parse_delta(const char *s, double *out)
{
    double v;
    if (sb_parse_double(s, 0, 1, &v))
        return -1;
    *out = v;
    return 0;
}

/* Build the classifier the options name: a bundle's stored theta_opt (or
 * its payload replayed once and stored, nd_detect.h), a payload replayed
 * here, or a weights file.  Returns 0, or 1 with err set. */
static int detect_load_model(const detect_opts *o, sd_backend *be, nd_infer *inf,
                             char bundle_id[33], int *replayed, sd_error *err)
{
    int rc;
    uint64_t before = sd_debug_replay_count();
    if (o->bundle) {
        rc = nd_bundle_classifier(o->node_dir, o->bundle, be, inf, bundle_id, NULL, err);
        if (!rc && err->msg[0])
            fprintf(stderr, "sldd detect: warning: %s\n", err->msg);
    } else if (o->model) {
        rc = nd_infer_from_payload_file(inf, o->model, be, err);
    } else {
        rc = nd_infer_from_weights_file(inf, o->weights, be, err);
    }
    *replayed = sd_debug_replay_count() != before;
    if (rc)
        return 1;
    if (nd_infer_check_gastric(inf, err)) {
        sd_error_wrap(err, "%.300s", o->bundle ? o->bundle : o->model ? o->model : o->weights);
        nd_infer_free(inf);
        return 1;
    }
    return 0;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char *decision_text(int d)
{
    return d == SD_DETECT_POSITIVE   ? "gastritis"
           : d == SD_DETECT_NEGATIVE ? "non-gastritis"
                                     : "undetermined";
}

/* -1 to go on, else the exit status (0 after --help). */
static int detect_parse(int argc, char **argv, detect_opts *o)
{
    enum {
        O_MODEL = 256,
        O_WEIGHTS,
        O_DELTA,
        O_HEATMAP,
        O_DEVICE,
        O_JSON,
        O_REPEAT,
        O_BUNDLE,
        O_DIR,
        O_DICOM_OUT
    };
    static const struct option opts[] = {{"model", required_argument, 0, O_MODEL},
                                         {"weights", required_argument, 0, O_WEIGHTS},
                                         {"delta", required_argument, 0, O_DELTA},
                                         {"heatmap", required_argument, 0, O_HEATMAP},
                                         {"device", required_argument, 0, O_DEVICE},
                                         {"json", no_argument, 0, O_JSON},
                                         {"repeat", required_argument, 0, O_REPEAT},
                                         {"help", no_argument, 0, 'h'},
                                         {"bundle", required_argument, 0, O_BUNDLE},
                                         {"dir", required_argument, 0, O_DIR},
                                         {"dicom-out", required_argument, 0, O_DICOM_OUT},
                                         {0, 0, 0, 0}};
    int c;
    long long v;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_MODEL: o->model = optarg; break;
        case O_WEIGHTS: o->weights = optarg; break;
        case O_BUNDLE: o->bundle = optarg; break;
        case O_DIR: o->node_dir = optarg; break;
        case O_DELTA:
            if (parse_delta(optarg, &o->delta)) {
                fprintf(stderr, "sldd detect: --delta '%s' is not a number in [0,1]\n", optarg);
                return 2;
            }
            break;
        case O_HEATMAP: o->heatmap = optarg; break;
        case O_DICOM_OUT: o->dicom_out = optarg; break;
        case O_DEVICE: o->device = optarg; break;
        case O_JSON: o->json = 1; break;
        case O_REPEAT:
            if (nd_parse_int(optarg, 1, 1000, &v)) {
                fprintf(stderr, "sldd detect: --repeat '%s' is not an integer in 1..1000\n",
                        optarg);
                return 2;
            }
            o->repeat = (int)v;
            break;
        case 'h': detect_usage(stdout); return 0;
        default:
            fprintf(stderr, "sldd detect: unknown or incomplete option '%s'\n", argv[optind - 1]);
            detect_usage(stderr);
            return 2;
        }
    }
    if (optind < argc)
        o->image = argv[optind++];
    if (optind < argc) {
        fprintf(stderr, "sldd detect: one image at a time (unexpected '%s')\n", argv[optind]);
        return 2;
    }
    if (!o->image) {
        fprintf(stderr, "sldd detect: IMAGE.png is required\n");
        detect_usage(stderr);
        return 2;
    }
    if ((o->model != NULL) + (o->weights != NULL) + (o->bundle != NULL) != 1 ||
        !o->bundle != !o->node_dir) {
        fprintf(stderr, "sldd detect: give exactly one of --model PAYLOAD or --weights FILE, "
                        "or --bundle ID --dir NODE\n");
        return 2;
    }
    return -1;
}

static void print_json_string(const char *s)
{
    putchar('"');
    for (const char *q = s; *q; q++) {
        unsigned char ch = (unsigned char)*q;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

/* What one detection measured, for printing. */
typedef struct detect_figures {
    int w, h, depth, synthetic, replayed;
    double t_load, best;
    const char *backend;
} detect_figures;

static void detect_print(const detect_opts *o, const nd_infer *inf, const sd_detect_result *res,
                         const detect_figures *f)
{
    int total = res->gh * res->gw;
    if (o->json) {
        fputs("{\"image\":", stdout);
        print_json_string(o->image);
        printf(",\"width\":%d,\"height\":%d,\"synthetic\":%s,"
               "\"grid\":[%d,%d],\"patch\":%d,\"stride\":%d,\"input\":%d,"
               "\"I\":%d,\"N\":%d,\"P\":%d,",
               f->w, f->h, f->synthetic ? "true" : "false", res->gh, res->gw, inf->psize,
               inf->stride, inf->osize, res->num[0], res->num[1], res->num[2]);
        if (isfinite(res->r))
            printf("\"r\":%.6f,", res->r);
        else
            printf("\"r\":null,");
        printf("\"delta\":%g,\"decision\":\"%s\",\"load_seconds\":%.4f,\"detect_seconds\":%.4f,"
               "\"patches_per_second\":%.1f,\"backend\":\"%s\",\"replayed\":%s}\n",
               o->delta, decision_text(res->decision), f->t_load, f->best, total / f->best,
               f->backend, f->replayed ? "true" : "false");
        return;
    }
    printf("image:     %s (%dx%d, %d-bit)%s\n", o->image, f->w, f->h, f->depth,
           f->synthetic ? "  SYNTHETIC" : "");
    printf("model:     %s\n", inf->label);
    printf("grid:      %d x %d = %d patches of %dx%d, stride %d, network input %dx%d\n", res->gh,
           res->gw, total, inf->psize, inf->psize, inf->stride, inf->osize, inf->osize);
    printf("patches:   I %d  N %d  P %d\n", res->num[0], res->num[1], res->num[2]);
    if (isfinite(res->r))
        printf("r:         %.4f  (Num(P) / (Num(N) + Num(P)))\n", res->r);
    else
        printf("r:         undefined (no N or P patch)\n");
    if (res->decision == SD_DETECT_UNDETERMINED)
        printf("decision:  undetermined (no patch classified as stomach)\n");
    else
        printf("decision:  %s (r %s delta %.2f)\n", decision_text(res->decision),
               res->decision == SD_DETECT_POSITIVE ? ">=" : "<", o->delta);
    if (o->heatmap)
        printf("heat map:  %s\n", o->heatmap);
    printf("time:      model %.2f s%s, detection %.3f s (%.0f patches/s on %s)\n", f->t_load,
           f->replayed ? " (replayed)" : "", f->best, total / f->best, f->backend);
}

/* The heat map picture, titled with file, source and network. */
static int detect_heatmap(const detect_opts *o, const nd_infer *inf, const uint16_t *pix,
                          const sd_detect_result *res, const detect_figures *f, sd_error *err)
{
    char title[256], spec[64];
    const char *base = strrchr(o->image, '/');
    sd_model_spec_label(&inf->m->spec, spec, sizeof spec);
    snprintf(title, sizeof title, "%.100s - %s %s", base ? base + 1 : o->image, inf->kind, spec);
    sd_detect_params p;
    nd_infer_params(inf, o->delta, &p);
    return sd_detect_heatmap_png(o->heatmap, pix, f->w, f->h, &p, res, title,
                                 f->synthetic || inf->synthetic, 0, err);
}

int cmd_detect(int argc, char **argv)
{
    detect_opts o = {0};
    o.delta = SD_DETECT_DELTA;
    o.device = "cpu";
    o.repeat = 1;
    int rc = detect_parse(argc, argv, &o);
    if (rc >= 0)
        return rc;
    sd_error err = {0};
    uint16_t *pix = NULL;
    int status = 1;
    detect_figures fig = {0};
    sd_backend *be = NULL;
    nd_infer inf = {0};
    sd_detect_result res = {0};
    char bundle_id[33] = "";
    nd_image im; /* PNG or DICOM (docs/dicom.md) */
    char grid_note[160] = "";
    if (nd_image_read(o.image, &im, &err)) {
        fprintf(stderr, "sldd detect: %s\n", err.msg);
        goto out;
    }
    pix = im.pix;
    fig.w = im.w, fig.h = im.h, fig.depth = im.depth;
    fig.synthetic = png_says_synthetic(o.image);
    if (sd_backend_create(&be, o.device, &err)) {
        fprintf(stderr, "sldd detect: %s\n", err.msg);
        goto out;
    }
    fig.backend = be->name;
    double t0 = now_seconds();
    if (detect_load_model(&o, be, &inf, bundle_id, &fig.replayed, &err)) {
        fprintf(stderr, "sldd detect: %s\n", err.msg);
        goto out;
    }
    fig.t_load = now_seconds() - t0;
    if (nd_image_to_grid(&im, inf.mm_per_pixel, grid_note, sizeof grid_note, &err)) {
        fprintf(stderr, "sldd detect: %s: %s\n", o.image, err.msg);
        goto out;
    }
    pix = im.pix;
    fig.w = im.w, fig.h = im.h;
    if (grid_note[0] && !o.json)
        printf("grid:      %s\n", grid_note);
    if (sd_patch_grid_dim(fig.w, inf.psize, inf.stride) == 0 ||
        sd_patch_grid_dim(fig.h, inf.psize, inf.stride) == 0) {
        fprintf(stderr, "sldd detect: %s is %dx%d, smaller than one %dx%d patch of the model\n",
                o.image, fig.w, fig.h, inf.psize, inf.psize);
        goto out;
    }
    fig.best = INFINITY;
    for (int rep = 0; rep < o.repeat; rep++) {
        sd_detect_result_free(&res);
        double t1 = now_seconds();
        if (nd_infer_detect(&inf, pix, fig.w, fig.h, o.delta, &res, &err)) {
            fprintf(stderr, "sldd detect: %s: %s\n", o.image, err.msg);
            goto out;
        }
        fig.best = fmin(fig.best, now_seconds() - t1);
    }
    nd_dicom_results_opts dro = {o.image, o.dicom_out, o.model, bundle_id, NULL};
    if (o.dicom_out &&
        (!im.dicom || nd_dicom_results_write(&dro, &inf, pix, fig.w, fig.h, &res, o.delta, &err))) {
        fprintf(stderr, "sldd detect: --dicom-out: %s\n",
                im.dicom ? err.msg : "IMAGE is not DICOM");
        goto out;
    }
    if (o.heatmap && detect_heatmap(&o, &inf, pix, &res, &fig, &err)) {
        fprintf(stderr, "sldd detect: heat map: %s\n", err.msg);
        goto out;
    }
    detect_print(&o, &inf, &res, &fig);
    status = 0;
    if (o.bundle && nd_detection_audit(o.node_dir, bundle_id, o.image, res.decision, res.r, res.num,
                                       "cli", &err)) {
        fprintf(stderr, "sldd detect: %s\n", err.msg);
        status = 1;
    }
out:
    sd_detect_result_free(&res);
    nd_infer_free(&inf);
    sd_backend_destroy(be);
    free(pix);
    return status;
}
