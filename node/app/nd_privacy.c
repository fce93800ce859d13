/*
 * nd_privacy.c - the privacy audit of a job's result (see nd_privacy.h).
 */
#include "nd_privacy.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int nd_privacy_audit(nd_data *ds, const sd_distilled *d, sd_backend *be, const char *out_dir,
                     const char *thresholds, nd_privacy *p, sd_error *err)
{
    sd_privacy_config cfg;
    memset(p, 0, sizeof *p);
    sd_privacy_config_defaults(&cfg);
    if (thresholds && *thresholds) {
        int rc = sd_privacy_policy_parse(&cfg.policy, thresholds, err);
        if (rc)
            return rc;
    }
    if (!ds->val.count) {
        snprintf(p->verdict, sizeof p->verdict, "not-audited");
        snprintf(p->summary, sizeof p->summary,
                 "NOT AUDITED: the data set has no held-out (validation) samples to compare "
                 "against. Distilled images are not anonymous by construction (docs/privacy.md).");
        return 0;
    }
    int rc = sd_privacy_audit(&p->report, d, be, &ds->train, &ds->val, &cfg, err);
    if (rc)
        return rc;
    p->done = 1;
    const sd_privacy_report *r = &p->report;
    double dmin = INFINITY, smax = -INFINITY;
    for (size_t i = 0; i < r->n_images; i++) {
        dmin = fmin(dmin, r->images[i].pixel_distance);
        smax = fmax(smax, r->images[i].ssim);
    }
    snprintf(p->verdict, sizeof p->verdict, "%s", sd_privacy_verdict_name(r->verdict));
    snprintf(p->summary, sizeof p->summary,
             "%s: %s. Nearest-training distance min %.4f (held-out 1%% quantile %.4f); best "
             "SSIM max %.3f (held-out top 1%% %.3f); membership AUC %.3f; %lld of %lld training "
             "samples searched, %lld held-out.",
             p->verdict, r->reason, dmin, r->heldout_distance_q[0], smax, r->heldout_ssim_q[0],
             r->membership_auc, (long long)r->train_searched, (long long)r->train_count,
             (long long)r->heldout_used);
    snprintf(p->picture, sizeof p->picture, "%s/privacy.png", out_dir);
    sd_error pe = {0};
    if (sd_privacy_picture_png(p->picture, r, d->images, ds->class_names, ds->synthetic, 0, &pe))
        p->picture[0] = 0; /* the figures are still in the payload and the summary */
    return 0;
}

void nd_privacy_free(nd_privacy *p)
{
    sd_privacy_report_free(&p->report);
    memset(p, 0, sizeof *p);
}
