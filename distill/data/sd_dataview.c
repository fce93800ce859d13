/* sd_dataview.c - host-memory and subset data views (see sd_dataview.h). */
#include "sd_dataview.h"

#include <stdlib.h>
#include <string.h>

static int array_fetch(void *ctx, sd_backend *be, const int64_t *idx, int n, sd_real *x,
                       int *labels, sd_error *err)
{
    sd_array_data *a = ctx;
    size_t d = (size_t)a->c * (size_t)a->h * (size_t)a->w;
    size_t need = (size_t)n * d * sizeof(sd_real);
    if (need > a->staging_cap) {
        sd_real *s = realloc(a->staging, need);
        if (!s)
            return sd_error_set(err, SD_ENOMEM, "out of memory for a batch");
        a->staging = s;
        a->staging_cap = need;
    }
    sd_real *dst = a->staging;
    for (int i = 0; i < n; i++) {
        if (idx[i] < 0 || idx[i] >= a->count)
            return sd_error_set(err, SD_EINVAL, "sample %lld out of range", (long long)idx[i]);
        memcpy(dst + (size_t)i * d, a->x + (size_t)idx[i] * d, d * sizeof *dst);
        if (labels)
            labels[i] = a->labels[idx[i]];
    }
    int rc = be->upload(be, err, x, dst, need);
    return rc ? sd_error_wrap_code(err, rc, "uploading a batch") : SD_OK;
}

void sd_data_view_array(sd_data_view *view, sd_array_data *arr)
{
    memset(view, 0, sizeof *view);
    view->count = arr->count;
    view->c = arr->c;
    view->h = arr->h;
    view->w = arr->w;
    view->classes = arr->classes;
    view->fetch = array_fetch;
    view->ctx = arr;
}

void sd_array_data_free(sd_array_data *arr)
{
    free(arr->staging);
    arr->staging = NULL;
    arr->staging_cap = 0;
}

static int subset_fetch(void *ctx, sd_backend *be, const int64_t *idx, int n, sd_real *x,
                        int *labels, sd_error *err)
{
    sd_subset_data *s = ctx;
    if (n > s->scratch_cap) {
        int64_t *p = realloc(s->scratch, (size_t)n * sizeof *p);
        if (!p)
            return sd_error_set(err, SD_ENOMEM, "out of memory");
        s->scratch = p;
        s->scratch_cap = n;
    }
    for (int i = 0; i < n; i++) {
        if (idx[i] < 0 || idx[i] >= s->count)
            return sd_error_set(err, SD_EINVAL, "sample %lld out of range", (long long)idx[i]);
        s->scratch[i] = s->index[idx[i]];
    }
    return s->base->fetch(s->base->ctx, be, s->scratch, n, x, labels, err);
}

void sd_data_view_subset(sd_data_view *view, sd_subset_data *sub)
{
    *view = *sub->base;
    view->count = sub->count;
    view->fetch = subset_fetch;
    view->ctx = sub;
}

void sd_subset_data_free(sd_subset_data *sub)
{
    free(sub->scratch);
    sub->scratch = NULL;
    sub->scratch_cap = 0;
}
