/*
 * nd_detect.c - detection with a bundle from a node's store (see
 * nd_detect.h).
 */
#include "nd_detect.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nd_audit.h"
#include "nd_infer.h"
#include "nd_objects.h"
#include "nd_state.h"
#include "sd_png.h"

int nd_bundle_payload_path(const char *node_dir, const char *id_prefix, char *path,
                           size_t pathlen, char id_out[33], char *msg, size_t msglen)
{
    sqlite3 *db = NULL;
    sc_error e = {0, ""};
    char dir[8] = "", state[32] = "", ph[65] = "";
    int rc = -1, found = 0;
    if (nd_db_open(node_dir, 0, &db, &e) || nd_bundle_resolve(db, id_prefix, id_out, &e) ||
        nd_db_text(db, dir, sizeof dir, &found, &e, "SELECT direction FROM bundles WHERE id=?",
                   "t", id_out) ||
        nd_db_text(db, state, sizeof state, &found, &e, "SELECT state FROM bundles WHERE id=?",
                   "t", id_out) ||
        nd_db_text(db, ph, sizeof ph, &found, &e,
                   "SELECT payload_sha256 FROM bundles WHERE id=?", "t", id_out)) {
        snprintf(msg, msglen, "%s", e.msg);
    } else if (!strcmp(dir, "in") && strcmp(state, "available")) {
        snprintf(msg, msglen, "bundle %.12s is %s, not available for detection%s", id_out, state,
                 strcmp(state, "stored") ? "" : " yet (the import runs in the node)");
    } else if (nd_object_check(node_dir, ph, &e) ||
               nd_object_path(node_dir, ph, path, pathlen, &e)) {
        snprintf(msg, msglen, "bundle %.12s: %s", id_out, e.msg);
    } else {
        rc = 0;
    }
    nd_db_close(db);
    return rc;
}

int nd_detection_audit(const char *node_dir, const char *bundle_id, const char *image,
                       int decision, double r, const int num[3], const char *actor, char *msg,
                       size_t msglen)
{
    sqlite3 *db = NULL;
    sc_error e = {0, ""};
    char detail[900], ph[65] = "", peer[65] = "";
    int found = 0;
    const char *base = strrchr(image, '/');
    snprintf(detail, sizeof detail, "%.400s: %s, r %s%.4f, patches I %d N %d P %d",
             base ? base + 1 : image,
             decision == SD_DETECT_POSITIVE   ? "gastritis"
             : decision == SD_DETECT_NEGATIVE ? "non-gastritis"
                                              : "undetermined",
             isfinite(r) ? "" : "undefined ", isfinite(r) ? r : 0.0, num[0], num[1], num[2]);
    if (nd_db_open(node_dir, 0, &db, &e) ||
        nd_db_text(db, ph, sizeof ph, &found, &e, "SELECT payload_sha256 FROM bundles WHERE id=?",
                   "t", bundle_id) ||
        nd_db_text(db, peer, sizeof peer, &found, &e, "SELECT sender FROM bundles WHERE id=?",
                   "t", bundle_id)) {
        snprintf(msg, msglen, "%s", e.msg);
        nd_db_close(db);
        return -1;
    }
    nd_audit_entry en = {actor, "detection", bundle_id, ph, peer, "ok", detail};
    int rc = nd_audit_append(db, &en, NULL, &e) || nd_audit_anchor(db, node_dir, &e);
    if (rc)
        snprintf(msg, msglen, "audit: %s", e.msg);
    nd_db_close(db);
    return rc ? -1 : 0;
}

int nd_detect_with_bundle(const char *node_dir, const char *id_prefix, const char *image,
                          const char *heatmap, int synthetic, const char *actor,
                          sd_detect_result *res, char *msg, size_t msglen)
{
    char path[4300], id[33];
    uint16_t *pix = NULL;
    int w = 0, h = 0, rc = -1;
    sd_backend *be = NULL;
    nd_infer inf;
    sd_error err = {0};
    memset(&inf, 0, sizeof inf);
    memset(res, 0, sizeof *res);
    if (nd_bundle_payload_path(node_dir, id_prefix, path, sizeof path, id, msg, msglen))
        return -1;
    if (sd_png_read_gray16(image, &pix, &w, &h, NULL, &err) ||
        sd_backend_create(&be, "cpu", &err)) {
        snprintf(msg, msglen, "%s", err.msg);
        goto out;
    }
    if (nd_infer_from_payload_file(&inf, path, be, msg, msglen) ||
        nd_infer_check_gastric(&inf, msg, msglen))
        goto out;
    if (nd_infer_detect(&inf, pix, w, h, SD_DETECT_DELTA, res, &err)) {
        snprintf(msg, msglen, "%s: %s", image, err.msg);
        goto out;
    }
    if (heatmap) {
        sd_detect_params p;
        char title[512];
        const char *base = strrchr(image, '/');
        nd_infer_params(&inf, SD_DETECT_DELTA, &p);
        snprintf(title, sizeof title, "%.100s - bundle %.12s - %.360s", base ? base + 1 : image,
                 id, inf.label);
        if (sd_detect_heatmap_png(heatmap, pix, w, h, &p, res, title, synthetic || inf.synthetic,
                                  0, &err)) {
            snprintf(msg, msglen, "heat map: %s", err.msg);
            goto out;
        }
    }
    rc = nd_detection_audit(node_dir, id, image, res->decision, res->r, res->num, actor, msg,
                            msglen);
out:
    if (rc)
        sd_detect_result_free(res);
    nd_infer_free(&inf);
    sd_backend_destroy(be);
    free(pix);
    return rc;
}
