/*
 * bench_model.c - CPU time of whole-model passes: forward + backward (loss
 * gradient) and the Hessian-vector product (forward-over-reverse, which also
 * gives the mixed derivatives), for a ConvNet-BN batch and ResNet18 at 64x64.
 * Not a test: prints a markdown table for docs/benchmarks.md.
 *
 *   bench_model [rounds] [threads] [lenet]
 *
 * With "lenet": LeNet on 28x28 at the batches of the Fashion-MNIST
 * distillation (10 synthetic images per step, 256 real); with "bn28": the
 * ConvNet-BN of depth 3 and width 32 on 28x28 at the same batches (batch
 * norm in batch mode: 8 and 2 batch shards).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sd_init.h"
#include "sd_model.h"
#include "sb_parse.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int bench(sd_backend *be, const char *arch, int width, int size, int batch, int rounds)
{
    sd_error err = {0};
    sd_model_spec spec = {.in_c = 1, .in_h = size, .in_w = size, .classes = 3, .width = width};
    sd_model *m = NULL;
    sd_exec *ex = NULL;
    if (sd_model_spec_parse_arch(&spec, arch, &err) || sd_model_create(&m, &spec, &err) ||
        sd_exec_create(&ex, m, be, batch, SD_EXEC_TANGENT, &err)) {
        fprintf(stderr, "%s: %s\n", arch, err.msg);
        return 1;
    }
    size_t nx = (size_t)batch * (size_t)size * (size_t)size, nt = m->n_theta;
    sd_real *th = malloc(nt * sizeof *th), *g = calloc(nt, sizeof *g), *hv = calloc(nt, sizeof *hv),
            *v = malloc(nt * sizeof *v), *x = malloc(nx * sizeof *x),
            *y = calloc((size_t)batch * 3, sizeof *y);
    if (!th || !g || !hv || !v || !x || !y || sd_init_theta(m, 1, th, &err))
        return 1;
    for (size_t i = 0; i < nx; i++)
        x[i] = (sd_real)sd_normal(2, 0, i);
    for (size_t i = 0; i < nt; i++)
        v[i] = (sd_real)(0.01 * sd_normal(3, 0, i));
    for (int i = 0; i < batch; i++)
        y[i * 3 + i % 3] = 1;
    sd_exec_args a = {th, NULL, SD_BN_BATCH, SD_LABEL_SOFTMAX, x, y, batch};
    double l, t_fb = 1e30, t_hvp = 1e30;
    for (int r = 0; r < rounds + 1; r++) { /* first round warms up */
        double t0 = now();
        if (sd_exec_loss_grad(ex, &a, &l, g, NULL, NULL, &err))
            return 1;
        double t1 = now();
        if (sd_exec_hvp(ex, &a, v, &l, g, hv, NULL, y, &err))
            return 1;
        double t2 = now();
        if (r) {
            t_fb = t1 - t0 < t_fb ? t1 - t0 : t_fb;
            t_hvp = t2 - t1 < t_hvp ? t2 - t1 : t_hvp;
        }
    }
    char label[64];
    sd_model_spec_label(&m->spec, label, sizeof label);
    printf("| %s | %dx%d | %d | %zu | %.4f | %.4f | %.2f |\n", label, size, size, batch, nt, t_fb,
           t_hvp, t_hvp / t_fb);
    free(th);
    free(g);
    free(hv);
    free(v);
    free(x);
    free(y);
    sd_exec_destroy(ex);
    sd_model_destroy(m);
    return 0;
}

int main(int argc, char **argv)
{
    int rounds = 3, threads = 0;
    if ((argc > 1 && sb_parse_int(argv[1], 1, INT_MAX, &rounds)) ||
        (argc > 2 && sb_parse_int(argv[2], 0, 4096, &threads))) {
        fprintf(stderr, "usage: bench_model [ROUNDS [THREADS [lenet|bn28]]]\n");
        return 2;
    }
    sd_error err = {0};
    sd_backend *be = NULL;
    if (sd_backend_cpu_create(&be, threads, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    printf("| model | input | batch | params | forward+backward (s) | HVP (s) | HVP / fwd+bwd |\n"
           "|---|---|---|---|---|---|---|\n");
    int rc;
    if (argc > 3 && !strcmp(argv[3], "lenet"))
        rc = bench(be, "lenet", 0, 28, 10, rounds) || bench(be, "lenet", 0, 28, 256, rounds);
    else if (argc > 3 && !strcmp(argv[3], "bn28"))
        rc = bench(be, "convnet-bn", 32, 28, 256, rounds) ||
             bench(be, "convnet-bn", 32, 28, 10, rounds);
    else
        rc = bench(be, "convnet-bn", 128, 64, 64, rounds) ||
             bench(be, "convnet-bn", 32, 64, 256, rounds) ||
             bench(be, "resnet18-bn", 64, 64, 32, rounds);
    printf("(best of %d rounds, %s backend)\n", rounds, be->name);
    sd_backend_destroy(be);
    return rc;
}
