/*
 * nd_canary.c - canaries of the one-run membership audit (see nd_canary.h).
 */
#include "nd_canary.h"

#include <stdlib.h>
#include <string.h>

#include "sd_init.h"

#define CHUNK 256

int nd_view_to_host(const sd_data_view *v, sd_backend *be, const int64_t *idx, int64_t n, float *x,
                    int *labels, sd_error *err)
{
    size_t D = (size_t)v->c * (size_t)v->h * (size_t)v->w;
    sd_real *dev = NULL;
    int rc = be->alloc(be, err, (size_t)CHUNK * D * sizeof *dev, (void **)&dev);
    if (rc)
        return sd_error_wrap_code(err, rc, "samples to the host");
    for (int64_t s = 0; s < n && !rc; s += CHUNK) {
        int k = (int)(n - s < CHUNK ? n - s : CHUNK);
        if (!(rc = v->fetch(v->ctx, be, idx + s, k, dev, labels + s, err)))
            rc = be->download(be, err, x + (size_t)s * D, dev, (size_t)k * D * sizeof *dev);
    }
    be->free(be, dev);
    return rc;
}

/* The training view: base's samples, then the included canaries.  A batch
 * is fetched in runs of consecutive samples from the same source. */
static int concat_fetch(void *ctx, sd_backend *be, const int64_t *idx, int n, sd_real *x,
                        int *labels, sd_error *err)
{
    nd_canaries *c = ctx;
    int64_t nb = c->base->count;
    size_t D = (size_t)c->base->c * (size_t)c->base->h * (size_t)c->base->w;
    if (n > c->tmp_cap) {
        int64_t *t = realloc(c->tmp, (size_t)n * sizeof *t);
        if (!t)
            return sd_error_set(err, SD_ENOMEM, "out of memory for a batch");
        c->tmp = t;
        c->tmp_cap = n;
    }
    for (int i = 0; i < n;) {
        int extra = idx[i] >= nb, j = i;
        while (j < n && (idx[j] >= nb) == extra) {
            c->tmp[j - i] = extra ? idx[j] - nb : idx[j];
            j++;
        }
        const sd_data_view *v = extra ? &c->included : c->base;
        int rc =
            v->fetch(v->ctx, be, c->tmp, j - i, x + (size_t)i * D, labels ? labels + i : NULL, err);
        if (rc)
            return rc;
        i = j;
    }
    return 0;
}

static void array_of(sd_array_data *a, sd_data_view *v, const float *x, const int32_t *y, int64_t n,
                     const sd_data_view *shape)
{
    memset(a, 0, sizeof *a);
    a->x = x;
    a->labels = y;
    a->count = n;
    a->c = shape->c;
    a->h = shape->h;
    a->w = shape->w;
    a->classes = shape->classes;
    sd_data_view_array(v, a);
    v->class_names = shape->class_names;
}

int nd_canaries_make(nd_canaries *c, const sd_data_view *src, const sd_data_view *base, int m,
                     uint64_t seed, sd_backend *be, sd_error *err)
{
    memset(c, 0, sizeof *c);
    if (m < 2 || m > src->count)
        return sd_error_set(err, SD_EINVAL, "%d canaries: need 2 to %lld (the validation split)", m,
                            (long long)src->count);
    if (src->classes < 2 || src->c != base->c || src->h != base->h || src->w != base->w)
        return sd_error_set(err, SD_EINVAL, "canaries: the splits do not match");
    size_t D = (size_t)src->c * (size_t)src->h * (size_t)src->w;
    c->m = m;
    c->member = calloc((size_t)m, sizeof *c->member);
    c->label = calloc((size_t)m, sizeof *c->label);
    c->true_label = calloc((size_t)m, sizeof *c->true_label);
    c->in_label = calloc((size_t)m, sizeof *c->in_label);
    c->source = calloc((size_t)m, sizeof *c->source);
    c->x = malloc((size_t)m * D * sizeof *c->x);
    c->in_x = malloc((size_t)m * D * sizeof *c->in_x);
    int *lab = calloc((size_t)m, sizeof *lab);
    if (!c->member || !c->label || !c->true_label || !c->in_label || !c->source || !c->x ||
        !c->in_x || !lab) {
        free(lab);
        nd_canaries_free(c);
        return sd_error_set(err, SD_ENOMEM, "canaries: out of memory");
    }
    for (int i = 0; i < m; i++)
        c->source[i] = (int64_t)((double)i * (double)src->count / (double)m);
    int rc = nd_view_to_host(src, be, c->source, m, c->x, lab, err);
    if (rc) {
        free(lab);
        nd_canaries_free(c);
        return rc;
    }
    int64_t nin = 0;
    for (int i = 0; i < m; i++) {
        c->true_label[i] = lab[i];
        /* a wrong label, uniform over the K - 1 others; membership a fair coin */
        uint32_t r = sd_uniform_u32(seed, 31, (uint64_t)i);
        c->label[i] =
            (int32_t)((lab[i] + 1 + (int)(r % (uint32_t)(src->classes - 1))) % src->classes);
        c->member[i] = (int)(sd_uniform_u32(seed, 32, (uint64_t)i) & 1u);
        if (c->member[i]) {
            memcpy(c->in_x + (size_t)nin * D, c->x + (size_t)i * D, D * sizeof *c->x);
            c->in_label[nin++] = c->label[i];
        }
    }
    free(lab);
    array_of(&c->all_arr, &c->all, c->x, c->label, m, src);
    array_of(&c->in_arr, &c->included, c->in_x, c->in_label, nin, src);
    c->base = base;
    c->train = *base;
    c->train.count = base->count + nin;
    c->train.fetch = concat_fetch;
    c->train.ctx = c;
    return 0;
}

void nd_canaries_free(nd_canaries *c)
{
    sd_array_data_free(&c->all_arr);
    sd_array_data_free(&c->in_arr);
    free(c->member);
    free(c->label);
    free(c->true_label);
    free(c->in_label);
    free(c->source);
    free(c->x);
    free(c->in_x);
    free(c->tmp);
    memset(c, 0, sizeof *c);
}
