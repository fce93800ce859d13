/*
 * nd_distill.c - distillation options and payload assembly shared by
 * `sldd distill` and the daemon's jobs (see nd_distill.h).
 */
#include "nd_distill.h"
#include "sd_rdp.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nd_buf.h"
#include "sb_parse.h"

void nd_distill_opts_defaults(nd_distill_opts *o)
{
    memset(o, 0, sizeof *o);
    sd_distill_config_defaults(&o->cfg);
    o->cfg.eval_every = 100;
    o->cfg.checkpoint_every = 100;
    o->encoding = 1;
}

static int bad(sd_error *err, const char *name, const char *want)
{
    return sd_error_set(err, SD_EINVAL, "--%s needs %s", name, want);
}

static int get_pos(const char *v, double *out)
{
    double x;
    if (!v || sb_parse_double(v, 0, INFINITY, &x) || x <= 0)
        return -1;
    *out = x;
    return 0;
}

int nd_distill_opt_is_flag(const char *name)
{
    return !strcmp(name, "random-init") || !strcmp(name, "hard-labels");
}

int nd_distill_opt_apply(nd_distill_opts *o, const char *name, const char *v, sd_error *err)
{
    sd_distill_config *c = &o->cfg;
    long long x;
    double d;
    static const struct {
        const char *name;
        long long lo, hi;
        size_t off;
        int size; /* 4 int, 8 int64 */
    } ints[] = {
#define F(n, lo, hi, fld) \
    {n, lo, hi, offsetof(sd_distill_config, fld), (int)sizeof(((sd_distill_config *)0)->fld)}
        F("depth", 1, 16, spec.depth),
        F("width", 1, 4096, spec.width),
        F("seed", 0, INT64_MAX, seed),
        F("nets", 1, 1000, nets),
        F("images-per-step", 1, 100000, images_per_step),
        F("steps", 1, 10000, steps),
        F("epochs-inner", 1, 1000, epochs_inner),
        F("real-batch", 1, 1000000, real_batch),
        F("decay-epochs", 0, 1000000, decay_epochs),
        F("epochs", 1, 1000000, epochs),
        F("iterations", 1, INT64_MAX, iterations),
        F("eval-every", 0, INT32_MAX, eval_every),
        F("eval-max", 0, INT64_MAX, eval_max),
        F("checkpoint-every", 0, INT32_MAX, checkpoint_every),
#undef F
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        if (strcmp(name, ints[i].name))
            continue;
        if (nd_parse_int(v, ints[i].lo, ints[i].hi, &x)) {
            char want[96];
            snprintf(want, sizeof want, "an integer in %lld..%lld", ints[i].lo, ints[i].hi);
            return bad(err, name, want);
        }
        char *p = (char *)c + ints[i].off;
        if (ints[i].size == 8) {
            int64_t y = x;
            memcpy(p, &y, 8);
        } else {
            int y = (int)x;
            memcpy(p, &y, sizeof y);
        }
        return 0;
    }
    if (!strcmp(name, "arch")) {
        sd_model_spec scratch; /* checked here, so a job is refused when it is submitted */
        memset(&scratch, 0, sizeof scratch);
        if (!v || !*v || strlen(v) >= sizeof o->arch)
            return bad(err, name, "an architecture name");
        int rc = sd_model_spec_parse_arch(&scratch, v, err);
        if (rc)
            return rc;
        snprintf(o->arch, sizeof o->arch, "%s", v);
    } else if (!strcmp(name, "random-init")) {
        c->random_init = 1;
    } else if (!strcmp(name, "hard-labels")) {
        c->hard_labels = 1;
    } else if (!strcmp(name, "label-param")) {
        if (v && !strcmp(v, "softmax"))
            c->label_param = SD_LABEL_SOFTMAX;
        else if (v && !strcmp(v, "raw"))
            c->label_param = SD_LABEL_RAW;
        else
            return bad(err, name, "softmax or raw");
    } else if (!strcmp(name, "label-init")) {
        if (v && !strcmp(v, "onehot")) {
            c->label_init = SD_LABEL_INIT_ONEHOT;
        } else if (v && !strncmp(v, "class:", 6) && !nd_parse_int(v + 6, 0, 100000, &x)) {
            c->label_init = SD_LABEL_INIT_CLASS;
            c->label_class = (int)x;
        } else {
            return bad(err, name, "onehot or class:C");
        }
    } else if (!strcmp(name, "bn-mode")) {
        if (v && !strcmp(v, "batch"))
            c->bn_mode = SD_BN_BATCH;
        else if (v && !strcmp(v, "frozen"))
            c->bn_mode = SD_BN_FROZEN;
        else
            return bad(err, name, "batch or frozen");
    } else if (!strcmp(name, "distill-lr")) {
        if (get_pos(v, &d))
            return bad(err, name, "a positive number");
        c->distill_lr = d;
    } else if (!strcmp(name, "lr")) {
        if (get_pos(v, &d))
            return bad(err, name, "a positive number");
        c->lr = d;
    } else if (!strcmp(name, "step-cache-mib")) {
        if (nd_parse_int(v, 0, (long long)1 << 30, &x))
            return bad(err, name, "an integer in 0..1073741824 (MiB)");
        c->step_cache_bytes = (size_t)x << 20;
    } else if (!strcmp(name, "encoding")) {
        o->encoding = !v                  ? 0
                      : !strcmp(v, "f32") ? 1
                      : !strcmp(v, "f16") ? 2
                      : !strcmp(v, "u8")  ? 3
                                          : 0;
        if (!o->encoding)
            return bad(err, name, "f32, f16 or u8");
    } else if (!strcmp(name, "dp-noise") || !strcmp(name, "dp-clip") ||
               !strcmp(name, "dp-epsilon")) {
        if (get_pos(v, &d))
            return bad(err, name, "a positive number");
        *(!strcmp(name, "dp-noise")  ? &c->dp_noise
          : !strcmp(name, "dp-clip") ? &c->dp_clip
                                     : &o->dp_epsilon) = d;
    } else if (!strcmp(name, "dp-delta")) {
        if (get_pos(v, &d) || d >= 1)
            return bad(err, name, "a number in (0, 1)");
        c->dp_delta = d;
    } else if (!strcmp(name, "train-limit")) {
        if (nd_parse_int(v, 1, INT64_MAX, &x))
            return bad(err, name, "a positive integer");
        o->train_limit = x;
    } else {
        return 1;
    }
    return 0;
}

int nd_distill_opts_parse(nd_distill_opts *o, const char *text, sd_error *err)
{
    char *copy = strdup(text ? text : ""), *save = NULL;
    int rc = 0;
    if (!copy)
        return sd_error_set(err, SD_ENOMEM, "out of memory");
    for (char *tok = strtok_r(copy, " \t\n", &save); tok && !rc;
         tok = strtok_r(NULL, " \t\n", &save)) {
        char *name = tok, *val = NULL, *eq;
        if (strncmp(name, "--", 2)) {
            rc = sd_error_set(err, SD_EINVAL, "'%s' is not an option (options start with --)", tok);
            break;
        }
        name += 2;
        if ((eq = strchr(name, '=')) != NULL) {
            *eq = 0;
            val = eq + 1;
        } else if (!nd_distill_opt_is_flag(name)) {
            val = strtok_r(NULL, " \t\n", &save);
        }
        int r = nd_distill_opt_apply(o, name, val, err);
        if (r == 1)
            rc = sd_error_set(err, SD_EINVAL, "--%s is not a distillation option", name);
        else if (r)
            rc = r;
    }
    free(copy);
    return rc;
}

const char *nd_distill_opts_help(void)
{
    return "model:\n"
           "  --arch NAME              lenet, convnet, alexnet, vgg16, vgg19, resnet18,\n"
           "                           resnet34, googlenet; '-bn' suffix for batch norm\n"
           "                           (default: lenet for fashion-mnist, convnet-bn else)\n"
           "  --depth D --width W      ConvNet depth and width (3, 128); ResNet base width\n"
           "  --seed S                 seed of theta_0 and of every random choice (0)\n"
           "  --nets N                 distil for N fixed initial weights (1)\n"
           "  --random-init            fresh random theta_0 every iteration\n"
           "distilled set:\n"
           "  --images-per-step n      images per distill step (3)\n"
           "  --steps S                distill steps (1)\n"
           "  --epochs-inner E         distill epochs (1); T = S x E\n"
           "  --label-param softmax|raw  targets softmax(labels) (default) or raw\n"
           "  --label-init onehot|class:C  one image per class (default) or all class C\n"
           "  --hard-labels            keep labels fixed (plain dataset distillation)\n"
           "  --bn-mode batch|frozen   inner-step batch norm (batch)\n"
           "optimisation:\n"
           "  --real-batch K           real samples per outer iteration (256)\n"
           "  --distill-lr A           initial step size (0.01)\n"
           "  --lr L                   outer Adam learning rate (0.01)\n"
           "  --decay-epochs N         halve lr every N epochs (40)\n"
           "  --epochs N               outer epochs over the real set (400)\n"
           "  --iterations N           stop after N outer iterations instead\n"
           "  --train-limit N          use only N training samples (spread over the set)\n"
           "  --step-cache-mib M       memory for keeping the T inner steps' forward and\n"
           "                           backward for the meta-gradient (2048); when they\n"
           "                           need more, or with 0, they are recomputed (same\n"
           "                           result, slower)\n"
           "progress and output:\n"
           "  --eval-every N           validate every N iterations (100)\n"
           "  --eval-max N             validation samples used (all)\n"
           "  --checkpoint-every N     checkpoint interval in iterations (100)\n"
           "  --encoding f32|f16|u8    image encoding in the payload (f32)\n"
           "differential privacy (docs/privacy.md):\n"
           "  --dp-epsilon E           spend at most E: the noise is solved for with the\n"
           "                           accountant from q = K/N, the iterations and delta\n"
           "  --dp-noise S             or give the noise multiplier sigma directly\n"
           "  --dp-clip C              per-sample gradient norm bound (1)\n"
           "  --dp-delta D             delta of the (epsilon, delta) guarantee (1e-5)\n"
           "                           DP runs sample batches by Poisson sampling with a\n"
           "                           secret key, switch validation off and take\n"
           "                           theta_bn from the synthetic images\n";
}

int nd_distill_opts_finish(nd_distill_opts *o, nd_data *ds, sd_error *err)
{
    int rc = sd_model_spec_parse_arch(&o->cfg.spec, o->arch[0] ? o->arch : ds->default_arch, err);
    if (!rc && (o->cfg.dp_noise > 0 || o->dp_epsilon > 0))
        nd_data_public_norm(ds);
    if (rc || !(o->dp_epsilon > 0))
        return rc;
    if (o->cfg.dp_noise > 0)
        return sd_error_set(err, SD_EINVAL, "give --dp-epsilon or --dp-noise, not both");
    if (ds->train.count <= 0)
        return sd_error_set(err, SD_EINVAL, "no training samples to account for");
    double q = (double)o->cfg.real_batch / (double)ds->train.count;
    if (q > 1)
        return sd_error_set(err, SD_EINVAL,
                            "real batch %d is larger than the %lld training "
                            "samples",
                            o->cfg.real_batch, (long long)ds->train.count);
    return sd_rdp_solve_sigma(q, nd_distill_total(o, ds), o->cfg.dp_delta, o->dp_epsilon,
                              &o->cfg.dp_noise, err);
}

int64_t nd_distill_total(const nd_distill_opts *o, const nd_data *ds)
{
    if (o->cfg.iterations > 0)
        return o->cfg.iterations;
    int64_t per = o->cfg.real_batch > 0 ? ds->train.count / o->cfg.real_batch : 0;
    return (int64_t)o->cfg.epochs * (per > 0 ? per : 1);
}

void nd_fmt_duration(double s, char *buf, size_t len)
{
    if (!isfinite(s) || s < 0)
        s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, len, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else
        snprintf(buf, len, "%ldm%02lds", t / 60, t % 60);
}

int nd_distill_payload(const nd_data *ds, const nd_distill_opts *o, const sd_distilled *res,
                       const nd_eval *ev, const nd_bundle_head *h, uint8_t **out, size_t *len,
                       sd_error *err)
{
    const sd_distill_config *c = &o->cfg;
    nd_payload_meta meta;
    char label[64], vals[24][64];
    const char *keys[24];
    const char *values[24];
    size_t nh = 0;
    *out = NULL;
    *len = 0;
    nd_data_meta(ds, ev, &meta);
    meta.sender = h->sender;
    meta.audience = h->audience;
    meta.n_audience = h->n_audience;
    meta.sequence = h->sequence;
    meta.created_unix = h->created_unix;
    meta.expires_unix = h->expires_unix;
    memcpy(meta.bundle_id, h->bundle_id, 16);
    meta.encoding = o->encoding;
    meta.backend = h->backend ? h->backend : "cpu";
    /* theta_bn is averaged over bn_export_batches real batches */
    int64_t bsz = c->real_batch < ds->train.count ? c->real_batch : ds->train.count;
    meta.bn_count = res->n_bn ? (uint64_t)c->bn_export_batches * (uint64_t)bsz : 0;
    sd_model_spec_label(&res->spec, label, sizeof label);
#define HP(k, ...)                                        \
    do {                                                  \
        keys[nh] = k;                                     \
        snprintf(vals[nh], sizeof vals[nh], __VA_ARGS__); \
        values[nh] = vals[nh];                            \
        nh++;                                             \
    } while (0)
    HP("arch", "%s", label);
    HP("steps", "%d", c->steps);
    HP("images_per_step", "%d", c->images_per_step);
    HP("epochs_inner", "%d", c->epochs_inner);
    HP("real_batch", "%d", c->real_batch);
    HP("lr", "%g", c->lr);
    HP("distill_lr", "%g", c->distill_lr);
    HP("iterations", "%lld", (long long)nd_distill_total(o, ds));
    HP("label_param", "%s", c->label_param == SD_LABEL_RAW ? "raw" : "softmax");
    HP("bn_mode", "%s", c->bn_mode == SD_BN_FROZEN ? "frozen" : "batch");
    HP("hard_labels", "%d", c->hard_labels);
    if (ds->gastric && ds->prep.mm_per_pixel > 0) /* the physical grid (docs/dicom.md) */
        HP("mm_per_pixel", "%.17g", ds->prep.mm_per_pixel);
    meta.privacy = h->privacy;
    if (c->dp_noise > 0) {
        /* a DP release states its accounting and carries no statistic of the
         * training data outside the DP mechanism: no sender metrics, no
         * per-class counts, no nearest-neighbour audit (docs/privacy.md) */
        double q = (double)c->real_batch / (double)ds->train.count, eps = NAN;
        if (sd_rdp_epsilon(q, c->dp_noise, nd_distill_total(o, ds), c->dp_delta, &eps, NULL, err))
            return sd_error_wrap(err, "accounting"), 1;
        HP("dp_accountant", "%s v%d", SD_RDP_ACCOUNTANT, SD_RDP_VERSION);
        HP("dp_epsilon", "%.6g", eps);
        HP("dp_delta", "%.6g", c->dp_delta);
        HP("dp_noise_multiplier", "%.6g", c->dp_noise);
        HP("dp_clip", "%.6g", c->dp_clip);
        HP("dp_sampling_rate", "%.6g", q);
        HP("dp_unit", "%s", ds->gastric ? "patch" : "sample"); /* what one guarantee protects */
        HP("dp_normalisation", "%s", "public-constants");
        HP("dp_validation", "%s", "off");
        HP("dp_theta_bn", "%s", "synthetic-images");
        meta.accuracy = meta.sensitivity = meta.specificity = meta.harmonic_mean = meta.auc = NAN;
        meta.image_count = meta.patch_count = 0;
        meta.metrics_split = "none";
        meta.counts = NULL;
        meta.n_counts = 0;
        /* theta_bn: statistics of the S steps' synthetic batches */
        meta.bn_count = res->n_bn ? (uint64_t)c->steps * (uint64_t)c->images_per_step : 0;
        meta.privacy = NULL;
    }
#undef HP
    meta.hyper_keys = keys;
    meta.hyper_values = values;
    meta.n_hyper = nh;
    return nd_payload_build(res, &meta, out, len, err);
}
