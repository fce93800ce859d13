/*
 * sd_privacy.c - the privacy audit of a distilled set (see sd_privacy.h and
 * docs/privacy.md).
 *
 * The nearest-training search is two kinds of GEMM per block of training
 * samples.  Standardised images give squared distances from
 * ||a||^2 + ||b||^2 - 2 a.b; images rescaled to [0,1], cut into windows and
 * centred per window give every window covariance as one dot product, from
 * which SSIM follows with the window means and variances computed once per
 * image.  The queries (synthetic images and the held-out sample) are
 * prepared once; training samples stream through in blocks, so memory is
 * bounded by the block size whatever the size of the training set.  The
 * GEMMs are the backend's (be->gemm on backend memory), so the search runs
 * on the device the distillation used; the rest is host arithmetic.
 *
 * Also here: membership inference on the replayed model, and the audit that
 * runs both.  How two images are compared (geometry, preparation, the pair
 * figures) is sd_privacy_compare.c's, the policy and decision
 * sd_privacy_policy.c's, the picture sd_privacy_plot.c's.
 */
#include "sd_privacy.h"
#include "sd_privacy_compare.h"
#include "sb_rand.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SSIM_QBLOCK          256               /* query rows per SSIM block */
#define SD_PRIVACY_FETCH_MAX ((size_t)8 << 20) /* values per block of fetched samples */

static const double q_levels[SD_PRIVACY_NQ] = {0.01, 0.05, 0.25, 0.50};

/* ---------------------------------------------------------------- report */

void sd_privacy_config_defaults(sd_privacy_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    sd_privacy_policy_defaults(&cfg->policy);
    cfg->max_train = 60000;
    cfg->max_heldout = 1000;
    cfg->max_members = 1000;
    cfg->max_work = 1e11;
    cfg->chunk = 1024;
}

void sd_privacy_report_free(sd_privacy_report *r)
{
    if (!r)
        return;
    free(r->images);
    free(r->pixel_nearest);
    free(r->ssim_nearest);
    memset(r, 0, sizeof *r);
}

/* ---------------------------------------------------------------- fetching */

/* Samples of a view brought to the host as float. */
typedef struct fetcher {
    const sd_data_view *v;
    sd_backend *be;
    size_t d; /* values per sample */
    int cap;
    sd_real *dev, *host;
    float *x; /* cap*d */
    int *lab;
} fetcher;

static int fetcher_init(fetcher *ft, const sd_data_view *v, sd_backend *be, int cap, sd_error *err)
{
    memset(ft, 0, sizeof *ft);
    ft->v = v;
    ft->be = be;
    ft->d = (size_t)v->c * (size_t)v->h * (size_t)v->w;
    ft->cap = cap;
    size_t n = (size_t)cap * ft->d;
    ft->host = malloc(n * sizeof *ft->host);
    ft->x = malloc(n * sizeof *ft->x);
    ft->lab = malloc((size_t)cap * sizeof *ft->lab);
    if (!ft->host || !ft->x || !ft->lab)
        return sd_error_set(err, SD_ENOMEM, "privacy audit: out of memory");
    int rc = be->alloc(be, err, n * sizeof(sd_real), (void **)&ft->dev);
    return rc ? sd_error_wrap_code(err, rc, "privacy audit") : SD_OK;
}

static void fetcher_free(fetcher *ft)
{
    if (ft->be)
        ft->be->free(ft->be, ft->dev);
    free(ft->host);
    free(ft->x);
    free(ft->lab);
    memset(ft, 0, sizeof *ft);
}

static int fetch_rows(fetcher *ft, const int64_t *idx, int n, sd_error *err)
{
    int rc = ft->v->fetch(ft->v->ctx, ft->be, idx, n, ft->dev, ft->lab, err);
    if (rc)
        return rc;
    if ((rc =
             ft->be->download(ft->be, err, ft->host, ft->dev, (size_t)n * ft->d * sizeof(sd_real))))
        return sd_error_wrap_code(err, rc, "privacy audit");
    for (size_t i = 0; i < (size_t)n * ft->d; i++)
        ft->x[i] = (float)ft->host[i];
    return SD_OK;
}

/* i-th of n indices spread evenly over count (all of them when n >= count) */
static int64_t spread(int64_t i, int64_t n, int64_t count)
{
    return n >= count ? i : (int64_t)((double)i * (double)count / (double)n);
}

static int64_t capped(int64_t max, int64_t count)
{
    return max > 0 && max < count ? max : count;
}

/* ---------------------------------------------------------------- search */

/* type-7 quantile of sorted v */
static double quantile(const double *v, size_t n, double q)
{
    if (!n)
        return NAN;
    double pos = q * (double)(n - 1);
    size_t i = (size_t)floor(pos);
    if (i + 1 >= n)
        return v[n - 1];
    return v[i] + (pos - (double)i) * (v[i + 1] - v[i]);
}

/* share of sorted v below x (ties count half) */
static double share_below(const double *v, size_t n, double x)
{
    size_t lo = 0, hi = n;
    while (lo < hi) { /* first >= x */
        size_t mid = (lo + hi) / 2;
        if (v[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t below = lo;
    hi = n;
    while (lo < hi) { /* first > x */
        size_t mid = (lo + hi) / 2;
        if (v[mid] <= x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return n ? ((double)below + 0.5 * (double)(lo - below)) / (double)n : NAN;
}

/* The GEMM operands and products live in backend memory (dzq, dsq: the
 * queries, uploaded once; dzt, dst: the current training block; dgd, dgp:
 * the products, downloaded into gd, gp; see pair_alloc); everything else is
 * on the host. */
typedef struct search {
    sd_privacy_geom g;
    sd_backend *be;
    size_t q;                                   /* queries */
    int cap;                                    /* training block */
    sd_real *zq, *sq;                           /* queries: q*d, q*dw */
    float *nq, *muq, *vq;                       /* queries: q, q*nwin, q*nwin */
    sd_real *zt, *st;                           /* block: cap*d, cap*dw */
    float *nt, *mut, *vt;                       /* block: cap, nwin*cap, nwin*cap */
    sd_real *gd, *gp;                           /* q*cap, qb*cap */
    float *acc;                                 /* qb*cap */
    sd_real *dzq, *dsq, *dzt, *dst, *dgd, *dgp; /* backend copies of the above */
    double *tmp;                                /* one reduced image */
    double *best_d2, *best_s;
    int64_t *best_di, *best_si;
} search;

/* A GEMM operand or product: backend memory, and the host array the search
 * prepares or reads.  On a host-memory backend (the CPU) they are the same
 * memory and nothing is copied, so the CPU does exactly the work of a direct
 * CBLAS call. */
static int pair_alloc(sd_backend *be, sd_error *err, size_t bytes, sd_real **dev, sd_real **host)
{
    int rc = be->alloc(be, err, bytes, (void **)dev);
    if (rc)
        return rc;
    *host = be->host_memory ? *dev : malloc(bytes);
    return *host ? SD_OK : sd_error_set(err, SD_ENOMEM, "cannot allocate %zu bytes", bytes);
}

static void pair_free(sd_backend *be, sd_real *dev, sd_real *host)
{
    if (host != dev)
        free(host);
    be->free(be, dev);
}

static void search_free(search *s)
{
    if (s->be) {
        pair_free(s->be, s->dzq, s->zq);
        pair_free(s->be, s->dsq, s->sq);
        pair_free(s->be, s->dzt, s->zt);
        pair_free(s->be, s->dst, s->st);
        pair_free(s->be, s->dgd, s->gd);
        pair_free(s->be, s->dgp, s->gp);
    }
    free(s->nq);
    free(s->muq);
    free(s->vq);
    free(s->nt);
    free(s->mut);
    free(s->vt);
    free(s->acc);
    free(s->tmp);
    free(s->best_d2);
    free(s->best_s);
    free(s->best_di);
    free(s->best_si);
}

static int search_alloc(search *s, sd_backend *be, size_t q, int cap, sd_error *err)
{
    const sd_privacy_geom *g = &s->g;
    size_t c = (size_t)cap, qb = q < SSIM_QBLOCK ? q : SSIM_QBLOCK;
    const size_t R = sizeof(sd_real);
    s->be = be;
    s->q = q;
    s->cap = cap;
    int rc;
    if ((rc = pair_alloc(be, err, q * g->d * R, &s->dzq, &s->zq)) ||
        (rc = pair_alloc(be, err, q * g->dw * R, &s->dsq, &s->sq)) ||
        (rc = pair_alloc(be, err, c * g->d * R, &s->dzt, &s->zt)) ||
        (rc = pair_alloc(be, err, c * g->dw * R, &s->dst, &s->st)) ||
        (rc = pair_alloc(be, err, q * c * R, &s->dgd, &s->gd)) ||
        (rc = pair_alloc(be, err, qb * c * R, &s->dgp, &s->gp)))
        return sd_error_wrap_code(err, rc, "privacy audit");
    s->nq = malloc(q * sizeof(float));
    s->muq = malloc(q * g->nwin * sizeof(float));
    s->vq = malloc(q * g->nwin * sizeof(float));
    s->nt = malloc(c * sizeof(float));
    s->mut = malloc(c * g->nwin * sizeof(float));
    s->vt = malloc(c * g->nwin * sizeof(float));
    s->acc = malloc(qb * c * sizeof(float));
    s->tmp = malloc(g->d * sizeof(double));
    s->best_d2 = malloc(q * sizeof(double));
    s->best_s = malloc(q * sizeof(double));
    s->best_di = malloc(q * sizeof(int64_t));
    s->best_si = malloc(q * sizeof(int64_t));
    if (!s->nq || !s->muq || !s->vq || !s->nt || !s->mut || !s->vt || !s->acc || !s->tmp ||
        !s->best_d2 || !s->best_s || !s->best_di || !s->best_si)
        return sd_error_set(err, SD_ENOMEM,
                            "privacy audit: out of memory for %zu queries of %zu values", q, g->dw);
    for (size_t i = 0; i < q; i++) {
        s->best_d2[i] = INFINITY;
        s->best_s[i] = -INFINITY;
        s->best_di[i] = s->best_si[i] = -1;
    }
    return SD_OK;
}

/* host -> backend and back; nothing to do where they are the same memory */
static int to_backend(sd_backend *be, sd_error *err, sd_real *dev, const sd_real *host,
                      size_t bytes)
{
    return dev == host ? SD_OK : be->upload(be, err, dev, host, bytes);
}

static int from_backend(sd_backend *be, sd_error *err, sd_real *host, const sd_real *dev,
                        size_t bytes)
{
    return dev == host ? SD_OK : be->download(be, err, host, dev, bytes);
}

static void prep_query(search *s, size_t i, const float *x)
{
    const sd_privacy_geom *g = &s->g;
    sd_privacy_reduce(g, x, s->tmp);
    sd_privacy_prep(g, s->tmp, s->zq + i * g->d, s->nq + i, s->sq + i * g->dw, s->muq + i * g->nwin,
                    s->vq + i * g->nwin, 1);
}

static int search_fail(search *s, int rc, sd_error *err)
{
    return sd_error_wrap_code(err, rc, "privacy audit");
}

/* The prepared queries to backend memory, once all are prepared. */
static int search_upload_queries(search *s, sd_error *err)
{
    sd_backend *be = s->be;
    int rc = to_backend(be, err, s->dzq, s->zq, s->q * s->g.d * sizeof(sd_real));
    if (!rc)
        rc = to_backend(be, err, s->dsq, s->sq, s->q * s->g.dw * sizeof(sd_real));
    return rc ? search_fail(s, rc, err) : SD_OK;
}

/* Compare every query with training samples idx[0..n) whose images are x.
 * The products are the backend's GEMM: on the CPU backend the same
 * single-threaded SGEMM on the same operands as a direct CBLAS call, so the
 * same bits. */
static int search_block(search *s, const float *x, const int64_t *idx, int n, sd_error *err)
{
    sd_backend *be = s->be;
    const sd_privacy_geom *g = &s->g;
    size_t cap = (size_t)s->cap, D = (size_t)g->c * (size_t)g->h * (size_t)g->w;
    for (int t = 0; t < n; t++) {
        sd_privacy_reduce(g, x + (size_t)t * D, s->tmp);
        sd_privacy_prep(g, s->tmp, s->zt + (size_t)t * g->d, s->nt + t, s->st + (size_t)t * g->dw,
                        s->mut + t, s->vt + t, cap);
    }
    int Q = (int)s->q, rc;
    const size_t R = sizeof(sd_real);
    if ((rc = to_backend(be, err, s->dzt, s->zt, (size_t)n * g->d * R)) ||
        (rc = to_backend(be, err, s->dst, s->st, (size_t)n * g->dw * R)))
        return search_fail(s, rc, err);
    /* distances: d2 = |a|^2 + |b|^2 - 2 a.b */
    if ((rc = be->gemm(be, err, 0, 1, Q, n, (int)g->d, 1, s->dzq, (int)g->d, s->dzt, (int)g->d, 0,
                       s->dgd, n)) ||
        (rc = from_backend(be, err, s->gd, s->dgd, (size_t)Q * (size_t)n * R)))
        return search_fail(s, rc, err);
    for (int q = 0; q < Q; q++) {
        const sd_real *row = s->gd + (size_t)q * (size_t)n;
        double best = s->best_d2[q];
        int64_t bi = s->best_di[q];
        for (int t = 0; t < n; t++) {
            double d2 = (double)s->nq[q] + (double)s->nt[t] - 2.0 * (double)row[t];
            if (d2 < best) {
                best = d2;
                bi = idx[t];
            }
        }
        s->best_d2[q] = best;
        s->best_di[q] = bi;
    }
    /* SSIM: the windows are centred, so each GEMM gives wa * covariance.
     * Queries go in row blocks so that a block's GEMM output and running
     * sum stay in cache across the windows. */
    const float inv_wa = (float)(1.0 / (double)g->wa), c1 = (float)SSIM_C1, c2 = (float)SSIM_C2;
    const double inv_nwin = 1.0 / (double)g->nwin;
    for (int q0 = 0; q0 < Q; q0 += SSIM_QBLOCK) {
        int qn = Q - q0 < SSIM_QBLOCK ? Q - q0 : SSIM_QBLOCK;
        memset(s->acc, 0, (size_t)qn * (size_t)n * sizeof(float));
        for (size_t b = 0; b < g->nwin; b++) {
            if ((rc = be->gemm(be, err, 0, 1, qn, n, (int)g->wa, 2.0f * inv_wa,
                               s->dsq + (size_t)q0 * g->dw + b * g->wa, (int)g->dw,
                               s->dst + b * g->wa, (int)g->dw, 0, s->dgp, n)) ||
                (rc = from_backend(be, err, s->gp, s->dgp, (size_t)qn * (size_t)n * R)))
                return search_fail(s, rc, err);
            const float *mt = s->mut + b * cap, *vt = s->vt + b * cap;
            for (int q = 0; q < qn; q++) {
                size_t qi = (size_t)(q0 + q) * g->nwin + b;
                float mq = s->muq[qi], vq = s->vq[qi];
                float a1 = 2.0f * mq, a2 = mq * mq + c1, a3 = vq + c2;
                const sd_real *p = s->gp + (size_t)q * (size_t)n;
                float *acc = s->acc + (size_t)q * (size_t)n;
                for (int t = 0; t < n; t++)
                    acc[t] +=
                        ((a1 * mt[t] + c1) * (p[t] + c2)) / ((a2 + mt[t] * mt[t]) * (a3 + vt[t]));
            }
        }
        for (int q = 0; q < qn; q++) {
            const float *acc = s->acc + (size_t)q * (size_t)n;
            double best = s->best_s[q0 + q];
            int64_t bi = s->best_si[q0 + q];
            for (int t = 0; t < n; t++) {
                double v = (double)acc[t] * inv_nwin;
                if (v > best) {
                    best = v;
                    bi = idx[t];
                }
            }
            s->best_s[q0 + q] = best;
            s->best_si[q0 + q] = bi;
        }
    }
    return SD_OK;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Refine the synthetic images' figures in double on the chosen pairs, and
 * fetch the nearest samples for the picture. */
static int finish_images(sd_privacy_report *r, search *s, const float *images, fetcher *ft,
                         const double *hd, const double *hs, size_t H, sd_error *err)
{
    const sd_privacy_geom *g = &s->g;
    size_t n = r->n_images, D = ft->d;
    double *a = malloc(g->d * sizeof *a), *b = malloc(g->d * sizeof *b);
    int rc = SD_OK;
    if (!a || !b) {
        rc = sd_error_set(err, SD_ENOMEM, "privacy audit: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        sd_privacy_image *im = &r->images[i];
        int64_t idx[2] = {s->best_di[i], s->best_si[i]};
        if ((rc = fetch_rows(ft, idx, 2, err)))
            goto out;
        memcpy(r->pixel_nearest + i * D, ft->x, D * sizeof(float));
        memcpy(r->ssim_nearest + i * D, ft->x + D, D * sizeof(float));
        sd_privacy_reduce(g, images + i * D, a);
        sd_privacy_reduce(g, ft->x, b);
        im->pixel_index = idx[0];
        im->pixel_label = ft->lab[0];
        im->pixel_distance = sd_privacy_dist_pair(a, b, g->d);
        im->pixel_ssim = sd_privacy_ssim_pair(g, a, b);
        sd_privacy_reduce(g, ft->x + D, b);
        im->ssim_index = idx[1];
        im->ssim_label = ft->lab[1];
        im->ssim = sd_privacy_ssim_pair(g, a, b);
        im->ssim_distance = sd_privacy_dist_pair(a, b, g->d);
        /* the float search can order near-ties differently from double:
         * keep the two "nearest" consistent with the reported figures */
        if (im->pixel_ssim > im->ssim) {
            im->ssim_index = im->pixel_index;
            im->ssim_label = im->pixel_label;
            im->ssim = im->pixel_ssim;
            im->ssim_distance = im->pixel_distance;
            memcpy(r->ssim_nearest + i * D, r->pixel_nearest + i * D, D * sizeof(float));
        } else if (im->ssim_distance < im->pixel_distance) {
            im->pixel_index = im->ssim_index;
            im->pixel_label = im->ssim_label;
            im->pixel_distance = im->ssim_distance;
            im->pixel_ssim = im->ssim;
            memcpy(r->pixel_nearest + i * D, r->ssim_nearest + i * D, D * sizeof(float));
        }
        im->pixel_pct = share_below(hd, H, im->pixel_distance);
        im->ssim_pct = 1.0 - share_below(hs, H, im->ssim);
    }
out:
    free(a);
    free(b);
    return rc;
}

int sd_privacy_nearest(sd_privacy_report *r, const float *images, size_t n, int c, int h, int w,
                       const sd_data_view *train, const sd_data_view *heldout, sd_backend *be,
                       const sd_privacy_config *cfg_in, sd_error *err)
{
    sd_privacy_config cfg;
    if (cfg_in)
        cfg = *cfg_in;
    else
        sd_privacy_config_defaults(&cfg);
    double t0 = now_seconds();
    if (!n || c < 1 || h < 1 || w < 1)
        return sd_error_set(err, SD_EINVAL, "privacy audit: no images");
    if (train->c != c || train->h != h || train->w != w || heldout->c != c || heldout->h != h ||
        heldout->w != w)
        return sd_error_set(err, SD_EINVAL,
                            "privacy audit: images are %dx%dx%d, training samples %dx%dx%d, "
                            "held-out %dx%dx%d",
                            c, h, w, train->c, train->h, train->w, heldout->c, heldout->h,
                            heldout->w);
    if (train->count < 1)
        return sd_error_set(err, SD_EINVAL, "privacy audit: no training samples");
    if (heldout->count < 1)
        return sd_error_set(err, SD_EINVAL,
                            "privacy audit: no held-out samples to compare with (the data set "
                            "needs a validation split with patches)");
    size_t D = (size_t)c * (size_t)h * (size_t)w;
    /* a block of fetched samples stays under SD_PRIVACY_FETCH_MAX values */
    if (cfg.chunk < 1)
        cfg.chunk = 1024;
    if ((size_t)cfg.chunk * D > SD_PRIVACY_FETCH_MAX)
        cfg.chunk = D >= SD_PRIVACY_FETCH_MAX / 16 ? 16 : (int)(SD_PRIVACY_FETCH_MAX / D);
    search s;
    memset(&s, 0, sizeof s);
    sd_privacy_geom_init(&s.g, c, h, w, 1);
    int64_t H = capped(cfg.max_heldout, heldout->count), N = capped(cfg.max_train, train->count);
    if (cfg.max_work > 0) {
        double per_sample = (double)(n + (size_t)H) * (double)s.g.d;
        double fit = floor(cfg.max_work / per_sample);
        if (fit < (double)N)
            N = fit < 1 ? 1 : (int64_t)fit;
    }
    fetcher ft = {0};
    double *hd = NULL, *hs = NULL;
    int64_t *idx = NULL;
    int rc;
    r->c = c;
    r->h = h;
    r->w = w;
    r->cmp_h = s.g.ch;
    r->cmp_w = s.g.cw;
    r->n_images = n;
    r->train_count = train->count;
    r->train_searched = N;
    r->heldout_count = heldout->count;
    r->heldout_used = H;
    r->images = calloc(n, sizeof *r->images);
    r->pixel_nearest = malloc(n * D * sizeof(float));
    r->ssim_nearest = malloc(n * D * sizeof(float));
    hd = malloc((size_t)H * sizeof *hd);
    hs = malloc((size_t)H * sizeof *hs);
    idx = malloc((size_t)cfg.chunk * sizeof *idx);
    if (!r->images || !r->pixel_nearest || !r->ssim_nearest || !hd || !hs || !idx) {
        rc = sd_error_set(err, SD_ENOMEM, "privacy audit: out of memory");
        goto out;
    }
    if ((rc = search_alloc(&s, be, n + (size_t)H, cfg.chunk, err)))
        goto out;
    for (size_t i = 0; i < n; i++)
        prep_query(&s, i, images + i * D);
    /* held-out queries */
    if ((rc = fetcher_init(&ft, heldout, be, cfg.chunk, err)))
        goto out;
    for (int64_t i0 = 0; i0 < H; i0 += cfg.chunk) {
        int k = (int)(H - i0 < cfg.chunk ? H - i0 : cfg.chunk);
        for (int j = 0; j < k; j++)
            idx[j] = spread(i0 + j, H, heldout->count);
        if ((rc = fetch_rows(&ft, idx, k, err))) {
            sd_error_wrap(err, "privacy audit: held-out samples");
            goto out;
        }
        for (int j = 0; j < k; j++)
            prep_query(&s, n + (size_t)(i0 + j), ft.x + (size_t)j * D);
    }
    fetcher_free(&ft);
    if ((rc = search_upload_queries(&s, err)))
        goto out;
    /* stream the training samples */
    if ((rc = fetcher_init(&ft, train, be, cfg.chunk, err)))
        goto out;
    for (int64_t i0 = 0; i0 < N; i0 += cfg.chunk) {
        int k = (int)(N - i0 < cfg.chunk ? N - i0 : cfg.chunk);
        for (int j = 0; j < k; j++)
            idx[j] = spread(i0 + j, N, train->count);
        if ((rc = fetch_rows(&ft, idx, k, err))) {
            sd_error_wrap(err, "privacy audit: training samples");
            goto out;
        }
        if ((rc = search_block(&s, ft.x, idx, k, err)))
            goto out;
    }
    /* the held-out reference distribution */
    for (int64_t i = 0; i < H; i++) {
        hd[i] = sqrt(fmax(0, s.best_d2[n + (size_t)i]) / (double)s.g.d);
        hs[i] = s.best_s[n + (size_t)i];
    }
    qsort(hd, (size_t)H, sizeof *hd, sb_cmp_double);
    qsort(hs, (size_t)H, sizeof *hs, sb_cmp_double);
    for (int k = 0; k < SD_PRIVACY_NQ; k++) {
        r->levels[k] = q_levels[k];
        r->heldout_distance_q[k] = quantile(hd, (size_t)H, q_levels[k]);
        r->heldout_ssim_q[k] = quantile(hs, (size_t)H, 1.0 - q_levels[k]);
    }
    rc = finish_images(r, &s, images, &ft, hd, hs, (size_t)H, err);
out:
    fetcher_free(&ft);
    search_free(&s);
    free(hd);
    free(hs);
    free(idx);
    r->seconds += now_seconds() - t0;
    return rc;
}

/* ---------------------------------------------------------------- membership */

typedef struct loss_item {
    int label;
    int member;
    double loss;
} loss_item;

static int cmp_item(const void *a, const void *b)
{
    const loss_item *x = a, *y = b;
    if (x->label != y->label)
        return (x->label > y->label) - (x->label < y->label);
    return (x->loss > y->loss) - (x->loss < y->loss);
}

double sd_privacy_loss_auc(const double *loss_in, const int *label_in, size_t n_in,
                           const double *loss_out, const int *label_out, size_t n_out)
{
    size_t n = n_in + n_out;
    loss_item *it = malloc((n ? n : 1) * sizeof *it);
    if (!it)
        return NAN;
    for (size_t i = 0; i < n_in; i++)
        it[i] = (loss_item){label_in[i], 1, loss_in[i]};
    for (size_t i = 0; i < n_out; i++)
        it[n_in + i] = (loss_item){label_out[i], 0, loss_out[i]};
    qsort(it, n, sizeof *it, cmp_item);
    /* per class: U of the non-members = pairs (member, non-member) where the
     * non-member's loss is higher, ties half */
    double u_total = 0, pairs_total = 0;
    for (size_t g0 = 0; g0 < n;) {
        size_t g1 = g0;
        while (g1 < n && it[g1].label == it[g0].label)
            g1++;
        double rank_out = 0, n1 = 0, n0 = 0;
        for (size_t i = g0; i < g1;) {
            size_t j = i;
            while (j < g1 && it[j].loss == it[i].loss)
                j++;
            double avg = 0.5 * ((double)(i - g0 + 1) + (double)(j - g0)); /* mean rank, 1-based */
            for (size_t k = i; k < j; k++) {
                if (it[k].member)
                    n1++;
                else {
                    n0++;
                    rank_out += avg;
                }
            }
            i = j;
        }
        if (n1 > 0 && n0 > 0) {
            u_total += rank_out - n0 * (n0 + 1) / 2;
            pairs_total += n1 * n0;
        }
        g0 = g1;
    }
    free(it);
    return pairs_total > 0 ? u_total / pairs_total : NAN;
}

/* per-sample cross-entropy of up to max samples of v (evenly spaced) */
static int sample_losses(const sd_model *m, sd_backend *be, sd_exec *ex, const sd_real *theta,
                         const sd_real *bn, sd_real *xb, int bsz, const sd_data_view *v,
                         int64_t count, double *loss, int *label, sd_error *err)
{
    int K = m->spec.classes;
    int64_t *idx = malloc((size_t)bsz * sizeof *idx);
    sd_real *z = malloc((size_t)bsz * (size_t)K * sizeof *z);
    int rc = SD_OK;
    if (!idx || !z) {
        rc = sd_error_set(err, SD_ENOMEM, "membership audit: out of memory");
        goto out;
    }
    for (int64_t s = 0; s < count; s += bsz) {
        int n = (int)(count - s < bsz ? count - s : bsz);
        for (int i = 0; i < n; i++)
            idx[i] = spread(s + i, count, v->count);
        if ((rc = v->fetch(v->ctx, be, idx, n, xb, label + s, err)))
            goto out;
        sd_exec_args a = {theta, bn, SD_BN_FROZEN, SD_LABEL_RAW, xb, NULL, n};
        if ((rc = sd_exec_forward(ex, &a, err)) ||
            (rc =
                 be->download(be, err, z, sd_exec_logits(ex), (size_t)n * (size_t)K * sizeof *z))) {
            sd_error_wrap_code(err, rc, "membership audit");
            goto out;
        }
        for (int i = 0; i < n; i++) {
            const sd_real *zi = z + (size_t)i * (size_t)K;
            int y = label[s + i];
            if (y < 0 || y >= K) {
                rc = sd_error_set(err, SD_EINVAL, "membership audit: label %d out of range", y);
                goto out;
            }
            double mx = zi[0], se = 0;
            for (int k = 1; k < K; k++)
                mx = fmax(mx, zi[k]);
            for (int k = 0; k < K; k++)
                se += exp((double)zi[k] - mx);
            loss[s + i] = mx + log(se) - (double)zi[y];
        }
    }
out:
    free(idx);
    free(z);
    return rc;
}

int sd_privacy_losses(const sd_model *m, sd_backend *be, const sd_real *theta,
                      const float *bn_stats, const sd_data_view *v, int64_t n, double *loss,
                      int *label, sd_error *err)
{
    if (v->c != m->spec.in_c || v->h != m->spec.in_h || v->w != m->spec.in_w)
        return sd_error_set(err, SD_EINVAL, "membership audit: samples do not fit the model");
    if (n < 1 || n > v->count)
        return sd_error_set(err, SD_EINVAL, "membership audit: %lld of %lld samples", (long long)n,
                            (long long)v->count);
    int bsz = 256;
    size_t D = (size_t)m->spec.in_c * (size_t)m->spec.in_h * (size_t)m->spec.in_w;
    sd_exec *ex = NULL;
    sd_real *xb = NULL, *bn = NULL;
    int rc;
    if ((rc = sd_exec_create(&ex, m, be, bsz, SD_EXEC_INFERENCE, err)))
        return rc;
    if ((rc = be->alloc(be, err, (size_t)bsz * D * sizeof(sd_real), (void **)&xb)) ||
        (rc = be->alloc(be, err, (m->n_bn + 1) * sizeof(sd_real), (void **)&bn))) {
        sd_error_wrap_code(err, rc, "membership audit");
        goto out;
    }
    if ((rc = sd_theta_bn_upload(be, bn, bn_stats, m->n_bn, err))) {
        sd_error_wrap(err, "membership audit");
        goto out;
    }
    rc = sample_losses(m, be, ex, theta, bn, xb, bsz, v, n, loss, label, err);
out:
    sd_exec_destroy(ex);
    be->free(be, xb);
    be->free(be, bn);
    return rc;
}

int sd_privacy_membership(sd_privacy_report *r, const sd_model *m, sd_backend *be,
                          const sd_real *theta, const float *bn_stats, const sd_data_view *members,
                          const sd_data_view *nonmembers, int64_t max, sd_error *err)
{
    double t0 = now_seconds();
    r->membership_done = 0;
    r->membership_auc = NAN;
    int64_t n1 = capped(max, members->count), n0 = capped(max, nonmembers->count);
    if (n1 < 1 || n0 < 1)
        return sd_error_set(err, SD_EINVAL, "membership audit: needs members and non-members");
    double *l1 = malloc((size_t)n1 * sizeof *l1), *l0 = malloc((size_t)n0 * sizeof *l0);
    int *y1 = malloc((size_t)n1 * sizeof *y1), *y0 = malloc((size_t)n0 * sizeof *y0);
    int rc;
    if (!l1 || !l0 || !y1 || !y0) {
        rc = sd_error_set(err, SD_ENOMEM, "membership audit: out of memory");
        goto out;
    }
    if ((rc = sd_privacy_losses(m, be, theta, bn_stats, members, n1, l1, y1, err)) ||
        (rc = sd_privacy_losses(m, be, theta, bn_stats, nonmembers, n0, l0, y0, err)))
        goto out;
    double s1 = 0, s0 = 0;
    for (int64_t i = 0; i < n1; i++)
        s1 += l1[i];
    for (int64_t i = 0; i < n0; i++)
        s0 += l0[i];
    r->members = n1;
    r->nonmembers = n0;
    r->member_loss = s1 / (double)n1;
    r->nonmember_loss = s0 / (double)n0;
    r->membership_auc = sd_privacy_loss_auc(l1, y1, (size_t)n1, l0, y0, (size_t)n0);
    r->membership_done = isfinite(r->membership_auc);
out:
    free(l1);
    free(l0);
    free(y1);
    free(y0);
    r->seconds += now_seconds() - t0;
    return rc;
}

/* ---------------------------------------------------------------- audit */

int sd_privacy_audit(sd_privacy_report *r, const sd_distilled *d, sd_backend *be,
                     const sd_data_view *train, const sd_data_view *heldout,
                     const sd_privacy_config *cfg_in, sd_error *err)
{
    sd_privacy_config cfg;
    if (cfg_in)
        cfg = *cfg_in;
    else
        sd_privacy_config_defaults(&cfg);
    memset(r, 0, sizeof *r);
    r->membership_auc = NAN;
    sd_model *m = NULL;
    sd_real *theta = NULL;
    int rc = sd_replay(d, be, &m, &theta, err);
    if (rc)
        return sd_error_wrap(err, "privacy audit: replay");
    rc = sd_privacy_membership(r, m, be, theta, m->n_bn ? d->theta_bn : NULL, train, heldout,
                               cfg.max_members, err);
    be->free(be, theta);
    sd_model_destroy(m);
    if (!rc)
        rc = sd_privacy_nearest(r, d->images, sd_distilled_image_count(d), d->spec.in_c,
                                d->spec.in_h, d->spec.in_w, train, heldout, be, &cfg, err);
    if (rc) {
        sd_privacy_report_free(r);
        return rc;
    }
    sd_privacy_decide(r, &cfg.policy);
    return SD_OK;
}
