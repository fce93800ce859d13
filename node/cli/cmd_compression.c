/*
 * cmd_compression.c - `sldd compression`: the paper's Table 4 for this
 * implementation.  For each architecture, the memory of the full model
 * (float32 parameters) against the size of a bundle payload carrying its
 * distilled set (M images of CxHxW, labels, step sizes, theta_bn) in each
 * image encoding; and, for one real distilled payload, the effect of each
 * encoding on the replayed model's accuracy and image-level HM.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "nd_data.h"
#include "nd_payload.h"
#include "sd_init.h"
#include "sd_model.h"
#include "sldd.pb-c.h"
#include "sp_encoding.h"
#include "sb_parse.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: sldd compression [--images M] [--size S] [--channels C] [--classes K]\n"
               "                        [--payload FILE --data DIR] [--device cpu|cuda]\n"
               "\n"
               "Prints two markdown tables.  1: for every architecture, the full model's\n"
               "float32 size against a bundle payload with M distilled images of CxSxS\n"
               "(default 3 images of 1x299x299, K = 3: the paper's SLDD(3) setting) in each\n"
               "image encoding (float32, float16, uint8 with per-image scale and offset).\n"
               "2: with --payload and --data, the replayed accuracy and HM of that payload\n"
               "re-encoded in each encoding, evaluated on the data set's validation split.\n");
}

static const int encodings[3] = {SLDD__V1__IMAGE_ENCODING__IMAGE_ENCODING_FLOAT32,
                                 SLDD__V1__IMAGE_ENCODING__IMAGE_ENCODING_FLOAT16,
                                 SLDD__V1__IMAGE_ENCODING__IMAGE_ENCODING_UINT8_SCALED};

static void human(double bytes, char *buf, size_t len)
{
    if (bytes >= 1e6)
        snprintf(buf, len, "%.2f MB", bytes / 1e6);
    else
        snprintf(buf, len, "%.2f KB", bytes / 1e3);
}

/* A payload of the right shape with deterministic pseudo-random contents. */
static int sized_payload(const sd_model *m, int M, int enc, size_t *len, sd_error *err)
{
    sd_distilled d = {0};
    d.spec = m->spec;
    d.seed = 1;
    d.steps = 1;
    d.images_per_step = M;
    d.epochs_inner = 1;
    d.bn_mode = SD_BN_BATCH;
    d.label_param = SD_LABEL_SOFTMAX;
    d.n_bn = m->n_bn;
    size_t D = (size_t)m->spec.in_c * (size_t)m->spec.in_h * (size_t)m->spec.in_w;
    size_t K = (size_t)m->spec.classes;
    d.images = malloc((size_t)M * D * sizeof(float));
    d.labels = malloc((size_t)M * K * sizeof(float));
    d.step_sizes = malloc(sizeof(float));
    d.theta_bn = malloc((m->n_bn + 1) * sizeof(float));
    int rc = -1;
    if (!d.images || !d.labels || !d.step_sizes || !d.theta_bn) {
        rc = sd_error_set(err, SD_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < (size_t)M * D; i++)
        d.images[i] = (float)sd_normal(7, 1, i);
    for (size_t i = 0; i < (size_t)M * K; i++)
        d.labels[i] = (float)sd_normal(7, 2, i);
    d.step_sizes[0] = 0.01f;
    for (size_t i = 0; i < m->n_bn; i++)
        d.theta_bn[i] = 1.0f + 0.1f * (float)fabs(sd_normal(7, 3, i));
    nd_payload_meta meta = {0};
    static const char *const aud[] = {"hospital-b"};
    meta.sender = "hospital-a";
    meta.audience = aud;
    meta.n_audience = 1;
    meta.created_unix = 1767225600;
    meta.expires_unix = meta.created_unix + 86400;
    meta.sequence = 1;
    meta.encoding = enc;
    meta.norm_std = 1;
    meta.patch_size = m->spec.in_h;
    meta.patch_stride = m->spec.in_h;
    meta.bn_count = 5120;
    meta.metrics_split = "val";
    uint8_t *buf = NULL;
    rc = nd_payload_build(&d, &meta, &buf, len, err);
    free(buf);
out:
    sd_distilled_free(&d);
    return rc;
}

static int size_table(int M, int C, int S, int K)
{
    printf("| model | parameters | full model (float32) | payload float32 | float16 | uint8 | "
           "compression (float32) |\n|---|---|---|---|---|---|---|\n");
    static const char *const archs[] = {"convnet-bn",  "alexnet-bn",  "vgg16-bn",     "vgg19-bn",
                                        "resnet18-bn", "resnet34-bn", "googlenet-bn", NULL};
    for (int a = 0; archs[a]; a++) {
        sd_error err = {0};
        sd_model_spec spec = {.in_c = C, .in_h = S, .in_w = S, .classes = K};
        sd_model *m = NULL;
        if (sd_model_spec_parse_arch(&spec, archs[a], &err) || sd_model_create(&m, &spec, &err)) {
            fprintf(stderr, "sldd compression: %s\n", err.msg);
            return 1;
        }
        double full = 4.0 * (double)m->n_theta;
        size_t len[3];
        sd_error perr = {0, ""};
        for (int e = 0; e < 3; e++)
            if (sized_payload(m, M, encodings[e], &len[e], &perr)) {
                fprintf(stderr, "sldd compression: %s: %s\n", archs[a], perr.msg);
                sd_model_destroy(m);
                return 1;
            }
        char f[32], p0[32], p1[32], p2[32], label[64];
        human(full, f, sizeof f);
        human((double)len[0], p0, sizeof p0);
        human((double)len[1], p1, sizeof p1);
        human((double)len[2], p2, sizeof p2);
        sd_model_spec_label(&m->spec, label, sizeof label);
        printf("| %s | %zu | %s | %s | %s | %s | %.5f |\n", label, m->n_theta, f, p0, p1, p2,
               (double)len[0] / full);
        sd_model_destroy(m);
    }
    printf("(%d images of %dx%dx%d, %d classes, one step; theta_bn of every BN layer included)\n",
           M, C, S, S, K);
    return 0;
}

static int encoding_table(const char *payload, const char *data, const char *device)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    sd_distilled d = {0};
    nd_payload_info info;
    sd_error perr = {0, ""};
    if (nd_file_read(payload, (size_t)1 << 30, &buf, &len, &perr) ||
        nd_payload_parse(buf, len, &d, &info, &perr)) {
        fprintf(stderr, "sldd compression: %s\n", perr.msg);
        free(buf);
        return 1;
    }
    free(buf);
    sd_error err = {0};
    nd_data ds;
    sd_backend *be = NULL;
    int status = 1;
    if (nd_data_open(&ds, data, 0, &err) || sd_backend_create(&be, device, &err)) {
        fprintf(stderr, "sldd compression: %s\n", err.msg);
        sd_distilled_free(&d);
        return 1;
    }
    size_t M = sd_distilled_image_count(&d);
    size_t D = (size_t)d.spec.in_c * (size_t)d.spec.in_h * (size_t)d.spec.in_w;
    float *orig = malloc(M * D * sizeof *orig), *scale = malloc(M * sizeof *scale),
          *offset = malloc(M * sizeof *offset);
    uint8_t *enc = malloc(M * D * 4);
    if (!orig || !scale || !offset || !enc)
        goto out;
    memcpy(orig, d.images, M * D * sizeof *orig);
    printf("| image encoding | image bytes | patch accuracy | HM | ΔHM vs float32 |\n"
           "|---|---|---|---|---|\n");
    double hm0 = NAN;
    for (int e = 0; e < 3; e++) {
        if (sp_images_encode(encodings[e], orig, M, D, enc, scale, offset) ||
            sp_images_decode(encodings[e], enc, M, D, scale, offset, d.images)) {
            fprintf(stderr, "sldd compression: encoding failed\n");
            goto out;
        }
        nd_eval ev;
        if (nd_data_evaluate(&ds, &d, be, &ev, &err)) {
            fprintf(stderr, "sldd compression: %s\n", err.msg);
            goto out;
        }
        if (e == 0)
            hm0 = ev.hm;
        printf("| %s | %zu | %.4f | %.4f | %+.4f |\n", sp_encoding_name(encodings[e]),
               M * D * sp_encoding_value_size(encodings[e]), ev.accuracy, ev.hm, ev.hm - hm0);
    }
    printf("(payload %s: %s, %zu images; evaluated on the %s split of %s)\n", payload, d.spec.arch,
           M, ds.gastric ? "validation" : "test", data);
    status = 0;
out:
    free(orig);
    free(scale);
    free(offset);
    free(enc);
    sd_distilled_free(&d);
    sd_backend_destroy(be);
    nd_data_close(&ds);
    return status;
}

/* A numeric option: a whole positive decimal integer, or a message. */
static int opt_int(const char *opt, const char *s, int *out)
{
    if (sb_parse_int(s, 1, INT_MAX, out) == 0)
        return 0;
    fprintf(stderr, "sldd compression: %s '%s' is not a positive integer\n", opt, s);
    return -1;
}

int cmd_compression(int argc, char **argv)
{
    int M = 3, C = 1, S = 299, K = 3;
    const char *payload = NULL, *data = NULL, *device = "cpu";
    static const struct option opts[] = {{"images", required_argument, 0, 'm'},
                                         {"size", required_argument, 0, 's'},
                                         {"channels", required_argument, 0, 'c'},
                                         {"classes", required_argument, 0, 'k'},
                                         {"payload", required_argument, 0, 'p'},
                                         {"data", required_argument, 0, 'd'},
                                         {"device", required_argument, 0, 'D'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'm':
            if (opt_int("--images", optarg, &M))
                return 2;
            break;
        case 's':
            if (opt_int("--size", optarg, &S))
                return 2;
            break;
        case 'c':
            if (opt_int("--channels", optarg, &C))
                return 2;
            break;
        case 'k':
            if (opt_int("--classes", optarg, &K))
                return 2;
            break;
        case 'p': payload = optarg; break;
        case 'd': data = optarg; break;
        case 'D': device = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || M < 1 || M > 1000 || C < 1 || C > 4 || S < 16 || S > 1024 || K < 2 ||
        K > 1000 || (!payload != !data)) {
        usage(stderr);
        return 2;
    }
    int rc = size_table(M, C, S, K);
    if (!rc && payload) {
        putchar('\n');
        rc = encoding_table(payload, data, device);
    }
    return rc;
}
