/*
 * nd_rebuild.c - the receive-side rebuild policy (see nd_rebuild.h).
 *
 * The figures come from the model's layer graph (sd_model_create builds
 * descriptors and shapes only; parameters are allocated by the replay), so
 * a refusal costs a few KiB however large the declared model is.
 */
#include "nd_rebuild.h"

#include <stdio.h>

#include "sd_distill.h"
#include "sd_model.h"

void nd_rebuild_limits_default(nd_rebuild_limits *l)
{
    l->max_params = ND_REBUILD_MAX_PARAMS;
    l->max_inner_steps = ND_REBUILD_MAX_INNER_STEPS;
    l->max_flop = ND_REBUILD_MAX_TFLOP * 1e12;
    l->max_memory = ND_REBUILD_MAX_MEMORY_MIB << 20;
}

/* Floating-point operations of one forward pass of one sample. */
static double forward_flop(const sd_model *m)
{
    double f = 0;
    for (int i = 1; i < m->n_layers; i++) {
        const sd_layer *l = &m->layers[i];
        double out = (double)sd_layer_out_size(l);
        switch (l->kind) {
        case SD_LAYER_CONV: f += out * (2.0 * l->in[0].c * l->r * l->s + (l->bias ? 1 : 0)); break;
        case SD_LAYER_LINEAR:
            f += out * (2.0 * (double)sd_layer_in_size(l, 0) + (l->bias ? 1 : 0));
            break;
        case SD_LAYER_MAXPOOL:
        case SD_LAYER_AVGPOOL:
            f += out * (double)(l->kh > 0 ? l->kh : 1) * (l->kw > 0 ? l->kw : 1);
            break;
        case SD_LAYER_BN: f += 4.0 * out; break;
        default: f += out;
        }
    }
    return f;
}

int nd_rebuild_cost_of(const sd_distilled *d, nd_rebuild_cost *out, sd_error *err)
{
    sd_model *m = NULL;
    if (d->steps < 1 || d->epochs_inner < 1 || d->images_per_step < 1)
        return sd_error_set(err, SD_EINVAL, "distilled set S=%d n=%d E=%d", d->steps,
                            d->images_per_step, d->epochs_inner);
    if (sd_model_create(&m, &d->spec, err))
        return sd_error_wrap(err, "model");
    double n = d->images_per_step, T = (double)d->steps * d->epochs_inner;
    double img = (double)m->spec.in_c * m->spec.in_h * m->spec.in_w;
    double set = (double)d->steps * n * (img + m->spec.classes);
    /* replay (sd_replay): per step one forward and one backward (about two
     * forwards) for n images, then zero and axpy over the parameters */
    out->params = m->n_theta;
    out->inner_steps = (uint64_t)d->steps * (uint64_t)d->epochs_inner;
    out->flop = T * (3.0 * n * forward_flop(m) + 2.0 * (double)m->n_theta);
    double mem = (2.0 * (double)m->n_theta + set + (double)m->n_bn) * sizeof(sd_real) +
                 (double)sd_exec_slot_bytes(m, d->images_per_step);
    out->memory = mem >= 1.8e19 ? UINT64_MAX : (uint64_t)mem;
    sd_model_destroy(m);
    return 0;
}

/* 162011003 -> "162,011,003" */
static void commas(uint64_t v, char *buf, size_t len)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    size_t o = 0;
    for (int i = 0; i < n && o + 2 < len; i++) {
        if (i && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = tmp[i];
    }
    buf[o] = '\0';
}

static const char *over(sd_error *err, const char *what, uint64_t have, uint64_t max,
                        const char *key)
{
    char a[32], b[32];
    commas(have, a, sizeof a);
    commas(max, b, sizeof b);
    sd_error_set(err, SD_EINVAL, "%s %s > %s (%s)", what, a, b, key);
    return key;
}

const char *nd_rebuild_check(const nd_rebuild_limits *l, const nd_rebuild_cost *c, sd_error *err)
{
    if (c->params > l->max_params)
        return over(err, "parameters", c->params, l->max_params, "rebuild-max-params");
    if (c->inner_steps > l->max_inner_steps)
        return over(err, "inner steps", c->inner_steps, l->max_inner_steps,
                    "rebuild-max-inner-steps");
    if (c->flop > l->max_flop) {
        sd_error_set(err, SD_EINVAL, "replay %.3g TFLOP > %.3g TFLOP (rebuild-max-tflop)",
                     c->flop / 1e12, l->max_flop / 1e12);
        return "rebuild-max-tflop";
    }
    if (c->memory > l->max_memory)
        return over(err, "memory (MiB)", (c->memory + (1u << 20) - 1) >> 20, l->max_memory >> 20,
                    "rebuild-max-memory-mib");
    return NULL;
}

int nd_rebuild_admit(const nd_rebuild_limits *l, const sd_distilled *d, sd_error *err)
{
    nd_rebuild_cost c;
    if (nd_rebuild_cost_of(d, &c, err))
        return sd_error_wrap(err, "refused: cannot estimate its cost");
    if (nd_rebuild_check(l, &c, err))
        return sd_error_wrap(err, "refused by the rebuild policy");
    return 0;
}
