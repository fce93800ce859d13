/*
 * sd_distill.c - Algorithm 1 (distillation with an exact meta-gradient) and
 * the export of its result; replay (Algorithm 2), theta_bn recomputation and
 * evaluation are in sd_weights.c.
 *
 * One outer iteration:
 *   theta_0                  fixed (one of `nets` seeds) or fresh
 *   theta_{t+1} = theta_t - alpha_t grad l(x_s, y_s, theta_t),  t < T
 *   L = CE(f(x_real; theta_T), labels),  v = grad_theta L
 *   for t = T-1 .. 0 (the tangent passes at (theta_t, x_s, y_s) along v):
 *       dL/dalpha_t = -<v, grad l_t>
 *       dL/dx_s    += -alpha_t d/dx <v, grad l_t>
 *       dL/dy_s    += -alpha_t d/dy <v, grad l_t>
 *       v          -= alpha_t H v
 *   Adam on x, y and rho (alpha = softplus(rho)).
 * All theta_t are kept (T+1 vectors).  When step_cache_bytes allows, so is
 * each inner step's forward and backward (one exec slot and one gradient per
 * step), and the walk back runs only the tangent passes (sd_exec_hvp_cached);
 * otherwise it recomputes them (sd_exec_hvp).  Both give the same bits.
 *
 * Randomness is counter-based (sd_init.h): the batch order of epoch e is a
 * Fisher-Yates shuffle driven by Philox at (seed, stream SHUFFLE, e<<32|i), so
 * a run resumed from a checkpoint sees exactly the batches it would have seen.
 */
#include "sd_distill.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sd_dp.h"
#include "sd_init.h"

enum { SD_STREAM_RANDINIT = 5 }; /* 4: theta_bn batches (sd_weights.c) */

struct sd_distiller {
    sd_distill_config cfg;
    sd_backend *be;
    sd_model *m;
    sd_data_view train, val;
    sd_exec *ex_syn, *ex_real;
    int K, T, M, n;
    size_t img, nt;
    int64_t iters_per_epoch, total;
    /* learned data (backend) and step parameters (host) */
    sd_real *x, *y;
    double *rho;
    /* Adam state */
    sd_real *mx, *vx, *my, *vy;
    double *mr, *vr;
    int adam_t;
    /* gradients and temporaries */
    sd_real *gx, *gy, *tx, *ty;
    double *grho;
    sd_real **theta;  /* T+1 */
    sd_real **theta0; /* nets fixed initial weights */
    sd_real *v, *hv;
    sd_real *gt;   /* the inner steps' gradient, one at a time (when they are not kept) */
    sd_real **gts; /* the T gradients of the inner steps when they are kept (else NULL) */
    sd_real *xb, *yb;
    int *lb;
    int64_t *idx, *perm;
    int perm_epoch;
    double *theta_bn_run, *theta_bn_batch;
    sd_real *theta_bn_dev;
    float *alpha_host;
    /* differential privacy (sd_dp.h); ex_dp runs one real sample (and the
     * synthetic batches for their statistics) with batch norm frozen */
    int dp;
    uint64_t dp_key;
    double dp_q;
    sd_exec *ex_dp;
    sd_real *dp_g, *dp_tmp, *dp_bn_dev;
    float *dp_host;
    int64_t *dp_idx, dp_count;
    int64_t iter;
    sd_error err;
};

void sd_distill_config_defaults(sd_distill_config *c)
{
    memset(c, 0, sizeof *c);
    c->steps = 1;
    c->images_per_step = 3;
    c->epochs_inner = 1;
    c->real_batch = 256;
    c->label_param = SD_LABEL_SOFTMAX;
    c->label_init = SD_LABEL_INIT_ONEHOT;
    c->distill_lr = 0.01;
    c->lr = 0.01;
    c->beta1 = 0.5;
    c->beta2 = 0.999;
    c->adam_eps = 1e-8;
    c->decay_epochs = 40;
    c->decay_factor = 0.5;
    c->epochs = 400;
    c->nets = 1;
    c->bn_mode = SD_BN_BATCH;
    c->bn_momentum = 0.1;
    c->bn_export_batches = 20;
    c->step_cache_bytes = (size_t)2 << 30;
    c->dp_clip = 1.0;
    c->dp_delta = 1e-5;
}

static double softplus(double r)
{
    return r > 30 ? r : log1p(exp(r));
}
static double sigmoid(double r)
{
    return 1.0 / (1.0 + exp(-r));
}
static double softplus_inv(double a)
{
    return a > 30 ? a : log(expm1(a));
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define BE(d, call, what)                                          \
    do {                                                           \
        int rc_ = (call);                                          \
        if (rc_)                                                   \
            return sd_error_wrap_code(&(d)->err, rc_, "%s", what); \
    } while (0)

/* one-hot targets for hard labels */
static int upload_onehot(sd_backend *be, sd_real *dst, const int *labels, int n, int K,
                         sd_error *err)
{
    sd_real *h = calloc((size_t)n * (size_t)K, sizeof *h);
    if (!h)
        return sd_error_set(err, SD_ENOMEM, "out of memory");
    for (int i = 0; i < n; i++)
        h[(size_t)i * (size_t)K + (size_t)labels[i]] = 1;
    int rc = be->upload(be, err, dst, h, (size_t)n * (size_t)K * sizeof *h);
    free(h);
    return rc ? sd_error_wrap_code(err, rc, "upload labels") : SD_OK;
}

static void shuffle(int64_t *perm, int64_t count, uint64_t seed, int epoch)
{
    for (int64_t i = 0; i < count; i++)
        perm[i] = i;
    for (int64_t i = count - 1; i > 0; i--) {
        uint64_t ctr = ((uint64_t)(uint32_t)epoch << 32) | (uint64_t)(uint32_t)i;
        uint64_t r = ((uint64_t)sd_uniform_u32(seed, SD_STREAM_SHUFFLE, ctr) << 32) |
                     sd_uniform_u32(seed ^ 0x5bd1e995u, SD_STREAM_SHUFFLE, ctr);
        int64_t j = (int64_t)(r % (uint64_t)(i + 1));
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

void sd_distiller_destroy(sd_distiller *d)
{
    if (!d)
        return;
    sd_backend *be = d->be;
    sd_real *bufs[] = {d->x,    d->y,      d->mx,       d->vx, d->my, d->vy, d->gx, d->gy,
                       d->tx,   d->ty,     d->v,        d->hv, d->gt, d->xb, d->yb, d->theta_bn_dev,
                       d->dp_g, d->dp_tmp, d->dp_bn_dev};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        be->free(be, bufs[i]);
    if (d->theta)
        for (int t = 0; t <= d->T; t++)
            be->free(be, d->theta[t]);
    if (d->theta0)
        for (int j = 0; j < d->cfg.nets; j++)
            be->free(be, d->theta0[j]);
    if (d->gts)
        for (int t = 0; t < d->T; t++)
            be->free(be, d->gts[t]);
    free(d->gts);
    free(d->theta);
    free(d->theta0);
    free(d->rho);
    free(d->mr);
    free(d->vr);
    free(d->grho);
    free(d->lb);
    free(d->idx);
    free(d->perm);
    free(d->theta_bn_run);
    free(d->theta_bn_batch);
    free(d->alpha_host);
    free(d->dp_host);
    free(d->dp_idx);
    sd_exec_destroy(d->ex_dp);
    sd_exec_destroy(d->ex_syn);
    sd_exec_destroy(d->ex_real);
    sd_model_destroy(d->m);
    free(d);
}

sd_error *sd_distiller_error(sd_distiller *d)
{
    return &d->err;
}

int sd_distiller_get(sd_distiller *d, float *x, float *y, double *rho)
{
    size_t nx = (size_t)d->M * d->img, ny = (size_t)d->M * (size_t)d->K;
    int rc;
    if ((x && (rc = sd_download_floats(d->be, x, d->x, nx, &d->err))) ||
        (y && (rc = sd_download_floats(d->be, y, d->y, ny, &d->err))))
        return rc;
    if (rho)
        memcpy(rho, d->rho, (size_t)d->T * sizeof *rho);
    return SD_OK;
}

int sd_distiller_set(sd_distiller *d, const float *x, const float *y, const double *rho)
{
    size_t nx = (size_t)d->M * d->img, ny = (size_t)d->M * (size_t)d->K;
    int rc;
    if ((x && (rc = sd_upload_floats(d->be, d->x, x, nx, &d->err))) ||
        (y && (rc = sd_upload_floats(d->be, d->y, y, ny, &d->err))))
        return rc;
    if (rho)
        memcpy(d->rho, rho, (size_t)d->T * sizeof *rho);
    return SD_OK;
}

void sd_distiller_data_ptr(sd_distiller *d, sd_real **x, sd_real **y)
{
    *x = d->x;
    *y = d->y;
}

int sd_distiller_set_theta0(sd_distiller *d, const float *theta0)
{
    if (d->cfg.random_init)
        return sd_error_set(&d->err, SD_EINVAL, "random-init runs have no fixed theta_0");
    return sd_upload_floats(d->be, d->theta0[0], theta0, d->nt, &d->err);
}

static int meta_gradient(sd_distiller *d, double *loss_out);

int sd_distiller_meta_gradient(sd_distiller *d, double *loss, float *gx, float *gy, double *grho)
{
    int rc = meta_gradient(d, loss);
    size_t nx = (size_t)d->M * d->img, ny = (size_t)d->M * (size_t)d->K;
    if (rc || (gx && (rc = sd_download_floats(d->be, gx, d->gx, nx, &d->err))) ||
        (gy && (rc = sd_download_floats(d->be, gy, d->gy, ny, &d->err))))
        return rc;
    if (grho)
        memcpy(grho, d->grho, (size_t)d->T * sizeof *grho);
    return SD_OK;
}
const sd_model *sd_distiller_model(const sd_distiller *d)
{
    return d->m;
}
int64_t sd_distiller_iteration(const sd_distiller *d)
{
    return d->iter;
}

/* Initial images N(0,1) and labels per docs/algorithm.md ("Soft labels"). */
static int init_data(sd_distiller *d)
{
    size_t nx = (size_t)d->M * d->img, ny = (size_t)d->M * (size_t)d->K;
    float *hx = malloc(nx * sizeof *hx), *hy = calloc(ny, sizeof *hy);
    int rc = SD_OK;
    if (!hx || !hy) {
        rc = sd_error_set(&d->err, SD_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < nx; i++)
        hx[i] = (float)sd_normal(d->cfg.seed, SD_STREAM_IMAGES, i);
    for (int i = 0; i < d->M; i++) {
        int c = d->cfg.label_init == SD_LABEL_INIT_CLASS ? d->cfg.label_class : i % d->K;
        hy[(size_t)i * (size_t)d->K + (size_t)c] = 1; /* one-hot logits */
    }
    if ((rc = sd_upload_floats(d->be, d->x, hx, nx, &d->err)) ||
        (rc = sd_upload_floats(d->be, d->y, hy, ny, &d->err)))
        goto out;
    for (int t = 0; t < d->T; t++)
        d->rho[t] = softplus_inv(d->cfg.distill_lr);
out:
    free(hx);
    free(hy);
    return rc;
}

/* ---- checkpoints: magic, sizes, iteration, adam step, then the state ---- */

static const char CKPT_MAGIC[8] = {'S', 'L', 'D', 'D', 'C', 'K', 'P', '1'};

static int ckpt_io(sd_distiller *d, FILE *f, int writing)
{
    size_t nx = (size_t)d->M * d->img, ny = (size_t)d->M * (size_t)d->K;
    sd_real *bufs[6] = {d->x, d->y, d->mx, d->vx, d->my, d->vy};
    size_t lens[6] = {nx, ny, nx, nx, ny, ny};
    size_t maxn = nx > ny ? nx : ny;
    float *tmp = malloc(maxn * sizeof *tmp);
    if (!tmp)
        return sd_error_set(&d->err, SD_ENOMEM, "out of memory");
    int rc = SD_OK;
    for (int i = 0; i < 6 && !rc; i++) {
        if (writing) {
            rc = sd_download_floats(d->be, tmp, bufs[i], lens[i], &d->err);
            if (!rc && fwrite(tmp, sizeof *tmp, lens[i], f) != lens[i])
                rc = sd_error_set(&d->err, SD_EIO, "writing checkpoint: %s", strerror(errno));
        } else {
            if (fread(tmp, sizeof *tmp, lens[i], f) != lens[i])
                rc = sd_error_set(&d->err, SD_EFORMAT, "checkpoint is truncated");
            else
                rc = sd_upload_floats(d->be, bufs[i], tmp, lens[i], &d->err);
        }
    }
    free(tmp);
    double *hb[4] = {d->rho, d->mr, d->vr, d->theta_bn_run};
    size_t hl[4] = {(size_t)d->T, (size_t)d->T, (size_t)d->T, d->m->n_bn};
    for (int i = 0; i < 4 && !rc; i++) {
        size_t k = writing ? fwrite(hb[i], sizeof(double), hl[i], f)
                           : fread(hb[i], sizeof(double), hl[i], f);
        if (k != hl[i])
            rc = sd_error_set(&d->err, writing ? SD_EIO : SD_EFORMAT, "%s checkpoint failed",
                              writing ? "writing" : "reading");
    }
    return rc;
}

static int ckpt_write(sd_distiller *d)
{
    const char *path = d->cfg.checkpoint_path;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return sd_error_set(&d->err, SD_EIO, "cannot write %s: %s", tmp, strerror(errno));
    int64_t hdr[6] = {d->M, (int64_t)d->img, d->K, d->T, d->iter, d->adam_t};
    int rc = SD_OK;
    if (fwrite(CKPT_MAGIC, 1, 8, f) != 8 || fwrite(hdr, sizeof hdr, 1, f) != 1)
        rc = sd_error_set(&d->err, SD_EIO, "writing %s: %s", tmp, strerror(errno));
    if (!rc)
        rc = ckpt_io(d, f, 1);
    if (fflush(f) || fsync(fileno(f)))
        rc = rc ? rc : sd_error_set(&d->err, SD_EIO, "flushing %s: %s", tmp, strerror(errno));
    if (fclose(f))
        rc = rc ? rc : sd_error_set(&d->err, SD_EIO, "closing %s: %s", tmp, strerror(errno));
    if (!rc && rename(tmp, path))
        rc = sd_error_set(&d->err, SD_EIO, "renaming %s: %s", tmp, strerror(errno));
    if (rc)
        unlink(tmp);
    return rc;
}

static int ckpt_read(sd_distiller *d, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return sd_error_set(&d->err, SD_EIO, "cannot open checkpoint %s: %s", path,
                            strerror(errno));
    char magic[8];
    int64_t hdr[6];
    int rc = SD_OK;
    if (fread(magic, 1, 8, f) != 8 || memcmp(magic, CKPT_MAGIC, 8) ||
        fread(hdr, sizeof hdr, 1, f) != 1)
        rc = sd_error_set(&d->err, SD_EFORMAT, "%s is not a distillation checkpoint", path);
    else if (hdr[0] != d->M || hdr[1] != (int64_t)d->img || hdr[2] != d->K || hdr[3] != d->T)
        rc = sd_error_set(&d->err, SD_EINVAL,
                          "checkpoint %s was made with another configuration (%lld images, %lld "
                          "steps; this run: %d, %d)",
                          path, (long long)hdr[0], (long long)hdr[3], d->M, d->T);
    if (!rc) {
        d->iter = hdr[4];
        d->adam_t = (int)hdr[5];
        rc = ckpt_io(d, f, 0);
    }
    fclose(f);
    return rc ? sd_error_wrap(&d->err, "resuming") : SD_OK;
}

/* DP mode: the secret key, the per-sample executor and its buffers. */
static int dp_setup(sd_distiller *d, sd_error *err)
{
    sd_backend *be = d->be;
    int rc;
    if (!(d->cfg.dp_clip > 0) || !(d->cfg.dp_delta > 0 && d->cfg.dp_delta < 1))
        return sd_error_set(err, SD_EINVAL, "DP needs a clip norm > 0 and 0 < delta < 1");
    d->dp = 1;
    d->dp_q = (double)d->cfg.real_batch / (double)d->train.count;
    d->cfg.eval_every = 0; /* validation would spend privacy: off */
    if ((rc = sd_dp_secret_key(&d->dp_key, err)) ||
        (rc = sd_exec_create(&d->ex_dp, d->m, be, d->n, 0, err)) ||
        (rc = sd_dev_alloc(be, d->nt, &d->dp_g, err)) ||
        (rc = sd_dev_alloc(be, d->nt, &d->dp_tmp, err)) ||
        (rc = sd_dev_alloc(be, d->m->n_bn, &d->dp_bn_dev, err)))
        return rc;
    d->dp_host = malloc((d->nt + 1) * sizeof *d->dp_host);
    d->dp_idx = malloc((size_t)d->train.count * sizeof *d->dp_idx);
    if (!d->dp_host || !d->dp_idx)
        return sd_error_set(err, SD_ENOMEM, "out of memory");
    return SD_OK;
}

int sd_distiller_create(sd_distiller **out, const sd_distill_config *cfg, sd_backend *be,
                        const sd_data_view *train, const sd_data_view *val, const char *resume_path,
                        sd_error *err)
{
    *out = NULL;
    if (cfg->steps <= 0 || cfg->images_per_step <= 0 || cfg->epochs_inner <= 0 ||
        cfg->real_batch <= 0 || cfg->nets <= 0 || cfg->distill_lr <= 0 || cfg->lr <= 0)
        return sd_error_set(err, SD_EINVAL,
                            "steps, images per step, epochs, real batch, nets and learning "
                            "rates must be positive");
    if (train->count < cfg->real_batch)
        return sd_error_set(err, SD_EINVAL, "%lld training samples, fewer than one batch of %d",
                            (long long)train->count, cfg->real_batch);
    sd_distiller *d = calloc(1, sizeof *d);
    if (!d)
        return sd_error_set(err, SD_ENOMEM, "out of memory");
    d->cfg = *cfg;
    d->be = be;
    d->train = *train;
    if (val)
        d->val = *val;
    int rc;
    sd_model_spec spec = cfg->spec;
    spec.in_c = train->c;
    spec.in_h = train->h;
    spec.in_w = train->w;
    spec.classes = train->classes;
    if ((rc = sd_model_create(&d->m, &spec, err)))
        goto fail;
    d->K = spec.classes;
    if (cfg->label_init == SD_LABEL_INIT_CLASS &&
        (cfg->label_class < 0 || cfg->label_class >= d->K)) {
        rc = sd_error_set(err, SD_EINVAL, "label class %d out of range", cfg->label_class);
        goto fail;
    }
    d->n = cfg->images_per_step;
    d->M = cfg->steps * cfg->images_per_step;
    d->T = cfg->steps * cfg->epochs_inner;
    d->img = (size_t)train->c * (size_t)train->h * (size_t)train->w;
    d->nt = d->m->n_theta;
    d->iters_per_epoch = train->count / cfg->real_batch;
    d->total = cfg->iterations > 0 ? cfg->iterations : (int64_t)cfg->epochs * d->iters_per_epoch;
    /* keep the inner steps' state for the walk back when it fits */
    size_t keep = (sd_exec_slot_bytes(d->m, d->n) + d->nt * sizeof(sd_real)) * (size_t)d->T;
    int cache = cfg->step_cache_bytes > 0 && keep <= cfg->step_cache_bytes;
    if ((rc = sd_exec_create_slots(&d->ex_syn, d->m, be, d->n, SD_EXEC_TANGENT, cache ? d->T : 1,
                                   err)) ||
        (rc = sd_exec_create(&d->ex_real, d->m, be, cfg->real_batch, 0, err)))
        goto fail;
    size_t nx = (size_t)d->M * d->img, ny = (size_t)d->M * (size_t)d->K;
    size_t sx = (size_t)d->n * d->img, sy = (size_t)d->n * (size_t)d->K;
    size_t nb = (size_t)cfg->real_batch;
    if ((rc = sd_dev_alloc(be, nx, &d->x, err)) || (rc = sd_dev_alloc(be, ny, &d->y, err)) ||
        (rc = sd_dev_alloc(be, nx, &d->mx, err)) || (rc = sd_dev_alloc(be, nx, &d->vx, err)) ||
        (rc = sd_dev_alloc(be, ny, &d->my, err)) || (rc = sd_dev_alloc(be, ny, &d->vy, err)) ||
        (rc = sd_dev_alloc(be, nx, &d->gx, err)) || (rc = sd_dev_alloc(be, ny, &d->gy, err)) ||
        (rc = sd_dev_alloc(be, sx, &d->tx, err)) || (rc = sd_dev_alloc(be, sy, &d->ty, err)) ||
        (rc = sd_dev_alloc(be, d->nt, &d->v, err)) || (rc = sd_dev_alloc(be, d->nt, &d->hv, err)) ||
        (!cache && (rc = sd_dev_alloc(be, d->nt, &d->gt, err))) ||
        (rc = sd_dev_alloc(be, nb * d->img, &d->xb, err)) ||
        (rc = sd_dev_alloc(be, nb * (size_t)d->K, &d->yb, err)) ||
        (rc = sd_dev_alloc(be, d->m->n_bn, &d->theta_bn_dev, err)))
        goto fail;
    d->theta = calloc((size_t)d->T + 1, sizeof *d->theta);
    d->theta0 = calloc((size_t)cfg->nets, sizeof *d->theta0);
    d->rho = calloc((size_t)d->T, sizeof *d->rho);
    d->mr = calloc((size_t)d->T, sizeof *d->mr);
    d->vr = calloc((size_t)d->T, sizeof *d->vr);
    d->grho = calloc((size_t)d->T, sizeof *d->grho);
    d->alpha_host = calloc((size_t)d->T, sizeof *d->alpha_host);
    d->lb = calloc(nb, sizeof *d->lb);
    d->idx = calloc(nb, sizeof *d->idx);
    d->perm = calloc((size_t)train->count, sizeof *d->perm);
    d->theta_bn_run = calloc(d->m->n_bn + 1, sizeof *d->theta_bn_run);
    d->theta_bn_batch = calloc(d->m->n_bn + 1, sizeof *d->theta_bn_batch);
    if (!d->theta || !d->theta0 || !d->rho || !d->mr || !d->vr || !d->grho || !d->lb || !d->idx ||
        !d->perm || !d->theta_bn_run || !d->theta_bn_batch || !d->alpha_host) {
        rc = sd_error_set(err, SD_ENOMEM, "out of memory");
        goto fail;
    }
    for (int t = 0; t <= d->T; t++)
        if ((rc = sd_dev_alloc(be, d->nt, &d->theta[t], err)))
            goto fail;
    if (cache) {
        if (!(d->gts = calloc((size_t)d->T, sizeof *d->gts))) {
            rc = sd_error_set(err, SD_ENOMEM, "out of memory");
            goto fail;
        }
        for (int t = 0; t < d->T; t++)
            if ((rc = sd_dev_alloc(be, d->nt, &d->gts[t], err)))
                goto fail;
    }
    if (!cfg->random_init)
        for (int j = 0; j < cfg->nets; j++)
            if ((rc = sd_dev_alloc(be, d->nt, &d->theta0[j], err)) ||
                (rc = sd_theta0_upload(d->m, be, cfg->seed + (uint64_t)j, d->theta0[j], NULL, err)))
                goto fail;
    for (int i = 1; i < d->m->n_layers; i++) { /* running stats start at mean 0, var 1 */
        const sd_layer *l = &d->m->layers[i];
        if (l->kind == SD_LAYER_BN)
            for (int c = 0; c < l->out.c; c++)
                d->theta_bn_run[l->bn_off + (size_t)l->out.c + (size_t)c] = 1;
    }
    d->perm_epoch = -1;
    if ((rc = init_data(d))) {
        *err = d->err;
        goto fail;
    }
    if (resume_path && (rc = ckpt_read(d, resume_path))) {
        *err = d->err;
        goto fail;
    }
    if (cfg->dp_noise > 0 && (rc = dp_setup(d, err)))
        goto fail;
    *out = d;
    return SD_OK;
fail:
    sd_distiller_destroy(d);
    return rc;
}

/* the running theta_bn (double) as the float32 a payload would carry */
/* theta_bn statistics kept in double on the host (src) to backend dst */
static int upload_bn(sd_distiller *d, const double *src, sd_real *dst)
{
    size_t n = d->m->n_bn;
    if (!n)
        return SD_OK;
    float *h = malloc(n * sizeof *h);
    if (!h)
        return sd_error_set(&d->err, SD_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        h[i] = (float)src[i];
    int rc = sd_theta_bn_upload(d->be, dst, h, n, &d->err);
    free(h);
    return rc;
}

static sd_exec_args syn_args(sd_distiller *d, int t)
{
    int s = t % d->cfg.steps;
    sd_exec_args a = {d->theta[t],
                      d->theta_bn_dev,
                      d->cfg.bn_mode,
                      d->cfg.label_param,
                      d->x + (size_t)s * (size_t)d->n * d->img,
                      d->y + (size_t)s * (size_t)d->n * (size_t)d->K,
                      d->n};
    return a;
}

static int inner_steps(sd_distiller *d);

/* theta_0 for this iteration, then the T inner steps */
static int inner_forward(sd_distiller *d)
{
    sd_backend *be = d->be;
    size_t bytes = d->nt * sizeof(sd_real);
    if (d->cfg.random_init) {
        uint64_t s =
            d->cfg.seed ^
            ((uint64_t)sd_uniform_u32(d->cfg.seed, SD_STREAM_RANDINIT, (uint64_t)d->iter) << 20) ^
            (uint64_t)d->iter;
        int rc = sd_theta0_upload(d->m, be, s, d->theta[0], NULL, &d->err);
        if (rc)
            return rc;
    } else {
        BE(d, be->copy(be, &d->err, d->theta[0], d->theta0[d->iter % d->cfg.nets], bytes),
           "theta_0");
    }
    return inner_steps(d);
}

/* theta_1 .. theta_T from theta_0 (d->theta[0]) and the current data */
static int inner_steps(sd_distiller *d)
{
    sd_backend *be = d->be;
    size_t bytes = d->nt * sizeof(sd_real);
    if (d->cfg.bn_mode == SD_BN_FROZEN) {
        int rc = upload_bn(d, d->theta_bn_run, d->theta_bn_dev);
        if (rc)
            return rc;
    }
    for (int t = 0; t < d->T; t++) {
        sd_exec_args a = syn_args(d, t);
        sd_real *g = d->gts ? d->gts[t] : d->gt;
        BE(d, be->zero(be, &d->err, g, bytes), "zero");
        int rc = 0;
        if ((d->gts && (rc = sd_exec_use_slot(d->ex_syn, t, &d->err))) ||
            (rc = sd_exec_loss_grad(d->ex_syn, &a, NULL, g, NULL, NULL, &d->err)))
            return sd_error_wrap_code(&d->err, rc, "inner step %d", t);
        BE(d, be->copy(be, &d->err, d->theta[t + 1], d->theta[t], bytes), "copy");
        BE(d, be->axpy(be, &d->err, d->nt, (sd_real)-softplus(d->rho[t]), g, d->theta[t + 1]),
           "step");
    }
    return SD_OK;
}

static int fetch_batch(sd_distiller *d, int64_t iter)
{
    int epoch = (int)(iter / d->iters_per_epoch);
    int64_t b = iter % d->iters_per_epoch;
    if (epoch != d->perm_epoch) {
        shuffle(d->perm, d->train.count, d->cfg.seed, epoch);
        d->perm_epoch = epoch;
    }
    int nb = d->cfg.real_batch;
    for (int i = 0; i < nb; i++)
        d->idx[i] = d->perm[b * nb + i];
    int rc = d->train.fetch(d->train.ctx, d->be, d->idx, nb, d->xb, d->lb, &d->err);
    if (rc)
        return sd_error_wrap(&d->err, "fetching real batch");
    return upload_onehot(d->be, d->yb, d->lb, nb, d->K, &d->err);
}

/* From d->v = d(outer loss)/d theta_T back through the T steps: d->gx,
 * d->gy, d->grho (the exact meta-gradient, docs/algorithm.md). */
static int walk_back(sd_distiller *d)
{
    sd_backend *be = d->be;
    int rc;
    size_t tb = d->nt * sizeof(sd_real);
    size_t nx = (size_t)d->M * d->img, ny = (size_t)d->M * (size_t)d->K;
    size_t sx = (size_t)d->n * d->img, sy = (size_t)d->n * (size_t)d->K;
    BE(d, be->zero(be, &d->err, d->gx, nx * sizeof(sd_real)), "zero");
    BE(d, be->zero(be, &d->err, d->gy, ny * sizeof(sd_real)), "zero");
    for (int t = d->T - 1; t >= 0; t--) {
        sd_exec_args a = syn_args(d, t);
        int s = t % d->cfg.steps;
        double alpha = softplus(d->rho[t]), gdotv = 0;
        sd_real *ty = d->cfg.hard_labels ? NULL : d->ty, *g = d->gts ? d->gts[t] : d->gt;
        BE(d, be->zero(be, &d->err, d->hv, tb), "zero");
        BE(d, be->zero(be, &d->err, d->tx, sx * sizeof(sd_real)), "zero");
        BE(d, be->zero(be, &d->err, d->ty, sy * sizeof(sd_real)), "zero");
        if (d->gts) { /* step t's forward and backward are kept in slot t */
            if ((rc = sd_exec_use_slot(d->ex_syn, t, &d->err)) ||
                (rc = sd_exec_hvp_cached(d->ex_syn, &a, d->v, d->hv, d->tx, ty, &d->err)))
                return sd_error_wrap_code(&d->err, rc, "meta-gradient at step %d", t);
        } else {
            BE(d, be->zero(be, &d->err, d->gt, tb), "zero");
            if ((rc = sd_exec_hvp(d->ex_syn, &a, d->v, NULL, d->gt, d->hv, d->tx, ty, &d->err)))
                return sd_error_wrap_code(&d->err, rc, "meta-gradient at step %d", t);
        }
        BE(d, be->dot(be, &d->err, d->nt, d->v, g, &gdotv), "dot");
        d->grho[t] = -gdotv * sigmoid(d->rho[t]);
        BE(d, be->axpy(be, &d->err, sx, (sd_real)-alpha, d->tx, d->gx + (size_t)s * sx), "axpy");
        BE(d, be->axpy(be, &d->err, sy, (sd_real)-alpha, d->ty, d->gy + (size_t)s * sy), "axpy");
        BE(d, be->axpy(be, &d->err, d->nt, (sd_real)-alpha, d->hv, d->v), "axpy");
    }
    return SD_OK;
}

/* The synthetic images' batch statistics under theta, averaged over the S
 * steps' batches (host, n_bn).  In DP mode they stand in for the real
 * batches' everywhere: the per-sample losses, the running theta_bn and the
 * exported theta_bn, so no statistic of real data is used or released
 * outside the noisy gradient. */
static int dp_synthetic_bn(sd_distiller *d, const sd_real *theta, double *stats)
{
    size_t nbn = d->m->n_bn;
    memset(stats, 0, nbn * sizeof *stats);
    for (int s = 0; s < d->cfg.steps; s++) {
        sd_exec_args a = {theta,
                          NULL,
                          SD_BN_BATCH,
                          d->cfg.label_param,
                          d->x + (size_t)s * (size_t)d->n * d->img,
                          d->y + (size_t)s * (size_t)d->n * (size_t)d->K,
                          d->n};
        if (sd_exec_forward(d->ex_dp, &a, &d->err) ||
            sd_exec_bn_batch_stats(d->ex_dp, stats, &d->err))
            return sd_error_wrap_code(&d->err, SD_EBACKEND, "synthetic batch statistics");
    }
    for (size_t i = 0; i < nbn; i++)
        stats[i] /= d->cfg.steps;
    return SD_OK;
}

/* DP mode: d->v = (sum of clipped per-sample gradients at theta_T over a
 * Poisson batch + N(0, sigma^2 C^2 I)) / K (sd_dp.h). */
static int dp_outer_gradient(sd_distiller *d, double *loss_out)
{
    sd_backend *be = d->be;
    const sd_distill_config *c = &d->cfg;
    int rc, bn = d->m->n_bn > 0;
    double loss_sum = 0;
    if (bn && ((rc = dp_synthetic_bn(d, d->theta[d->T], d->theta_bn_run)) ||
               (rc = upload_bn(d, d->theta_bn_run, d->dp_bn_dev))))
        return rc;
    sd_dp_poisson(d->dp_key, d->iter, d->train.count, d->dp_q, d->dp_idx, &d->dp_count);
    BE(d, be->zero(be, &d->err, d->v, d->nt * sizeof(sd_real)), "zero");
    for (int64_t j = 0; j < d->dp_count; j += c->real_batch) {
        int nb = (int)(d->dp_count - j < c->real_batch ? d->dp_count - j : c->real_batch);
        if ((rc = d->train.fetch(d->train.ctx, be, d->dp_idx + j, nb, d->xb, d->lb, &d->err)))
            return sd_error_wrap(&d->err, "fetching real samples");
        if ((rc = upload_onehot(be, d->yb, d->lb, nb, d->K, &d->err)))
            return rc;
        if ((rc = sd_dp_clipped_sum(d->ex_dp, be, d->nt, d->theta[d->T], bn ? d->dp_bn_dev : NULL,
                                    d->xb, d->yb, nb, d->img, d->K, c->dp_clip, d->dp_g, d->v,
                                    &loss_sum, &d->err)))
            return rc;
    }
    if ((rc = sd_dp_add_noise(be, d->nt, d->v, c->dp_noise * c->dp_clip, d->dp_key, d->iter,
                              d->dp_host, d->dp_tmp, &d->err)))
        return rc;
    BE(d, be->scal(be, &d->err, d->nt, (sd_real)(1.0 / c->real_batch), d->v), "scale");
    *loss_out = d->dp_count ? loss_sum / (double)d->dp_count : NAN;
    return SD_OK;
}

/* The meta-gradient of this iteration's outer loss: d->gx, d->gy, d->grho. */
static int meta_gradient(sd_distiller *d, double *loss_out)
{
    sd_backend *be = d->be;
    int rc;
    size_t tb = d->nt * sizeof(sd_real);
    if ((rc = inner_forward(d)))
        return rc;
    if (d->dp) {
        if ((rc = dp_outer_gradient(d, loss_out)))
            return rc;
        return walk_back(d);
    }
    if ((rc = fetch_batch(d, d->iter)))
        return rc;
    sd_exec_args ar = {d->theta[d->T], NULL,  SD_BN_BATCH,      SD_LABEL_RAW,
                       d->xb,          d->yb, d->cfg.real_batch};
    BE(d, be->zero(be, &d->err, d->v, tb), "zero");
    if ((rc = sd_exec_loss_grad(d->ex_real, &ar, loss_out, d->v, NULL, NULL, &d->err)))
        return sd_error_wrap_code(&d->err, rc, "outer loss");
    if (d->m->n_bn) { /* running theta_bn for monitoring */
        memset(d->theta_bn_batch, 0, d->m->n_bn * sizeof *d->theta_bn_batch);
        if ((rc = sd_exec_bn_batch_stats(d->ex_real, d->theta_bn_batch, &d->err)))
            return sd_error_wrap_code(&d->err, rc, "bn stats");
        double mom = d->cfg.bn_momentum;
        for (size_t i = 0; i < d->m->n_bn; i++)
            d->theta_bn_run[i] = (1 - mom) * d->theta_bn_run[i] + mom * d->theta_bn_batch[i];
    }
    return walk_back(d);
}

static int outer_step(sd_distiller *d, double *loss_out)
{
    sd_backend *be = d->be;
    size_t nx = (size_t)d->M * d->img, ny = (size_t)d->M * (size_t)d->K;
    int rc = meta_gradient(d, loss_out);
    if (rc)
        return rc;
    /* Adam on images, labels and step parameters */
    int epoch = (int)(d->iter / d->iters_per_epoch);
    double lr = d->cfg.lr *
                pow(d->cfg.decay_factor, d->cfg.decay_epochs > 0 ? epoch / d->cfg.decay_epochs : 0);
    const sd_distill_config *c = &d->cfg;
    d->adam_t++;
    BE(d,
       be->adam(be, &d->err, nx, d->x, d->gx, d->mx, d->vx, lr, c->beta1, c->beta2, c->adam_eps,
                d->adam_t),
       "adam");
    if (!c->hard_labels)
        BE(d,
           be->adam(be, &d->err, ny, d->y, d->gy, d->my, d->vy, lr, c->beta1, c->beta2, c->adam_eps,
                    d->adam_t),
           "adam");
    double b1t = 1 - pow(c->beta1, d->adam_t), b2t = 1 - pow(c->beta2, d->adam_t);
    for (int t = 0; t < d->T; t++) {
        double g = d->grho[t];
        d->mr[t] = c->beta1 * d->mr[t] + (1 - c->beta1) * g;
        d->vr[t] = c->beta2 * d->vr[t] + (1 - c->beta2) * g * g;
        d->rho[t] -= lr * (d->mr[t] / b1t) / (sqrt(d->vr[t] / b2t) + c->adam_eps);
    }
    return SD_OK;
}

int sd_distiller_run(sd_distiller *d, sd_progress_fn progress, void *pctx)
{
    double t0 = now_seconds();
    int64_t start = d->iter;
    while (d->iter < d->total) {
        double loss = 0;
        int rc = outer_step(d, &loss);
        if (rc)
            return rc;
        d->iter++;
        sd_progress p = {0};
        p.iter = d->iter;
        p.total = d->total;
        p.epoch = (int)((d->iter - 1) / d->iters_per_epoch);
        p.loss = loss;
        p.lr = d->cfg.lr * pow(d->cfg.decay_factor,
                               d->cfg.decay_epochs > 0 ? p.epoch / d->cfg.decay_epochs : 0);
        p.seconds = now_seconds() - t0;
        p.eta_seconds = p.seconds / (double)(d->iter - start) * (double)(d->total - d->iter);
        for (int t = 0; t < d->T; t++)
            d->alpha_host[t] = (float)softplus(d->rho[t]);
        p.step_sizes = d->alpha_host;
        p.n_steps = d->T;
        p.dp_batch = d->dp ? d->dp_count : 0;
        if (d->cfg.eval_every > 0 && d->val.count > 0 &&
            (d->iter % d->cfg.eval_every == 0 || d->iter == d->total)) {
            float *bn = NULL;
            if (d->m->n_bn) {
                bn = malloc(d->m->n_bn * sizeof *bn);
                if (!bn)
                    return sd_error_set(&d->err, SD_ENOMEM, "out of memory");
                for (size_t i = 0; i < d->m->n_bn; i++)
                    bn[i] = (float)d->theta_bn_run[i];
            }
            /* the model the payload would give now: theta_0 of the payload's
             * seed and the T steps of the data as just updated (the next
             * iteration recomputes its own steps, so this changes nothing) */
            rc = d->cfg.random_init
                     ? sd_theta0_upload(d->m, d->be, d->cfg.seed, d->theta[0], NULL, &d->err)
                 : d->be->copy(d->be, &d->err, d->theta[0], d->theta0[0], d->nt * sizeof(sd_real))
                     ? sd_error_wrap_code(&d->err, SD_EBACKEND, "theta_0")
                     : SD_OK;
            if (!rc)
                rc = inner_steps(d);
            if (!rc)
                rc = sd_evaluate(d->m, d->be, d->theta[d->T], bn, &d->val, d->cfg.eval_max,
                                 &p.val_acc, NULL, NULL, &d->err);
            free(bn);
            if (rc)
                return sd_error_wrap(&d->err, "validation");
            p.evaluated = 1;
        }
        int cancel = progress ? progress(pctx, &p) : 0;
        int ckpt = d->cfg.checkpoint_path && d->cfg.checkpoint_every > 0 &&
                   (d->iter % d->cfg.checkpoint_every == 0 || cancel || d->iter == d->total);
        if (ckpt && (rc = ckpt_write(d)))
            return rc;
        if (cancel)
            return sd_error_set(&d->err, SD_ECANCELED, "stopped at iteration %lld",
                                (long long)d->iter);
    }
    return SD_OK;
}

void sd_distilled_free(sd_distilled *d)
{
    if (!d)
        return;
    free(d->images);
    free(d->labels);
    free(d->step_sizes);
    free(d->theta_bn);
    memset(d, 0, sizeof *d);
}

size_t sd_distilled_image_count(const sd_distilled *d)
{
    return (size_t)d->steps * (size_t)d->images_per_step;
}

int sd_distiller_export(sd_distiller *d, sd_distilled *out)
{
    memset(out, 0, sizeof *out);
    const sd_distill_config *c = &d->cfg;
    size_t nx = (size_t)d->M * d->img, ny = (size_t)d->M * (size_t)d->K;
    out->spec = d->m->spec;
    out->seed = c->seed;
    out->steps = c->steps;
    out->images_per_step = c->images_per_step;
    out->epochs_inner = c->epochs_inner;
    out->bn_mode = c->bn_mode;
    out->label_param = c->label_param;
    out->n_bn = d->m->n_bn;
    out->images = malloc(nx * sizeof(float));
    out->labels = malloc(ny * sizeof(float));
    out->step_sizes = malloc((size_t)d->T * sizeof(float));
    out->theta_bn = calloc(d->m->n_bn + 1, sizeof(float));
    if (!out->images || !out->labels || !out->step_sizes || !out->theta_bn) {
        sd_distilled_free(out);
        return sd_error_set(&d->err, SD_ENOMEM, "out of memory");
    }
    int rc;
    if ((rc = sd_download_floats(d->be, out->images, d->x, nx, &d->err)) ||
        (rc = sd_download_floats(d->be, out->labels, d->y, ny, &d->err)))
        goto fail;
    for (int t = 0; t < d->T; t++)
        out->step_sizes[t] = (float)softplus(d->rho[t]);
    {
        sd_real *h = malloc(d->nt * sizeof *h);
        if (!h) {
            rc = sd_error_set(&d->err, SD_ENOMEM, "out of memory");
            goto fail;
        }
        rc = sd_init_theta(d->m, c->seed, h, &d->err);
        if (!rc)
            rc = sd_theta_sha256(h, d->nt, out->theta0_sha256, &d->err);
        free(h);
        if (rc)
            goto fail;
    }
    /* frozen-mode replays step with theta_bn: start from the running average */
    for (size_t i = 0; i < d->m->n_bn; i++)
        out->theta_bn[i] = (float)d->theta_bn_run[i];
    sd_real *theta = NULL;
    sd_model *m = NULL;
    if ((rc = sd_replay(out, d->be, &m, &theta, &d->err)))
        goto fail;
    if (d->m->n_bn && d->dp) { /* from the synthetic images only (DP mode) */
        double *st = malloc(d->m->n_bn * sizeof *st);
        rc = st ? dp_synthetic_bn(d, theta, st) : sd_error_set(&d->err, SD_ENOMEM, "out of memory");
        for (size_t i = 0; !rc && i < d->m->n_bn; i++)
            out->theta_bn[i] = (float)st[i];
        free(st);
    } else if (d->m->n_bn) {
        rc = sd_bn_recompute(m, d->be, theta, &d->train, c->bn_export_batches, c->real_batch,
                             c->seed, out->theta_bn, &d->err);
    }
    d->be->free(d->be, theta);
    sd_model_destroy(m);
    if (rc)
        goto fail;
    return SD_OK;
fail:
    sd_distilled_free(out);
    return rc;
}
