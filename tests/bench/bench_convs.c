/*
 * bench_convs.c - the benchmarked convolution layers and shard rule (see
 * bench_convs.h).
 */
#include "bench_convs.h"

#include "sd_backend_cpu.h"

#include <stdio.h>
#include <stdlib.h>

#define CONV(n, c, hw, k, rs, stride, pad)                                      \
    {                                                                           \
        n, c, hw, hw, k, rs, rs, stride, pad, (hw + 2 * pad - rs) / stride + 1, \
            (hw + 2 * pad - rs) / stride + 1                                    \
    }

const bench_conv_layer bench_conv_layers[] = {
    /* gastric ConvNet-BN (docs/experiments.md): depth 3, width 16, 32x32
     * inputs, real batch 128 */
    {"gastric conv1 1->16 at 32x32", CONV(128, 1, 32, 16, 3, 1, 1)},
    {"gastric conv2 16->16 at 16x16", CONV(128, 16, 16, 16, 3, 1, 1)},
    {"gastric conv3 16->16 at 8x8", CONV(128, 16, 8, 16, 3, 1, 1)},
    /* ResNet18 (width 64) at 64x64, batch 32 */
    {"ResNet18 conv1 7x7/2 1->64", CONV(32, 1, 64, 64, 7, 2, 3)},
    {"ResNet18 layer1 64->64 at 16x16", CONV(32, 64, 16, 64, 3, 1, 1)},
    {"ResNet18 layer2 128->128 at 8x8", CONV(32, 128, 8, 128, 3, 1, 1)},
    {"ResNet18 layer3 256->256 at 4x4", CONV(32, 256, 4, 256, 3, 1, 1)},
    {"ResNet18 layer4 512->512 at 2x2", CONV(32, 512, 2, 512, 3, 1, 1)},
};
const int bench_conv_layer_count = (int)(sizeof bench_conv_layers / sizeof bench_conv_layers[0]);

int bench_conv_shards(int n)
{
    return n / 4 < 1 ? 1 : n / 4 > BENCH_MAXP ? BENCH_MAXP : n / 4;
}

int bench_conv_shard_n(int n, int P, int s)
{
    return (s + 1) * n / P - s * n / P;
}

float *bench_fvec(size_t n, unsigned seed)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        p[i] = (float)(((i + seed) * 2654435761u) % 1000) / 1000.0f - 0.5f;
    return p;
}

int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

const char *bench_conv_auto_paths(sd_backend *be, const sd_conv_desc *d, char *buf, size_t n)
{
    sd_cpu_conv_path p[3];
    for (int pass = 0; pass < 3; pass++)
        p[pass] = sd_backend_cpu_conv_path(be, d, (sd_cpu_conv_pass)pass);
    if (p[0] == p[1] && p[1] == p[2])
        snprintf(buf, n, "%s", sd_cpu_conv_path_name(p[0]));
    else
        snprintf(buf, n, "%s/%s/%s", sd_cpu_conv_path_name(p[0]), sd_cpu_conv_path_name(p[1]),
                 sd_cpu_conv_path_name(p[2]));
    return buf;
}
