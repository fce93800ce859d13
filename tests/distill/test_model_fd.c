/*
 * test_model_fd.c - whole-model derivatives against central finite
 * differences, in double precision (links sldd_distill64).
 *
 * For LeNet, a ConvNet with batch norm (batch-statistics mode, and frozen
 * mode) and a reduced-width ResNet18 with BN (64x64 inputs, so its last BN
 * layers still normalise over 16 values per channel), with soft labels q = softmax(y):
 *   <grad_theta l, u>          vs (l(theta+hu) - l(theta-hu)) / 2h
 *   <grad_x l, w>, <grad_y l, w'>  likewise along x and y
 *   H v                        vs (grad l(theta+hv) - grad l(theta-hv)) / 2h
 *   d/dx <v, grad_theta l>     vs FD of <v, grad_theta l> along x
 *   d/dy <v, grad_theta l>     vs FD along y
 * and the symmetry u^T (H v) = v^T (H u).  Directional checks avoid stepping
 * across ReLU and max-pool kinks one coordinate at a time.  Prints one table
 * row per model (docs/derivative-checks.md quotes it).
 */
#include <stdlib.h>
#include <string.h>

#include "../sd_test.h"
#include "sd_init.h"
#include "sd_model.h"
#include "sd_testutil.h"

#ifndef SD_REAL_DOUBLE
#error "test_model_fd must be built with SD_REAL_DOUBLE"
#endif

typedef struct ctx {
    sd_backend *be;
    sd_model *m;
    sd_exec *ex;
    sd_exec_args a;
    size_t nt, nx, ny;
} ctx;

static double loss_at(ctx *c)
{
    double l = 0;
    sd_error err = {0};
    if (sd_exec_loss_grad(c->ex, &c->a, &l, NULL, NULL, NULL, &err))
        fprintf(stderr, "loss: %s\n", err.msg);
    return l;
}

/* <v, grad_theta l> at the current args */
static double vgrad_at(ctx *c, const sd_real *v)
{
    sd_real *g = calloc(c->nt, sizeof *g);
    double l;
    sd_error err = {0};
    if (sd_exec_loss_grad(c->ex, &c->a, &l, g, NULL, NULL, &err))
        fprintf(stderr, "grad: %s\n", err.msg);
    double r = dot_vec(g, v, c->nt);
    free(g);
    return r;
}

static void axpy(sd_real *y, const sd_real *x, double a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] += (sd_real)(a * x[i]);
}

static double rel(double a, double b)
{
    return fabs(a - b) / fmax(fabs(b), 1e-10);
}

/* A sharded exec (batch norm joined from per-shard sums) against the same
 * model unsharded: in double the two orders of summation agree to ~1e-15. */
static void check_unsharded(ctx *c, double l0, const sd_real *g, const sd_real *hv,
                            const sd_real *v)
{
    sd_error err = {0};
    sd_exec *plain = NULL;
    int (*par)(sd_backend *, int, int (*)(void *, int), void *) = c->be->parallel;
    c->be->parallel = NULL; /* no tasks: the exec is made unsharded */
    CHECK(sd_exec_create(&plain, c->m, c->be, c->a.n, SD_EXEC_TANGENT, &err) == 0);
    c->be->parallel = par;
    if (!plain)
        return;
    CHECK(sd_exec_shards(plain) == 1);
    sd_real *g1 = calloc(c->nt, sizeof *g1), *h1 = calloc(c->nt, sizeof *h1);
    double l1 = 0;
    CHECK(sd_exec_hvp(plain, &c->a, v, &l1, g1, h1, NULL, NULL, &err) == 0);
    double eg = 0, eh = 0, dg = 0, dh = 0;
    for (size_t i = 0; i < c->nt; i++) {
        eg = fmax(eg, fabs(g[i] - g1[i]));
        eh = fmax(eh, fabs(hv[i] - h1[i]));
        dg = fmax(dg, fabs(g1[i]));
        dh = fmax(dh, fabs(h1[i]));
    }
    CHECKF(fabs(l0 - l1) <= 1e-13 * fabs(l1) && eg <= 1e-12 * dg && eh <= 1e-12 * dh,
           "sharded vs unsharded: loss %g grad %g Hv %g", fabs(l0 - l1) / fabs(l1), eg / dg,
           eh / dh);
    free(g1);
    free(h1);
    sd_exec_destroy(plain);
}

static void check_model(const char *arch, int in_c, int size, int classes, int depth, int width,
                        int n, sd_bn_mode mode)
{
    sd_error err = {0};
    ctx c = {0};
    sd_model_spec spec = {.in_c = in_c,
                          .in_h = size,
                          .in_w = size,
                          .classes = classes,
                          .depth = depth,
                          .width = width};
    CHECK(sd_model_spec_parse_arch(&spec, arch, &err) == 0);
    CHECK(sd_backend_cpu_create(&c.be, 1, &err) == 0);
    if (sd_model_create(&c.m, &spec, &err) || !c.be) {
        fprintf(stderr, "%s: %s\n", arch, err.msg);
        CHECK(0);
        return;
    }
    CHECK(sd_exec_create(&c.ex, c.m, c.be, n, SD_EXEC_TANGENT, &err) == 0);
    c.nt = c.m->n_theta;
    c.nx = (size_t)n * (size_t)in_c * (size_t)size * (size_t)size;
    c.ny = (size_t)n * (size_t)classes;
    sd_real *theta = malloc(c.nt * sizeof *theta), *x = malloc(c.nx * sizeof *x),
            *y = malloc(c.ny * sizeof *y), *bn = malloc((c.m->n_bn + 1) * sizeof *bn);
    CHECK(sd_init_theta(c.m, 7, theta, &err) == 0);
    /* move BN affine terms and biases off their trivial start values */
    sd_real *pert = malloc(c.nt * sizeof *pert);
    fill_rand(pert, c.nt, 99, 0.05);
    axpy(theta, pert, 1, c.nt);
    fill_rand(x, c.nx, 1, 1.0);
    fill_rand(y, c.ny, 2, 2.0);
    fill_rand(bn, c.m->n_bn + 1, 3, 0.5);
    for (int i = 1; i < c.m->n_layers; i++) { /* positive variances */
        const sd_layer *l = &c.m->layers[i];
        if (l->kind == SD_LAYER_BN)
            for (int j = 0; j < l->out.c; j++)
                bn[l->bn_off + (size_t)l->out.c + (size_t)j] += 1.0;
    }
    c.a = (sd_exec_args){theta, bn, mode, SD_LABEL_SOFTMAX, x, y, n};

    sd_real *u = malloc(c.nt * sizeof *u), *v = malloc(c.nt * sizeof *v);
    sd_real *wx = malloc(c.nx * sizeof *wx), *wy = malloc(c.ny * sizeof *wy);
    fill_rand(u, c.nt, 11, 1.0);
    fill_rand(v, c.nt, 12, 1.0);
    fill_rand(wx, c.nx, 13, 1.0);
    fill_rand(wy, c.ny, 14, 1.0);

    sd_real *g = calloc(c.nt, sizeof *g), *gx = calloc(c.nx, sizeof *gx),
            *gy = calloc(c.ny, sizeof *gy);
    double l0;
    CHECK(sd_exec_loss_grad(c.ex, &c.a, &l0, g, gx, gy, &err) == 0);
    sd_real *hv = calloc(c.nt, sizeof *hv), *hu = calloc(c.nt, sizeof *hu),
            *dgx = calloc(c.nx, sizeof *dgx), *dgy = calloc(c.ny, sizeof *dgy),
            *g2 = calloc(c.nt, sizeof *g2);
    double l1;
    CHECKF(sd_exec_hvp(c.ex, &c.a, v, &l1, g2, hv, dgx, dgy, &err) == 0, "%s", err.msg);
    CHECK(sd_exec_hvp(c.ex, &c.a, u, NULL, NULL, hu, NULL, NULL, &err) == 0);
    CHECK(l1 == l0);
    if (sd_exec_shards(c.ex) > 1)
        check_unsharded(&c, l0, g, hv, v);

    /* small steps: the models are piecewise smooth (ReLU, max-pool), and a
     * step that crosses a kink spoils the difference; in double, h = 1e-7
     * still leaves rounding error near 1e-9 relative */
    const double h = 1e-7;
    /* labels enter only through a softmax (no kinks): a larger step there
     * keeps rounding error down */
    const double hy = 1e-5;
    double e_grad, e_gx, e_gy, e_hv, e_mx, e_my, e_sym, e_g2;
    /* gradient along u */
    axpy(theta, u, h, c.nt);
    double lp = loss_at(&c);
    axpy(theta, u, -2 * h, c.nt);
    double lm = loss_at(&c);
    axpy(theta, u, h, c.nt);
    e_grad = rel(dot_vec(g, u, c.nt), (lp - lm) / (2 * h));
    /* input gradient along wx */
    axpy(x, wx, h, c.nx);
    lp = loss_at(&c);
    axpy(x, wx, -2 * h, c.nx);
    lm = loss_at(&c);
    axpy(x, wx, h, c.nx);
    e_gx = rel(dot_vec(gx, wx, c.nx), (lp - lm) / (2 * h));
    /* label gradient along wy */
    axpy(y, wy, hy, c.ny);
    lp = loss_at(&c);
    axpy(y, wy, -2 * hy, c.ny);
    lm = loss_at(&c);
    axpy(y, wy, hy, c.ny);
    e_gy = rel(dot_vec(gy, wy, c.ny), (lp - lm) / (2 * hy));
    /* Hv, full vector, by FD of the gradient along v */
    sd_real *gp = calloc(c.nt, sizeof *gp), *gm = calloc(c.nt, sizeof *gm);
    axpy(theta, v, h, c.nt);
    CHECK(sd_exec_loss_grad(c.ex, &c.a, NULL, gp, NULL, NULL, &err) == 0);
    axpy(theta, v, -2 * h, c.nt);
    CHECK(sd_exec_loss_grad(c.ex, &c.a, NULL, gm, NULL, NULL, &err) == 0);
    axpy(theta, v, h, c.nt);
    double num = 0, den = 0;
    for (size_t i = 0; i < c.nt; i++) {
        double fd = (gp[i] - gm[i]) / (2 * h);
        num = fmax(num, fabs(hv[i] - fd));
        den = fmax(den, fabs(fd));
    }
    e_hv = num / fmax(den, 1e-12);
    /* mixed x: <dgx, wx> vs FD of <v, grad_theta l> along wx */
    axpy(x, wx, h, c.nx);
    double vp = vgrad_at(&c, v);
    axpy(x, wx, -2 * h, c.nx);
    double vm = vgrad_at(&c, v);
    axpy(x, wx, h, c.nx);
    e_mx = rel(dot_vec(dgx, wx, c.nx), (vp - vm) / (2 * h));
    /* mixed y */
    axpy(y, wy, hy, c.ny);
    vp = vgrad_at(&c, v);
    axpy(y, wy, -2 * hy, c.ny);
    vm = vgrad_at(&c, v);
    axpy(y, wy, hy, c.ny);
    e_my = rel(dot_vec(dgy, wy, c.ny), (vp - vm) / (2 * hy));
    /* symmetry */
    e_sym = rel(dot_vec(u, hv, c.nt), dot_vec(v, hu, c.nt));
    /* the gradient returned by the HVP pass equals the plain gradient */
    num = 0;
    den = 0;
    for (size_t i = 0; i < c.nt; i++) {
        num = fmax(num, fabs(g2[i] - g[i]));
        den = fmax(den, fabs(g[i]));
    }
    e_g2 = num / den;

    char label[64];
    sd_model_spec_label(&c.m->spec, label, sizeof label);
    printf("| %-22s | %-6s | %8zu | %.1e | %.1e | %.1e | %.1e | %.1e | %.1e | %.1e |\n", label,
           mode == SD_BN_BATCH ? "batch" : "frozen", c.nt, e_grad, e_gx, e_gy, e_hv, e_mx, e_my,
           e_sym);
    /* central differences with h=1e-7 in double leave ~1e-14 truncation and
     * ~1e-9 rounding error; 1e-6 leaves a margin yet catches any real
     * mistake (a wrong term is O(1) relative) */
    const double tol = 1e-6;
    CHECKF(e_grad < tol, "%s grad %g", label, e_grad);
    CHECKF(e_gx < tol, "%s grad_x %g", label, e_gx);
    CHECKF(e_gy < tol, "%s grad_y %g", label, e_gy);
    CHECKF(e_hv < tol, "%s Hv %g", label, e_hv);
    CHECKF(e_mx < tol, "%s mixed x %g", label, e_mx);
    CHECKF(e_my < tol, "%s mixed y %g", label, e_my);
    CHECKF(e_sym < 1e-10, "%s symmetry %g", label, e_sym);
    CHECKF(e_g2 < 1e-12, "%s hvp gradient %g", label, e_g2);

    free(gp);
    free(gm);
    free(g);
    free(gx);
    free(gy);
    free(g2);
    free(hv);
    free(hu);
    free(dgx);
    free(dgy);
    free(u);
    free(v);
    free(wx);
    free(wy);
    free(pert);
    free(theta);
    free(x);
    free(y);
    free(bn);
    sd_exec_destroy(c.ex);
    sd_model_destroy(c.m);
    sd_backend_destroy(c.be);
}

int main(void)
{
    printf("| model | BN mode | params | grad θ | grad x | grad y | Hv | ∂x⟨v,∇θ⟩ | ∂y⟨v,∇θ⟩ | "
           "uᵀHv−vᵀHu |\n|---|---|---|---|---|---|---|---|---|---|\n");
    /* 9 samples: two batch shards (4 + 5) on the CPU backend */
    check_model("lenet", 1, 28, 10, 0, 0, 9, SD_BN_BATCH);
    check_model("convnet-bn", 1, 16, 3, 2, 6, 4, SD_BN_BATCH);
    check_model("convnet-bn", 1, 16, 3, 2, 6, 4, SD_BN_FROZEN);
    check_model("resnet18-bn", 1, 64, 3, 0, 4, 4, SD_BN_BATCH);
    /* batch-mode batch norm over batch shards (4 + 5 samples): the
     * statistics joined from per-shard sums, against differences and
     * against the unsharded exec */
    check_model("convnet-bn", 1, 16, 3, 2, 6, 9, SD_BN_BATCH);
    check_model("resnet18-bn", 1, 32, 3, 0, 4, 9, SD_BN_BATCH);
    /* GoogLeNet is left out: with ~10^5 ReLU units even h = 1e-7 steps
     * across kinks; its layer kinds are all checked one by one in
     * test_layers and its whole-model tangents against the CPU in the GPU
     * tests. */
    return sd_test_finish();
}
