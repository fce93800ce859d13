/*
 * test_node_pictures.c - the pictures of a distilled result (nd_data.h).
 * The image grid shows every learned step size: with E > 1 distill epochs
 * step s is taken E times, each with its own alpha (alpha[e * S + s]), and
 * changing the alpha of a later epoch must change the picture, as changing
 * the first epoch's does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nd_data.h"
#include "sd_test.h"

static char root[256];

/* The bytes of the grid of d written to root/NAME.png (malloc'ed, *len). */
static unsigned char *grid_bytes(const sd_distilled *d, const char *name, size_t *len)
{
    char path[400];
    sd_error err = {0};
    static const char *const names[] = {"I", "N", "P"};
    snprintf(path, sizeof path, "%s/%s.png", root, name);
    int rc = nd_picture_grid(path, d, names, 1, &err);
    CHECKF(rc == 0, "%s", err.msg);
    FILE *f = rc ? NULL : fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *buf = malloc(1 << 20);
    *len = buf ? fread(buf, 1, 1 << 20, f) : 0;
    fclose(f);
    return buf;
}

static int same(const unsigned char *a, size_t la, const unsigned char *b, size_t lb)
{
    return a && b && la == lb && !memcmp(a, b, la);
}

int main(void)
{
    snprintf(root, sizeof root, "/tmp/sldd-test-pictures-XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    /* two steps of three 8x8 images, three distill epochs: T = 6 */
    enum { S = 2, N = 3, E = 3, M = S * N, D = 64, K = 3, T = S * E };
    sd_distilled d = {0};
    snprintf(d.spec.arch, sizeof d.spec.arch, "convnet");
    d.spec.depth = 2;
    d.spec.width = 4;
    d.spec.in_c = 1;
    d.spec.in_h = d.spec.in_w = 8;
    d.spec.classes = K;
    d.steps = S;
    d.images_per_step = N;
    d.epochs_inner = E;
    d.label_param = SD_LABEL_SOFTMAX;
    float images[M * D], labels[M * K], alpha[T];
    for (int i = 0; i < M * D; i++)
        images[i] = (float)((i * 37) % 101) / 101.0f;
    for (int i = 0; i < M * K; i++)
        labels[i] = (float)(i % K == i / K % K);
    for (int t = 0; t < T; t++)
        alpha[t] = 0.01f;
    d.images = images;
    d.labels = labels;
    d.step_sizes = alpha;

    size_t l0 = 0, l1 = 0, l2 = 0, l3 = 0;
    unsigned char *base = grid_bytes(&d, "base", &l0);
    alpha[0 * S + 1] = 0.02f; /* epoch 1, step 1: shown before as well */
    unsigned char *first = grid_bytes(&d, "first", &l1);
    CHECKF(!same(base, l0, first, l1), "the first epoch's step size is not in the grid");
    alpha[2 * S + 0] = 0.03f; /* epoch 3, step 0 */
    unsigned char *last = grid_bytes(&d, "last", &l2);
    CHECKF(!same(first, l1, last, l2), "the last epoch's step size of step 0 is not in the grid");
    alpha[1 * S + 1] = 0.04f; /* epoch 2, step 1 */
    unsigned char *mid = grid_bytes(&d, "mid", &l3);
    CHECKF(!same(last, l2, mid, l3), "the second epoch's step size of step 1 is not in the grid");
    free(base);
    free(first);
    free(last);
    free(mid);

    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (!sd_test_failed_ && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", root);
    return sd_test_finish();
}
