/*
 * test_dp.c - the DP outer gradient's pieces (distill/engine/sd_dp.c):
 *  - the sensitivity bound on the code path every DP iteration runs
 *    (sd_dp_clipped_sum): one real sample removed moves the clipped sum by
 *    at most C in L2 norm (the add/remove neighbours the accountant assumes),
 *    one replaced by an adversarial one (pixels of 1e4, another label) by at
 *    most 2C, before noise - for LeNet and for a ConvNet with
 *    batch norm frozen at given statistics; the same change without clipping
 *    moves it by far more, so the check can fail;
 *  - Poisson sampling: the batch size is Binomial(N, q) (within 5 standard
 *    deviations), the draw depends on the key and the iteration;
 *  - the noise: mean 0 and the requested standard deviation.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sd_dp.h"
#include "sd_init.h"
#include "sd_model.h"
#include "sd_test.h"
#include "sd_weights.h"

enum { NB = 12, BAD = 5 };

/* ||a - b|| of two backend vectors of n values (CPU backend: host memory) */
static double dist(const sd_real *a, const sd_real *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return sqrt(s);
}

static void check_sensitivity(const char *arch, int bn)
{
    sd_error e = {0};
    sd_backend *be = NULL;
    sd_model *m = NULL;
    sd_exec *ex = NULL;
    sd_model_spec spec = {0};
    CHECK(sd_model_spec_parse_arch(&spec, arch, &e) == 0);
    spec.in_c = 1;
    spec.in_h = spec.in_w = 28;
    spec.classes = 10;
    if (!strncmp(arch, "convnet", 7)) {
        spec.depth = 2;
        spec.width = 8;
    }
    CHECKF(sd_backend_create(&be, "cpu", &e) == 0, "%s", e.msg);
    CHECKF(sd_model_create(&m, &spec, &e) == 0, "%s", e.msg);
    if (!be || !m)
        return;
    CHECK(sd_exec_create(&ex, m, be, 1, 0, &e) == 0);
    size_t nt = m->n_theta, img = 28 * 28;
    sd_real *theta = NULL, *theta_bn = NULL, *g = NULL, *s1 = NULL, *s2 = NULL, *s3 = NULL;
    sd_real *x = NULL, *y = NULL;
    CHECK(sd_dev_alloc(be, nt, &theta, &e) == 0 && sd_dev_alloc(be, nt, &g, &e) == 0 &&
          sd_dev_alloc(be, nt, &s1, &e) == 0 && sd_dev_alloc(be, nt, &s2, &e) == 0 &&
          sd_dev_alloc(be, nt, &s3, &e) == 0 && sd_dev_alloc(be, NB * img, &x, &e) == 0 &&
          sd_dev_alloc(be, NB * 10, &y, &e) == 0);
    CHECK(sd_theta0_upload(m, be, 3, theta, NULL, &e) == 0);
    if (bn) { /* frozen statistics: mean 0.1, variance 2 for every channel */
        float *h = malloc(m->n_bn * sizeof *h);
        for (size_t i = 0; i < m->n_bn; i++)
            h[i] = 0.1f;
        for (int i = 1; i < m->n_layers; i++) {
            const sd_layer *l = &m->layers[i];
            if (l->kind == SD_LAYER_BN)
                for (int c = 0; c < l->out.c; c++)
                    h[l->bn_off + (size_t)l->out.c + (size_t)c] = 2.0f;
        }
        CHECK(sd_dev_alloc(be, m->n_bn, &theta_bn, &e) == 0);
        CHECK(sd_theta_bn_upload(be, theta_bn, h, m->n_bn, &e) == 0);
        free(h);
    }
    for (size_t i = 0; i < NB * img; i++)
        x[i] = (sd_real)sd_normal(9, 1, i);
    for (int i = 0; i < NB; i++)
        y[i * 10 + i % 10] = 1;
    const double C = 0.5;
    double loss = 0;
    /* the batch as it is */
    CHECK(sd_dp_clipped_sum(ex, be, nt, theta, theta_bn, x, y, NB, img, 10, C, g, s1, &loss, &e) ==
          0);
    /* sample BAD adversarial: huge pixels, another label */
    for (size_t i = 0; i < img; i++)
        x[BAD * img + i] = (sd_real)(i % 2 ? 1e4 : -1e4);
    memset(y + BAD * 10, 0, 10 * sizeof *y);
    y[BAD * 10 + 9 - BAD % 10] = 1;
    CHECK(sd_dp_clipped_sum(ex, be, nt, theta, theta_bn, x, y, NB, img, 10, C, g, s2, &loss, &e) ==
          0);
    double d_replace = dist(s1, s2, nt);
    /* sample BAD removed: the batch without it */
    CHECK(sd_dp_clipped_sum(ex, be, nt, theta, theta_bn, x, y, BAD, img, 10, C, g, s3, &loss, &e) ==
          0);
    CHECK(sd_dp_clipped_sum(ex, be, nt, theta, theta_bn, x + (BAD + 1) * img, y + (BAD + 1) * 10,
                            NB - BAD - 1, img, 10, C, g, s3, &loss, &e) == 0);
    double d_remove = dist(s1, s3, nt);
    /* the same replacement without clipping */
    memset(s2, 0, nt * sizeof *s2);
    CHECK(sd_dp_clipped_sum(ex, be, nt, theta, theta_bn, x + BAD * img, y + BAD * 10, 1, img, 10,
                            1e30, g, s2, &loss, &e) == 0);
    double n2 = 0;
    for (size_t i = 0; i < nt; i++)
        n2 += (double)s2[i] * s2[i];
    double raw = sqrt(n2);
    printf("%s: replacing one sample moves the clipped sum by %.6f, removing it by %.6f "
           "(C = %g); its unclipped gradient has norm %.4g\n",
           arch, d_replace, d_remove, C, raw);
    /* float32 sums: allow rounding of a few ulps of the sum's size */
    CHECKF(d_replace <= 2 * C * (1 + 1e-5), "replace: %g > 2C", d_replace);
    CHECKF(d_remove <= C * (1 + 1e-5), "remove: %g > C", d_remove);
    CHECKF(raw > 10 * C, "the adversarial sample's gradient (%g) should dwarf C", raw);
    sd_real *bufs[] = {theta, theta_bn, g, s1, s2, s3, x, y};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        be->free(be, bufs[i]);
    sd_exec_destroy(ex);
    sd_model_destroy(m);
    sd_backend_destroy(be);
}

static void check_poisson(void)
{
    enum { N = 200000 };
    static int64_t idx[N], idx2[N];
    int64_t c1, c2, c3;
    double q = 0.01;
    sd_dp_poisson(42, 7, N, q, idx, &c1);
    double sd = sqrt(N * q * (1 - q));
    CHECKF(fabs((double)c1 - N * q) < 5 * sd, "batch %lld, expected %g +- %g", (long long)c1, N * q,
           sd);
    sd_dp_poisson(42, 7, N, q, idx2, &c2);
    CHECK(c1 == c2 && !memcmp(idx, idx2, (size_t)c1 * sizeof *idx));
    sd_dp_poisson(42, 8, N, q, idx2, &c3);
    CHECK(c3 != c1 || memcmp(idx, idx2, (size_t)c1 * sizeof *idx));
    sd_dp_poisson(43, 7, N, q, idx2, &c3);
    CHECK(c3 != c1 || memcmp(idx, idx2, (size_t)c1 * sizeof *idx));
    int sorted = 1;
    for (int64_t i = 1; i < c1; i++)
        sorted &= idx[i] > idx[i - 1];
    CHECK(sorted);
    uint64_t k1 = 0, k2 = 0;
    sd_error e;
    CHECK(sd_dp_secret_key(&k1, &e) == 0 && sd_dp_secret_key(&k2, &e) == 0 && k1 != k2);
}

static void check_noise(void)
{
    enum { N = 100001 };
    sd_error e = {0};
    sd_backend *be = NULL;
    CHECK(sd_backend_create(&be, "cpu", &e) == 0);
    if (!be)
        return;
    sd_real *sum = NULL, *tmp = NULL;
    float *host = malloc(N * sizeof *host);
    CHECK(sd_dev_alloc(be, N, &sum, &e) == 0 && sd_dev_alloc(be, N, &tmp, &e) == 0 && host);
    CHECK(sd_dp_add_noise(be, N, sum, 3.0, 99, 1, host, tmp, &e) == 0);
    double m = 0, v = 0;
    for (int i = 0; i < N; i++)
        m += sum[i];
    m /= N;
    for (int i = 0; i < N; i++)
        v += (sum[i] - m) * (sum[i] - m);
    double sd = sqrt(v / (N - 1));
    printf("noise: mean %.4f, std %.4f (asked 3)\n", m, sd);
    CHECK(fabs(m) < 5 * 3.0 / sqrt(N));
    CHECK(fabs(sd - 3.0) < 0.03);
    be->free(be, sum);
    be->free(be, tmp);
    free(host);
    sd_backend_destroy(be);
}

int main(void)
{
    check_sensitivity("lenet", 0);
    check_sensitivity("convnet-bn", 1);
    check_poisson();
    check_noise();
    return sd_test_finish();
}
