/*
 * nd_views.c - JSON and text renderings for the admin API (see nd_views.h).
 */
#include "nd_views.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nd_ledger.h"
#include "nd_objects.h"
#include "nd_payload.h"
#include "nd_state.h"
#include "sc_keys.h"
#include "sldd.pb-c.h"
#include "sp_encoding.h"

static void fmt_time(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    snprintf(buf, len, "-");
    if (t > 0 && gmtime_r(&tt, &tm))
        strftime(buf, len, "%Y-%m-%d %H:%M:%SZ", &tm);
}

static void fmt_num(char *buf, size_t len, double v, const char *fmt)
{
    if (isfinite(v))
        snprintf(buf, len, fmt, v);
    else
        snprintf(buf, len, "-");
}

/* JSON object members */
static void js_str(nd_buf *b, int *first, const char *k, const char *v)
{
    nd_buf_printf(b, "%s\"%s\":", *first ? "" : ",", k);
    nd_buf_json_str(b, v);
    *first = 0;
}

static void js_num(nd_buf *b, int *first, const char *k, double v)
{
    nd_buf_printf(b, "%s\"%s\":", *first ? "" : ",", k);
    nd_buf_json_num(b, v);
    *first = 0;
}

static void js_int(nd_buf *b, int *first, const char *k, int64_t v)
{
    nd_buf_printf(b, "%s\"%s\":%" PRId64, *first ? "" : ",", k, v);
    *first = 0;
}

static void js_key(nd_buf *b, int *first, const char *k)
{
    nd_buf_printf(b, "%s\"%s\":", *first ? "" : ",", k);
    *first = 0;
}

/* A list of a bundle's rows: a JSON array under key (each row an object),
 * or text lines; row writes one row's fields or line.  The number of rows,
 * or an error. */
typedef void (*row_fn)(nd_buf *b, sqlite3_stmt *st, int json, int first);

static int list_rows(sqlite3 *db, sc_error *e, nd_buf *b, int json, const char *key,
                     const char *sql, const char *id, row_fn row)
{
    sqlite3_stmt *st;
    int rc = nd_db_prepare(db, &st, e, sql, "t", id), n = 0;
    if (rc)
        return rc;
    if (json) {
        int f = 0;
        js_key(b, &f, key);
        nd_buf_str(b, "[");
    }
    while ((rc = nd_db_step(st, e)) == 1) {
        if (json)
            nd_buf_str(b, n ? ",{" : "{");
        row(b, st, json, n == 0);
        if (json)
            nd_buf_str(b, "}");
        n++;
    }
    nd_db_finalize(st);
    if (rc < 0)
        return rc;
    if (json)
        nd_buf_str(b, "]");
    return n;
}

static void approval_row(nd_buf *b, sqlite3_stmt *st, int json, int first)
{
    if (json) {
        int f = 1;
        js_str(b, &f, "admin", nd_col_text(st, 0));
        js_str(b, &f, "decision", nd_col_text(st, 1));
        js_int(b, &f, "time_unix", nd_col_int(st, 2));
        return;
    }
    char t[40];
    fmt_time(nd_col_int(st, 2), t, sizeof t);
    nd_buf_printf(b, "  %-15s %s %s at %s\n", first ? "decisions" : "", nd_col_text(st, 0),
                  nd_col_text(st, 1), t);
}

static void delivery_row(nd_buf *b, sqlite3_stmt *st, int json, int first)
{
    if (json) {
        int f = 1;
        js_str(b, &f, "peer", nd_col_text(st, 0));
        js_str(b, &f, "state", nd_col_text(st, 1));
        js_int(b, &f, "attempts", nd_col_int(st, 2));
        js_int(b, &f, "envelope_size", nd_col_int(st, 3));
        js_str(b, &f, "last_error", nd_col_text(st, 4));
        js_int(b, &f, "delivered_unix", nd_col_int(st, 5));
        js_int(b, &f, "receipt", nd_col_int(st, 6));
        return;
    }
    char t[40];
    fmt_time(nd_col_int(st, 5), t, sizeof t);
    nd_buf_printf(b, "  %-15s %-16s %-9s %" PRId64 "-byte envelope, %" PRId64 " attempt(s)",
                  first ? "deliveries" : "", nd_col_text(st, 0), nd_col_text(st, 1),
                  nd_col_int(st, 3), nd_col_int(st, 2));
    if (nd_col_int(st, 6))
        nd_buf_printf(b, ", signed receipt %s", t);
    else if (*nd_col_text(st, 4))
        nd_buf_printf(b, ", last error: %.200s", nd_col_text(st, 4));
    nd_buf_str(b, "\n");
}

int nd_view_bundles(sqlite3 *db, nd_buf *b, int json, sc_error *e)
{
    sqlite3_stmt *st;
    int rc, first = 1;
    if ((rc = nd_db_prepare(db, &st, e,
                            "SELECT b.id,b.direction,b.sender,b.audience,b.state,b.sequence,"
                            "b.payload_size,b.hm,v.hm,b.created_unix,"
                            "(SELECT COUNT(*) FROM deliveries d WHERE d.bundle_id=b.id AND "
                            "d.state='delivered'),"
                            "(SELECT COUNT(*) FROM deliveries d WHERE d.bundle_id=b.id) "
                            "FROM bundles b LEFT JOIN evaluations v ON v.bundle_id=b.id "
                            "ORDER BY b.created_unix, b.rowid",
                            "")))
        return rc;
    if (json)
        nd_buf_str(b, "[");
    else
        nd_buf_printf(b, "%-12s %-3s %-24s %-16s %4s %8s %8s %8s  %s\n", "BUNDLE", "DIR", "PEER",
                      "STATE", "SEQ", "BYTES", "HM-SEND", "HM-HERE", "CREATED");
    while ((rc = nd_db_step(st, e)) == 1) {
        const char *dir = nd_col_text(st, 1);
        int out = !strcmp(dir, "out");
        char t[40], h1[16], h2[16], peer[64], state[40];
        fmt_time(nd_col_int(st, 9), t, sizeof t);
        if (json) {
            int f = 1;
            nd_buf_str(b, first ? "\n {" : ",\n {");
            js_str(b, &f, "id", nd_col_text(st, 0));
            js_str(b, &f, "direction", dir);
            js_str(b, &f, "sender", nd_col_text(st, 2));
            js_str(b, &f, "audience", nd_col_text(st, 3));
            js_str(b, &f, "state", nd_col_text(st, 4));
            js_int(b, &f, "sequence", nd_col_int(st, 5));
            js_int(b, &f, "payload_size", nd_col_int(st, 6));
            js_num(b, &f, "sender_hm", nd_col_double(st, 7));
            js_num(b, &f, "local_hm", nd_col_double(st, 8));
            js_int(b, &f, "created_unix", nd_col_int(st, 9));
            js_int(b, &f, "delivered", nd_col_int(st, 10));
            js_int(b, &f, "recipients", nd_col_int(st, 11));
            nd_buf_str(b, "}");
        } else {
            fmt_num(h1, sizeof h1, nd_col_double(st, 7), "%.4f");
            fmt_num(h2, sizeof h2, nd_col_double(st, 8), "%.4f");
            snprintf(peer, sizeof peer, "%s%s", out ? "-> " : "<- ",
                     out ? nd_col_text(st, 3) : nd_col_text(st, 2));
            if (out && nd_col_int(st, 11) > 0)
                snprintf(state, sizeof state, "%s %lld/%lld", nd_col_text(st, 4),
                         (long long)nd_col_int(st, 10), (long long)nd_col_int(st, 11));
            else
                snprintf(state, sizeof state, "%s", nd_col_text(st, 4));
            nd_buf_printf(b, "%-12.12s %-3s %-24.24s %-16s %4" PRId64 " %8" PRId64 " %8s %8s  %s\n",
                          nd_col_text(st, 0), dir, peer, state, nd_col_int(st, 5),
                          nd_col_int(st, 6), h1, h2, t);
        }
        first = 0;
    }
    nd_db_finalize(st);
    if (json)
        nd_buf_str(b, first ? "]\n" : "\n]\n");
    else if (first)
        nd_buf_str(b, "(no bundles)\n");
    return rc < 0 ? rc : 0;
}

/* Soft labels as the approver reads them: softmax of the logits, or the
 * raw values. */
static void view_labels(const sd_distilled *d, const sd_task *task, nd_buf *b, int json)
{
    /* the sender's class names when its task has this many classes (the
     * gastric task, I/N/P, when the payload declares none), else indices */
    int named = task && (size_t)task->classes == (size_t)d->spec.classes;
    size_t M = sd_distilled_image_count(d), K = (size_t)d->spec.classes;
    for (size_t i = 0; i < M; i++) {
        const float *y = d->labels + i * K;
        double q[64], mx = -INFINITY, s = 0;
        size_t kk = K < 64 ? K : 64;
        for (size_t k = 0; k < kk; k++)
            mx = fmax(mx, y[k]);
        for (size_t k = 0; k < kk; k++) {
            q[k] = d->label_param == SD_LABEL_SOFTMAX ? exp(y[k] - mx) : y[k];
            s += q[k];
        }
        if (d->label_param == SD_LABEL_SOFTMAX)
            for (size_t k = 0; k < kk; k++)
                q[k] /= s;
        if (json) {
            nd_buf_str(b, i ? ",[" : "[");
            for (size_t k = 0; k < kk; k++) {
                nd_buf_str(b, k ? "," : "");
                nd_buf_json_num(b, q[k]);
            }
            nd_buf_str(b, "]");
        } else {
            nd_buf_printf(b, "    image %2zu (step %zu):", i, i / (size_t)d->images_per_step);
            for (size_t k = 0; k < kk; k++) {
                if (named)
                    nd_buf_printf(b, "  %s %.3f", task->cls[k], q[k]);
                else
                    nd_buf_printf(b, "  %zu: %.3f", k, q[k]);
            }
            nd_buf_str(b, "\n");
        }
    }
}

static void view_step_sizes(const sd_distilled *d, nd_buf *b, int json)
{
    size_t T = (size_t)d->steps * (size_t)d->epochs_inner;
    if (json) {
        int f = 0;
        js_key(b, &f, "step_sizes");
        nd_buf_str(b, "[");
        for (size_t t = 0; t < T; t++) {
            nd_buf_str(b, t ? "," : "");
            nd_buf_json_num(b, d->step_sizes[t]);
        }
        nd_buf_str(b, "]");
    } else {
        nd_buf_str(b, "  step sizes     ");
        for (size_t t = 0; t < T && t < 32; t++)
            nd_buf_printf(b, " %.5f", d->step_sizes[t]);
        nd_buf_str(b, T > 32 ? " ...\n" : "\n");
    }
}

/* The privacy audit as the payload carries it.  The nearest-neighbour figure
 * is worded the same in every view (docs/privacy.md, "One figure, one
 * wording"): the share of held-out patches whose own nearest training patch
 * is closer than this image's; near 0 % is the warning sign. */
static void view_privacy(const Sldd__V1__PrivacyReport *pr, nd_buf *b, int json)
{
    if (json) {
        int f = 0, g = 1;
        js_key(b, &f, "privacy");
        nd_buf_str(b, "{");
        js_str(b, &g, "verdict", pr->verdict);
        js_str(b, &g, "policy", pr->policy);
        js_num(b, &g, "membership_auc", pr->membership_auc);
        js_key(b, &g, "images");
        nd_buf_str(b, "[");
        for (size_t i = 0; i < pr->n_images; i++) {
            int h = 1;
            nd_buf_str(b, i ? ",{" : "{");
            js_int(b, &h, "image", pr->images[i]->image_index);
            js_num(b, &h, "nearest_pixel_distance", pr->images[i]->nearest_pixel_distance);
            js_num(b, &h, "nearest_ssim", pr->images[i]->nearest_ssim);
            js_num(b, &h, "heldout_percentile", pr->images[i]->heldout_percentile);
            js_num(b, &h, "heldout_closer_percent", 100.0 * pr->images[i]->heldout_percentile);
            nd_buf_str(b, "}");
        }
        nd_buf_str(b, "]}");
        return;
    }
    nd_buf_printf(b, "  privacy report  verdict %s, membership AUC %.3f\n", pr->verdict,
                  pr->membership_auc);
    if (pr->policy && *pr->policy)
        nd_buf_printf(b, "                  %s\n", pr->policy);
    for (size_t k = 0; k < pr->n_quantile_levels; k++)
        nd_buf_printf(b, "    held-out %4.0f%%: nearest-training distance %.4f, best SSIM %.3f\n",
                      100.0 * pr->quantile_levels[k], pr->heldout_distance_quantiles[k],
                      pr->heldout_ssim_quantiles[k]);
    for (size_t i = 0; i < pr->n_images; i++)
        nd_buf_printf(b,
                      "    image %2u: nearest-training distance %.4f, held-out closer %.1f%% "
                      "(near 0%% = closer than real patches get), SSIM %.3f\n",
                      pr->images[i]->image_index, pr->images[i]->nearest_pixel_distance,
                      100.0 * pr->images[i]->heldout_percentile, pr->images[i]->nearest_ssim);
}

/* The parts of the payload an approver looks at. */
static void view_payload(nd_ctx *c, const char *payload_obj, nd_buf *b, int json)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    sc_error e = {0, ""};
    sd_distilled d = {0};
    nd_payload_info info;
    if (nd_object_get(c->cfg.dir, payload_obj, c->cfg.base.max_bundle_bytes, &buf, &len, &e) ||
        nd_payload_parse(buf, len, &d, &info, &e)) {
        if (json)
            nd_buf_str(b, ",\"payload_error\":\"unreadable\"");
        else
            nd_buf_printf(b, "  payload         UNREADABLE: %s\n", e.msg);
        free(buf);
        return;
    }
    Sldd__V1__Bundle *pb = sldd__v1__bundle__unpack(NULL, len, buf);
    free(buf);
    size_t T = (size_t)d.steps * (size_t)d.epochs_inner;
    char label[64];
    sd_model_spec_label(&d.spec, label, sizeof label);
    if (json) {
        int f = 0;
        js_str(b, &f, "model", label);
        js_int(b, &f, "steps", d.steps);
        js_int(b, &f, "images_per_step", d.images_per_step);
        js_int(b, &f, "epochs_inner", d.epochs_inner);
        js_str(b, &f, "encoding", sp_encoding_name(info.encoding));
        js_key(b, &f, "soft_labels");
        nd_buf_str(b, "[");
    } else {
        nd_buf_printf(b,
                      "  model           %s, input %dx%dx%d, %d classes, seed %" PRIu64 "\n"
                      "  distilled set   S=%d steps x n=%d images, E=%d (T=%zu inner steps), "
                      "images %s\n"
                      "  normalisation   mean %.6f std %.6f; patches %dpx stride %d -> %dpx\n"
                      "  soft labels     (%s)\n",
                      label, d.spec.in_c, d.spec.in_h, d.spec.in_w, d.spec.classes, d.seed, d.steps,
                      d.images_per_step, d.epochs_inner, T, sp_encoding_name(info.encoding),
                      info.norm_mean, info.norm_std, info.patch_size, info.patch_stride,
                      info.patch_resize ? info.patch_resize : info.patch_size,
                      d.label_param == SD_LABEL_SOFTMAX ? "softmax of the label logits"
                                                        : "raw label values");
    }
    view_labels(&d, &info.task, b, json);
    if (json)
        nd_buf_str(b, "]");
    view_step_sizes(&d, b, json);
    if (pb && pb->privacy)
        view_privacy(pb->privacy, b, json);
    if (pb)
        sldd__v1__bundle__free_unpacked(pb, NULL);
    sd_distilled_free(&d);
}

/* One row of bundles, as the view needs it. */
typedef struct bundle_row {
    char dir[8], sender[65], state[32], ph[65], aud[1024], priv[64];
    char grid[ND_PATH_MAX], note[1024], ppic[ND_PATH_MAX];
    int64_t seq, size, created, expires, job;
    double m[5]; /* sender metrics: accuracy, Sen, Spe, HM, AUC */
} bundle_row;

static int load_bundle_row(sqlite3 *db, const char *id, bundle_row *r, sc_error *e)
{
    sqlite3_stmt *st;
    int rc;
    if ((rc = nd_db_prepare(db, &st, e,
                            "SELECT direction,sender,sequence,state,payload_sha256,payload_size,"
                            "audience,created_unix,expires_unix,accuracy,sen,spe,hm,auc,"
                            "privacy_verdict,grid_path,note,COALESCE(job_id,0),privacy_path "
                            "FROM bundles WHERE id=?",
                            "t", id)))
        return rc;
    if ((rc = nd_db_step(st, e)) != 1) {
        nd_db_finalize(st);
        return rc < 0 ? rc : sc_error_set(e, SC_ENOTFOUND, "no bundle %s", id);
    }
    snprintf(r->dir, sizeof r->dir, "%s", nd_col_text(st, 0));
    snprintf(r->sender, sizeof r->sender, "%s", nd_col_text(st, 1));
    r->seq = nd_col_int(st, 2);
    snprintf(r->state, sizeof r->state, "%s", nd_col_text(st, 3));
    snprintf(r->ph, sizeof r->ph, "%s", nd_col_text(st, 4));
    r->size = nd_col_int(st, 5);
    snprintf(r->aud, sizeof r->aud, "%s", nd_col_text(st, 6));
    r->created = nd_col_int(st, 7);
    r->expires = nd_col_int(st, 8);
    for (int i = 0; i < 5; i++)
        r->m[i] = nd_col_double(st, 9 + i);
    snprintf(r->priv, sizeof r->priv, "%s", nd_col_text(st, 14));
    snprintf(r->grid, sizeof r->grid, "%s", nd_col_text(st, 15));
    snprintf(r->note, sizeof r->note, "%s", nd_col_text(st, 16));
    r->job = nd_col_int(st, 17);
    snprintf(r->ppic, sizeof r->ppic, "%s", nd_col_text(st, 18));
    nd_db_finalize(st);
    return 0;
}

static void view_bundle_head(const bundle_row *r, const char *id, const char *ppath, nd_buf *b,
                             int json)
{
    char tc[40], tx[40];
    int out = !strcmp(r->dir, "out");
    if (json) {
        static const char *const mk[] = {"accuracy", "sensitivity", "specificity", "hm", "auc"};
        int f = 1, g = 1;
        nd_buf_str(b, "{");
        js_str(b, &f, "id", id);
        js_str(b, &f, "direction", r->dir);
        js_str(b, &f, "sender", r->sender);
        js_str(b, &f, "audience", r->aud);
        js_int(b, &f, "sequence", r->seq);
        js_str(b, &f, "state", r->state);
        js_str(b, &f, "payload_sha256", r->ph);
        js_int(b, &f, "payload_size", r->size);
        js_str(b, &f, "payload_path", ppath);
        js_int(b, &f, "created_unix", r->created);
        js_int(b, &f, "expires_unix", r->expires);
        js_int(b, &f, "job", r->job);
        js_str(b, &f, "grid_path", r->grid);
        js_str(b, &f, "privacy_verdict", r->priv);
        js_str(b, &f, "privacy_picture", r->ppic);
        js_str(b, &f, "note", r->note);
        js_key(b, &f, "sender_metrics");
        nd_buf_str(b, "{");
        for (int i = 0; i < 5; i++)
            js_num(b, &g, mk[i], r->m[i]);
        nd_buf_str(b, "}");
        return;
    }
    fmt_time(r->created, tc, sizeof tc);
    fmt_time(r->expires, tx, sizeof tx);
    nd_buf_printf(b,
                  "bundle %s\n"
                  "  direction       %s\n"
                  "  state           %s\n"
                  "  sequence        %" PRId64 "\n"
                  "  created         %s   expires %s\n"
                  "  payload sha256  %s\n"
                  "                  (an approval signs exactly this hash)\n"
                  "  size            %" PRId64 " bytes (payload)\n"
                  "  payload file    %s\n",
                  id, out ? "outbound: made here" : "inbound: received", r->state, r->seq, tc, tx,
                  r->ph, r->size, ppath);
    if (out)
        nd_buf_printf(b, "  recipients      %s\n", r->aud);
    else
        nd_buf_printf(b, "  sender          %s (audience %s)\n", r->sender, r->aud);
    if (r->job)
        nd_buf_printf(b, "  made by job     %" PRId64 "\n", r->job);
    nd_buf_printf(b, "  image grid      %s\n", r->grid[0] ? r->grid : "(none at this node)");
}

static void view_sender_metrics(const bundle_row *r, nd_buf *b)
{
    char v[5][16];
    for (int i = 0; i < 5; i++)
        fmt_num(v[i], sizeof v[i], r->m[i], "%.4f");
    nd_buf_printf(b,
                  "  sender metrics  validation: patch accuracy %s; image level Sen %s "
                  "Spe %s HM %s AUC %s\n"
                  "  privacy audit   verdict: %s\n",
                  v[0], v[1], v[2], v[3], v[4], r->priv[0] ? r->priv : "none");
    if (!strcmp(r->dir, "out") && r->note[0])
        nd_buf_printf(b, "                  %s\n", r->note);
    if (r->ppic[0])
        nd_buf_printf(b,
                      "  privacy picture %s\n"
                      "                  (each image beside its nearest training patches)\n",
                      r->ppic);
}

/* The evaluation on this node's data; *found set when there is one. */
static int view_evaluation(sqlite3 *db, const char *id, nd_buf *b, int json, int *found,
                           sc_error *e)
{
    sqlite3_stmt *st;
    int rc;
    *found = 0;
    if ((rc = nd_db_prepare(db, &st, e,
                            "SELECT data_source,split,accuracy,sen,spe,hm,auc,images,patches,note "
                            "FROM evaluations WHERE bundle_id=?",
                            "t", id)))
        return rc;
    if ((rc = nd_db_step(st, e)) == 1) {
        *found = 1;
        if (json) {
            int f = 0, g = 1;
            js_key(b, &f, "evaluation");
            nd_buf_str(b, "{");
            js_str(b, &g, "data_source", nd_col_text(st, 0));
            js_str(b, &g, "split", nd_col_text(st, 1));
            js_num(b, &g, "accuracy", nd_col_double(st, 2));
            js_num(b, &g, "sensitivity", nd_col_double(st, 3));
            js_num(b, &g, "specificity", nd_col_double(st, 4));
            js_num(b, &g, "hm", nd_col_double(st, 5));
            js_num(b, &g, "auc", nd_col_double(st, 6));
            js_int(b, &g, "images", nd_col_int(st, 7));
            js_int(b, &g, "patches", nd_col_int(st, 8));
            js_str(b, &g, "note", nd_col_text(st, 9));
            nd_buf_str(b, "}");
        } else if (*nd_col_text(st, 9)) {
            nd_buf_printf(b, "  evaluation here %s\n", nd_col_text(st, 9));
        } else {
            char v[5][16];
            for (int i = 0; i < 5; i++)
                fmt_num(v[i], sizeof v[i], nd_col_double(st, 2 + i), "%.4f");
            nd_buf_printf(b,
                          "  evaluation here %s split of %s: patch accuracy %s; %" PRId64
                          " images: Sen %s Spe %s HM %s AUC %s\n",
                          nd_col_text(st, 1), nd_col_text(st, 0), v[0], nd_col_int(st, 7), v[1],
                          v[2], v[3], v[4]);
        }
        rc = 0;
    }
    nd_db_finalize(st);
    return rc < 0 ? rc : 0;
}

/* The release's differential privacy and the ledger (nd_ledger.h): what it
 * costs, what was spent before on the same training records, what is left. */
static int view_ledger(nd_ctx *c, sqlite3 *db, const char *id, nd_buf *b, int json, sc_error *e)
{
    nd_settings set;
    nd_ctx_settings(c, &set);
    nd_ledger_budget bud = {set.max_epsilon, set.epsilon_delta};
    nd_ledger_view v;
    int rc = nd_ledger_view_of(db, id, &bud, &v, e);
    if (rc || !v.found)
        return rc;
    if (json) {
        int f = 0, g = 1;
        js_key(b, &f, "ledger");
        nd_buf_str(b, "{");
        js_str(b, &g, "state", v.state);
        js_int(b, &g, "dp", v.cost.dp);
        js_num(b, &g, "epsilon", v.cost.epsilon);
        js_num(b, &g, "epsilon_delta", v.cost.delta);
        js_num(b, &g, "noise_multiplier", v.cost.sigma);
        js_num(b, &g, "sampling_rate", v.cost.q);
        js_int(b, &g, "iterations", v.cost.iterations);
        js_int(b, &g, "records", v.records);
        js_str(b, &g, "record_unit", v.unit);
        js_int(b, &g, "prior_releases", v.prior);
        js_int(b, &g, "prior_without_dp", v.prior_nodp);
        js_num(b, &g, "delta", v.delta);
        js_num(b, &g, "spent_epsilon", v.spent_epsilon);
        js_num(b, &g, "total_epsilon", v.total_epsilon);
        js_num(b, &g, "budget_epsilon", v.budget_epsilon > 0 ? v.budget_epsilon : NAN);
        js_num(b, &g, "left_epsilon", v.budget_epsilon > 0 ? v.left_epsilon : NAN);
        js_int(b, &g, "over_budget", v.over);
        js_int(b, &g, "unbounded", isinf(v.total_epsilon));
        nd_buf_str(b, "}");
        return 0;
    }
    char line[600];
    if (v.cost.dp)
        nd_buf_printf(b,
                      "  diff. privacy   epsilon %.3f at delta %.0e per training %s for this "
                      "release (sigma %.4g, Poisson rate %.4g, %" PRId64
                      " iterations, accountant %s v%d)\n",
                      v.cost.epsilon, v.cost.delta, strcmp(v.unit, "image") ? "sample" : "patch",
                      v.cost.sigma, v.cost.q, v.cost.iterations, SD_RDP_ACCOUNTANT, SD_RDP_VERSION);
    else
        nd_buf_str(b, "  diff. privacy   none: made without differential privacy, no epsilon "
                      "can be stated\n");
    nd_ledger_describe(&v, line, sizeof line);
    nd_buf_printf(b, "  privacy ledger  %s (%s)\n", line, v.state);
    if (v.over)
        nd_buf_str(b, "                  OVER BUDGET: this bundle cannot be approved\n");
    return 0;
}

int nd_view_bundle(nd_ctx *c, sqlite3 *db, const char *id, nd_buf *b, int json, sc_error *e)
{
    bundle_row r;
    char ppath[ND_PATH_MAX + 80];
    int rc, n, found;
    if ((rc = load_bundle_row(db, id, &r, e)))
        return rc;
    int out = !strcmp(r.dir, "out");
    if (nd_object_path(c->cfg.dir, r.ph, ppath, sizeof ppath, e))
        ppath[0] = 0;
    view_bundle_head(&r, id, ppath, b, json);
    view_payload(c, r.ph, b, json);
    if (!json)
        view_sender_metrics(&r, b);
    if (out && (rc = view_ledger(c, db, id, b, json, e)))
        return rc;
    n = list_rows(db, e, b, json, "approvals",
                  "SELECT admin,decision,time_unix FROM approvals WHERE bundle_id=? "
                  "ORDER BY id",
                  id, approval_row);
    if (n < 0)
        return n;
    if (!json && out && n == 0)
        nd_buf_str(b, "  decisions       none yet\n");
    n = list_rows(db, e, b, json, "deliveries",
                  "SELECT peer,state,attempts,envelope_size,last_error,delivered_unix,"
                  "receipt IS NOT NULL FROM deliveries WHERE bundle_id=? ORDER BY peer",
                  id, delivery_row);
    if (n < 0)
        return n;
    if ((rc = view_evaluation(db, id, b, json, &found, e)))
        return rc;
    if (!json && !out && !found)
        nd_buf_str(b, "  evaluation here not yet (waiting for import)\n");
    if (!json && !out && r.note[0] && strcmp(r.state, "available"))
        nd_buf_printf(b, "  note            %s\n", r.note);
    if (json)
        nd_buf_str(b, "}\n");
    return 0;
}

static void job_line(sqlite3_stmt *st, nd_buf *b, int json, int first)
{
    int64_t iter = nd_col_int(st, 4), total = nd_col_int(st, 5);
    double pct = total > 0 ? 100.0 * (double)iter / (double)total : 0;
    if (json) {
        int f = 1;
        nd_buf_str(b, first ? "\n {" : ",\n {");
        js_int(b, &f, "id", nd_col_int(st, 0));
        js_str(b, &f, "kind", nd_col_text(st, 1));
        js_str(b, &f, "state", nd_col_text(st, 2));
        js_str(b, &f, "options", nd_col_text(st, 3));
        js_int(b, &f, "iter", iter);
        js_int(b, &f, "total", total);
        js_num(b, &f, "percent", pct);
        js_num(b, &f, "loss", nd_col_double(st, 6));
        js_num(b, &f, "val_acc", nd_col_double(st, 7));
        js_num(b, &f, "val_hm", nd_col_double(st, 8));
        js_num(b, &f, "eta_seconds", nd_col_double(st, 9));
        js_num(b, &f, "seconds", nd_col_double(st, 10));
        js_str(b, &f, "bundle", nd_col_text(st, 11));
        js_str(b, &f, "error", nd_col_text(st, 12));
        js_str(b, &f, "note", nd_col_text(st, 13));
        js_str(b, &f, "audience", nd_col_text(st, 14));
        if (!strcmp(nd_col_text(st, 2), "queued"))
            js_int(b, &f, "ahead", nd_col_int(st, 15)); /* jobs that run before this one */
        nd_buf_str(b, "}");
        return;
    }
    char loss[16], acc[16], hm[16], eta[48] = "-";
    fmt_num(loss, sizeof loss, nd_col_double(st, 6), "%.4f");
    fmt_num(acc, sizeof acc, nd_col_double(st, 7), "%.4f");
    fmt_num(hm, sizeof hm, nd_col_double(st, 8), "%.4f");
    if (!strcmp(nd_col_text(st, 2), "running") && isfinite(nd_col_double(st, 9))) {
        long s = (long)(nd_col_double(st, 9) + 0.5);
        snprintf(eta, sizeof eta, "%ldm%02lds", s / 60, s % 60);
    }
    nd_buf_printf(
        b, "%-5" PRId64 " %-8s %-9s %5.1f%% %6" PRId64 "/%-6" PRId64 " %8s %8s %8s %8s  %.12s",
        nd_col_int(st, 0), nd_col_text(st, 1), nd_col_text(st, 2), pct, iter, total, loss, acc, hm,
        eta, nd_col_text(st, 11));
    if (*nd_col_text(st, 12))
        nd_buf_printf(b, "  error: %s", nd_col_text(st, 12));
    else if (!strncmp(nd_col_text(st, 13), "epsilon ", 8))
        nd_buf_printf(b, "  %s", nd_col_text(st, 13)); /* a DP job's epsilon so far */
    nd_buf_str(b, "\n");
}

#define JOB_COLS                                                               \
    "SELECT id,kind,state,options,iter,total,loss,val_acc,val_hm,eta,seconds," \
    "COALESCE(bundle_id,''),error,note,audience,"                              \
    "(SELECT COUNT(*) FROM jobs AS o WHERE o.id < jobs.id AND "                \
    "o.state IN ('queued','running')) FROM jobs "

int nd_view_jobs(sqlite3 *db, nd_buf *b, int json, sc_error *e)
{
    sqlite3_stmt *st;
    int rc, first = 1;
    if ((rc = nd_db_prepare(db, &st, e, JOB_COLS "ORDER BY id", "")))
        return rc;
    if (json)
        nd_buf_str(b, "[");
    else
        nd_buf_printf(b, "%-5s %-8s %-9s %6s %13s %8s %8s %8s %8s  %s\n", "JOB", "KIND", "STATE",
                      "DONE", "ITERATION", "LOSS", "VAL-ACC", "VAL-HM", "ETA", "BUNDLE");
    while ((rc = nd_db_step(st, e)) == 1) {
        job_line(st, b, json, first);
        first = 0;
    }
    nd_db_finalize(st);
    if (json)
        nd_buf_str(b, first ? "]\n" : "\n]\n");
    else if (first)
        nd_buf_str(b, "(no jobs)\n");
    return rc < 0 ? rc : 0;
}

int nd_view_job(sqlite3 *db, int64_t id, nd_buf *b, int json, sc_error *e)
{
    sqlite3_stmt *st;
    int rc;
    if ((rc = nd_db_prepare(db, &st, e, JOB_COLS "WHERE id=?", "i", id)))
        return rc;
    rc = nd_db_step(st, e);
    if (rc == 1) {
        if (json) {
            job_line(st, b, 1, 1);
            nd_buf_str(b, "\n");
        } else {
            nd_buf_printf(b, "%-5s %-8s %-9s %6s %13s %8s %8s %8s %8s  %s\n", "JOB", "KIND",
                          "STATE", "DONE", "ITERATION", "LOSS", "VAL-ACC", "VAL-HM", "ETA",
                          "BUNDLE");
            job_line(st, b, 0, 1);
            nd_buf_printf(b, "options:    %s\nrecipients: %s\n",
                          *nd_col_text(st, 3) ? nd_col_text(st, 3)
                                              : "(the node's defaults, node.conf 'distill:')",
                          nd_col_text(st, 14));
            if (*nd_col_text(st, 13))
                nd_buf_printf(b, "note:       %s\n", nd_col_text(st, 13));
        }
        rc = 0;
    } else if (rc == 0) {
        rc = sc_error_set(e, SC_ENOTFOUND, "no job %" PRId64, id);
    }
    nd_db_finalize(st);
    return rc;
}

int nd_view_peers(nd_ctx *c, sqlite3 *db, nd_buf *b, int json, sc_error *e)
{
    sc_peer *list = NULL;
    size_t n = 0;
    int rc = c->trust->peer_list(c->trust, &list, &n, e);
    if (rc)
        return rc;
    if (json)
        nd_buf_str(b, "[");
    else
        nd_buf_printf(b, "%-16s %-32s %-10s %-10s %s\n", "PEER", "URL", "SENT-TO", "RECEIVED",
                      "SIGNING KEY");
    for (size_t i = 0; i < n; i++) {
        char url[ND_URL_MAX] = "", pins[ND_PINS_MAX] = "", fp[64];
        int64_t sent = 0, recv = 0;
        int found;
        if ((rc = nd_db_text(db, url, sizeof url, &found, e, "SELECT url FROM peers WHERE id=?",
                             "t", list[i].id)) ||
            (rc = nd_db_text(db, pins, sizeof pins, &found, e, "SELECT pins FROM peers WHERE id=?",
                             "t", list[i].id)) ||
            (rc = nd_db_int(db, &sent, &found, e,
                            "SELECT COUNT(*) FROM deliveries WHERE peer=? AND state='delivered'",
                            "t", list[i].id)) ||
            (rc = nd_db_int(db, &recv, &found, e,
                            "SELECT COUNT(*) FROM bundles WHERE direction='in' AND sender=?", "t",
                            list[i].id)))
            break;
        sc_fingerprint_text(fp, list[i].sign_pk);
        if (json) {
            int f = 1;
            nd_buf_str(b, i ? ",\n {" : "\n {");
            js_str(b, &f, "id", list[i].id);
            js_str(b, &f, "url", url);
            js_str(b, &f, "tls_pins", pins);
            js_str(b, &f, "sign_fingerprint", fp);
            js_int(b, &f, "admins", (int64_t)list[i].n_admins);
            js_int(b, &f, "delivered_to", sent);
            js_int(b, &f, "received_from", recv);
            nd_buf_str(b, "}");
        } else {
            nd_buf_printf(b, "%-16s %-32s %-10" PRId64 " %-10" PRId64 " %s\n", list[i].id,
                          url[0] ? url : "(no address)", sent, recv, fp);
        }
    }
    free(list);
    if (json)
        nd_buf_str(b, n ? "\n]\n" : "]\n");
    else if (!n)
        nd_buf_str(b, "(no peers)\n");
    return rc;
}
