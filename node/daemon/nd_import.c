/*
 * nd_import.c - the import worker: parse a stored bundle's payload once,
 * check its rebuild against the node's rebuild policy (nd_rebuild.h) before
 * anything of its model is allocated, rebuild theta_opt from it (Algorithm
 * 2), evaluate it on the local labelled data and store it as a weights
 * object that detection loads (nd_detect.h), making the bundle available
 * for detection (see nd_inbound.h).
 */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nd_audit.h"
#include "nd_detect.h"
#include "nd_inbound.h"
#include "nd_lifecycle.h"
#include "nd_state.h"

/* Evaluate with the sender's normalisation: the model was trained on
 * inputs standardised with the sender's statistics, so the local patches
 * must be standardised the same way.  The local statistics are kept when
 * they round to the same float32 values (the bundle stores float32), which
 * makes an evaluation of the sender's own data reproduce its figures. */
static int evaluate(nd_data *ds, const nd_infer *inf, const nd_payload_info *info, nd_eval *ev,
                    char *note, size_t notelen, sd_error *err)
{
    int osize = info->patch_resize ? info->patch_resize : info->patch_size;
    if (!ds->gastric || ds->prep.psize != info->patch_size ||
        ds->prep.stride != info->patch_stride || ds->prep.osize != osize) {
        snprintf(note, notelen,
                 "not evaluated: the bundle uses %dpx patches, stride %d, input %d; the local "
                 "data set %dpx, stride %d, input %d",
                 info->patch_size, info->patch_stride, osize, ds->prep.psize, ds->prep.stride,
                 ds->prep.osize);
        return 1;
    }
    nd_norm norm = {ds->prep.mean, ds->prep.std};
    if ((float)norm.mean != (float)info->norm_mean || (float)norm.std != (float)info->norm_std)
        norm = (nd_norm){info->norm_mean, info->norm_std};
    return nd_data_evaluate_weights(ds, inf->w, &norm, SD_SPLIT_VAL, ev, err);
}

static int import_one(nd_inbound *in, const char *bid)
{
    nd_ctx *c = in->ctx;
    sc_error e = {0, ""};
    sd_error se = {0};
    char sender[65] = "", ph[65] = "", note[600] = "", detail[900], actor[80], wname[65] = "";
    nd_payload_info info;
    nd_infer inf;
    nd_eval ev;
    int rc, evaluated = 0, failed = 0, refused = 0;
    memset(&ev, 0, sizeof ev);
    memset(&inf, 0, sizeof inf);
    if ((rc = nd_db_text(in->wdb, sender, sizeof sender, NULL, &e,
                         "SELECT sender FROM bundles WHERE id=?", "t", bid)) ||
        (rc = nd_db_text(in->wdb, ph, sizeof ph, NULL, &e,
                         "SELECT payload_sha256 FROM bundles WHERE id=?", "t", bid))) {
        nd_log(c, "error", "import %.12s: %s", bid, e.msg);
        return rc;
    }
    nd_log(c, "info", "importing bundle %.12s from %s: rebuilding theta_opt", bid, sender);
    if (!in->be && sd_backend_create(&in->be, c->cfg.device, &se)) {
        nd_log(c, "error", "import: backend %s: %s", c->cfg.device, se.msg);
        return SC_EIO; /* retried later; the bundle stays stored */
    }
    /* the payload is parsed once and replayed once; theta_opt is stored for
     * detection (nd_detect.h) and evaluated here */
    nd_settings s;
    nd_ctx_settings(c, &s);
    rc = nd_theta_opt_rebuild(c->cfg.dir, ph, c->cfg.base.max_bundle_bytes, &s.rebuild, in->be,
                              &inf, &info, wname, note, sizeof note, &e);
    if (rc < 0) {
        nd_log(c, "error", "import %.12s: %s", bid, e.msg);
        return rc; /* retried later; the bundle stays stored */
    }
    failed = rc > 0;
    refused = rc == 2;
    if (!failed && in->data_state == 0) {
        if (!c->cfg.data[0]) {
            in->data_state = -1;
        } else if (nd_data_open(&in->data, c->cfg.data, 0, &se)) {
            nd_log(c, "warn", "local data set %s unavailable: %s", c->cfg.data, se.msg);
            in->data_state = -1;
        } else {
            in->data_state = 1;
        }
    }
    if (!failed && in->data_state == 1) {
        int64_t t0 = nd_now_ms();
        int r = evaluate(&in->data, &inf, &info, &ev, note, sizeof note, &se);
        if (r == 0)
            nd_metrics_patches(&c->metrics, (uint64_t)ev.samples,
                               (double)(nd_now_ms() - t0) / 1000.0);
        if (r < 0) {
            snprintf(note, sizeof note, "%s", se.msg);
            failed = 1;
        } else {
            evaluated = r == 0;
        }
    } else if (!failed) {
        snprintf(note, sizeof note, "not evaluated: no local data set configured");
    }
    nd_infer_free(&inf);
    nd_test_hold(c, "import");
    if (refused)
        snprintf(detail, sizeof detail, "%s", note);
    else if (failed)
        snprintf(detail, sizeof detail, "rebuild failed: %s", note);
    else if (evaluated)
        snprintf(detail, sizeof detail,
                 "rebuilt theta_opt; local %s split: patch accuracy %.4f, %d images: Sen %.4f "
                 "Spe %.4f HM %.4f AUC %.4f",
                 ev.split, ev.accuracy, ev.images, ev.sen, ev.spe, ev.hm, ev.auc);
    else
        snprintf(detail, sizeof detail, "rebuilt theta_opt; %s", note);
    snprintf(actor, sizeof actor, "node");
    nd_lifecycle_why why = {actor,  "import",
                            sender, refused ? "refused" : failed ? "failed" : "ok",
                            detail, failed ? note : ""};
    int64_t now = nd_now_unix();
    if ((rc = nd_db_begin(in->wdb, &e)))
        goto dberr;
    if (!failed &&
        (rc = nd_db_run(in->wdb, &e,
                        "INSERT INTO evaluations(bundle_id,data_source,split,accuracy,sen,spe,hm,"
                        "auc,images,patches,note,time_unix) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
                        "tttdddddiiti", bid, c->cfg.data[0] ? c->cfg.data : "(none)",
                        evaluated ? ev.split : "", evaluated ? ev.accuracy : NAN,
                        evaluated ? ev.sen : NAN, evaluated ? ev.spe : NAN, evaluated ? ev.hm : NAN,
                        evaluated && isfinite(ev.auc) ? ev.auc : NAN,
                        (int64_t)(evaluated ? ev.images : 0), (int64_t)(evaluated ? ev.samples : 0),
                        evaluated ? "" : note, now)))
        goto dberr;
    if (!failed && (rc = nd_theta_opt_record(in->wdb, bid, wname, ph, in->be->name, &e)))
        goto dberr;
    if ((rc =
             nd_lifecycle_move(in->wdb, bid, ND_BUNDLE_STORED,
                               failed ? ND_BUNDLE_IMPORT_FAILED : ND_BUNDLE_AVAILABLE, &why, &e)) ||
        (rc = nd_db_commit(in->wdb, &e)))
        goto dberr;
    if (nd_audit_anchor(in->wdb, c->cfg.dir, &e))
        nd_log(c, "error", "audit anchor: %s", e.msg);
    nd_log(c, failed ? "warn" : "info", "import of %.12s from %s: %s", bid, sender, detail);
    return 0;
dberr:
    nd_db_rollback(in->wdb);
    nd_log(c, "error", "import %.12s: %s", bid, e.msg);
    return rc;
}

static void *import_main(void *arg)
{
    nd_inbound *in = arg;
    nd_ctx *c = in->ctx;
    sc_error e = {0, ""};
    int backoff = 0;
    while (!atomic_load(&c->stopping)) {
        char bid[65];
        int found = 0;
        if (nd_db_text(in->wdb, bid, sizeof bid, &found, &e,
                       "SELECT id FROM bundles WHERE direction='in' AND state='stored' "
                       "ORDER BY updated_unix, rowid LIMIT 1",
                       "")) {
            nd_log(c, "error", "import: %s", e.msg);
            found = 0;
        }
        if (!found || backoff) {
            nd_wait(c, &c->wake_in, &c->pending_in, backoff ? 5000 : 2000);
            backoff = 0;
            continue;
        }
        if (import_one(in, bid))
            backoff = 1; /* transient trouble: try again later, not in a tight loop */
    }
    return NULL;
}

int nd_import_start(nd_inbound *in, sc_error *e)
{
    int rc = nd_db_open(in->ctx->cfg.dir, 0, &in->wdb, e);
    if (rc)
        return rc;
    if (pthread_create(&in->thread, NULL, import_main, in)) {
        nd_db_close(in->wdb);
        in->wdb = NULL;
        return sc_error_set(e, SC_ENOMEM, "cannot start the import worker");
    }
    in->started = 1;
    return 0;
}

void nd_import_join(nd_inbound *in)
{
    if (in->started)
        pthread_join(in->thread, NULL);
    in->started = 0;
    nd_db_close(in->wdb);
    in->wdb = NULL;
    if (in->data_state == 1)
        nd_data_close(&in->data);
    in->data_state = 0;
    sd_backend_destroy(in->be);
    in->be = NULL;
}
