/*
 * nd_detect.c - detection with a bundle from a node's store and the
 * bundle's stored theta_opt (see nd_detect.h).
 */
#include "nd_detect.h"
#include "sc_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <sodium.h>
#include <string.h>

#include "nd_audit.h"
#include "nd_config.h"
#include "nd_objects.h"
#include "nd_rebuild.h"
#include "nd_weights.h"
#include "sd_png.h"

int nd_bundle_payload_path(const char *node_dir, const char *id_prefix, char *path, size_t pathlen,
                           char id_out[33], sd_error *err)
{
    sqlite3 *db = NULL;
    sc_error e = {0, ""};
    char dir[8] = "", state[32] = "", ph[65] = "";
    int rc = -1, found = 0;
    if (nd_db_open(node_dir, 0, &db, &e) || nd_bundle_resolve(db, id_prefix, id_out, &e) ||
        nd_db_text(db, dir, sizeof dir, &found, &e, "SELECT direction FROM bundles WHERE id=?", "t",
                   id_out) ||
        nd_db_text(db, state, sizeof state, &found, &e, "SELECT state FROM bundles WHERE id=?", "t",
                   id_out) ||
        nd_db_text(db, ph, sizeof ph, &found, &e, "SELECT payload_sha256 FROM bundles WHERE id=?",
                   "t", id_out)) {
        sd_error_set(err, e.code, "%s", e.msg);
    } else if (!strcmp(dir, "in") && strcmp(state, "available")) {
        sd_error_set(err, SD_EINVAL, "bundle %.12s is %s, not available for detection%s", id_out,
                     state, strcmp(state, "stored") ? "" : " yet (the import runs in the node)");
    } else if (nd_object_check(node_dir, ph, &e) ||
               nd_object_path(node_dir, ph, path, pathlen, &e)) {
        sd_error_set(err, e.code, "bundle %.12s: %s", id_out, e.msg);
    } else {
        rc = 0;
    }
    nd_db_close(db);
    return rc;
}

int nd_theta_opt_write(const char *node_dir, const nd_infer *inf, char name_out[65], sc_error *e)
{
    nd_weights wf;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (nd_infer_to_weights(inf, &wf, e))
        return sb_error_wrap_code(e, SC_EIO, "theta_opt");
    int rc = nd_weights_encode(&wf, &buf, &len, e);
    nd_weights_free(&wf);
    if (rc)
        return sb_error_wrap_code(e, SC_EIO, "theta_opt");
    rc = nd_object_put(node_dir, buf, len, name_out, e);
    free(buf);
    return rc;
}

int nd_theta_opt_record(sqlite3 *db, const char *bundle_id, const char *name,
                        const char *payload_sha256, const char *device, sc_error *e)
{
    return nd_db_run(db, e,
                     "INSERT OR REPLACE INTO theta_opt(bundle_id,weights_sha256,payload_sha256,"
                     "device,time_unix) VALUES(?,?,?,?,?)",
                     "tttti", bundle_id, name, payload_sha256, device, nd_now_unix());
}

int nd_theta_opt_rebuild(const char *node_dir, const char *payload_sha256, size_t max,
                         const nd_rebuild_limits *limits, sd_backend *be, nd_infer *inf,
                         nd_payload_info *info, char name_out[65], char *note, size_t notelen,
                         sc_error *e)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    sd_distilled d = {0};
    memset(inf, 0, sizeof *inf);
    if (nd_object_get(node_dir, payload_sha256, max, &buf, &len, e)) {
        snprintf(note, notelen, "payload unreadable: %s", e->msg);
        return 1;
    }
    sd_error perr = {0, ""};
    int parsed = !nd_payload_parse(buf, len, &d, info, &perr);
    free(buf);
    if (!parsed) {
        snprintf(note, notelen, "payload: %s", perr.msg);
        return 1;
    }
    /* the rebuild policy, before anything of the model is allocated */
    if (limits && nd_rebuild_admit(limits, &d, &perr)) {
        snprintf(note, notelen, "rebuild %s", perr.msg);
        sd_distilled_free(&d);
        return 2;
    }
    int rc = nd_infer_from_distilled(inf, &d, info, be, &perr);
    sd_distilled_free(&d);
    if (rc) {
        snprintf(note, notelen, "%s", perr.msg);
        return 1;
    }
    if ((rc = nd_theta_opt_write(node_dir, inf, name_out, e)))
        nd_infer_free(inf);
    return rc;
}

/* The stored theta_opt of bundle id: 1 when inf was filled, 0 when there is
 * none, -1 (why says so) when it no longer reads back; the caller replays
 * for 0 and -1. */
static int load_stored(sqlite3 *db, const char *node_dir, const char *id, sd_backend *be,
                       nd_infer *inf, sd_error *why)
{
    sc_error e = {0, ""};
    char name[65] = "";
    int found = 0;
    if (nd_db_text(db, name, sizeof name, &found, &e,
                   "SELECT t.weights_sha256 FROM theta_opt t JOIN bundles b ON b.id=t.bundle_id "
                   "WHERE t.bundle_id=? AND t.payload_sha256=b.payload_sha256",
                   "t", id)) {
        sd_error_set(why, e.code, "%s", e.msg);
        return -1;
    }
    if (!found)
        return 0;
    uint8_t *buf = NULL;
    size_t len = 0;
    nd_weights wf;
    if (nd_object_get(node_dir, name, ND_WEIGHTS_MAX_BYTES, &buf, &len, &e)) {
        sd_error_set(why, e.code, "%s", e.msg);
        return -1;
    }
    int rc = nd_weights_decode(buf, len, name, &wf, why);
    free(buf);
    if (!rc) {
        rc = nd_infer_from_weights(inf, &wf, be, why);
        nd_weights_free(&wf);
    }
    return rc ? -1 : 1;
}

int nd_bundle_classifier(const char *node_dir, const char *id_prefix, sd_backend *be, nd_infer *inf,
                         char id_out[33], int *replayed, sd_error *err)
{
    char path[4300], ph[65] = "", name[65];
    sqlite3 *db = NULL;
    sc_error e = {0, ""};
    int found = 0;
    memset(inf, 0, sizeof *inf);
    sd_error_clear(err);
    if (replayed)
        *replayed = 0;
    if (nd_bundle_payload_path(node_dir, id_prefix, path, sizeof path, id_out, err))
        return -1;
    if (nd_db_open(node_dir, 0, &db, &e)) {
        sd_error_set(err, e.code, "%s", e.msg);
        return -1;
    }
    sd_error why = {0, ""};
    int stored = load_stored(db, node_dir, id_out, be, inf, &why);
    if (stored > 0) {
        nd_db_close(db);
        return 0;
    }
    /* no usable theta_opt: replay once and keep it */
    int rc = -1;
    if (nd_infer_from_payload_file(inf, path, be, err))
        goto out;
    if (replayed)
        *replayed = 1;
    if (stored < 0) /* a warning: the code stays 0 */
        sd_error_set(err, SD_OK,
                     "bundle %.12s: the stored theta_opt was unusable (%.300s); "
                     "replayed the payload and stored it again",
                     id_out, why.msg);
    if (nd_db_text(db, ph, sizeof ph, &found, &e, "SELECT payload_sha256 FROM bundles WHERE id=?",
                   "t", id_out) ||
        nd_theta_opt_write(node_dir, inf, name, &e) ||
        nd_theta_opt_record(db, id_out, name, ph, be->name, &e)) {
        sd_error_set(err, e.code, "bundle %.12s: storing theta_opt: %s", id_out, e.msg);
        nd_infer_free(inf);
        goto out;
    }
    rc = 0;
out:
    nd_db_close(db);
    return rc;
}

int nd_file_sha256_hex(const char *path, char hex[65], sc_error *e)
{
    crypto_hash_sha256_state st;
    unsigned char buf[65536], h[32];
    size_t n;
    FILE *f = fopen(path, "rb");
    if (!f)
        return sc_error_set(e, SC_EIO, "%s: %s", path, strerror(errno));
    if (sodium_init() < 0 || crypto_hash_sha256_init(&st)) {
        fclose(f);
        return sc_error_set(e, SC_ECRYPTO, "libsodium failed to initialise");
    }
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        if (crypto_hash_sha256_update(&st, buf, n)) {
            fclose(f);
            return sc_error_set(e, SC_ECRYPTO, "SHA-256 failed");
        }
    int bad = ferror(f);
    fclose(f);
    if (bad || crypto_hash_sha256_final(&st, h))
        return sc_error_set(e, SC_EIO, "%s: read error", path);
    sc_hex_encode(hex, h, 32);
    return 0;
}

const char *nd_decision_name(const sd_task *t, int decision)
{
    if (t && t->labels && !sd_task_is_gastric(t))
        return decision >= 0 && decision < t->labels ? t->label[decision] : "undetermined";
    return decision == SD_DETECT_POSITIVE   ? "gastritis"
           : decision == SD_DETECT_NEGATIVE ? "non-gastritis"
                                            : "undetermined";
}

void nd_patch_counts_text(const sd_task *t, const int *num, char *out, size_t cap)
{
    static const char *const gastric[3] = {"I", "N", "P"};
    int own = t && t->labels && !sd_task_is_gastric(t);
    int K = own ? t->classes : 3;
    size_t used = 0;
    out[0] = 0;
    for (int k = 0; k < K && used < cap; k++) {
        int n = snprintf(out + used, cap - used, "%s%s %d", k ? " " : "",
                         own ? t->cls[k] : gastric[k], num[k]);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

int nd_detection_audit(const char *node_dir, const char *bundle_id, const char *image,
                       const sd_task *task, int decision, double r, const int *num,
                       const char *actor, sd_error *err)
{
    sqlite3 *db = NULL;
    sc_error e = {0, ""};
    char detail[1100], ph[65] = "", peer[65] = "", ih[65], counts[448];
    int found = 0;
    const char *base = strrchr(image, '/');
    /* the image by its content: a file name says nothing about what was
     * looked at */
    if (nd_file_sha256_hex(image, ih, &e)) {
        sd_error_set(err, e.code, "%s", e.msg);
        return -1;
    }
    nd_patch_counts_text(task, num, counts, sizeof counts);
    snprintf(detail, sizeof detail, "%.400s (sha256 %s): %s, r %s%.4f, patches %.440s",
             base ? base + 1 : image, ih, nd_decision_name(task, decision),
             isfinite(r) ? "" : "undefined ", isfinite(r) ? r : 0.0, counts);
    if (nd_db_open(node_dir, 0, &db, &e) ||
        nd_db_text(db, ph, sizeof ph, &found, &e, "SELECT payload_sha256 FROM bundles WHERE id=?",
                   "t", bundle_id) ||
        nd_db_text(db, peer, sizeof peer, &found, &e, "SELECT sender FROM bundles WHERE id=?", "t",
                   bundle_id)) {
        sd_error_set(err, e.code, "%s", e.msg);
        nd_db_close(db);
        return -1;
    }
    nd_audit_entry en = {actor, "detection", bundle_id, ph, peer, "ok", detail};
    int rc = nd_audit_append(db, &en, NULL, &e) || nd_audit_anchor(db, node_dir, &e);
    if (rc)
        sd_error_set(err, e.code, "audit: %s", e.msg);
    nd_db_close(db);
    return rc ? -1 : 0;
}

int nd_detect_with_bundle(const char *node_dir, const char *id_prefix, const char *image,
                          const char *heatmap, int synthetic, const char *actor,
                          sd_detect_result *res, sd_error *err)
{
    char id[33];
    uint16_t *pix = NULL;
    int w = 0, h = 0, rc = -1;
    sd_backend *be = NULL;
    nd_infer inf;
    sd_error se = {0};
    sc_error e = {0, ""};
    memset(&inf, 0, sizeof inf);
    memset(res, 0, sizeof *res);
    nd_config *cfg = malloc(sizeof *cfg);
    if (!cfg) {
        sd_error_set(err, SD_ENOMEM, "out of memory");
        return -1;
    }
    if (nd_config_load(node_dir, cfg, &e)) {
        sd_error_set(err, e.code, "%s", e.msg);
        goto out;
    }
    if (sd_png_read_gray16(image, &pix, &w, &h, NULL, &se) ||
        sd_backend_create(&be, cfg->device, &se)) {
        sd_error_set(err, se.code, "%s", se.msg);
        goto out;
    }
    if (nd_bundle_classifier(node_dir, id_prefix, be, &inf, id, NULL, err) ||
        nd_infer_check_gastric(&inf, err))
        goto out;
    if (nd_infer_detect(&inf, pix, w, h, SD_DETECT_DELTA, res, &se)) {
        sd_error_set(err, se.code, "%s: %s", image, se.msg);
        goto out;
    }
    if (heatmap) {
        sd_detect_params p;
        char title[512];
        const char *base = strrchr(image, '/');
        nd_infer_params(&inf, SD_DETECT_DELTA, &p);
        snprintf(title, sizeof title, "%.100s - bundle %.12s - %.360s", base ? base + 1 : image, id,
                 inf.label);
        if (sd_detect_heatmap_png(heatmap, pix, w, h, &p, res, title, synthetic || inf.synthetic, 0,
                                  &se)) {
            sd_error_set(err, se.code, "heat map: %s", se.msg);
            goto out;
        }
    }
    rc = nd_detection_audit(node_dir, id, image, &inf.task, res->decision, res->r, res->num, actor,
                            err);
out:
    if (rc)
        sd_detect_result_free(res);
    nd_infer_free(&inf);
    sd_backend_destroy(be);
    free(pix);
    free(cfg);
    return rc;
}
