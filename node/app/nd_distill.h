/*
 * nd_distill.h - what `sldd distill` and the daemon's distillation jobs
 * share: the distillation options (same names and meaning in both: a job's
 * options are `sldd distill` options), and turning a finished run into the
 * payload of a bundle (metadata, hyper-parameters, privacy report).
 */
#ifndef ND_DISTILL_H
#define ND_DISTILL_H

#include <stddef.h>
#include <stdint.h>

#include "nd_data.h"
#include "nd_payload.h"
#include "sd_distill.h"

typedef struct nd_distill_opts {
    sd_distill_config cfg;
    char arch[SD_ARCH_NAME_MAX + 8]; /* "" = the data set's default */
    int encoding;                    /* Sldd__V1__ImageEncoding, 1 = float32 */
    long long train_limit;
    double dp_epsilon; /* > 0: solve cfg.dp_noise for this epsilon (nd_distill_opts_finish) */
} nd_distill_opts;

/* Defaults of `sldd distill` (eval and checkpoint every 100 iterations). */
void nd_distill_opts_defaults(nd_distill_opts *o);
/*
 * Apply one option by its long name without the dashes ("width", "16").
 * Flags ("random-init", "hard-labels") take value NULL.  Returns 0, 1 when
 * name is not a distillation option, or SD_EINVAL with a reason in err.
 */
int nd_distill_opt_apply(nd_distill_opts *o, const char *name, const char *value, sd_error *err);
/* 1 if the option takes no value. */
int nd_distill_opt_is_flag(const char *name);
/* Apply a whole option string ("--arch convnet-bn --width 16 --iterations
 * 200"); unknown options are errors.  0, or a status code with err. */
int nd_distill_opts_parse(nd_distill_opts *o, const char *text, sd_error *err);
/* The options' help text (the part of `sldd distill --help` they cover). */
const char *nd_distill_opts_help(void);
/* Resolve the architecture against the data set: fills o->cfg.spec. */
int nd_distill_opts_finish(nd_distill_opts *o, nd_data *ds, sd_error *err);

/* Iterations a run will make on ds. */
int64_t nd_distill_total(const nd_distill_opts *o, const nd_data *ds);

/* "1h02m" / "3m05s" */
void nd_fmt_duration(double seconds, char *buf, size_t len);

/* Who the payload is from and for, and what else goes into it. */
typedef struct nd_bundle_head {
    const char *sender;
    const char *const *audience;
    size_t n_audience;
    uint64_t sequence;
    int64_t created_unix, expires_unix;
    uint8_t bundle_id[16];
    const char *backend;
    const sd_privacy_report *privacy; /* NULL: "not-audited" */
} nd_bundle_head;

/* Build the payload of a finished run: metadata of ds and the evaluation
 * ev, hyper-parameters from o, and h.  0, or a status code with err (1 when
 * the privacy accounting fails). */
int nd_distill_payload(const nd_data *ds, const nd_distill_opts *o, const sd_distilled *res,
                       const nd_eval *ev, const nd_bundle_head *h, uint8_t **out, size_t *len,
                       sd_error *err);

#endif
