/*
 * cmd_distill.c - `sldd distill`: Algorithm 1 on a data set, with progress,
 * checkpoints, pictures, and the unsigned payload as its result.
 * (`sldd baseline` is in cmd_baseline.c, `sldd replay` in cmd_evaluate.c.)
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "nd_buf.h"
#include "commands.h"
#include "nd_data.h"
#include "nd_distill.h"
#include "nd_payload.h"
#include "sd_rdp.h"
#include "sd_backend_cpu.h"
#include "sd_dataview.h"
#include "sd_distill.h"
#include "sd_init.h"
#include "sd_privacy.h"

static void distill_usage(FILE *f)
{
    fprintf(f,
            "usage: sldd distill --data SOURCE --out DIR [options]\n"
            "\n"
            "Soft-label dataset distillation (Algorithm 1): learns S x n synthetic images,\n"
            "their label logits and T = S x E step sizes such that T SGD steps from the\n"
            "fixed initial weights theta_0 fit the real data.  The meta-gradient is exact\n"
            "through all T steps.  Writes DIR/payload.pb (the unsigned bundle payload),\n"
            "DIR/grid.png (images with soft labels), DIR/curves.png (loss, validation\n"
            "accuracy), DIR/log.jsonl and DIR/checkpoint.  The privacy audit (nearest\n"
            "training samples against held-out ones, membership inference) goes into the\n"
            "payload and DIR/privacy.png; exit status 1 when it could not run.\n"
            "\n"
            "data:\n"
            "  --data fashion-mnist     Fashion-MNIST from Debian's dataset-fashion-mnist\n"
            "                           (55,000 train / 5,000 val / 10,000 test)\n"
            "  --data DIR               a gastric data set prepared by 'sldd dataset prepare'\n");
    fputs(nd_distill_opts_help(), f);
    fprintf(f, "  --resume                 continue from DIR/checkpoint (the earlier run's\n"
               "                           payload and pictures are removed first)\n"
               "  --force                  start again in a DIR that holds an earlier run's\n"
               "                           outputs (they are removed first); without --resume\n"
               "                           or --force such a DIR is refused\n"
               "  --export-init FILE       write theta_0 and the initial set for a reference\n"
               "                           implementation, then stop\n"
               "  --device cpu|cuda        compute backend (cpu)\n"
               "  --quiet                  no progress lines\n"
               "CPU threads: OPENBLAS_NUM_THREADS (default: one per core); the result is the\n"
               "same with any number of threads.\n");
}

typedef struct progress_ctx {
    FILE *log;
    int quiet;
    int64_t every;
    int n_hist;
    double *hist_iter, *hist_loss, *hist_acc;
    int64_t cap;
    double seconds;                  /* of this run */
    double first_seconds;            /* its first iteration, start-up included */
    int64_t iters;                   /* done in this run */
    double dp_q, dp_sigma, dp_delta; /* DP runs (dp_sigma > 0): the accountant's inputs */
    double dp_rdp[SD_RDP_NORDERS];   /* RDP of one iteration at (q, sigma), computed once */
} progress_ctx;

static void fmt_time(double s, char *buf, size_t len)
{
    if (!isfinite(s) || s < 0)
        s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, len, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else
        snprintf(buf, len, "%ldm%02lds", t / 60, t % 60);
}

/* epsilon spent after iter iterations (sd_rdp.h); +inf if no order bounds it */
static double dp_epsilon(const progress_ctx *c, int64_t iter)
{
    return sd_rdp_epsilon_after(c->dp_rdp, iter, c->dp_delta);
}

static int on_progress(void *vctx, const sd_progress *p)
{
    progress_ctx *c = vctx;
    double amin = INFINITY, amax = 0;
    for (int t = 0; t < p->n_steps; t++) {
        amin = fmin(amin, p->step_sizes[t]);
        amax = fmax(amax, p->step_sizes[t]);
    }
    if (c->log) {
        /* one JSON object per line; a diverged loss or an unbounded
         * epsilon is null, as NaN and Infinity are not JSON */
        nd_buf b;
        nd_buf_init(&b, 0);
        nd_buf_printf(&b, "{\"iter\":%lld,\"total\":%lld,\"epoch\":%d,", (long long)p->iter,
                      (long long)p->total, p->epoch);
        const char *keys[] = {"loss", "lr", "alpha_min", "alpha_max"};
        const double vals[] = {p->loss, p->lr, amin, amax};
        for (int k = 0; k < 4; k++) {
            nd_buf_json_fig(&b, keys[k], vals[k]);
            nd_buf_str(&b, ",");
        }
        nd_buf_printf(&b, "\"seconds\":%.3f", p->seconds);
        if (p->evaluated) {
            nd_buf_str(&b, ",");
            nd_buf_json_fig(&b, "val_acc", p->val_acc);
        }
        if (c->dp_sigma > 0) {
            nd_buf_printf(&b, ",\"dp_batch\":%lld,", (long long)p->dp_batch);
            nd_buf_json_fig(&b, "epsilon", dp_epsilon(c, p->iter));
        }
        nd_buf_str(&b, "}\n");
        if (!b.failed)
            fputs(b.data, c->log);
        nd_buf_free(&b);
        fflush(c->log);
    }
    c->seconds = p->seconds;
    if (c->iters == 0)
        c->first_seconds = p->seconds;
    c->iters++;
    if (c->n_hist < c->cap) {
        c->hist_iter[c->n_hist] = (double)p->iter;
        c->hist_loss[c->n_hist] = p->loss;
        c->hist_acc[c->n_hist] = p->evaluated ? p->val_acc : NAN;
        c->n_hist++;
    }
    if (!c->quiet && (p->evaluated || p->iter % c->every == 0 || p->iter == p->total)) {
        char eta[32], el[32];
        fmt_time(p->eta_seconds, eta, sizeof eta);
        fmt_time(p->seconds, el, sizeof el);
        fprintf(stderr,
                "[%5.1f%%] iter %lld/%lld epoch %d  loss %.4f  lr %.4g  alpha %.4g..%.4g"
                "  elapsed %s  ETA %s",
                100.0 * (double)p->iter / (double)p->total, (long long)p->iter, (long long)p->total,
                p->epoch, p->loss, p->lr, amin, amax, el, eta);
        if (p->evaluated)
            fprintf(stderr, "  | val acc %.4f", p->val_acc);
        if (c->dp_sigma > 0)
            fprintf(stderr, "  | epsilon %.3f (delta %.0e)", dp_epsilon(c, p->iter), c->dp_delta);
        fputc('\n', stderr);
    }
    return 0;
}

/* The reference-implementation export: theta_0, the initial set and the
 * configuration, in the SLDDREF1 tensor format of scripts/ref/make-reference.py. */
static int export_init(sd_distiller *d, const sd_distill_config *cfg, const char *path)
{
    const sd_model *m = sd_distiller_model(d);
    size_t M = (size_t)cfg->steps * (size_t)cfg->images_per_step;
    size_t D = (size_t)m->spec.in_c * (size_t)m->spec.in_h * (size_t)m->spec.in_w;
    size_t K = (size_t)m->spec.classes, T = (size_t)cfg->steps * (size_t)cfg->epochs_inner;
    float *x = malloc(M * D * sizeof *x), *y = malloc(M * K * sizeof *y),
          *th = malloc(m->n_theta * sizeof *th), *rf = malloc(T * sizeof *rf);
    double *rho = malloc(T * sizeof *rho);
    sd_real *th0 = malloc(m->n_theta * sizeof *th0);
    sd_error err = {0};
    int rc = -1;
    FILE *f = NULL;
    if (!x || !y || !th || !rho || !th0 || !rf)
        goto out;
    if (sd_distiller_get(d, x, y, rho) || sd_init_theta(m, cfg->seed, th0, &err))
        goto out;
    for (size_t i = 0; i < m->n_theta; i++)
        th[i] = (float)th0[i];
    for (size_t t = 0; t < T; t++)
        rf[t] = (float)rho[t];
    f = fopen(path, "wb");
    if (!f)
        goto out;
    struct {
        const char *name;
        const float *data;
        size_t n;
    } ts[] = {{"theta0", th, m->n_theta}, {"x", x, M * D}, {"y", y, M * K}, {"rho", rf, T}};
    uint32_t count = 4;
    fwrite("SLDDREF1", 1, 8, f);
    fwrite(&count, 4, 1, f);
    for (int i = 0; i < 4; i++) {
        uint32_t len = (uint32_t)strlen(ts[i].name), nd = 1, n = (uint32_t)ts[i].n;
        fwrite(&len, 4, 1, f);
        fwrite(ts[i].name, 1, len, f);
        fwrite(&nd, 4, 1, f);
        fwrite(&n, 4, 1, f);
        fwrite(ts[i].data, sizeof(float), ts[i].n, f);
    }
    rc = ferror(f) ? -1 : 0;
out:
    if (f && fclose(f))
        rc = -1;
    free(x);
    free(y);
    free(th);
    free(rho);
    free(th0);
    free(rf);
    return rc;
}

enum {
    O_DEPTH = 256,
    O_WIDTH,
    O_SEED,
    O_NETS,
    O_RANDOM,
    O_IPS,
    O_STEPS,
    O_EIN,
    O_LPARAM,
    O_LINIT,
    O_HARD,
    O_BNMODE,
    O_RB,
    O_DLR,
    O_LR,
    O_DECAY,
    O_EPOCHS,
    O_ITERS,
    O_EVAL,
    O_EVALMAX,
    O_CKPT,
    O_RESUME,
    O_ENC,
    O_EXPORT,
    O_DEVICE,
    O_QUIET,
    O_LIMIT,
    O_DP,
    O_FORCE
};

static const struct option distill_options[] = {{"data", required_argument, 0, 'd'},
                                                {"out", required_argument, 0, 'o'},
                                                {"arch", required_argument, 0, 'a'},
                                                {"depth", required_argument, 0, O_DEPTH},
                                                {"width", required_argument, 0, O_WIDTH},
                                                {"seed", required_argument, 0, O_SEED},
                                                {"nets", required_argument, 0, O_NETS},
                                                {"random-init", no_argument, 0, O_RANDOM},
                                                {"images-per-step", required_argument, 0, O_IPS},
                                                {"steps", required_argument, 0, O_STEPS},
                                                {"epochs-inner", required_argument, 0, O_EIN},
                                                {"label-param", required_argument, 0, O_LPARAM},
                                                {"label-init", required_argument, 0, O_LINIT},
                                                {"hard-labels", no_argument, 0, O_HARD},
                                                {"bn-mode", required_argument, 0, O_BNMODE},
                                                {"real-batch", required_argument, 0, O_RB},
                                                {"distill-lr", required_argument, 0, O_DLR},
                                                {"lr", required_argument, 0, O_LR},
                                                {"decay-epochs", required_argument, 0, O_DECAY},
                                                {"step-cache-mib", required_argument, 0, O_DECAY},
                                                {"epochs", required_argument, 0, O_EPOCHS},
                                                {"iterations", required_argument, 0, O_ITERS},
                                                {"eval-every", required_argument, 0, O_EVAL},
                                                {"eval-max", required_argument, 0, O_EVALMAX},
                                                {"checkpoint-every", required_argument, 0, O_CKPT},
                                                {"resume", no_argument, 0, O_RESUME},
                                                {"force", no_argument, 0, O_FORCE},
                                                {"encoding", required_argument, 0, O_ENC},
                                                {"export-init", required_argument, 0, O_EXPORT},
                                                {"device", required_argument, 0, O_DEVICE},
                                                {"quiet", no_argument, 0, O_QUIET},
                                                {"train-limit", required_argument, 0, O_LIMIT},
                                                {"help", no_argument, 0, 'h'},
                                                {"dp-epsilon", required_argument, 0, O_DP},
                                                {"dp-noise", required_argument, 0, O_DP},
                                                {"dp-clip", required_argument, 0, O_DP},
                                                {"dp-delta", required_argument, 0, O_DP},
                                                {0, 0, 0, 0}};

typedef struct distill_args {
    /* the model, distilled-set and optimisation options are shared with
     * the node's distillation jobs (nd_distill.c) */
    nd_distill_opts dopts;
    const char *data, *out, *arch, *device, *export_path;
    int quiet, resume, force;
} distill_args;

/* -1 to go on, else the exit status (0 after --help). */
static int distill_parse(int argc, char **argv, distill_args *a)
{
    int o, idx = 0;
    memset(a, 0, sizeof *a);
    nd_distill_opts_defaults(&a->dopts);
    a->device = "cpu";
    optind = 1;
    while ((o = getopt_long(argc, argv, "d:o:a:h", distill_options, &idx)) != -1) {
        switch (o) {
        case 'd': a->data = optarg; break;
        case 'o': a->out = optarg; break;
        case O_RESUME: a->resume = 1; break;
        case O_FORCE: a->force = 1; break;
        case O_EXPORT: a->export_path = optarg; break;
        case O_DEVICE: a->device = optarg; break;
        case O_QUIET: a->quiet = 1; break;
        case 'h': distill_usage(stdout); return 0;
        case '?': distill_usage(stderr); return 2;
        default: {
            sd_error err = {0, ""};
            if (nd_distill_opt_apply(&a->dopts, o == 'a' ? "arch" : distill_options[idx].name,
                                     optarg, &err)) {
                fprintf(stderr, "sldd distill: %s\n", err.msg);
                return 2;
            }
        }
        }
    }
    if (a->dopts.arch[0])
        a->arch = a->dopts.arch;
    if (!a->data || (!a->out && !a->export_path) || optind != argc) {
        distill_usage(stderr);
        return 2;
    }
    if (a->resume && a->force) {
        fprintf(stderr, "sldd distill: --resume continues a run, --force starts again: not both\n");
        return 2;
    }
    return -1;
}

/* What a run writes into --out.  The checkpoint and the progress log are
 * what --resume continues from; the rest is the result of a finished run. */
static const char *const run_outputs[] = {"checkpoint", "checkpoint.tmp", "log.jsonl",
                                          "payload.pb", "result.json",    "grid.png",
                                          "curves.png", "privacy.png",    NULL};
enum { RUN_RESUMABLE = 3 }; /* the first three are kept by --resume */

/* Make --out, or check it: one that holds an earlier run's outputs is
 * refused unless --resume (its old result is removed, so no payload of an
 * earlier run lies beside a new log) or --force (all of them are removed).
 * Other files (a log redirected there) are left alone.  0, or the exit
 * status. */
static int distill_out_prepare(const distill_args *a)
{
    char path[4200], found[256] = "";
    struct stat st;
    if (!mkdir(a->out, 0755))
        return 0;
    if (errno != EEXIST || stat(a->out, &st) || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "sldd distill: cannot create %s: %s\n", a->out,
                errno == EEXIST ? "not a directory" : strerror(errno));
        return 1;
    }
    for (int i = 0; run_outputs[i]; i++) {
        snprintf(path, sizeof path, "%s/%s", a->out, run_outputs[i]);
        if (lstat(path, &st))
            continue;
        size_t at = strlen(found);
        snprintf(found + at, sizeof found - at, "%s%s", at ? ", " : "", run_outputs[i]);
        if (!a->force && !a->resume)
            continue;
        if (a->resume && i < RUN_RESUMABLE)
            continue;
        if (unlink(path)) {
            fprintf(stderr, "sldd distill: cannot remove %s: %s\n", path, strerror(errno));
            return 1;
        }
    }
    if (found[0] && !a->force && !a->resume) {
        fprintf(stderr,
                "sldd distill: %s holds an earlier run (%s): give --resume to continue it, "
                "--force to start again, or another --out\n",
                a->out, found);
        return 2;
    }
    return 0;
}

/* OUT/result.json: the figures of one run, for scripts.  An undefined
 * figure (Sen with no gastritis image, any image-level figure on
 * Fashion-MNIST) is null.  0, or -1 after the message. */
static int distill_result_json(const char *out, const distill_args *a, const char *label,
                               const sd_distill_config *cfg, int64_t total, const nd_data *ds,
                               const nd_eval *ev, const progress_ctx *pc, const char *backend)
{
    char path[4096];
    sd_error err = {0};
    nd_buf b;
    nd_buf_init(&b, 0);
    nd_buf_str(&b, "{\"task\":");
    nd_buf_json_str(&b, ds->gastric ? ds->prep.task.name : "fashion-mnist");
    nd_buf_str(&b, ",\"data\":");
    nd_buf_json_str(&b, a->data);
    nd_buf_str(&b, ",\"arch\":");
    nd_buf_json_str(&b, label);
    nd_buf_printf(&b,
                  ",\"seed\":%llu,\"images\":%d,\"steps\":%d,\"epochs_inner\":%d,"
                  "\"iterations\":%lld,\"split\":\"%s\",",
                  (unsigned long long)cfg->seed, cfg->steps * cfg->images_per_step, cfg->steps,
                  cfg->epochs_inner, (long long)total, ev->split);
    const double none = NAN;
    nd_buf_json_fig(&b, "accuracy", ev->samples ? ev->accuracy : none);
    nd_buf_str(&b, ",");
    nd_buf_json_fig(&b, "sen", ds->gastric ? ev->sen : none);
    nd_buf_str(&b, ",");
    nd_buf_json_fig(&b, "spe", ds->gastric ? ev->spe : none);
    nd_buf_str(&b, ",");
    nd_buf_json_fig(&b, "hm", ds->gastric ? ev->hm : none);
    nd_buf_str(&b, ",");
    nd_buf_json_fig(&b, "auc", ds->gastric ? ev->auc : none);
    nd_buf_str(&b, ",");
    nd_buf_json_fig(&b, "sec_per_iter", pc->iters ? pc->seconds / (double)pc->iters : none);
    /* the first iteration carries one-time costs (first touch of the
     * executor's memory, oneDNN's kernel generation); benchmarks compare the
     * iterations after it */
    nd_buf_str(&b, ",");
    nd_buf_json_fig(&b, "sec_first_iter", pc->iters ? pc->first_seconds : none);
    nd_buf_str(&b, ",\"backend\":");
    nd_buf_json_str(&b, backend);
    if (!strcmp(backend, "cpu")) { /* results depend on the kernel set (docs/cpu-backend.md) */
        nd_buf_str(&b, ",\"blas\":");
        nd_buf_json_str(&b, sd_backend_cpu_blas_core());
        nd_buf_str(&b, ",\"direct_kernels\":");
        nd_buf_json_str(&b, sd_backend_cpu_direct_kernels());
    }
    nd_buf_str(&b, "}\n");
    snprintf(path, sizeof path, "%s/result.json", out);
    size_t len = 0;
    char *text = nd_buf_take(&b, &len);
    int rc = !text ? sd_error_set(&err, SD_ENOMEM, "out of memory")
                   : nd_file_write_atomic(path, (const uint8_t *)text, len, &err);
    free(text);
    nd_buf_free(&b);
    if (rc)
        fprintf(stderr, "sldd distill: %s: %s\n", path, err.msg);
    return rc ? -1 : 0;
}

/* The privacy audit (docs/privacy.md): carried in the payload
 * (head->privacy) and drawn for the approver.  1 when it could not run. */
static int distill_privacy(const char *out, nd_data *ds, const sd_distilled *res, sd_backend *be,
                           sd_privacy_report *prv, nd_bundle_head *head)
{
    char path[4096];
    sd_error err = {0};
    sd_privacy_config pcfg;
    sd_privacy_config_defaults(&pcfg);
    if (!ds->val.count) {
        fprintf(stderr, "sldd distill: no held-out samples: the privacy audit cannot run\n");
        return 1;
    }
    if (sd_privacy_audit(prv, res, be, &ds->train, &ds->val, &pcfg, &err)) {
        fprintf(stderr, "sldd distill: privacy audit: %s\n", err.msg);
        return 1;
    }
    double dmin = INFINITY, smax = -INFINITY;
    for (size_t i = 0; i < prv->n_images; i++) {
        dmin = fmin(dmin, prv->images[i].pixel_distance);
        smax = fmax(smax, prv->images[i].ssim);
    }
    head->privacy = prv;
    printf("privacy: %s - %s\n", sd_privacy_verdict_name(prv->verdict), prv->reason);
    printf("privacy: nearest-training distance min %.4f (held-out 1%% %.4f), best SSIM "
           "max %.3f (held-out top 1%% %.3f), membership AUC %.3f; %lld of %lld training "
           "samples, %lld held-out, %.1f s\n",
           dmin, prv->heldout_distance_q[0], smax, prv->heldout_ssim_q[0], prv->membership_auc,
           (long long)prv->train_searched, (long long)prv->train_count,
           (long long)prv->heldout_used, prv->seconds);
    snprintf(path, sizeof path, "%s/privacy.png", out);
    if (sd_privacy_picture_png(path, prv, res->images, ds->class_names, ds->synthetic, 0, &err))
        fprintf(stderr, "sldd distill: %s\n", err.msg);
    else
        printf("privacy: %s\n", path);
    return 0;
}

/* OUT/payload.pb, OUT/grid.png and OUT/curves.png. */
static int distill_write(const char *out, nd_data *ds, nd_distill_opts *dopts,
                         const sd_distilled *res, const nd_eval *ev, const nd_bundle_head *head,
                         const progress_ctx *pc)
{
    char path[4096];
    sd_error err = {0};
    uint8_t *pb = NULL;
    size_t pblen = 0;
    snprintf(path, sizeof path, "%s/payload.pb", out);
    if (nd_distill_payload(ds, dopts, res, ev, head, &pb, &pblen, &err) ||
        nd_file_write_atomic(path, pb, pblen, &err)) {
        fprintf(stderr, "sldd distill: payload: %s\n", err.msg);
        free(pb);
        return -1;
    }
    free(pb);
    printf("payload: %s (%zu bytes)\n", path, pblen);
    snprintf(path, sizeof path, "%s/grid.png", out);
    if (nd_picture_grid(path, res, ds->class_names, ds->synthetic, &err))
        fprintf(stderr, "sldd distill: %s\n", err.msg);
    else
        printf("images:  %s\n", path);
    snprintf(path, sizeof path, "%s/curves.png", out);
    if (nd_picture_curves(path, pc->hist_iter, pc->hist_loss, pc->hist_acc, pc->n_hist, &err))
        fprintf(stderr, "sldd distill: %s\n", err.msg);
    else
        printf("curves:  %s\n", path);
    return 0;
}

/* Who the payload is from and for: a node's jobs fill this in with their
 * own identity (nd_jobs.c); a payload made here is "local". */
static void local_head(nd_bundle_head *head, uint64_t seed, const char *backend)
{
    static const char *const local_audience[] = {"local"};
    memset(head, 0, sizeof *head);
    head->sender = "local";
    head->audience = local_audience;
    head->n_audience = 1;
    head->sequence = 1;
    head->created_unix = (int64_t)time(NULL);
    head->expires_unix = head->created_unix + 30 * 86400;
    head->backend = backend;
    for (int i = 0; i < 16; i++)
        head->bundle_id[i] =
            (uint8_t)sd_uniform_u32(seed ^ (uint64_t)head->created_unix, 9, (uint64_t)i);
}

/* The progress log and history for a run of `total` iterations. */
static int progress_open(progress_ctx *pc, const char *out, int resume, int quiet, int64_t total)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/log.jsonl", out);
    pc->log = fopen(path, resume ? "a" : "w");
    pc->quiet = quiet;
    pc->every = total >= 100 ? total / 100 : 1;
    pc->cap = total + 1;
    pc->hist_iter = calloc((size_t)pc->cap, sizeof(double));
    pc->hist_loss = calloc((size_t)pc->cap, sizeof(double));
    pc->hist_acc = calloc((size_t)pc->cap, sizeof(double));
    if (!pc->log || !pc->hist_iter || !pc->hist_loss || !pc->hist_acc) {
        fprintf(stderr, "sldd distill: cannot write %s\n", path);
        return -1;
    }
    return 0;
}

static void progress_close(progress_ctx *pc)
{
    if (pc->log)
        fclose(pc->log);
    free(pc->hist_iter);
    free(pc->hist_loss);
    free(pc->hist_acc);
}

int cmd_distill(int argc, char **argv)
{
    distill_args a;
    int rc = distill_parse(argc, argv, &a);
    if (rc >= 0)
        return rc;
    if (a.out && (rc = distill_out_prepare(&a)) != 0)
        return rc;
    sd_error err = {0};
    nd_data ds;
    if (nd_data_open(&ds, a.data, a.dopts.train_limit, &err)) {
        fprintf(stderr, "sldd distill: %s\n", err.msg);
        return 1;
    }
    /* the architecture, and with --dp-epsilon the noise the accountant asks for */
    if (nd_distill_opts_finish(&a.dopts, &ds, &err)) {
        fprintf(stderr, "sldd distill: %s\n", err.msg);
        nd_data_close(&ds);
        return 2;
    }
    sd_distill_config cfg = a.dopts.cfg;
    int status = 1;
    sd_backend *be = NULL;
    sd_distiller *d = NULL;
    progress_ctx pc = {0};
    sd_distilled res = {0};
    sd_privacy_report prv = {0};
    char ckpt[4096];
    if (sd_backend_create(&be, a.device, &err)) {
        fprintf(stderr, "sldd distill: %s\n", err.msg);
        goto done;
    }
    if (a.out) {
        snprintf(ckpt, sizeof ckpt, "%s/checkpoint", a.out);
        cfg.checkpoint_path = ckpt;
    }
    if (sd_distiller_create(&d, &cfg, be, &ds.train, ds.val.count ? &ds.val : NULL,
                            a.resume ? ckpt : NULL, &err)) {
        fprintf(stderr, "sldd distill: %s\n", err.msg);
        goto done;
    }
    if (a.export_path) {
        if (export_init(d, &cfg, a.export_path)) {
            fprintf(stderr, "sldd distill: cannot write %s\n", a.export_path);
            goto done;
        }
        printf("wrote theta_0 and the initial distilled set to %s\n", a.export_path);
        status = 0;
        goto done;
    }
    int64_t total = cfg.iterations > 0 ? cfg.iterations
                                       : (int64_t)cfg.epochs * (ds.train.count / cfg.real_batch);
    if (progress_open(&pc, a.out, a.resume, a.quiet, total))
        goto done;
    if (cfg.dp_noise > 0) {
        pc.dp_q = (double)cfg.real_batch / (double)ds.train.count;
        pc.dp_sigma = cfg.dp_noise;
        pc.dp_delta = cfg.dp_delta;
        if (sd_rdp_curve(pc.dp_q, pc.dp_sigma, 1, pc.dp_rdp, &err)) {
            fprintf(stderr, "sldd distill: accounting: %s\n", err.msg);
            goto done;
        }
        if (!a.quiet)
            fprintf(stderr,
                    "differential privacy: Poisson rate q = %.6g, noise multiplier sigma = %.6g, "
                    "clip C = %g, delta = %g; epsilon after %lld iterations: %.4f per "
                    "training %s (accountant %s v%d); validation off\n",
                    pc.dp_q, pc.dp_sigma, cfg.dp_clip, cfg.dp_delta, (long long)total,
                    dp_epsilon(&pc, total), ds.gastric ? "patch" : "sample", SD_RDP_ACCOUNTANT,
                    SD_RDP_VERSION);
    }
    char label[64];
    sd_model_spec_label(&sd_distiller_model(d)->spec, label, sizeof label);
    if (!a.quiet)
        fprintf(stderr,
                "distilling %s on %s: %lld training samples, S=%d n=%d E=%d (T=%d), %lld "
                "iterations of batch %d on %s\n",
                label, a.data, (long long)ds.train.count, cfg.steps, cfg.images_per_step,
                cfg.epochs_inner, cfg.steps * cfg.epochs_inner, (long long)total, cfg.real_batch,
                be->name);
    if (sd_distiller_run(d, on_progress, &pc) || sd_distiller_export(d, &res)) {
        fprintf(stderr, "sldd distill: %s\n", sd_distiller_error(d)->msg);
        goto done;
    }
    /* evaluate the replayed model, as a receiver would */
    nd_eval ev;
    if (nd_data_evaluate(&ds, &res, be, &ev, &err)) {
        fprintf(stderr, "sldd distill: evaluating: %s\n", err.msg);
        goto done;
    }
    nd_eval_print(&ds, &ev, stdout);
    if (distill_result_json(a.out, &a, label, &cfg, total, &ds, &ev, &pc, be->name))
        goto done;
    nd_bundle_head head;
    local_head(&head, cfg.seed, be->name);
    int audit_failed = distill_privacy(a.out, &ds, &res, be, &prv, &head);
    a.dopts.cfg = cfg;
    if (distill_write(a.out, &ds, &a.dopts, &res, &ev, &head, &pc))
        goto done;
    status = audit_failed;
done:
    progress_close(&pc);
    sd_privacy_report_free(&prv);
    sd_distilled_free(&res);
    sd_distiller_destroy(d);
    sd_backend_destroy(be);
    nd_data_close(&ds);
    return status;
}
