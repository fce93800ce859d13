/*
 * nd_jobs.c - distillation jobs in a worker thread (see nd_jobs.h).
 */
#include "nd_jobs.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nd_audit.h"
#include "nd_distill.h"
#include "nd_job_curves.h"
#include "nd_ledger.h"
#include "nd_lifecycle.h"
#include "nd_objects.h"
#include "nd_privacy.h"
#include "nd_state.h"
#include "nd_node.h"
#include "sc_sign.h"
#include "sd_rdp.h"
#include "sc_util.h"
#include "sp_check.h"

#define MAX_AUDIENCE       64
#define ND_ENVELOPE_MARGIN 65536

static int check_audience(nd_ctx *c, const char *audience, char *out, size_t outlen, sc_error *e)
{
    out[0] = 0;
    if (audience && *audience) {
        char tmp[1024];
        size_t n = 0;
        snprintf(tmp, sizeof tmp, "%s", audience);
        for (char *save = NULL, *p = strtok_r(tmp, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
            sc_peer peer;
            if (!sp_valid_id(p) || !strcmp(p, c->self_id))
                return sc_error_set(e, SC_EINVAL, "'%s' is not a peer node id", p);
            if (c->trust->peer_get(c->trust, p, &peer, e))
                return sc_error_set(e, SC_ENOTFOUND, "'%s' is not a known peer (sldd peer add)", p);
            if (++n > MAX_AUDIENCE || strlen(out) + strlen(p) + 2 >= outlen)
                return sc_error_set(e, SC_EINVAL, "too many recipients");
            size_t at = strlen(out);
            snprintf(out + at, outlen - at, "%s%s", n > 1 ? "," : "", p);
        }
        return 0;
    }
    sc_peer *list = NULL;
    size_t n = 0;
    int rc = c->trust->peer_list(c->trust, &list, &n, e);
    if (rc)
        return rc;
    for (size_t i = 0; i < n && i < MAX_AUDIENCE; i++) {
        if (strlen(out) + strlen(list[i].id) + 2 >= outlen)
            break;
        size_t at = strlen(out);
        snprintf(out + at, outlen - at, "%s%s", at ? "," : "", list[i].id);
    }
    free(list);
    if (!out[0])
        return sc_error_set(e, SC_EINVAL, "no recipients: add peers first (sldd peer add)");
    return 0;
}

int nd_jobs_submit(nd_ctx *c, sqlite3 *db, const char *options, const char *audience, int64_t *id,
                   sc_error *e)
{
    nd_distill_opts o;
    char aud[1100];
    sd_error perr = {0, ""};
    int rc;
    nd_settings s;
    nd_ctx_settings(c, &s);
    nd_distill_opts_defaults(&o);
    if (nd_distill_opts_parse(&o, s.distill, &perr))
        return sc_error_set(e, SC_EINVAL, "node.conf distill: %s", perr.msg);
    if (nd_distill_opts_parse(&o, options, &perr))
        return sc_error_set(e, SC_EINVAL, "%s", perr.msg);
    if (o.cfg.dp_noise > 0 && o.dp_epsilon > 0)
        return sc_error_set(e, SC_EINVAL, "give --dp-epsilon or --dp-noise, not both");
    nd_settings set;
    nd_ctx_settings(c, &set);
    if (set.max_epsilon > 0 && !(o.cfg.dp_noise > 0 || o.dp_epsilon > 0))
        return sc_error_set(e, SC_EPERM,
                            "this node has a privacy budget (node.conf max-epsilon %g): its "
                            "releases must be differentially private; give --dp-epsilon E "
                            "(or --dp-noise)",
                            set.max_epsilon);
    if (set.max_epsilon > 0 && o.dp_epsilon > set.max_epsilon)
        return sc_error_set(e, SC_EPERM,
                            "--dp-epsilon %g is more than this node's whole privacy budget "
                            "(node.conf max-epsilon %g)",
                            o.dp_epsilon, set.max_epsilon);
    if (!c->cfg.data[0])
        return sc_error_set(e, SC_EINVAL, "this node has no data set (node.conf 'data:')");
    if ((rc = check_audience(c, audience, aud, sizeof aud, e)))
        return rc;
    if ((rc = nd_db_run(db, e,
                        "INSERT INTO jobs(kind,state,options,audience,created_unix) "
                        "VALUES('distill',?,?,?,?)",
                        "ttti", nd_job_state_name(ND_JOB_QUEUED), options ? options : "", aud,
                        nd_now_unix())))
        return rc;
    *id = sqlite3_last_insert_rowid(db);
    nd_log(c, "info", "job %" PRId64 " queued: distil for %s with '%s'", *id, aud,
           options ? options : "");
    nd_wake(c, &c->wake_jobs, &c->pending_jobs);
    return 0;
}

int nd_jobs_cancel(nd_jobs *j, sqlite3 *db, int64_t id, sc_error *e)
{
    char state[32];
    int found, rc;
    if ((rc = nd_db_text(db, state, sizeof state, &found, e, "SELECT state FROM jobs WHERE id=?",
                         "i", id)))
        return rc;
    if (!found)
        return sc_error_set(e, SC_ENOTFOUND, "no job %" PRId64, id);
    if (nd_job_state_parse(state) == ND_JOB_QUEUED) {
        /* SC_EINVAL: the runner took it meanwhile */
        rc = nd_job_move(db, id, ND_JOB_QUEUED, ND_JOB_CANCELED, NULL, e);
        if (rc != SC_EINVAL)
            return rc;
    }
    if (atomic_load(&j->running_id) == id) {
        atomic_store(&j->cancel_id, id);
        return 0;
    }
    return sc_error_set(e, SC_EINVAL, "job %" PRId64 " is %s", id, state);
}

int nd_jobs_recover(nd_ctx *c, sqlite3 *db, sc_error *e)
{
    sqlite3_stmt *st;
    int rc = nd_db_prepare(db, &st, e, "SELECT id, iter FROM jobs WHERE state='running'", "");
    if (rc)
        return rc;
    while ((rc = nd_db_step(st, e)) == 1) {
        int64_t id = nd_col_int(st, 0);
        char ck[ND_PATH_MAX + 64];
        snprintf(ck, sizeof ck, "%s/jobs/%" PRId64 "/checkpoint", c->cfg.dir, id);
        if (access(ck, R_OK) == 0)
            nd_log(c, "warn",
                   "job %" PRId64 " was running when the node stopped; it resumes "
                   "from its last checkpoint",
                   id);
        else
            nd_log(c, "warn",
                   "job %" PRId64 " was running when the node stopped and has no "
                   "checkpoint; it starts again from the beginning",
                   id);
    }
    nd_db_finalize(st);
    if (rc < 0)
        return rc;
    return nd_job_move_every(db, ND_JOB_RUNNING, ND_JOB_QUEUED,
                             "interrupted; resumed after restart", NULL, e);
}

/* ---------------------------------------------------------------- running */

typedef struct run_ctx {
    nd_jobs *j;
    int64_t id;
    nd_data *ds;
    sd_backend *be;
    sd_distiller *d;
    int64_t last_write_ms;
    const char *dir; /* NODE/jobs/N: the loss curve goes there (nd_job_curves.h) */
    double val_acc, val_hm;
    int interrupted; /* stopped by the daemon, not canceled */
    int ckpt_every;
    int dp;                         /* a DP run: epsilon so far goes into the job's note */
    double dp_rdp1[SD_RDP_NORDERS]; /* RDP of one iteration (RDP adds up) */
    double dp_delta;
} run_ctx;

/* "epsilon E (delta D) after N iterations" of a DP run, "" otherwise */
static void dp_note(const run_ctx *r, int64_t iter, char *buf, size_t len)
{
    buf[0] = 0;
    if (r->dp)
        snprintf(buf, len, "epsilon %.3f (delta %.0e) after %" PRId64 " iterations",
                 sd_rdp_epsilon_after(r->dp_rdp1, iter, r->dp_delta), r->dp_delta, iter);
}

static int on_progress(void *arg, const sd_progress *p)
{
    run_ctx *r = arg;
    nd_ctx *c = r->j->ctx;
    sc_error e = {0, ""};
    if (atomic_load(&c->stopping)) {
        r->interrupted = 1;
        return 1;
    }
    if (atomic_load(&r->j->cancel_id) == r->id)
        return 1;
    nd_metrics_iteration(&c->metrics, r->id, p->iter);
    if (p->iter > r->ckpt_every)
        nd_test_hold(c, "distill"); /* crash tests: a checkpoint exists by now */
    if (p->evaluated) {
        r->val_acc = p->val_acc;
        if (r->ds->gastric) {
            /* image-level HM of the set as it stands: replay and detect */
            sd_distilled tmp;
            nd_eval ev;
            sd_error se = {0};
            if (sd_distiller_export(r->d, &tmp) == 0) {
                if (nd_data_evaluate(r->ds, &tmp, r->be, &ev, &se) == 0)
                    r->val_hm = ev.hm;
                sd_distilled_free(&tmp);
            }
        }
    }
    int64_t now = nd_now_ms();
    int wrote = p->evaluated || p->iter == p->total || now - r->last_write_ms >= 500;
    if (wrote) {
        char note[96];
        r->last_write_ms = now;
        dp_note(r, p->iter, note, sizeof note);
        if (nd_db_run(r->j->db, &e,
                      "UPDATE jobs SET iter=?, total=?, loss=?, val_acc=?, val_hm=?, eta=?, "
                      "seconds=?, note=? WHERE id=?",
                      "iiddddd"
                      "ti",
                      p->iter, p->total, p->loss, r->val_acc, r->val_hm, p->eta_seconds, p->seconds,
                      note, r->id))
            nd_log(c, "error", "job %" PRId64 " progress: %s", r->id, e.msg);
    }
    /* the loss curve: every write above, and about 200 points over the run */
    if ((wrote || p->iter % (p->total > 200 ? p->total / 200 : 1) == 0) &&
        nd_curves_loss_append(r->dir, p->iter, p->loss, &e))
        nd_log(c, "error", "job %" PRId64 " loss curve: %s", r->id, e.msg);
    if (p->evaluated)
        nd_log(c, "info",
               "job %" PRId64 ": iteration %" PRId64 "/%" PRId64 " loss %.4f val acc "
               "%.4f val HM %.4f",
               r->id, p->iter, p->total, p->loss, r->val_acc, r->val_hm);
    return 0;
}

static int job_fail(nd_jobs *j, int64_t id, nd_jstate state, const char *msg)
{
    sc_error e = {0, ""};
    nd_log(j->ctx, state != ND_JOB_FAILED ? "info" : "error", "job %" PRId64 " %s: %s", id,
           nd_job_state_name(state), msg);
    int rc = nd_job_move(j->db, id, ND_JOB_RUNNING, state, msg, &e);
    if (rc)
        nd_log(j->ctx, "error", "job %" PRId64 ": %s", id, e.msg);
    return rc;
}

/* Enter bundle bid's release into the privacy ledger (inside the caller's
 * transaction) with an audit entry that states its cost against the
 * budget; a release that would pass the budget is recorded as refused, and
 * nd_approval.c will not approve it.  The training records were hashed and
 * the cost computed before the transaction (hashing 55,000 samples takes a
 * noticeable time that the write lock need not be held for). */
static int ledger_enter(nd_jobs *j, const char *bid, const char *ph, const nd_records *rec,
                        const nd_ledger_cost *cost, sc_error *e)
{
    nd_ctx *c = j->ctx;
    nd_ledger_view v;
    nd_settings set;
    nd_ctx_settings(c, &set);
    nd_ledger_budget b = {set.max_epsilon, set.epsilon_delta};
    char detail[600];
    int rc;
    if ((rc = nd_ledger_add(j->db, bid, c->cfg.data, rec, cost, e)) ||
        (rc = nd_ledger_view_of(j->db, bid, &b, &v, e)))
        return rc;
    nd_ledger_describe(&v, detail, sizeof detail);
    nd_audit_entry en = {"node", v.over ? "budget" : "ledger", bid,   ph,
                         "",     v.over ? "refused" : "ok",    detail};
    if ((rc = nd_audit_append(j->db, &en, NULL, e)))
        return rc;
    nd_log(c, v.over ? "error" : "info", "bundle %.12s: %s%s", bid, detail,
           v.over ? "; it cannot be approved" : "");
    return 0;
}

/* The header of a new outbound bundle: a random id (bid, hex), the
 * audience split from "a,b,c" into aud (pointing into audbuf), its times. */
static void bundle_head(nd_ctx *c, const char *audience, char audbuf[1100],
                        const char *aud[MAX_AUDIENCE], const sd_backend *be, nd_bundle_head *h,
                        char bid[33])
{
    memset(h, 0, sizeof *h);
    snprintf(audbuf, 1100, "%s", audience);
    for (char *save = NULL, *p = strtok_r(audbuf, ",", &save); p && h->n_audience < MAX_AUDIENCE;
         p = strtok_r(NULL, ",", &save))
        aud[h->n_audience++] = p;
    h->sender = c->self_id;
    h->audience = aud;
    h->created_unix = nd_now_unix();
    h->expires_unix = h->created_unix + c->cfg.base.bundle_ttl_seconds;
    h->backend = be->name;
    randombytes_buf(h->bundle_id, sizeof h->bundle_id);
    nd_hex(bid, h->bundle_id, 16);
}

/* The result of a finished run becomes a bundle pending approval. */
static int make_bundle(nd_jobs *j, int64_t id, nd_data *ds, const nd_distill_opts *o,
                       const sd_distilled *res, const nd_eval *ev, const char *audience,
                       sd_backend *be, char *msg, size_t msglen)
{
    nd_ctx *c = j->ctx;
    sc_error e = {0, ""};
    sd_error se = {0};
    nd_privacy priv;
    nd_bundle_head h;
    const char *aud[MAX_AUDIENCE];
    char audbuf[1100], bid[33], dir[ND_PATH_MAX + 64], grid[ND_PATH_MAX + 96], ph[65];
    char pobj[65], sobj[65];
    uint8_t *pb = NULL, *st0 = NULL, *st1 = NULL, hash[32];
    size_t pblen = 0, l0 = 0, l1 = 0;
    nd_records rec;
    nd_ledger_cost cost;
    int have_rec = 0, rc = -1;
    bundle_head(c, audience, audbuf, aud, be, &h, bid);
    snprintf(dir, sizeof dir, "%s/bundles", c->cfg.dir);
    if (sc_mkdir(dir, 0700, &e) ||
        (snprintf(dir, sizeof dir, "%s/bundles/%s", c->cfg.dir, bid), sc_mkdir(dir, 0700, &e))) {
        snprintf(msg, msglen, "%s", e.msg);
        return -1;
    }
    nd_log(c, "info", "job %" PRId64 ": privacy audit of the distilled images", id);
    nd_settings s;
    nd_ctx_settings(c, &s);
    if (nd_privacy_audit(ds, res, be, dir, s.privacy_thresholds, &priv, &se)) {
        snprintf(msg, msglen, "privacy audit: %s", se.msg);
        nd_privacy_free(&priv);
        return -1;
    }
    h.privacy = priv.done ? &priv.report : NULL;
    if (nd_node_sequence_next(c->cfg.dir, &h.sequence, &e)) {
        snprintf(msg, msglen, "%s", e.msg);
        goto out;
    }
    if (nd_distill_payload(ds, o, res, ev, &h, &pb, &pblen, &se)) {
        snprintf(msg, msglen, "%s", se.msg);
        goto out;
    }
    /* the envelope adds signatures and headers; this node could not even
     * read back a payload over its own cap, and its peers would refuse it */
    if (pblen + ND_ENVELOPE_MARGIN > c->cfg.base.max_bundle_bytes) {
        snprintf(msg, msglen,
                 "the payload is %zu bytes, over this node's max-bundle-bytes %zu (less %d for "
                 "signatures and envelope): distil fewer images, use --encoding float16 or "
                 "uint8, or raise max-bundle-bytes here and at the peers",
                 pblen, c->cfg.base.max_bundle_bytes, ND_ENVELOPE_MARGIN);
        goto out;
    }
    snprintf(grid, sizeof grid, "%s/grid.png", dir);
    if (nd_picture_grid(grid, res, ds->class_names, ds->synthetic, &se)) {
        nd_log(c, "warn", "job %" PRId64 ": picture: %s", id, se.msg);
        grid[0] = 0;
    }
    if (sc_statement_wrap(pb, pblen, &st0, &l0, &e) ||
        sc_statement_sign_node(st0, l0, c->self_id, c->keys, &st1, &l1, &e) ||
        nd_object_put(c->cfg.dir, pb, pblen, pobj, &e) ||
        nd_object_put(c->cfg.dir, st1, l1, sobj, &e)) {
        snprintf(msg, msglen, "%s", e.msg);
        goto out;
    }
    sc_sha256(hash, pb, pblen);
    nd_hex(ph, hash, 32);
    char detail[300];
    snprintf(detail, sizeof detail,
             "distilled by job %" PRId64 ", %zu-byte payload for %s; privacy audit: %s; "
             "pending approval",
             id, pblen, audience, priv.verdict);
    nd_lifecycle_why why = {"node", "created", "", "pending", detail, NULL};
    if (nd_ledger_records(ds, &rec, &e) || (have_rec = 1, nd_ledger_cost_of(o, ds, &cost, &e))) {
        snprintf(msg, msglen, "%s", e.msg);
        goto out;
    }
    int64_t now = nd_now_unix();
    if ((rc = nd_db_begin(j->db, &e)) ||
        (rc = nd_db_run(
             j->db, &e,
             "INSERT INTO bundles(id,direction,sender,sequence,state,payload_sha256,"
             "payload_size,statement_obj,audience,job_id,created_unix,expires_unix,"
             "updated_unix,accuracy,sen,spe,hm,auc,privacy_verdict,grid_path,"
             "privacy_path,note) "
             "VALUES(?,'out',?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
             "tti"
             "tt"
             "itt"
             "iiii"
             "ddddd"
             "tttt",
             bid, c->self_id, (int64_t)h.sequence, nd_bundle_state_name(ND_BUNDLE_PENDING), ph,
             (int64_t)pblen, sobj, audience, id, h.created_unix, h.expires_unix, now, ev->accuracy,
             ds->gastric ? ev->sen : NAN, ds->gastric ? ev->spe : NAN, ds->gastric ? ev->hm : NAN,
             ds->gastric ? ev->auc : NAN, priv.verdict, grid, priv.picture, priv.summary)) ||
        (rc = nd_db_run(j->db, &e, "UPDATE jobs SET bundle_id=? WHERE id=?", "ti", bid, id)) ||
        (rc = nd_job_move(j->db, id, ND_JOB_RUNNING, ND_JOB_DONE, NULL, &e)) ||
        (rc = nd_lifecycle_enter(j->db, bid, ND_BUNDLE_PENDING, &why, &e)) ||
        (rc = ledger_enter(j, bid, ph, &rec, &cost, &e)) || (rc = nd_db_commit(j->db, &e))) {
        nd_db_rollback(j->db);
        snprintf(msg, msglen, "%s", e.msg);
        rc = -1;
        goto out;
    }
    if (nd_audit_anchor(j->db, c->cfg.dir, &e))
        nd_log(c, "error", "audit anchor: %s", e.msg);
    nd_log(c, "info",
           "job %" PRId64 " done: bundle %s (%zu-byte payload, sequence %" PRIu64
           ", validation HM %.4f) is pending approval; images: %s",
           id, bid, pblen, h.sequence, ev->hm, grid[0] ? grid : "(none)");
    rc = 0;
out:
    if (have_rec)
        nd_records_free(&rec);
    nd_privacy_free(&priv);
    free(pb);
    free(st0);
    free(st1);
    return rc;
}

static void run_job(nd_jobs *j, int64_t id, const char *options, const char *audience)
{
    nd_ctx *c = j->ctx;
    sc_error e = {0, ""};
    sd_error se = {0};
    nd_distill_opts o;
    nd_data ds;
    int ds_open = 0;
    sd_backend *be = NULL;
    sd_distiller *d = NULL;
    sd_distilled res = {0};
    char msg[600], dir[ND_PATH_MAX + 64], ck[ND_PATH_MAX + 96];
    run_ctx r;
    memset(&r, 0, sizeof r);
    memset(&ds, 0, sizeof ds);
    atomic_store(&j->running_id, id);
    if (nd_job_move(j->db, id, ND_JOB_QUEUED, ND_JOB_RUNNING, NULL, &e)) {
        nd_log(c, "error", "job %" PRId64 ": %s", id, e.msg);
        goto done;
    }
    nd_settings s;
    nd_ctx_settings(c, &s);
    nd_distill_opts_defaults(&o);
    if (nd_distill_opts_parse(&o, s.distill, &se) || nd_distill_opts_parse(&o, options, &se)) {
        job_fail(j, id, ND_JOB_FAILED, se.msg);
        goto done;
    }
    snprintf(dir, sizeof dir, "%s/jobs", c->cfg.dir);
    if (sc_mkdir(dir, 0700, &e) ||
        (snprintf(dir, sizeof dir, "%s/jobs/%" PRId64, c->cfg.dir, id), sc_mkdir(dir, 0700, &e))) {
        job_fail(j, id, ND_JOB_FAILED, e.msg);
        goto done;
    }
    snprintf(ck, sizeof ck, "%s/checkpoint", dir);
    if (o.cfg.checkpoint_every <= 0)
        o.cfg.checkpoint_every = 100;
    o.cfg.checkpoint_path = ck;
    if (nd_data_open(&ds, c->cfg.data, o.train_limit, &se) ||
        (ds_open = 1, nd_distill_opts_finish(&o, &ds, &se)) ||
        sd_backend_create(&be, c->cfg.device, &se)) {
        job_fail(j, id, ND_JOB_FAILED, se.msg);
        goto done;
    }
    int resume = access(ck, R_OK) == 0;
    if (sd_distiller_create(&d, &o.cfg, be, &ds.train, ds.val.count ? &ds.val : NULL,
                            resume ? ck : NULL, &se)) {
        if (!resume) {
            job_fail(j, id, ND_JOB_FAILED, se.msg);
            goto done;
        }
        nd_log(c, "warn", "job %" PRId64 ": checkpoint unusable (%s); starting again", id, se.msg);
        if (sd_distiller_create(&d, &o.cfg, be, &ds.train, ds.val.count ? &ds.val : NULL, NULL,
                                &se)) {
            job_fail(j, id, ND_JOB_FAILED, se.msg);
            goto done;
        }
    } else if (resume) {
        nd_log(c, "info", "job %" PRId64 ": resuming from its checkpoint at iteration %" PRId64, id,
               sd_distiller_iteration(d));
    }
    char label[64];
    sd_model_spec_label(&sd_distiller_model(d)->spec, label, sizeof label);
    nd_log(c, "info",
           "job %" PRId64 ": distilling %s on %s (%lld training patches), S=%d n=%d E=%d, "
           "%" PRId64 " iterations of batch %d on %s",
           id, label, c->cfg.data, (long long)ds.train.count, o.cfg.steps, o.cfg.images_per_step,
           o.cfg.epochs_inner, nd_distill_total(&o, &ds), o.cfg.real_batch, be->name);
    r.j = j;
    r.id = id;
    r.ds = &ds;
    r.be = be;
    r.d = d;
    r.val_acc = r.val_hm = NAN;
    r.ckpt_every = o.cfg.checkpoint_every;
    r.dir = dir;
    if (o.cfg.dp_noise > 0 && sd_rdp_curve((double)o.cfg.real_batch / (double)ds.train.count,
                                           o.cfg.dp_noise, 1, r.dp_rdp1, &se) == 0) {
        r.dp = 1;
        r.dp_delta = o.cfg.dp_delta;
    }
    int rc = sd_distiller_run(d, on_progress, &r);
    if (rc == SD_ECANCELED) {
        if (r.interrupted) {
            nd_log(c, "info",
                   "job %" PRId64 " interrupted at iteration %" PRId64
                   "; checkpoint written, it resumes when the node starts again",
                   id, sd_distiller_iteration(d));
            if (nd_job_move(j->db, id, ND_JOB_RUNNING, ND_JOB_QUEUED, "interrupted by shutdown",
                            &e))
                nd_log(c, "error", "job %" PRId64 ": %s", id, e.msg);
        } else {
            job_fail(j, id, ND_JOB_CANCELED, "canceled by an admin");
        }
        goto done;
    }
    if (rc || sd_distiller_export(d, &res)) {
        job_fail(j, id, ND_JOB_FAILED, sd_distiller_error(d)->msg);
        goto done;
    }
    nd_eval ev;
    if (nd_data_evaluate(&ds, &res, be, &ev, &se)) {
        job_fail(j, id, ND_JOB_FAILED, se.msg);
        goto done;
    }
    if (nd_curves_roc_write(dir, &ev, &e))
        nd_log(c, "error", "job %" PRId64 " ROC curve: %s", id, e.msg);
    if (make_bundle(j, id, &ds, &o, &res, &ev, audience, be, msg, sizeof msg))
        job_fail(j, id, ND_JOB_FAILED, msg);
done:
    atomic_store(&j->running_id, 0);
    atomic_store(&j->cancel_id, 0);
    sd_distilled_free(&res);
    sd_distiller_destroy(d);
    sd_backend_destroy(be);
    if (ds_open)
        nd_data_close(&ds);
}

static void *jobs_main(void *arg)
{
    nd_jobs *j = arg;
    nd_ctx *c = j->ctx;
    while (!atomic_load(&c->stopping)) {
        sqlite3_stmt *st;
        sc_error e = {0, ""};
        int64_t id = 0;
        char *options = NULL, *audience = NULL;
        if (nd_db_prepare(j->db, &st, &e,
                          "SELECT id, options, audience FROM jobs WHERE state='queued' "
                          "ORDER BY id LIMIT 1",
                          "")) {
            nd_log(c, "error", "jobs: %s", e.msg);
        } else {
            if (nd_db_step(st, &e) == 1) {
                id = nd_col_int(st, 0);
                options = strdup(nd_col_text(st, 1));
                audience = strdup(nd_col_text(st, 2));
            }
            nd_db_finalize(st);
        }
        if (id && options && audience)
            run_job(j, id, options, audience);
        else
            nd_wait(c, &c->wake_jobs, &c->pending_jobs, 5000);
        free(options);
        free(audience);
    }
    return NULL;
}

int nd_jobs_start(nd_jobs *j, nd_ctx *c, sc_error *e)
{
    int rc;
    memset(j, 0, sizeof *j);
    j->ctx = c;
    atomic_init(&j->cancel_id, 0);
    atomic_init(&j->running_id, 0);
    if ((rc = nd_db_open(c->cfg.dir, 0, &j->db, e)))
        return rc;
    if (pthread_create(&j->thread, NULL, jobs_main, j)) {
        nd_db_close(j->db);
        j->db = NULL;
        return sc_error_set(e, SC_ENOMEM, "cannot start the job runner");
    }
    j->started = 1;
    return 0;
}

void nd_jobs_join(nd_jobs *j)
{
    if (j->started)
        pthread_join(j->thread, NULL);
    j->started = 0;
    nd_db_close(j->db);
    j->db = NULL;
}
