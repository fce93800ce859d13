/*
 * sd_privacy_policy.c - the privacy audit's policy: its defaults, the
 * key=value parser of `--privacy-policy` and the node's configuration, the
 * description of a policy and of a report, and the decision (pass, warn,
 * block) made on a report (sd_privacy.h, docs/privacy.md).  The
 * measurements are sd_privacy.c's.
 */
#include "sd_privacy.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sb_parse.h"

void sd_privacy_policy_defaults(sd_privacy_policy *p)
{
    p->block_distance_pct = 0.01;
    p->block_ssim = 0.90;
    p->warn_distance_pct = 0.05;
    p->warn_ssim_pct = 0.01;
    p->warn_auc = 0.60;
    p->block_auc = 0.80;
}

static double *policy_field(sd_privacy_policy *p, const char *key, size_t len)
{
    static const struct {
        const char *name;
        size_t off;
    } f[] = {{"block_distance_pct", offsetof(sd_privacy_policy, block_distance_pct)},
             {"block_ssim", offsetof(sd_privacy_policy, block_ssim)},
             {"warn_distance_pct", offsetof(sd_privacy_policy, warn_distance_pct)},
             {"warn_ssim_pct", offsetof(sd_privacy_policy, warn_ssim_pct)},
             {"warn_auc", offsetof(sd_privacy_policy, warn_auc)},
             {"block_auc", offsetof(sd_privacy_policy, block_auc)}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (strlen(f[i].name) == len && !memcmp(f[i].name, key, len))
            return (double *)((char *)p + f[i].off);
    return NULL;
}

int sd_privacy_policy_parse(sd_privacy_policy *p, const char *text, sd_error *err)
{
    sd_privacy_policy tmp = *p;
    const char *s = text;
    while (*s) {
        const char *end = strchr(s, ','), *eq = strchr(s, '=');
        if (!end)
            end = s + strlen(s);
        if (!eq || eq > end)
            return sd_error_set(err, SD_EINVAL, "privacy policy: '%.*s' is not key=value",
                                (int)(end - s), s);
        double *dst = policy_field(&tmp, s, (size_t)(eq - s));
        if (!dst)
            return sd_error_set(err, SD_EINVAL,
                                "privacy policy: unknown key '%.*s' (known: block_distance_pct, "
                                "block_ssim, warn_distance_pct, warn_ssim_pct, warn_auc, "
                                "block_auc)",
                                (int)(eq - s), s);
        char num[64];
        size_t nl = (size_t)(end - eq - 1);
        if (nl == 0 || nl >= sizeof num)
            return sd_error_set(err, SD_EINVAL, "privacy policy: bad value for '%.*s'",
                                (int)(eq - s), s);
        memcpy(num, eq + 1, nl);
        num[nl] = '\0';
        double v;
        if (sb_parse_double(num, 0, 1, &v))
            return sd_error_set(err, SD_EINVAL,
                                "privacy policy: '%.*s' needs a number in [0, 1], got '%s'",
                                (int)(eq - s), s, num);
        *dst = v;
        s = *end ? end + 1 : end;
    }
    *p = tmp;
    return SD_OK;
}

void sd_privacy_policy_describe(const sd_privacy_policy *p, char *buf, size_t len)
{
    snprintf(buf, len,
             "block if an image's nearest-training distance is below the held-out %.3g quantile "
             "and its best SSIM above %.3g, or membership AUC above %.3g; warn if below the "
             "held-out %.3g distance quantile, above the held-out %.3g SSIM tail, or membership "
             "AUC above %.3g",
             p->block_distance_pct, p->block_ssim, p->block_auc, p->warn_distance_pct,
             p->warn_ssim_pct, p->warn_auc);
}

void sd_privacy_report_describe(const sd_privacy_report *r, char *buf, size_t len)
{
    char pol[512];
    sd_privacy_policy_describe(&r->policy, pol, sizeof pol);
    int o = snprintf(buf, len,
                     "%s; normalised RMS distance and %dx%d-window SSIM at %dx%d; searched %lld "
                     "of %lld training samples; %lld of %lld held-out samples",
                     pol, SD_SSIM_WINDOW, SD_SSIM_WINDOW, r->cmp_h, r->cmp_w,
                     (long long)r->train_searched, (long long)r->train_count,
                     (long long)r->heldout_used, (long long)r->heldout_count);
    if (o < 0 || (size_t)o >= len)
        return;
    if (r->membership_done)
        snprintf(buf + o, len - (size_t)o, "; membership %lld members v %lld held-out",
                 (long long)r->members, (long long)r->nonmembers);
    else
        snprintf(buf + o, len - (size_t)o, "; membership not measured");
}

const char *sd_privacy_verdict_name(sd_privacy_verdict v)
{
    return v == SD_PRIVACY_BLOCK ? "block" : v == SD_PRIVACY_WARN ? "warn" : "pass";
}

/* ---------------------------------------------------------------- decision */

void sd_privacy_decide(sd_privacy_report *r, const sd_privacy_policy *p)
{
    r->policy = *p;
    r->verdict = SD_PRIVACY_PASS;
    r->reason[0] = '\0';
    char warn_reason[sizeof r->reason] = "";
    for (size_t i = 0; i < r->n_images; i++) {
        sd_privacy_image *im = &r->images[i];
        im->flag = SD_PRIVACY_PASS;
        if (im->pixel_pct < p->block_distance_pct && im->ssim > p->block_ssim) {
            im->flag = SD_PRIVACY_BLOCK;
            if (r->verdict < SD_PRIVACY_BLOCK)
                snprintf(r->reason, sizeof r->reason,
                         "image %zu is a near copy of training sample %lld: distance %.4f "
                         "(%.1f%% of held-out samples are as close, block below %.1f%%) and "
                         "SSIM %.3f > %.2f",
                         i, (long long)im->pixel_index, im->pixel_distance, 100.0 * im->pixel_pct,
                         100.0 * p->block_distance_pct, im->ssim, p->block_ssim);
            r->verdict = SD_PRIVACY_BLOCK;
        } else if (im->pixel_pct < p->warn_distance_pct || im->ssim_pct < p->warn_ssim_pct) {
            im->flag = SD_PRIVACY_WARN;
            if (!warn_reason[0])
                snprintf(warn_reason, sizeof warn_reason,
                         "image %zu is unusually close to training data: distance %.4f "
                         "(%.1f%% of held-out samples as close), SSIM %.3f (%.1f%% of "
                         "held-out samples as high)",
                         i, im->pixel_distance, 100.0 * im->pixel_pct, im->ssim,
                         100.0 * im->ssim_pct);
            if (r->verdict < SD_PRIVACY_WARN)
                r->verdict = SD_PRIVACY_WARN;
        }
    }
    if (r->membership_done) {
        if (r->membership_auc > p->block_auc) {
            if (r->verdict < SD_PRIVACY_BLOCK)
                snprintf(r->reason, sizeof r->reason,
                         "membership inference AUC %.3f > %.2f: the replayed model tells "
                         "training samples from unseen ones",
                         r->membership_auc, p->block_auc);
            r->verdict = SD_PRIVACY_BLOCK;
        } else if (r->membership_auc > p->warn_auc) {
            if (!warn_reason[0])
                snprintf(warn_reason, sizeof warn_reason, "membership inference AUC %.3f > %.2f",
                         r->membership_auc, p->warn_auc);
            if (r->verdict < SD_PRIVACY_WARN)
                r->verdict = SD_PRIVACY_WARN;
        }
    }
    if (r->verdict == SD_PRIVACY_WARN)
        memcpy(r->reason, warn_reason, sizeof r->reason);
    else if (r->verdict == SD_PRIVACY_PASS) {
        if (r->membership_done)
            snprintf(r->reason, sizeof r->reason,
                     "no image closer to training data than the held-out reference allows; "
                     "membership AUC %.3f",
                     r->membership_auc);
        else
            snprintf(r->reason, sizeof r->reason,
                     "no image closer to training data than the held-out reference allows; "
                     "membership not measured");
    }
}
