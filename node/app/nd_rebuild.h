/*
 * nd_rebuild.h - the receive-side rebuild policy: what rebuilding a
 * received model (the replay of Algorithm 2) may cost this node, checked
 * from the payload's declared shapes before anything of the model is
 * allocated.
 *
 * Parsing a payload is bounded by its size (sp_budget, the bundle size
 * cap); rebuilding is not: a few bytes declare a model's width and the
 * number of inner steps, and the replay allocates the parameters and runs
 * the steps.  The policy bounds four figures of one replay, each set by a
 * node.conf key (docs/node.md):
 *
 *   parameters          rebuild-max-params       default 150,000,000
 *   inner steps T=S*E   rebuild-max-inner-steps  default 10,000
 *   floating-point ops  rebuild-max-tflop        default 1,000 (10^15)
 *   memory              rebuild-max-memory-mib   default 16,384 (16 GiB)
 *
 * The defaults admit the largest model of the paper (VGG19-bn, 139.6 M
 * parameters at any input size) at 299x299 with 10 images per step and
 * T = 30 with room to spare, and refuse a ConvNet of width 3,000
 * (162 M parameters).  The cost is an estimate of the replay's own work
 * and buffers (parameters and their gradient, the distilled set on the
 * device, one forward/backward state for n images); convolution
 * workspaces and the evaluation that follows come on top.
 */
#ifndef ND_REBUILD_H
#define ND_REBUILD_H

#include <stddef.h>
#include <stdint.h>

#include "sd_error.h"

struct sd_distilled;

typedef struct nd_rebuild_limits {
    uint64_t max_params;
    uint64_t max_inner_steps;
    double max_flop;     /* floating-point operations of the whole replay */
    uint64_t max_memory; /* bytes */
} nd_rebuild_limits;

typedef struct nd_rebuild_cost {
    uint64_t params, inner_steps;
    double flop;     /* T x n x 3 forward passes + the T parameter updates */
    uint64_t memory; /* bytes, estimated */
} nd_rebuild_cost;

#define ND_REBUILD_MAX_PARAMS      150000000ull
#define ND_REBUILD_MAX_INNER_STEPS 10000ull
#define ND_REBUILD_MAX_TFLOP       1000.0
#define ND_REBUILD_MAX_MEMORY_MIB  16384ull

void nd_rebuild_limits_default(nd_rebuild_limits *l);

/* The cost of replaying d.  Builds the model's layer graph (a few KiB of
 * descriptors, no parameters).  An SD_E code with err when the model cannot
 * be built. */
int nd_rebuild_cost_of(const struct sd_distilled *d, nd_rebuild_cost *out, sd_error *err);

/* NULL when cost is within l; otherwise the node.conf key of the first
 * limit exceeded, with err saying "parameters 162,011,003 > 150,000,000
 * (rebuild-max-params)". */
const char *nd_rebuild_check(const nd_rebuild_limits *l, const nd_rebuild_cost *cost,
                             sd_error *err);

/* Both: 0 when d may be rebuilt; an SD_E code with err naming the limit
 * (or why the cost could not be computed). */
int nd_rebuild_admit(const nd_rebuild_limits *l, const struct sd_distilled *d, sd_error *err);

#endif
