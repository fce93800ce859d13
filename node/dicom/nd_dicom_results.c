/*
 * nd_dicom_results.c - one detection's results as DICOM files
 * (nd_dicom_results.h): the heat map picture the CLI draws, on a canvas,
 * and the provenance of the model (payload SHA-256, sender, model, theta_0
 * hash, epsilon) gathered from the classifier, handed to the writer
 * (nd_dicom_write.cc).  Used by `sldd detect --dicom-out` and by the
 * daemon's Storage SCP.
 */
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nd_dicom_file.h"
#include "nd_dicom_results.h"
#include "sd_draw.h"

/* SHA-256 of a whole file, hex. */
static int file_sha256(const char *path, char hex[65], sd_error *err)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = nd_dicom_file_read(path, NULL, &buf, &len, err);
    if (rc)
        return rc;
    unsigned char md[32];
    unsigned int mdlen = 0;
    int ok = EVP_Digest(buf, len, md, &mdlen, EVP_sha256(), NULL) == 1 && mdlen == 32;
    free(buf);
    if (!ok)
        return sd_error_set(err, SD_EBACKEND, "SHA-256 failed (OpenSSL)");
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return 0;
}

int nd_dicom_results_write(const nd_dicom_results_opts *o, const nd_infer *inf, const uint16_t *pix,
                           int w, int h, const sd_detect_result *res, double delta, sd_error *err)
{
    char payload_hex[65] = "", model[96], sc[4200], sr[4200];
    int rc = 0;
    if (o->payload_path && (rc = file_sha256(o->payload_path, payload_hex, err)))
        return rc;
    sd_model_spec_label(&inf->m->spec, model, sizeof model);
    nd_dicom_findings f = {
        .r = res->r,
        .delta = delta,
        .decision = res->decision,
        .task = inf->task.labels && !sd_task_is_gastric(&inf->task) ? &inf->task : NULL,
        .bundle_sha256 = payload_hex[0] ? payload_hex : o->bundle_id,
        .sender = inf->sender,
        .model = model,
        .theta0 = inf->theta0_sha256,
        .epsilon = inf->dp_epsilon,
        .device_uid = o->device_uid,
    };
    memcpy(f.num, res->num, sizeof f.num);
    sd_detect_params p;
    nd_infer_params(inf, delta, &p);
    sd_canvas c;
    if ((rc = sd_detect_heatmap_canvas(&c, pix, w, h, &p, res, "sldd detection", inf->synthetic, 0,
                                       err)))
        return rc;
    snprintf(sc, sizeof sc, "%s/heatmap-sc.dcm", o->out_dir);
    snprintf(sr, sizeof sr, "%s/report-sr.dcm", o->out_dir);
    uint8_t *src = NULL;
    size_t len = 0;
    rc = nd_dicom_file_read(o->image, NULL, &src, &len, err);
    if (!rc)
        rc = nd_dicom_write_results(src, len, o->image, c.rgb, c.w, c.h, &f, sc, sr, err);
    free(src);
    sd_canvas_free(&c);
    return rc;
}
