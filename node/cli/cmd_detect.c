/*
 * cmd_detect.c - `sldd detect IMAGE.png`: gastritis detection on one whole
 * X-ray image (paper §3.3, Eq. 9) with a replayed payload, trained weights
 * or a bundle in a node's store, printing the decision, r and the patch
 * counts, and writing a heat map of the patch classes.  Given a folder or
 * several images it loads the model once and writes one CSV (or JSON) row
 * per image - name, SHA-256, r, decision, patch counts, bundle and sender -
 * and a heat map per image into --heatmaps DIR: the receiving site's batch.
 * A model of a declared task (sd_task.h) prints its own class names and
 * decisions in both; a gastric model's output is as it always was.
 *
 * The options are gathered into detect_opts first and the classifier is
 * built in detect_load_model(); another model source (say, an imported
 * bundle in a node directory) is one more option in opts[], one more field
 * and one more branch there.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "commands.h"
#include "nd_audit.h"
#include "nd_cli_dir.h"
#include "nd_buf.h"
#include "nd_detect.h"
#include "nd_dicom_file.h"
#include "nd_dicom_results.h"
#include "nd_infer.h"
#include "nd_state.h"
#include "sc_util.h"
#include "sd_png.h"
#include "sb_parse.h"

typedef struct detect_opts {
    const char *image;
    char **paths; /* every IMAGE or FOLDER argument */
    int n_paths;
    const char *heatmaps; /* --heatmaps DIR: one heat map per image (batch) */
    int batch;            /* a folder, several images or --heatmaps */
    const char *model;    /* --model payload.pb */
    const char *bundle;   /* --bundle ID --dir NODE: an imported bundle (nd_detect.h) */
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
               "       sldd detect (FOLDER | IMAGE.png)... (--model ... | --bundle ID --dir NODE)\n"
               "                   [--heatmaps DIR] [--json] [--delta D] [--device cpu|cuda]\n"
               "\n"
               "Gastritis detection on a whole gastric X-ray image (paper Eq. 9).  The image\n"
               "is cut into the patch grid the model was made for (patch size, stride, resize\n"
               "and normalisation come from the model), every patch is classified as I\n"
               "(outside the stomach), N or P, and\n"
               "    r = Num(P) / (Num(N) + Num(P)),  gastritis iff r >= delta.\n"
               "With no N or P patch the result is 'undetermined'.\n"
               "A model made from a data set with a declared task (sldd dataset prepare\n"
               "--images/--classes) uses that task's classes and rule instead: two classes,\n"
               "r = votes for the second / all votes, the second iff r >= delta; more, the\n"
               "class with most patch votes (docs/data.md section 9).\n"
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
               "With a folder (its *.png files), several images or --heatmaps the model is\n"
               "loaded once and each image gives one row: CSV with a header (image, sha256,\n"
               "r, decision, I, N, P, bundle, sender, heatmap, error), or with --json one\n"
               "JSON object per line; a declared task's model names its own classes there\n"
               "(columns, decisions; JSON task, rule and classes).  --heatmaps DIR writes\n"
               "DIR/NAME.heat.png per image.\n"
               "With --bundle every image is an audit entry (with its SHA-256).\n"
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
    return nd_decision_name(NULL, d);
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
        O_HEATMAPS,
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
                                         {"heatmaps", required_argument, 0, O_HEATMAPS},
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
        case O_HEATMAPS: o->heatmaps = optarg; break;
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
    o->paths = argv + optind;
    o->n_paths = argc - optind;
    if (o->n_paths)
        o->image = argv[optind];
    struct stat st;
    o->batch =
        o->n_paths > 1 || o->heatmaps || (o->image && !stat(o->image, &st) && S_ISDIR(st.st_mode));
    if (o->batch && (o->heatmap || o->repeat > 1)) {
        fprintf(stderr, "sldd detect: with several images give --heatmaps DIR (not --heatmap) "
                        "and no --repeat\n");
        return 2;
    }
    if (!o->image) {
        fprintf(stderr, "sldd detect: IMAGE.png is required\n");
        detect_usage(stderr);
        return 2;
    }
    if (o->node_dir && !o->bundle) {
        fprintf(stderr,
                "sldd detect: --dir NODE goes with --bundle ID (a bundle the node holds)\n");
        return 2;
    }
    if (o->bundle)
        o->node_dir = nd_cli_node_dir(o->node_dir);
    if (o->node_dir && nd_cli_node_dir_check("sldd detect", o->node_dir))
        return 1;
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
    char sha256[65]; /* of the image file */
    char bundle[33]; /* --bundle: the full id, else "" */
    char sender[65]; /* --bundle: who sent it, else "" */
} detect_figures;

/* The parts of detect_print that every task shares: the JSON object's
 * opening (image, size and grid, up to "input") and closing (image hash and
 * bundle provenance), and the text's first two and last lines. */
static void detect_json_head(const detect_opts *o, const nd_infer *inf, const sd_detect_result *res,
                             const detect_figures *f)
{
    fputs("{\"image\":", stdout);
    print_json_string(o->image);
    printf(",\"width\":%d,\"height\":%d,\"synthetic\":%s,\"grid\":[%d,%d],\"patch\":%d,"
           "\"stride\":%d,\"input\":%d",
           f->w, f->h, f->synthetic ? "true" : "false", res->gh, res->gw, inf->psize, inf->stride,
           inf->osize);
}

static void detect_json_tail(const detect_figures *f)
{
    printf("\"sha256\":\"%s\",\"bundle\":", f->sha256);
    print_json_string(f->bundle);
    fputs(",\"sender\":", stdout);
    print_json_string(f->sender);
    fputs("}\n", stdout);
}

static void detect_text_head(const detect_opts *o, const nd_infer *inf, const detect_figures *f)
{
    printf("image:     %s (%dx%d, %d-bit)%s\n", o->image, f->w, f->h, f->depth,
           f->synthetic ? "  SYNTHETIC" : "");
    printf("model:     %s\n", inf->label);
}

static void detect_text_tail(const detect_opts *o, const detect_figures *f, int total)
{
    if (o->heatmap)
        printf("heat map:  %s\n", o->heatmap);
    printf("time:      model %.2f s%s, detection %.3f s (%.0f patches/s on %s)\n", f->t_load,
           f->replayed ? " (replayed)" : "", f->best, total / f->best, f->backend);
}

/* detect_print for a declared task (not gastric): its class names, its
 * rule and its decision, as text or JSON. */
static void detect_print_task(const detect_opts *o, const nd_infer *inf,
                              const sd_detect_result *res, const detect_figures *f)
{
    const sd_task *t = &inf->task;
    int total = res->gh * res->gw, d = res->decision;
    const char *dec = d >= 0 ? t->label[d] : "undetermined";
    if (o->json) {
        detect_json_head(o, inf, res, f);
        printf(",\"task\":\"%s\",\"rule\":\"%s\",\"classes\":{", t->name,
               t->rule == SD_RULE_RATIO ? "ratio" : "majority");
        for (int k = 0; k < t->classes; k++)
            printf("%s\"%s\":%d", k ? "," : "", t->cls[k], res->num[k]);
        printf("},\"r\":");
        if (isfinite(res->r))
            printf("%.6f", res->r);
        else
            printf("null");
        printf(",\"delta\":%g,\"decision\":\"%s\",\"load_seconds\":%.4f,\"detect_seconds\":%.4f,"
               "\"backend\":\"%s\",\"replayed\":%s,",
               o->delta, dec, f->t_load, f->best, f->backend, f->replayed ? "true" : "false");
        detect_json_tail(f);
        return;
    }
    detect_text_head(o, inf, f);
    printf("task:      %s, %s\n", t->name, t->rule_name);
    printf("grid:      %d x %d = %d patches of %dx%d, stride %d, network input %dx%d\n", res->gh,
           res->gw, total, inf->psize, inf->psize, inf->stride, inf->osize, inf->osize);
    printf("patches:  ");
    for (int k = 0; k < t->classes; k++)
        printf(" %s %d%s", t->cls[k], res->num[k], k + 1 < t->classes ? " " : "\n");
    if (isfinite(res->r))
        printf("r:         %.4f  (%s)\n", res->r,
               t->rule == SD_RULE_RATIO ? "votes for the second class / all votes"
                                        : "share of the votes for the winner");
    else
        printf("r:         undefined (no patch voted for an image class)\n");
    if (d < 0)
        printf("decision:  undetermined (no patch voted for an image class)\n");
    else if (t->rule == SD_RULE_RATIO)
        printf("decision:  %s (r %s delta %.2f)\n", dec, d ? ">=" : "<", o->delta);
    else
        printf("decision:  %s (most patch votes)\n", dec);
    detect_text_tail(o, f, total);
}

static void detect_print(const detect_opts *o, const nd_infer *inf, const sd_detect_result *res,
                         const detect_figures *f)
{
    if (inf->task.labels && !sd_task_is_gastric(&inf->task)) {
        detect_print_task(o, inf, res, f);
        return;
    }
    int total = res->gh * res->gw;
    if (o->json) {
        detect_json_head(o, inf, res, f);
        printf(",\"I\":%d,\"N\":%d,\"P\":%d,", res->num[0], res->num[1], res->num[2]);
        if (isfinite(res->r))
            printf("\"r\":%.6f,", res->r);
        else
            printf("\"r\":null,");
        printf("\"delta\":%g,\"decision\":\"%s\",\"load_seconds\":%.4f,\"detect_seconds\":%.4f,"
               "\"patches_per_second\":%.1f,\"backend\":\"%s\",\"replayed\":%s,",
               o->delta, decision_text(res->decision), f->t_load, f->best, total / f->best,
               f->backend, f->replayed ? "true" : "false");
        detect_json_tail(f);
        return;
    }
    detect_text_head(o, inf, f);
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
    detect_text_tail(o, f, total);
}

/* The heat map picture, titled with file, source and network. */
static int detect_heatmap(const detect_opts *o, const char *image, const char *out,
                          const nd_infer *inf, const uint16_t *pix, const sd_detect_result *res,
                          const detect_figures *f, sd_error *err)
{
    char title[256], spec[64];
    const char *base = strrchr(image, '/');
    sd_model_spec_label(&inf->m->spec, spec, sizeof spec);
    /* the same picture whatever the model came from: a bundle's stored
     * theta_opt draws exactly what a replay of its payload draws */
    snprintf(title, sizeof title, "%.100s - %s %s", base ? base + 1 : image, inf->kind, spec);
    sd_detect_params p;
    nd_infer_params(inf, o->delta, &p);
    return sd_detect_heatmap_png(out, pix, f->w, f->h, &p, res, title,
                                 f->synthetic || inf->synthetic, 0, err);
}

/* The sender of bundle id in the node's store ("" when unknown). */
static void bundle_sender(const char *dir, const char *id, char sender[65])
{
    sqlite3 *db = NULL;
    sc_error e = {0, ""};
    sender[0] = 0;
    if (!nd_db_open(dir, 0, &db, &e) &&
        nd_db_text(db, sender, 65, NULL, &e, "SELECT sender FROM bundles WHERE id=?", "t", id))
        sender[0] = 0;
    nd_db_close(db);
}

/* ------------------------------------------------------------ batch */

static int path_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int has_png_suffix(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && !strcasecmp(name + n - 4, ".png");
}

/* a folder's images: *.png and DICOM files named *.dcm (docs/dicom.md) */
static int has_image_suffix(const char *name)
{
    size_t n = strlen(name);
    return has_png_suffix(name) || (n > 4 && !strcasecmp(name + n - 4, ".dcm"));
}

/* Every image the arguments name: files as given, folders' *.png sorted.
 * 0, or -1 after a message. */
static int batch_list(const detect_opts *o, char ***out, size_t *n_out)
{
    char **list = NULL;
    size_t n = 0, cap = 0;
    for (int i = 0; i < o->n_paths; i++) {
        struct stat st;
        const char *p = o->paths[i];
        if (stat(p, &st)) {
            fprintf(stderr, "sldd detect: %s: %s\n", p, strerror(errno));
            goto fail;
        }
        DIR *d = S_ISDIR(st.st_mode) ? opendir(p) : NULL;
        if (S_ISDIR(st.st_mode) && !d) {
            fprintf(stderr, "sldd detect: %s: %s\n", p, strerror(errno));
            goto fail;
        }
        struct dirent *de = NULL;
        size_t first = n;
        while (d ? (de = readdir(d)) != NULL : n == first) {
            if (de && (de->d_name[0] == '.' || !has_image_suffix(de->d_name)))
                continue;
            if (n == cap) {
                char **g =
                    n < 1000000 ? realloc(list, (cap = cap ? 2 * cap : 64) * sizeof *g) : NULL;
                if (!g) {
                    fprintf(stderr, "sldd detect: too many images\n");
                    if (d)
                        closedir(d);
                    goto fail;
                }
                list = g;
            }
            nd_buf b;
            nd_buf_init(&b, 8192);
            nd_buf_printf(&b, de ? "%s/%s" : "%s", p, de ? de->d_name : "");
            list[n++] = b.failed ? NULL : (char *)b.data;
            if (!list[n - 1]) {
                nd_buf_free(&b);
                fprintf(stderr, "sldd detect: path too long under %s\n", p);
                if (d)
                    closedir(d);
                goto fail;
            }
        }
        if (d) {
            closedir(d);
            qsort(list + first, n - first, sizeof *list, path_cmp);
            if (n == first)
                fprintf(stderr, "sldd detect: warning: no *.png in %s\n", p);
        }
    }
    *out = list;
    *n_out = n;
    return 0;
fail:
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
    return -1;
}

/* One CSV field, quoted when it needs to be. */
static void csv_field(const char *s, int last)
{
    if (strpbrk(s, ",\"\n\r")) {
        putchar('"');
        for (const char *q = s; *q; q++) {
            if (*q == '"')
                putchar('"');
            putchar(*q);
        }
        putchar('"');
    } else {
        fputs(s, stdout);
    }
    putchar(last ? '\n' : ',');
}

/* The task whose names a batch's rows use: NULL for gastric (columns I, N,
 * P and the gastric decisions, as always), else the model's own. */
static const sd_task *batch_task(const nd_infer *inf)
{
    return inf->task.labels && !sd_task_is_gastric(&inf->task) ? &inf->task : NULL;
}

/* The CSV header: the patch class columns are the task's class names. */
static void batch_header(const sd_task *t)
{
    if (!t) {
        puts("image,sha256,r,decision,I,N,P,bundle,sender,heatmap,error");
        return;
    }
    fputs("image,sha256,r,decision", stdout);
    for (int k = 0; k < t->classes; k++)
        printf(",%s", t->cls[k]); /* task names need no CSV quoting (sd_task.h) */
    puts(",bundle,sender,heatmap,error");
}

/* One row: the image's figures, or its error. */
static void batch_row(const detect_opts *o, const sd_task *t, const char *image,
                      const detect_figures *f, const sd_detect_result *res, const char *heat,
                      const char *error)
{
    char r[32] = "", num[SD_TASK_MAX_CLASSES][16];
    int K = t ? t->classes : 3;
    if (!error && isfinite(res->r))
        snprintf(r, sizeof r, "%.6f", res->r);
    for (int k = 0; k < K; k++)
        snprintf(num[k], sizeof num[k], "%d", error ? 0 : res->num[k]);
    const char *dec = error ? "error"
                      : !t  ? decision_text(res->decision)
                      : res->decision >= 0 && res->decision < t->labels ? t->label[res->decision]
                                                                        : "undetermined";
    if (o->json) {
        fputs("{\"image\":", stdout);
        print_json_string(image);
        printf(",\"sha256\":\"%s\",\"r\":%s,\"decision\":\"%s\",", f->sha256, r[0] ? r : "null",
               dec);
        if (t) {
            printf("\"task\":\"%s\",\"rule\":\"%s\",\"classes\":{", t->name,
                   t->rule == SD_RULE_RATIO ? "ratio" : "majority");
            for (int k = 0; k < K; k++)
                printf("%s\"%s\":%s", k ? "," : "", t->cls[k], num[k]);
            fputs("},", stdout);
        } else {
            printf("\"I\":%s,\"N\":%s,\"P\":%s,", num[0], num[1], num[2]);
        }
        fputs("\"bundle\":", stdout);
        print_json_string(f->bundle);
        fputs(",\"sender\":", stdout);
        print_json_string(f->sender);
        fputs(",\"heatmap\":", stdout);
        print_json_string(heat);
        fputs(",\"error\":", stdout);
        print_json_string(error ? error : "");
        fputs("}\n", stdout);
        return;
    }
    csv_field(image, 0);
    csv_field(f->sha256, 0);
    csv_field(r, 0);
    csv_field(dec, 0);
    for (int k = 0; k < K; k++)
        csv_field(num[k], 0);
    const char *tail[] = {f->bundle, f->sender, heat, error ? error : ""};
    for (size_t k = 0; k < 4; k++)
        csv_field(tail[k], k == 3);
}

/* Detect on one image of the batch and print its row; 0 or -1. */
static int batch_one(const detect_opts *o, nd_infer *inf, const char *image, detect_figures *f,
                     const char *actor)
{
    sd_error err = {0};
    sc_error e = {0, ""};
    uint16_t *pix = NULL;
    sd_detect_result res = {0};
    char heat[4300] = "";
    int rc = -1;
    f->sha256[0] = 0;
    if (nd_file_sha256_hex(image, f->sha256, &e)) {
        batch_row(o, batch_task(inf), image, f, &res, "", e.msg);
        return -1;
    }
    nd_image im; /* PNG or DICOM, put on the model's grid */
    char note[160];
    if (nd_image_read(image, &im, &err) ||
        nd_image_to_grid(&im, inf->mm_per_pixel, note, sizeof note, &err)) {
        batch_row(o, batch_task(inf), image, f, &res, "", err.msg);
        nd_image_free(&im);
        return -1;
    }
    pix = im.pix;
    f->w = im.w, f->h = im.h, f->depth = im.depth;
    f->synthetic = !im.dicom && png_says_synthetic(image);
    if (nd_infer_detect(inf, pix, f->w, f->h, o->delta, &res, &err))
        goto fail;
    if (o->heatmaps) {
        const char *base = strrchr(image, '/');
        base = base ? base + 1 : image;
        int keep = (int)strlen(base) - (has_image_suffix(base) ? 4 : 0);
        int n = snprintf(heat, sizeof heat, "%s/%.*s.heat.png", o->heatmaps, keep, base);
        if (n < 0 || (size_t)n >= sizeof heat) {
            sd_error_set(&err, SD_EINVAL, "heat map path too long");
            goto fail;
        }
        if (detect_heatmap(o, image, heat, inf, pix, &res, f, &err)) {
            sd_error_wrap(&err, "heat map");
            goto fail;
        }
    }
    if (o->bundle && nd_detection_audit(o->node_dir, f->bundle, image, &inf->task, res.decision,
                                        res.r, res.num, actor, &err))
        goto fail;
    batch_row(o, batch_task(inf), image, f, &res, heat, NULL);
    rc = 0;
    goto out;
fail:
    batch_row(o, batch_task(inf), image, f, &res, heat, err.msg);
out:
    sd_detect_result_free(&res);
    free(pix);
    return rc;
}

/* The batch: the model once, one row per image.  Exit status 0 when every
 * image was detected, 1 otherwise. */
static int detect_batch(const detect_opts *o)
{
    sd_error err = {0};
    sc_error e = {0, ""};
    sd_backend *be = NULL;
    nd_infer inf = {0};
    detect_figures f = {0};
    char **list = NULL, actor[96];
    size_t n = 0, failed = 0;
    int status = 1;
    nd_audit_os_actor(actor, sizeof actor);
    if (batch_list(o, &list, &n))
        return 1;
    if (o->heatmaps && sc_mkdir(o->heatmaps, 0755, &e)) {
        fprintf(stderr, "sldd detect: --heatmaps: %s\n", e.msg);
        goto out;
    }
    if (sd_backend_create(&be, o->device, &err) ||
        detect_load_model(o, be, &inf, f.bundle, &f.replayed, &err)) {
        fprintf(stderr, "sldd detect: %s\n", err.msg);
        goto out;
    }
    if (o->bundle)
        bundle_sender(o->node_dir, f.bundle, f.sender);
    if (!o->json)
        batch_header(batch_task(&inf));
    for (size_t i = 0; i < n; i++)
        failed += batch_one(o, &inf, list[i], &f, actor) != 0;
    if (fflush(stdout)) {
        fprintf(stderr, "sldd detect: writing the rows: %s\n", strerror(errno));
        goto out;
    }
    fprintf(stderr, "sldd detect: %zu image(s), %zu failed\n", n, failed);
    status = failed ? 1 : 0;
out:
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
    nd_infer_free(&inf);
    sd_backend_destroy(be);
    return status;
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
    if (o.batch)
        return detect_batch(&o);
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
    sc_error he = {0, ""};
    if (nd_file_sha256_hex(o.image, fig.sha256, &he)) {
        fprintf(stderr, "sldd detect: %s\n", he.msg);
        goto out;
    }
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
    if (o.bundle) {
        snprintf(fig.bundle, sizeof fig.bundle, "%s", bundle_id);
        bundle_sender(o.node_dir, bundle_id, fig.sender);
    }
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
    if (o.heatmap && detect_heatmap(&o, o.image, o.heatmap, &inf, pix, &res, &fig, &err)) {
        fprintf(stderr, "sldd detect: heat map: %s\n", err.msg);
        goto out;
    }
    detect_print(&o, &inf, &res, &fig);
    status = 0;
    char actor[96];
    nd_audit_os_actor(actor, sizeof actor);
    if (o.bundle && nd_detection_audit(o.node_dir, bundle_id, o.image, &inf.task, res.decision,
                                       res.r, res.num, actor, &err)) {
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
