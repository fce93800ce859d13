/*
 * nd_metrics.c - the node's counters and their Prometheus text exposition
 * (see nd_metrics.h).
 */
#include "nd_metrics.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "nd_lifecycle.h"
#include "nd_state.h"

void nd_metrics_init(nd_metrics *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    m->started_unix = nd_now_unix();
}

void nd_metrics_destroy(nd_metrics *m)
{
    pthread_mutex_destroy(&m->mu);
}

void nd_metrics_bytes(nd_metrics *m, uint64_t sent, uint64_t received)
{
    pthread_mutex_lock(&m->mu);
    m->bytes_sent += sent;
    m->bytes_received += received;
    pthread_mutex_unlock(&m->mu);
}

void nd_metrics_refusal(nd_metrics *m, const char *reason)
{
    pthread_mutex_lock(&m->mu);
    int i = 0;
    while (i < m->n_refusals && strcmp(m->refusals[i].reason, reason))
        i++;
    if (i == m->n_refusals) {
        if (m->n_refusals < ND_METRICS_REASONS - 1) {
            snprintf(m->refusals[i].reason, sizeof m->refusals[i].reason, "%s", reason);
            m->n_refusals++;
        } else {
            /* a fixed set in practice; bounded anyway */
            i = ND_METRICS_REASONS - 1;
            snprintf(m->refusals[i].reason, sizeof m->refusals[i].reason, "other");
            if (m->n_refusals < ND_METRICS_REASONS)
                m->n_refusals = ND_METRICS_REASONS;
        }
    }
    m->refusals[i].n++;
    pthread_mutex_unlock(&m->mu);
}

void nd_metrics_contact(nd_metrics *m, const char *peer)
{
    if (!peer || !*peer || strlen(peer) >= sizeof m->contact[0].peer)
        return;
    int64_t now = nd_now_ms();
    pthread_mutex_lock(&m->mu);
    int i = 0;
    while (i < m->n_contact && strcmp(m->contact[i].peer, peer))
        i++;
    if (i == m->n_contact && m->n_contact < ND_METRICS_PEERS)
        snprintf(m->contact[m->n_contact++].peer, sizeof m->contact[0].peer, "%s", peer);
    if (i < m->n_contact)
        m->contact[i].unix_ms = now;
    pthread_mutex_unlock(&m->mu);
}

void nd_metrics_iteration(nd_metrics *m, int64_t job_id, int64_t iter)
{
    int64_t now = nd_now_ms();
    pthread_mutex_lock(&m->mu);
    if (job_id != m->job_id || iter <= m->job_it) {
        /* a new run (or a resumed one): its rate starts here */
        m->job_id = job_id;
        m->job_it0 = m->job_it = iter;
        m->job_t0_ms = m->job_t_ms = now;
        m->iterations++;
    } else {
        m->iterations += (uint64_t)(iter - m->job_it);
        m->job_it = iter;
        m->job_t_ms = now;
    }
    pthread_mutex_unlock(&m->mu);
}

void nd_metrics_patches(nd_metrics *m, uint64_t n, double seconds)
{
    pthread_mutex_lock(&m->mu);
    m->patches += n;
    m->patch_seconds += seconds;
    if (seconds > 0)
        m->patch_rate = (double)n / seconds;
    pthread_mutex_unlock(&m->mu);
}

void nd_metrics_reload(nd_metrics *m, int ok)
{
    pthread_mutex_lock(&m->mu);
    if (ok)
        m->reloads++;
    else
        m->reload_failures++;
    pthread_mutex_unlock(&m->mu);
}

void nd_metrics_label(nd_buf *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            nd_buf_str(out, "\\\\");
        else if (*s == '"')
            nd_buf_str(out, "\\\"");
        else if (*s == '\n')
            nd_buf_str(out, "\\n");
        else
            nd_buf_add(out, s, 1);
    }
}

static void head(nd_buf *o, const char *name, const char *type, const char *help)
{
    nd_buf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{label="value"} v */
static void sample1(nd_buf *o, const char *name, const char *label, const char *value, double v)
{
    nd_buf_printf(o, "%s{%s=\"", name, label);
    nd_metrics_label(o, value);
    nd_buf_printf(o, "\"} %.17g\n", v);
}

/* The states of kind and the query that counts one of them. */
static int count_state(sqlite3 *db, nd_count_kind kind, int s, const char **name, int64_t *n,
                       sc_error *e)
{
    switch (kind) {
    case ND_COUNT_JOBS:
        if (s >= ND_JOB_STATE_COUNT)
            return 1;
        *name = nd_job_state_name((nd_jstate)s);
        return nd_db_int(db, n, NULL, e, "SELECT COUNT(*) FROM jobs WHERE state=?", "t", *name);
    case ND_COUNT_DELIVERIES:
        if (s >= ND_DELIVERY_STATE_COUNT)
            return 1;
        *name = nd_delivery_state_name((nd_dstate)s);
        return nd_db_int(db, n, NULL, e, "SELECT COUNT(*) FROM deliveries WHERE state=?", "t",
                         *name);
    default: {
        int in = kind == ND_COUNT_BUNDLES_IN;
        int b = in ? ND_BUNDLE_STORED - 1 + s : s;
        if (b >= (in ? ND_BUNDLE_STATE_COUNT : ND_BUNDLE_STORED))
            return 1;
        *name = nd_bundle_state_name((nd_bstate)b);
        return nd_db_int(db, n, NULL, e,
                         "SELECT COUNT(*) FROM bundles WHERE direction=? AND state=?", "tt",
                         in ? "in" : "out", *name);
    }
    }
}

int nd_metrics_counts(sqlite3 *db, nd_count_kind kind, int json, nd_buf *out, sc_error *e)
{
    const char *name;
    int64_t n;
    int rc;
    nd_buf_str(out, json ? "{" : "");
    for (int s = 1; (rc = count_state(db, kind, s, &name, &n, e)) == 0; s++) {
        if (json)
            nd_buf_printf(out, "%s\"%s\":%" PRId64, s > 1 ? "," : "", name, n);
        else
            nd_buf_printf(out, "%s%" PRId64 " %s", s > 1 ? ", " : "", n, name);
    }
    nd_buf_str(out, json ? "}" : "");
    return rc < 0 ? rc : 0;
}

/* Counts by state, every known state listed (0 when none): a series
 * exists before the first row of its state does. */
static int render_states(nd_buf *o, sqlite3 *db, sc_error *e)
{
    static const struct {
        nd_count_kind kind;
        const char *metric, *labels;
    } t[] = {{ND_COUNT_JOBS, "sldd_jobs", ""},
             {ND_COUNT_BUNDLES_OUT, "sldd_bundles", "direction=\"out\","},
             {ND_COUNT_BUNDLES_IN, "sldd_bundles", "direction=\"in\","},
             {ND_COUNT_DELIVERIES, "sldd_deliveries", ""}};
    const char *name;
    int64_t n;
    int rc;
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        if (t[i].kind == ND_COUNT_JOBS)
            head(o, t[i].metric, "gauge", "Distillation jobs by state.");
        else if (t[i].kind == ND_COUNT_BUNDLES_OUT)
            head(o, t[i].metric, "gauge",
                 "Bundles by direction (out: made here, in: received) and state.");
        else if (t[i].kind == ND_COUNT_DELIVERIES)
            head(o, t[i].metric, "gauge",
                 "Deliveries (one bundle to one peer) by state: queued is pending, refused and "
                 "expired failed.");
        for (int s = 1; (rc = count_state(db, t[i].kind, s, &name, &n, e)) == 0; s++) {
            nd_buf_printf(o, "%s{%sstate=\"", t[i].metric, t[i].labels);
            nd_metrics_label(o, name);
            nd_buf_printf(o, "\"} %" PRId64 "\n", n);
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The most recent delivery error of each peer (retrying or final). */
static int render_delivery_errors(nd_buf *o, sqlite3 *db, sc_error *e)
{
    sqlite3_stmt *st;
    int rc = nd_db_prepare(db, &st, e,
                           "SELECT peer, bundle_id, state, last_error FROM deliveries "
                           "WHERE rowid IN (SELECT MAX(rowid) FROM deliveries WHERE "
                           "last_error<>'' GROUP BY peer) ORDER BY peer",
                           "");
    if (rc)
        return rc;
    head(o, "sldd_delivery_last_error_info", "gauge",
         "The last delivery error of each peer (value 1; the error in its labels).");
    while ((rc = nd_db_step(st, e)) == 1) {
        nd_buf_str(o, "sldd_delivery_last_error_info{peer=\"");
        nd_metrics_label(o, nd_col_text(st, 0));
        nd_buf_str(o, "\",bundle=\"");
        nd_metrics_label(o, nd_col_text(st, 1));
        nd_buf_str(o, "\",state=\"");
        nd_metrics_label(o, nd_col_text(st, 2));
        nd_buf_str(o, "\",error=\"");
        nd_metrics_label(o, nd_col_text(st, 3));
        nd_buf_str(o, "\"} 1\n");
    }
    nd_db_finalize(st);
    return rc < 0 ? rc : 0;
}

static void render_process(nd_metrics *m, nd_buf *o)
{
    pthread_mutex_lock(&m->mu);
    head(o, "sldd_bundle_bytes_sent_total", "counter",
         "Bytes of bundle envelopes sent to peers (each attempt that was answered).");
    nd_buf_printf(o, "sldd_bundle_bytes_sent_total %" PRIu64 "\n", m->bytes_sent);
    head(o, "sldd_bundle_bytes_received_total", "counter",
         "Bytes of bundle envelopes received from peers.");
    nd_buf_printf(o, "sldd_bundle_bytes_received_total %" PRIu64 "\n", m->bytes_received);
    head(o, "sldd_refusals_total", "counter",
         "Connections, requests, bundles and audit heads refused, by reason.");
    for (int i = 0; i < m->n_refusals; i++)
        sample1(o, "sldd_refusals_total", "reason", m->refusals[i].reason,
                (double)m->refusals[i].n);
    head(o, "sldd_peer_last_contact_timestamp_seconds", "gauge",
         "Unix time of the last authenticated exchange with each peer (since this start).");
    for (int i = 0; i < m->n_contact; i++)
        sample1(o, "sldd_peer_last_contact_timestamp_seconds", "peer", m->contact[i].peer,
                (double)m->contact[i].unix_ms / 1000.0);
    head(o, "sldd_distill_iterations_total", "counter", "Distillation iterations run.");
    nd_buf_printf(o, "sldd_distill_iterations_total %" PRIu64 "\n", m->iterations);
    double rate = m->job_t_ms > m->job_t0_ms ? (double)(m->job_it - m->job_it0) * 1000.0 /
                                                   (double)(m->job_t_ms - m->job_t0_ms)
                                             : 0.0;
    head(o, "sldd_distill_iterations_per_second", "gauge",
         "Iteration rate of the current (or last) distillation run.");
    nd_buf_printf(o, "sldd_distill_iterations_per_second %.6g\n", rate);
    head(o, "sldd_patches_classified_total", "counter",
         "Patches classified by the node (evaluations of received bundles).");
    nd_buf_printf(o, "sldd_patches_classified_total %" PRIu64 "\n", m->patches);
    head(o, "sldd_patch_classify_seconds_total", "counter", "Time spent classifying them.");
    nd_buf_printf(o, "sldd_patch_classify_seconds_total %.6f\n", m->patch_seconds);
    head(o, "sldd_detection_patches_per_second", "gauge",
         "Patches per second of the last classification run.");
    nd_buf_printf(o, "sldd_detection_patches_per_second %.6g\n", m->patch_rate);
    head(o, "sldd_config_reloads_total", "counter", "Configuration reloads (SIGHUP), by result.");
    nd_buf_printf(o, "sldd_config_reloads_total{result=\"ok\"} %" PRIu64 "\n", m->reloads);
    nd_buf_printf(o, "sldd_config_reloads_total{result=\"failed\"} %" PRIu64 "\n",
                  m->reload_failures);
    head(o, "sldd_start_time_seconds", "gauge", "Unix time the node started.");
    nd_buf_printf(o, "sldd_start_time_seconds %" PRId64 "\n", m->started_unix);
    pthread_mutex_unlock(&m->mu);
}

int nd_metrics_render(nd_metrics *m, sqlite3 *db, const char *node, nd_buf *out, sc_error *e)
{
    int rc;
    head(out, "sldd_up", "gauge", "1 while the node serves.");
    nd_buf_str(out, "sldd_up 1\n");
    head(out, "sldd_build_info", "gauge", "The node and its sldd version (value 1).");
    nd_buf_str(out, "sldd_build_info{node=\"");
    nd_metrics_label(out, node);
    nd_buf_str(out, "\",version=\"");
    nd_metrics_label(out, SLDD_VERSION);
    nd_buf_str(out, "\"} 1\n");
    if ((rc = render_states(out, db, e)) || (rc = render_delivery_errors(out, db, e)))
        return rc;
    render_process(m, out);
    return out->failed ? sc_error_set(e, SC_ENOMEM, "metrics: out of memory") : 0;
}
