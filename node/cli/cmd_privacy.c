/*
 * cmd_privacy.c - `sldd privacy audit`: a one-run membership audit of a
 * distillation (docs/privacy.md, "The one-run audit").
 *
 * It distils a second time, on the training data plus canaries each
 * included with probability 1/2 (nd_canary.h), replays theta_opt as a
 * receiver would, scores every canary by minus its loss, and states the
 * empirical epsilon lower bound at 95 % confidence, AUC and TPR at FPR 1 %
 * with bootstrap intervals (sd_onerun.h).  Beside it, the loss-threshold
 * attack on the real training data against the test split: overall, per
 * class and on the most outlying decile, each AUC with its interval
 * (sd_mia.h).  For a DP run the lower bound must stay below the
 * accountant's epsilon; if it does not, the command says so and fails.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "commands.h"
#include "nd_buf.h"
#include "nd_cli_words.h"
#include "nd_canary.h"
#include "nd_data.h"
#include "nd_distill.h"
#include "sb_parse.h"
#include "sd_mia.h"
#include "sd_onerun.h"
#include "sd_privacy.h"
#include "sd_rdp.h"
#include "sd_weights.h"

#define BOOT 1000

static void usage(FILE *f)
{
    fprintf(f, "usage: sldd privacy audit --data SOURCE --out DIR [--canaries M] [--audit-seed S]\n"
               "                          [--attack-samples N] [--device cpu|cuda] [--quiet]\n"
               "                          [distillation options, as for sldd distill]\n"
               "\n"
               "One-run membership audit (Steinke, Nasr, Jagielski 2023): M canaries (default\n"
               "200; mislabelled samples of the validation split) each join the training data\n"
               "with probability 1/2, the data set is distilled ONCE with the options given\n"
               "(--dp-epsilon etc. for a differentially private run), theta_opt is rebuilt as a\n"
               "receiver would and every canary is scored by its loss.  Prints the empirical\n"
               "epsilon lower bound at 95 %% confidence, the AUC and the TPR at FPR 1 %% with\n"
               "bootstrap intervals, and the loss-threshold attack on the real training data\n"
               "against the test split: overall, per class and on the most outlying 10 %%.\n"
               "Writes DIR/audit.json.  Exit 1 when a DP run's lower bound is above the\n"
               "accountant's epsilon (that would be a bug).\n");
}

typedef struct audit_args {
    const char *data, *out, *device;
    int canaries, quiet;
    long long attack;
    uint64_t seed;
    nd_distill_opts dopts;
} audit_args;

static int parse(int argc, char **argv, audit_args *a)
{
    memset(a, 0, sizeof *a);
    nd_distill_opts_defaults(&a->dopts);
    a->device = "cpu";
    a->canaries = 200;
    a->attack = 5000;
    a->seed = 1;
    for (int i = 2; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        sd_error err = {0, ""};
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(o, "--quiet")) {
            a->quiet = 1;
            continue;
        }
        if (strncmp(o, "--", 2)) {
            fprintf(stderr, "sldd privacy audit: unexpected '%s'\n", o);
            return 2;
        }
        int flag = nd_distill_opt_is_flag(o + 2);
        if (!flag && !v) {
            fprintf(stderr, "sldd privacy audit: %s needs a value\n", o);
            return 2;
        }
        int bad = 0;
        if (!strcmp(o, "--data"))
            a->data = v;
        else if (!strcmp(o, "--out"))
            a->out = v;
        else if (!strcmp(o, "--device"))
            a->device = v;
        else if (!strcmp(o, "--canaries"))
            bad = sb_parse_int(v, 2, 100000, &a->canaries);
        else if (!strcmp(o, "--attack-samples"))
            bad = sb_parse_i64(v, 10, 1000000, &a->attack);
        else if (!strcmp(o, "--audit-seed"))
            bad = sb_parse_u64(v, UINT64_MAX, &a->seed);
        else {
            int r = nd_distill_opt_apply(&a->dopts, o + 2, flag ? NULL : v, &err);
            if (r) {
                fprintf(stderr, "sldd privacy audit: %s\n",
                        r == 1 ? "unknown option (see --help)" : err.msg);
                return 2;
            }
        }
        if (bad) {
            fprintf(stderr, "sldd privacy audit: bad value for %s: '%s'\n", o, v);
            return 2;
        }
        i += !flag;
    }
    if (!a->data || !a->out) {
        usage(stderr);
        return 2;
    }
    return -1;
}

typedef struct prog {
    int quiet;
    int64_t every;
    double rdp1[SD_RDP_NORDERS], delta;
    int dp;
} prog;

static int on_progress(void *arg, const sd_progress *p)
{
    prog *g = arg;
    if (g->quiet || (p->iter % g->every && p->iter != p->total))
        return 0;
    fprintf(stderr, "[%5.1f%%] iter %lld/%lld  loss %.4f  elapsed %.0fs  ETA %.0fs",
            100.0 * (double)p->iter / (double)p->total, (long long)p->iter, (long long)p->total,
            p->loss, p->seconds, p->eta_seconds);
    if (g->dp)
        fprintf(stderr, "  | epsilon %.3f (delta %.0e)",
                sd_rdp_epsilon_after(g->rdp1, p->iter, g->delta), g->delta);
    fputc('\n', stderr);
    return 0;
}

/* Canary scores: minus the loss of each canary on its wrong label under
 * the replayed theta_opt. */
static int score_canaries(const sd_distilled *res, sd_backend *be, const nd_canaries *can,
                          double *score, sd_error *err)
{
    sd_model *m = NULL;
    sd_real *theta = NULL;
    int *lab = malloc((size_t)can->m * sizeof *lab);
    int rc =
        lab ? sd_replay(res, be, &m, &theta, err) : sd_error_set(err, SD_ENOMEM, "out of memory");
    if (!rc)
        rc = sd_privacy_losses(m, be, theta, m->n_bn ? res->theta_bn : NULL, &can->all, can->m,
                               score, lab, err);
    for (int i = 0; !rc && i < can->m; i++)
        score[i] = -score[i];
    if (theta)
        be->free(be, theta);
    sd_model_destroy(m);
    free(lab);
    return rc;
}

typedef struct attack {
    int K;
    sd_mia_figure all, decile, cls[16];
} attack;

/* The loss-threshold attack: n training samples (members) against n test
 * samples, spread evenly; overall, per class, most outlying decile. */
static int loss_attack(const sd_distilled *res, sd_backend *be, const sd_data_view *mem,
                       const sd_data_view *non, int64_t n, uint64_t seed, attack *at, sd_error *err)
{
    int64_t n1 = n < mem->count ? n : mem->count, n0 = n < non->count ? n : non->count;
    size_t D = (size_t)mem->c * (size_t)mem->h * (size_t)mem->w;
    int64_t N = n1 + n0;
    double *loss = malloc((size_t)N * sizeof *loss), *out = malloc((size_t)N * sizeof *out);
    int *y = malloc((size_t)N * sizeof *y);
    int64_t *idx = malloc((size_t)N * sizeof *idx);
    float *x = malloc((size_t)N * D * sizeof *x);
    uint8_t *keep = malloc((size_t)N);
    sd_model *m = NULL;
    sd_real *theta = NULL;
    int rc = 0;
    memset(at, 0, sizeof *at);
    at->K = mem->classes < 16 ? mem->classes : 16;
    if (!loss || !out || !y || !idx || !x || !keep) {
        rc = sd_error_set(err, SD_ENOMEM, "loss attack: out of memory");
        goto done;
    }
    for (int64_t i = 0; i < n1; i++)
        idx[i] = (int64_t)((double)i * (double)mem->count / (double)n1);
    for (int64_t i = 0; i < n0; i++)
        idx[n1 + i] = (int64_t)((double)i * (double)non->count / (double)n0);
    if ((rc = nd_view_to_host(mem, be, idx, n1, x, y, err)) ||
        (rc = nd_view_to_host(non, be, idx + n1, n0, x + (size_t)n1 * D, y + n1, err)) ||
        (rc = sd_replay(res, be, &m, &theta, err)) ||
        (rc = sd_privacy_losses(m, be, theta, m->n_bn ? res->theta_bn : NULL, mem, n1, loss, y,
                                err)) ||
        (rc = sd_privacy_losses(m, be, theta, m->n_bn ? res->theta_bn : NULL, non, n0, loss + n1,
                                y + n1, err)) ||
        (rc = sd_mia_outlyingness(x, y, N, D, mem->classes, out, err)))
        goto done;
    rc = sd_mia_auc(loss, y, NULL, n1, loss + n1, y + n1, NULL, n0, BOOT, seed, &at->all, err);
    double t = sd_mia_top_threshold(out, N, 0.10);
    for (int64_t i = 0; i < N; i++)
        keep[i] = out[i] >= t;
    if (!rc)
        rc = sd_mia_auc(loss, y, keep, n1, loss + n1, y + n1, keep + n1, n0, BOOT, seed + 1,
                        &at->decile, err);
    for (int k = 0; k < at->K && !rc; k++) {
        for (int64_t i = 0; i < N; i++)
            keep[i] = y[i] == k;
        rc = sd_mia_auc(loss, y, keep, n1, loss + n1, y + n1, keep + n1, n0, BOOT, seed + 2 + k,
                        &at->cls[k], err);
    }
done:
    if (theta)
        be->free(be, theta);
    sd_model_destroy(m);
    free(loss);
    free(out);
    free(y);
    free(idx);
    free(x);
    free(keep);
    return rc;
}

static void print_fig(FILE *f, const char *name, const sd_mia_figure *g)
{
    if (isfinite(g->auc) && isfinite(g->lo) && isfinite(g->hi))
        fprintf(f, "  %-22s AUC %.3f [%.3f, %.3f]", name, g->auc, g->lo, g->hi);
    else /* no members or no non-members in this group */
        fprintf(f, "  %-22s AUC undefined", name);
    fprintf(f, "  (%lld members, %lld non-members)\n", (long long)g->members,
            (long long)g->nonmembers);
}

/* An attack's figures; an undefined AUC or bound is null (nd_buf_json_fig). */
static void json_fig(nd_buf *b, const char *name, const sd_mia_figure *g, int last)
{
    nd_buf_json_str(b, name);
    nd_buf_str(b, ":{");
    nd_buf_json_fig(b, "auc", g->auc);
    nd_buf_str(b, ",");
    nd_buf_json_fig(b, "lo", g->lo);
    nd_buf_str(b, ",");
    nd_buf_json_fig(b, "hi", g->hi);
    nd_buf_printf(b, ",\"members\":%lld,\"nonmembers\":%lld}%s", (long long)g->members,
                  (long long)g->nonmembers, last ? "" : ",");
}

/* OUT/audit.json: everything the audit found, for scripts. */
static int write_json(const char *out, const audit_args *a, const nd_canaries *can,
                      const double *score, const sd_onerun_result *r, double eps_acc,
                      const attack *at)
{
    char path[4200];
    nd_buf b;
    nd_buf_init(&b, 0);
    nd_buf_str(&b, "{\"data\":");
    nd_buf_json_str(&b, a->data);
    nd_buf_printf(&b, ",\"canaries\":%d,\"audit_seed\":%llu,\"dp\":%d,", can->m,
                  (unsigned long long)a->seed, a->dopts.cfg.dp_noise > 0);
    nd_buf_json_fig(&b, "accountant_epsilon", eps_acc);
    nd_buf_printf(&b, ",\"delta\":%g,", a->dopts.cfg.dp_noise > 0 ? a->dopts.cfg.dp_delta : 0);
    nd_buf_json_fig(&b, "eps_lower", r->eps_lower);
    nd_buf_printf(&b, ",\"k_pos\":%d,\"k_neg\":%d,\"correct\":%d", r->k_pos, r->k_neg, r->correct);
    const char *keys[] = {"auc", "auc_lo", "auc_hi", "tpr1", "tpr1_lo", "tpr1_hi"};
    const double vals[] = {r->auc, r->auc_lo, r->auc_hi, r->tpr1, r->tpr1_lo, r->tpr1_hi};
    for (int k = 0; k < 6; k++) {
        nd_buf_str(&b, ",");
        nd_buf_json_fig(&b, keys[k], vals[k]);
    }
    nd_buf_str(&b, ",\"loss_attack\":{");
    json_fig(&b, "all", &at->all, 0);
    json_fig(&b, "most_outlying_decile", &at->decile, 0);
    nd_buf_str(&b, "\"per_class\":{");
    for (int k = 0; k < at->K; k++) {
        char nm[16];
        snprintf(nm, sizeof nm, "%d", k);
        json_fig(&b, nm, &at->cls[k], k + 1 == at->K);
    }
    nd_buf_str(&b, "}},\"canary\":[");
    for (int i = 0; i < can->m; i++) {
        nd_buf_printf(&b, "%s{\"member\":%d,", i ? "," : "", can->member[i]);
        nd_buf_json_fig(&b, "score", score[i]);
        nd_buf_printf(&b, ",\"label\":%d,\"true_label\":%d}", can->label[i], can->true_label[i]);
    }
    nd_buf_str(&b, "]}\n");
    snprintf(path, sizeof path, "%s/audit.json", out);
    sd_error err = {0};
    int rc = b.failed || nd_file_write_atomic(path, (const uint8_t *)b.data, b.len, &err) ? -1 : 0;
    nd_buf_free(&b);
    return rc;
}

static int run(audit_args *a, nd_data *ds, sd_backend *be)
{
    sd_error err = {0, ""};
    nd_canaries can;
    sd_data_view base = ds->train;
    sd_distiller *d = NULL;
    sd_distilled res = {0};
    double *score = NULL, eps_acc = INFINITY;
    int status = 1;
    if (a->dopts.cfg.dp_noise > 0 || a->dopts.dp_epsilon > 0)
        nd_data_public_norm(ds); /* before the canaries are cut */
    if (nd_canaries_make(&can, &ds->val, &base, a->canaries, a->seed, be, &err)) {
        fprintf(stderr, "sldd privacy audit: %s\n", err.msg);
        return 1;
    }
    ds->train = can.train; /* the accountant and the run see the canaries */
    a->dopts.cfg.eval_every = 0;
    prog g = {a->quiet, 1, {0}, a->dopts.cfg.dp_delta, 0};
    if (nd_distill_opts_finish(&a->dopts, ds, &err))
        goto fail;
    int64_t total = nd_distill_total(&a->dopts, ds);
    g.every = total >= 100 ? total / 100 : 1;
    int dp = a->dopts.cfg.dp_noise > 0;
    double q = (double)a->dopts.cfg.real_batch / (double)ds->train.count;
    if (dp && ((g.dp = 1, sd_rdp_curve(q, a->dopts.cfg.dp_noise, 1, g.rdp1, &err)) ||
               sd_rdp_epsilon(q, a->dopts.cfg.dp_noise, total, a->dopts.cfg.dp_delta, &eps_acc,
                              NULL, &err)))
        goto fail;
    printf("one-run audit: %d canaries (mislabelled validation samples), %lld trained on; "
           "%lld training samples in all; %s\n",
           can.m, (long long)can.included.count, (long long)ds->train.count,
           dp ? "differentially private run" : "run without differential privacy");
    if (dp)
        printf(
            "accountant: epsilon %.4f at delta %g (sigma %.4g, q %.4g, %lld iterations, %s v%d)\n",
            eps_acc, a->dopts.cfg.dp_delta, a->dopts.cfg.dp_noise, q, (long long)total,
            SD_RDP_ACCOUNTANT, SD_RDP_VERSION);
    fflush(stdout);
    if (sd_distiller_create(&d, &a->dopts.cfg, be, &ds->train, NULL, NULL, &err))
        goto fail;
    if (sd_distiller_run(d, on_progress, &g) || sd_distiller_export(d, &res)) {
        snprintf(err.msg, sizeof err.msg, "%s", sd_distiller_error(d)->msg);
        goto fail;
    }
    ds->train = base;
    score = malloc((size_t)can.m * sizeof *score);
    sd_onerun_result r;
    attack at;
    if (!score) {
        snprintf(err.msg, sizeof err.msg, "out of memory");
        goto fail;
    }
    if (score_canaries(&res, be, &can, score, &err) ||
        sd_onerun_audit(can.member, score, can.m, dp ? a->dopts.cfg.dp_delta : 0, 0.05, BOOT,
                        a->seed, &r, &err) ||
        loss_attack(&res, be, &base, &ds->test, a->attack, a->seed, &at, &err))
        goto fail;
    if (r.eps_lower > 0)
        printf("canaries: empirical epsilon lower bound %.3f at 95 %% confidence (guessing the "
               "top %d as members and the bottom %d as not: %d of %d right)\n",
               r.eps_lower, r.k_pos, r.k_neg, r.correct, r.k_pos + r.k_neg);
    else
        printf("canaries: empirical epsilon lower bound 0 at 95 %% confidence (no guess rejects "
               "epsilon = 0: no membership signal found)\n");
    printf("          AUC %.3f [%.3f, %.3f], TPR at FPR 1 %% %.3f [%.3f, %.3f] (95 %% bootstrap)\n",
           r.auc, r.auc_lo, r.auc_hi, r.tpr1, r.tpr1_lo, r.tpr1_hi);
    printf("loss-threshold attack on the real training data (members) against the test split "
           "(non-members), 95 %% bootstrap intervals:\n");
    print_fig(stdout, "all", &at.all);
    print_fig(stdout, "most outlying 10 %", &at.decile);
    for (int k = 0; k < at.K; k++) {
        char nm[64];
        if (ds->class_names)
            snprintf(nm, sizeof nm, "class %s", ds->class_names[k]);
        else
            snprintf(nm, sizeof nm, "class %d", k);
        print_fig(stdout, nm, &at.cls[k]);
    }
    nd_eval ev;
    if (nd_data_evaluate(ds, &res, be, &ev, &err))
        goto fail;
    nd_eval_print(ds, &ev, stdout);
    if (write_json(a->out, a, &can, score, &r, eps_acc, &at))
        fprintf(stderr, "sldd privacy audit: cannot write %s/audit.json\n", a->out);
    else
        printf("wrote %s/audit.json\n", a->out);
    status = 0;
    if (dp && r.eps_lower > eps_acc) {
        fprintf(stderr,
                "sldd privacy audit: the empirical lower bound %.3f is ABOVE the accountant's "
                "epsilon %.3f: the DP implementation or the accountant is wrong\n",
                r.eps_lower, eps_acc);
        status = 1;
    }
    goto done;
fail:
    fprintf(stderr, "sldd privacy audit: %s\n", err.msg);
done:
    ds->train = base;
    free(score);
    sd_distilled_free(&res);
    sd_distiller_destroy(d);
    nd_canaries_free(&can);
    return status;
}

int cmd_privacy(int argc, char **argv)
{
    audit_args a;
    static const char *const subs[] = {"audit", NULL};
    if (argc < 2 || strcmp(argv[1], "audit")) {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            usage(stdout);
            return 0;
        }
        if (argc >= 2)
            nd_cli_check_word("sldd privacy", "subcommand", argv[1], subs);
        else
            usage(stderr);
        return 2;
    }
    int rc = parse(argc, argv, &a);
    if (rc >= 0)
        return rc;
    if (mkdir(a.out, 0755) && errno != EEXIST) {
        fprintf(stderr, "sldd privacy audit: cannot create %s: %s\n", a.out, strerror(errno));
        return 1;
    }
    sd_error err = {0, ""};
    nd_data ds;
    sd_backend *be = NULL;
    if (nd_data_open(&ds, a.data, a.dopts.train_limit, &err)) {
        fprintf(stderr, "sldd privacy audit: %s\n", err.msg);
        return 1;
    }
    int status = 1;
    if (!ds.val.count || !ds.test.count)
        fprintf(stderr, "sldd privacy audit: the data set needs validation and test samples\n");
    else if (sd_backend_create(&be, a.device, &err))
        fprintf(stderr, "sldd privacy audit: %s\n", err.msg);
    else
        status = run(&a, &ds, be);
    sd_backend_destroy(be);
    nd_data_close(&ds);
    return status;
}
