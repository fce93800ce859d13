/*
 * nd_ledger.c - the privacy ledger (see nd_ledger.h; docs/privacy.md,
 * "The epsilon ledger").
 *
 * Tables (nd_state.c, schema version 3): `ledger` has one row per release
 * with its state and cost (the RDP curve as SD_RDP_NORDERS little-endian
 * doubles, NULL without DP); `ledger_records` lists the records each release
 * could use.  The overlap of a new release with the spent ones is one query
 * over the records index.
 */
#include "nd_ledger.h"

#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nd_distill.h"
#include "nd_lifecycle.h"
#include "nd_state.h"

void nd_records_free(nd_records *r)
{
    if (!r)
        return;
    free(r->h);
    r->h = NULL;
    r->n = 0;
}

/* One record: BLAKE2b-128 of a domain tag, the label, the shape and the
 * values. */
static void record_hash(uint8_t out[ND_LEDGER_RECORD_BYTES], const char *tag, int32_t label,
                        int32_t w, int32_t h, const void *data, size_t len)
{
    crypto_generichash_state st;
    int32_t head[3] = {label, w, h};
    /* libsodium's generichash cannot fail for these sizes; the result is
     * still checked by the caller's use of a fixed-size output */
    (void)crypto_generichash_init(&st, NULL, 0, ND_LEDGER_RECORD_BYTES);
    (void)crypto_generichash_update(&st, (const unsigned char *)tag, strlen(tag) + 1);
    (void)crypto_generichash_update(&st, (const unsigned char *)head, sizeof head);
    (void)crypto_generichash_update(&st, data, len);
    (void)crypto_generichash_final(&st, out, ND_LEDGER_RECORD_BYTES);
}

int nd_ledger_records(const nd_data *ds, nd_records *out, sc_error *e)
{
    memset(out, 0, sizeof *out);
    if (sodium_init() < 0)
        return sc_error_set(e, SC_ECRYPTO, "libsodium failed to initialise");
    size_t n = 0;
    if (ds->gastric) {
        for (int i = 0; i < ds->ds->n; i++)
            n += ds->ds->img[i].split == SD_SPLIT_TRAIN && ds->ds->img[i].loaded;
    } else {
        n = (size_t)ds->fm[0].n;
    }
    if (!n)
        return sc_error_set(e, SC_EINVAL, "the data set has no training records");
    out->h = malloc(n * sizeof *out->h);
    if (!out->h)
        return sc_error_set(e, SC_ENOMEM, "out of memory (%zu ledger records)", n);
    size_t k = 0;
    if (ds->gastric) {
        out->unit = "image";
        for (int i = 0; i < ds->ds->n; i++) {
            const sd_dataset_image *im = &ds->ds->img[i];
            if (im->split != SD_SPLIT_TRAIN || !im->loaded)
                continue;
            record_hash(out->h[k++], "sldd-ledger-image-v1", im->label, im->w, im->h,
                        ds->ds->pix + im->off, (size_t)im->w * (size_t)im->h * sizeof *ds->ds->pix);
        }
    } else {
        const sd_imageset *s = &ds->fm[0];
        size_t per = (size_t)s->c * (size_t)s->h * (size_t)s->w;
        out->unit = "sample";
        for (int i = 0; i < s->n; i++)
            record_hash(out->h[k++], "sldd-ledger-sample-v1", s->y[i], s->w, s->h,
                        s->x + (size_t)i * per, per * sizeof *s->x);
    }
    out->n = k;
    return 0;
}

int nd_ledger_cost_of(const nd_distill_opts *o, const nd_data *ds, nd_ledger_cost *c, sc_error *e)
{
    memset(c, 0, sizeof *c);
    c->iterations = nd_distill_total(o, ds);
    c->epsilon = INFINITY;
    if (!(o->cfg.dp_noise > 0))
        return 0;
    sd_error se = {0, ""};
    c->dp = 1;
    c->sigma = o->cfg.dp_noise;
    c->delta = o->cfg.dp_delta;
    c->q = (double)o->cfg.real_batch / (double)ds->train.count;
    if (sd_rdp_epsilon(c->q, c->sigma, c->iterations, c->delta, &c->epsilon, NULL, &se))
        return sc_error_set(e, SC_EINVAL, "ledger: %s", se.msg);
    return 0;
}

static int rdp_of(const nd_ledger_cost *c, double *rdp, sc_error *e)
{
    sd_error se = {0, ""};
    if (sd_rdp_curve(c->q, c->sigma, c->iterations, rdp, &se))
        return sc_error_set(e, SC_EINVAL, "ledger: %s", se.msg);
    return 0;
}

int nd_ledger_add(sqlite3 *db, const char *bid, const char *data_source, const nd_records *r,
                  const nd_ledger_cost *cost, sc_error *e)
{
    double rdp[SD_RDP_NORDERS];
    int rc, own = sqlite3_get_autocommit(db) != 0;
    if (cost->dp && (rc = rdp_of(cost, rdp, e)))
        return rc;
    if (own && (rc = nd_db_begin(db, e)))
        return rc;
    rc = nd_db_run(db, e,
                   "INSERT INTO ledger(bundle_id,state,dp,epsilon,delta,sigma,q,iterations,rdp,"
                   "records,unit,data_source,accountant,time_unix) "
                   "VALUES(?,'pending',?,?,?,?,?,?,?,?,?,?,?,?)",
                   "tidddd"
                   "ib"
                   "itt"
                   "ti",
                   bid, (int64_t)cost->dp, cost->dp ? cost->epsilon : NAN,
                   cost->dp ? cost->delta : NAN, cost->dp ? cost->sigma : NAN,
                   cost->dp ? cost->q : NAN, cost->iterations, cost->dp ? (const void *)rdp : NULL,
                   cost->dp ? sizeof rdp : (size_t)0, (int64_t)r->n, r->unit, data_source,
                   cost->dp ? SD_RDP_ACCOUNTANT : "none", nd_now_unix());
    sqlite3_stmt *st = NULL;
    /* one statement bound again per record (nd_db_prepare binds once) */
    if (!rc && sqlite3_prepare_v2(db, "INSERT INTO ledger_records(record,bundle_id) VALUES(?,?)",
                                  -1, &st, NULL) != SQLITE_OK)
        rc = sc_error_set(e, SC_EIO, "ledger: prepare: %s", sqlite3_errmsg(db));
    for (size_t i = 0; !rc && i < r->n; i++) {
        if (sqlite3_bind_blob(st, 1, r->h[i], ND_LEDGER_RECORD_BYTES, SQLITE_STATIC) != SQLITE_OK ||
            sqlite3_bind_text(st, 2, bid, -1, SQLITE_STATIC) != SQLITE_OK) {
            rc = sc_error_set(e, SC_EIO, "ledger: bind: %s", sqlite3_errmsg(db));
            break;
        }
        /* the same record twice in one data set (a duplicated image) is one record */
        int s = sqlite3_step(st);
        if (s != SQLITE_DONE && sqlite3_extended_errcode(db) != SQLITE_CONSTRAINT_PRIMARYKEY)
            rc = sc_error_set(e, SC_EIO, "ledger: records: %s", sqlite3_errmsg(db));
        if (sqlite3_reset(st) != SQLITE_OK && !rc &&
            sqlite3_extended_errcode(db) != SQLITE_CONSTRAINT_PRIMARYKEY)
            rc = sc_error_set(e, SC_EIO, "ledger: records: %s", sqlite3_errmsg(db));
    }
    if (st)
        nd_db_finalize(st);
    if (own)
        rc = rc ? (nd_db_rollback(db), rc) : nd_db_commit(db, e);
    return rc;
}

static int move(sqlite3 *db, const char *bid, const char *from, const char *to, sc_error *e)
{
    return nd_db_run(db, e, "UPDATE ledger SET state=? WHERE bundle_id=? AND state=?", "ttt", to,
                     bid, from);
}

int nd_ledger_spend(sqlite3 *db, const char *bid, sc_error *e)
{
    return move(db, bid, "pending", "spent", e);
}

int nd_ledger_void(sqlite3 *db, const char *bid, sc_error *e)
{
    return move(db, bid, "pending", "void", e);
}

static int load_blob_rdp(sqlite3_stmt *st, int col, double *rdp)
{
    if (sqlite3_column_type(st, col) != SQLITE_BLOB ||
        sqlite3_column_bytes(st, col) != (int)(SD_RDP_NORDERS * sizeof(double)))
        return -1;
    memcpy(rdp, sqlite3_column_blob(st, col), SD_RDP_NORDERS * sizeof(double));
    for (int k = 0; k < SD_RDP_NORDERS; k++)
        if (!(rdp[k] >= 0))
            return -1;
    return 0;
}

/* This release's row; *found = 0 without one. */
static int load_self(sqlite3 *db, const char *bid, nd_ledger_view *v, double *rdp, sc_error *e)
{
    sqlite3_stmt *st;
    int rc = nd_db_prepare(db, &st, e,
                           "SELECT state,dp,epsilon,delta,sigma,q,iterations,rdp,records,unit "
                           "FROM ledger WHERE bundle_id=?",
                           "t", bid);
    if (rc)
        return rc;
    if ((rc = nd_db_step(st, e)) == 1) {
        v->found = 1;
        snprintf(v->state, sizeof v->state, "%s", nd_col_text(st, 0));
        v->cost.dp = (int)nd_col_int(st, 1);
        v->cost.epsilon = v->cost.dp ? nd_col_double(st, 2) : INFINITY;
        v->cost.delta = nd_col_double(st, 3);
        v->cost.sigma = nd_col_double(st, 4);
        v->cost.q = nd_col_double(st, 5);
        v->cost.iterations = nd_col_int(st, 6);
        v->records = nd_col_int(st, 8);
        snprintf(v->unit, sizeof v->unit, "%s", nd_col_text(st, 9));
        rc = 0;
        if (v->cost.dp && load_blob_rdp(st, 7, rdp))
            rc = sc_error_set(e, SC_EFORMAT, "ledger row of bundle %.12s is damaged", bid);
    }
    nd_db_finalize(st);
    return rc < 0 ? rc : 0;
}

/* Sum the RDP of every spent release sharing a record with bid. */
static int sum_prior(sqlite3 *db, const char *bid, nd_ledger_view *v, double *sum, sc_error *e)
{
    sqlite3_stmt *st;
    int rc = nd_db_prepare(db, &st, e,
                           "SELECT l.bundle_id,l.dp,l.rdp FROM ledger l WHERE l.state='spent' "
                           "AND l.bundle_id<>?1 AND EXISTS(SELECT 1 FROM ledger_records a "
                           "JOIN ledger_records b ON b.record=a.record AND b.bundle_id=l.bundle_id "
                           "WHERE a.bundle_id=?1)",
                           "t", bid);
    if (rc)
        return rc;
    while ((rc = nd_db_step(st, e)) == 1) {
        double r[SD_RDP_NORDERS];
        v->prior++;
        if (!nd_col_int(st, 1)) {
            v->prior_nodp++;
            continue;
        }
        if (load_blob_rdp(st, 2, r)) {
            rc = sc_error_set(e, SC_EFORMAT, "ledger row of bundle %.12s is damaged",
                              nd_col_text(st, 0));
            break;
        }
        for (int k = 0; k < SD_RDP_NORDERS; k++)
            sum[k] += r[k];
    }
    nd_db_finalize(st);
    return rc < 0 ? rc : 0;
}

int nd_ledger_view_of(sqlite3 *db, const char *bid, const nd_ledger_budget *b, nd_ledger_view *v,
                      sc_error *e)
{
    double self[SD_RDP_NORDERS] = {0}, sum[SD_RDP_NORDERS] = {0};
    int rc;
    memset(v, 0, sizeof *v);
    if ((rc = load_self(db, bid, v, self, e)) || !v->found)
        return rc;
    if ((rc = sum_prior(db, bid, v, sum, e)))
        return rc;
    v->budget_epsilon = b->max_epsilon;
    v->delta = b->max_epsilon > 0 ? b->delta : (v->cost.dp ? v->cost.delta : b->delta);
    v->spent_epsilon = !v->prior ? 0
                       : v->prior_nodp
                           ? INFINITY
                           : sd_rdp_to_epsilon(sd_rdp_orders, sum, SD_RDP_NORDERS, v->delta, NULL);
    if (!v->cost.dp || v->prior_nodp) {
        v->total_epsilon = INFINITY;
    } else {
        for (int k = 0; k < SD_RDP_NORDERS; k++)
            sum[k] += self[k];
        v->total_epsilon = sd_rdp_to_epsilon(sd_rdp_orders, sum, SD_RDP_NORDERS, v->delta, NULL);
    }
    if (b->max_epsilon > 0) {
        v->left_epsilon = b->max_epsilon - v->total_epsilon;
        v->over = !(v->total_epsilon <= b->max_epsilon);
    }
    return 0;
}

static void fmt_eps(char *buf, size_t len, double x)
{
    if (isinf(x))
        snprintf(buf, len, "unbounded");
    else
        snprintf(buf, len, "%.3f", x);
}

void nd_ledger_describe(const nd_ledger_view *v, char *buf, size_t len)
{
    char self[32], spent[32], total[32], rest[96];
    if (!v->found) {
        snprintf(buf, len, "no ledger entry (made before the ledger existed)");
        return;
    }
    fmt_eps(self, sizeof self, v->cost.epsilon);
    fmt_eps(spent, sizeof spent, v->spent_epsilon);
    fmt_eps(total, sizeof total, v->total_epsilon);
    if (!(v->budget_epsilon > 0))
        snprintf(rest, sizeof rest, "no budget set (node.conf max-epsilon)");
    else if (v->over && isinf(v->total_epsilon))
        snprintf(rest, sizeof rest, "budget %.3f: OVER BUDGET (no finite epsilon)",
                 v->budget_epsilon);
    else if (v->over)
        snprintf(rest, sizeof rest, "budget %.3f: OVER BUDGET by %.3f", v->budget_epsilon,
                 v->total_epsilon - v->budget_epsilon);
    else
        snprintf(rest, sizeof rest, "budget %.3f: %.3f left", v->budget_epsilon, v->left_epsilon);
    snprintf(buf, len,
             "epsilon of this release %s%s; %d released bundle(s) share its %lld training "
             "%s(s)%s, epsilon spent %s, with this one %s (delta %.0e); %s",
             self, v->cost.dp ? "" : " (made without differential privacy)", v->prior,
             (long long)v->records, v->unit, v->prior_nodp ? ", some without DP" : "", spent, total,
             v->delta, rest);
}
