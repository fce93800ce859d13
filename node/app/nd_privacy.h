/*
 * nd_privacy.h - the privacy audit a distillation job runs before its
 * bundle can be approved (docs/privacy.md): the engine's audit (sd_privacy.h:
 * nearest training sample of every synthetic image by normalised pixel
 * distance and by SSIM, set against held-out samples, and a membership-
 * inference AUC of the rebuilt model) on the node's own data, its picture
 * for the approver (each image beside its nearest training samples), and
 * a one-paragraph summary.  The report goes into the payload, so the
 * approval covers it; node.conf `privacy-policy` decides what may be
 * approved (nd_approval.c).
 */
#ifndef ND_PRIVACY_H
#define ND_PRIVACY_H

#include "nd_data.h"
#include "sd_distill.h"
#include "sd_privacy.h"

typedef struct nd_privacy {
    sd_privacy_report report;
    int done;           /* report is valid */
    char verdict[32];   /* pass, warn, block, not-audited */
    char summary[768];  /* for the approver */
    char picture[4200]; /* "" when none */
} nd_privacy;

/* Audit d against ds (training set vs held-out validation set) with the
 * thresholds in `thresholds` ("key=value,..." for sd_privacy_policy_parse,
 * may be empty).  The picture goes to out_dir/privacy.png.  A data set
 * without held-out samples yields "not-audited" (not an error). */
int nd_privacy_audit(nd_data *ds, const sd_distilled *d, sd_backend *be, const char *out_dir,
                     const char *thresholds, nd_privacy *p, sd_error *err);
void nd_privacy_free(nd_privacy *p);

#endif
