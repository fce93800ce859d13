/*
 * nd_daemon.c - start-up checks, the threads of a node and a clean stop
 * (see nd_daemon.h).
 */
#include "nd_daemon.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "nd_admin_api.h"
#include "nd_audit.h"
#include "nd_buf.h"
#include "nd_ctx.h"
#include "nd_dash.h"
#include "nd_dicom_scp.h"
#include "nd_inbound.h"
#include "nd_jobs.h"
#include "nd_objects.h"
#include "nd_service.h"
#include "nd_delivery.h"
#include "nd_state.h"
#include "nd_roster.h"
#include "nd_witness_sync.h"
#include "sn_tls.h"
#include "sc_util.h"
#include "sn_peer.h"
#include "sn_server.h"

/* for the signal handler: sn_server_stop is async-signal-safe.  A stop
 * asked for before the server exists (during the start-up checks) is kept
 * in g_stop_asked and applied as soon as it does. */
static sn_server *volatile g_server;
static volatile sig_atomic_t g_stop_asked;

static void on_signal(int sig)
{
    (void)sig;
    g_stop_asked = 1;
    sn_server *s = g_server;
    if (s)
        sn_server_stop(s);
}

typedef struct saved_signals {
    struct sigaction term, intr, hup;
} saved_signals;

/* From the start of a run: SIGTERM/SIGINT stop it (also the admin API's
 * POST /v1/stop, which raises SIGTERM), SIGHUP reloads (nd_service.h); a
 * default action would end the process instead. */
static void catch_signals(saved_signals *old)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    g_stop_asked = 0;
    sigaction(SIGTERM, &sa, &old->term);
    sigaction(SIGINT, &sa, &old->intr);
    sigaction(SIGHUP, NULL, &old->hup);
    nd_service_catch_sighup();
    signal(SIGPIPE, SIG_IGN);
}

static void restore_signals(const saved_signals *old)
{
    g_server = NULL;
    sigaction(SIGTERM, &old->term, NULL);
    sigaction(SIGINT, &old->intr, NULL);
    sigaction(SIGHUP, &old->hup, NULL);
}

/* ---------------------------------------------------------------- checks */

/* Every object a row refers to must be there and intact. */
static int check_objects(nd_ctx *c, sqlite3 *db, int *problems, sc_error *e)
{
    sqlite3_stmt *st;
    int rc = nd_db_prepare(db, &st, e,
                           "SELECT id, payload_sha256 FROM bundles UNION ALL "
                           "SELECT id, statement_obj FROM bundles UNION ALL "
                           "SELECT id, approved_obj FROM bundles WHERE approved_obj IS NOT NULL "
                           "UNION ALL SELECT bundle_id, envelope_obj FROM deliveries WHERE "
                           "envelope_obj<>'' AND state='queued'",
                           "");
    if (rc)
        return rc;
    while ((rc = nd_db_step(st, e)) == 1) {
        sc_error oe = {0, ""};
        const char *bid = nd_col_text(st, 0), *obj = nd_col_text(st, 1);
        if (nd_object_check(c->cfg.dir, obj, &oe)) {
            (*problems)++;
            nd_log(c, "error", "startup check: bundle %.12s: object %.16s...: %s", bid, obj,
                   oe.code == SC_ENOTFOUND ? "missing" : oe.msg);
        }
    }
    nd_db_finalize(st);
    return rc < 0 ? rc : 0;
}

/* Temp files of interrupted writes; objects no row refers to. */
static void sweep_objects(nd_ctx *c, sqlite3 *db)
{
    char path[ND_PATH_MAX + 400];
    snprintf(path, sizeof path, "%s/%s", c->cfg.dir, ND_OBJECTS_DIR);
    DIR *d = opendir(path);
    if (!d)
        return;
    struct dirent *de;
    int tmp = 0, orphans = 0;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (strstr(de->d_name, ".tmp-")) {
            snprintf(path, sizeof path, "%s/%s/%s", c->cfg.dir, ND_OBJECTS_DIR, de->d_name);
            if (unlink(path) == 0)
                tmp++;
            continue;
        }
        int64_t v;
        int found = 0;
        sc_error e = {0, ""};
        if (nd_db_int(db, &v, &found, &e,
                      "SELECT 1 WHERE EXISTS(SELECT 1 FROM bundles WHERE payload_sha256=?1 OR "
                      "statement_obj=?1 OR approved_obj=?1) OR EXISTS(SELECT 1 FROM deliveries "
                      "WHERE envelope_obj=?1)",
                      "t", de->d_name) == 0 &&
            !found)
            orphans++;
    }
    closedir(d);
    if (tmp)
        nd_log(c, "info", "startup check: removed %d temp file(s) of interrupted writes", tmp);
    if (orphans)
        nd_log(c, "info",
               "startup check: %d object(s) belong to no bundle (written before a crash or "
               "superseded); kept in %s/",
               orphans, ND_OBJECTS_DIR);
}

static int startup_checks(nd_ctx *c, sqlite3 *db, sc_error *e)
{
    int rc, problems = 0;
    nd_audit_report rep;
    if ((rc = nd_db_integrity(db, e)))
        return rc;
    if ((rc = check_objects(c, db, &problems, e)))
        return rc;
    sweep_objects(c, db);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    rc = nd_audit_verify(db, c->cfg.dir, &rep, f, e);
    if (f)
        fclose(f);
    if (!rc && !rep.ok)
        nd_log(c, "error", "startup check: the audit log is damaged:\n%s", text ? text : "");
    free(text);
    if (rc)
        return rc;
    if (problems)
        return sc_error_set(e, SC_EFORMAT,
                            "startup check: %d stored object(s) missing or damaged (see the log); "
                            "restore the node directory from a backup",
                            problems);
    nd_log(c, "info",
           "startup check: database intact, objects intact, audit log %s (%" PRId64 " entries)",
           rep.ok ? "intact" : "DAMAGED", rep.entries);
    return 0;
}

/* ---------------------------------------------------------------- TLS */

typedef struct lookup_ctx {
    nd_ctx *c;
    sqlite3 *db;
} lookup_ctx;

/* pin -> node id: the pin must be listed for a peer whose keys we know */
static int tls_lookup(void *arg, const unsigned char pin[SC_PIN_LEN], char *node_id, size_t size)
{
    lookup_ctx *l = arg;
    sqlite3_stmt *st;
    sc_error e = {0, ""};
    int rc = SC_ENOTFOUND;
    if (nd_db_prepare(l->db, &st, &e, "SELECT id, pins FROM peers", ""))
        return SC_EIO;
    while (rc == SC_ENOTFOUND && nd_db_step(st, &e) == 1) {
        char pins[ND_PINS_MAX];
        snprintf(pins, sizeof pins, "%s", nd_col_text(st, 1));
        char *save = NULL;
        for (char *p = strtok_r(pins, ";", &save); p; p = strtok_r(NULL, ";", &save)) {
            unsigned char pp[SC_PIN_LEN];
            sc_peer peer;
            const char *id = nd_col_text(st, 0);
            if (sn_x509_pin_parse(p, pp, NULL) || memcmp(pp, pin, SC_PIN_LEN))
                continue;
            if (l->c->trust->peer_get(l->c->trust, id, &peer, NULL) || strlen(id) >= size)
                break;
            memcpy(node_id, id, strlen(id) + 1);
            rc = 0;
            break;
        }
    }
    nd_db_finalize(st);
    return rc;
}

typedef struct event_ctx {
    nd_ctx *c;
    sqlite3 *db;
} event_ctx;

static void on_event(void *arg, const sn_event *ev)
{
    event_ctx *x = arg;
    nd_ctx *c = x->c;
    sc_error e = {0, ""};
    switch (ev->kind) {
    case SN_EV_REQUEST:
        nd_metrics_contact(&c->metrics, ev->peer_node_id);
        nd_log(c, "info", "%s", ev->reason);
        return;
    case SN_EV_TLS_REFUSED:
    case SN_EV_HTTP_REFUSED: {
        char detail[700], actor[96];
        if (ev->method)
            snprintf(detail, sizeof detail, "HTTP %s %s from %s: %s", ev->method,
                     ev->path ? ev->path : "", ev->peer_addr, ev->reason);
        else
            snprintf(detail, sizeof detail, "TLS handshake from %s: %s", ev->peer_addr, ev->reason);
        snprintf(actor, sizeof actor, "%s%s", ev->peer_node_id ? "peer:" : "addr:",
                 ev->peer_node_id ? ev->peer_node_id : ev->peer_addr);
        char why[32] = "tls-handshake", st[16];
        if (ev->kind != SN_EV_TLS_REFUSED)
            snprintf(why, sizeof why, "http-%d", ev->status);
        snprintf(st, sizeof st, "%d", ev->status);
        nd_metrics_refusal(&c->metrics, why);
        /* a handshake refused is someone this node does not know (no
         * certificate, another CA, a pin in no peer's list): an error;
         * a known peer's request refused by the server is a warning */
        const char *kv[] = {
            "event",       "refusal", "reason",         why,      "addr",
            ev->peer_addr, "peer",    ev->peer_node_id, "status", ev->status ? st : NULL,
            NULL};
        nd_log_kv(c, ev->kind == SN_EV_TLS_REFUSED ? "error" : "warn", kv, "refused %s", detail);
        nd_audit_entry en = {actor,     "refusal", "", "", ev->peer_node_id ? ev->peer_node_id : "",
                             "refused", detail};
        if (nd_audit_append(x->db, &en, NULL, &e) || nd_audit_anchor(x->db, c->cfg.dir, &e))
            nd_log(c, "error", "audit: %s", e.msg);
        return;
    }
    default:
        nd_log(c, ev->kind == SN_EV_ERROR ? "error" : "info", "connection from %s: %s",
               ev->peer_addr, ev->reason);
    }
}

/* ---------------------------------------------------------------- run */

static int take_lock(const char *dir, int *fd_out, sc_error *e)
{
    char path[ND_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/%s", dir, ND_LOCK_FILE);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return sc_error_set(e, SC_EIO, "%s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        close(fd);
        return sc_error_set(e, SC_EEXIST, "another 'sldd serve' is running on %s", dir);
    }
    *fd_out = fd;
    return 0;
}

static int write_info(nd_ctx *c, int port, sc_error *e)
{
    char path[ND_PATH_MAX + 32];
    nd_buf b;
    nd_buf_init(&b, 8192);
    nd_buf_printf(&b, "{\"node\":\"%s\",\"pid\":%ld,\"address\":", c->self_id, (long)getpid());
    nd_buf_json_str(&b, c->cfg.listen_addr);
    nd_buf_printf(&b, ",\"port\":%d,\"admin_socket\":", port);
    snprintf(path, sizeof path, "%s/%s", c->cfg.dir, ND_ADMIN_SOCKET);
    nd_buf_json_str(&b, path);
    nd_buf_str(&b, "}\n");
    snprintf(path, sizeof path, "%s/%s", c->cfg.dir, ND_SERVE_INFO);
    int rc = b.failed ? sc_error_set(e, SC_ENOMEM, "out of memory")
                      : sc_file_write_atomic(path, b.data, b.len, 0644, e);
    nd_buf_free(&b);
    return rc;
}

int nd_daemon_check(const char *node_dir, sc_error *e)
{
    nd_ctx c;
    sqlite3 *db = NULL;
    int rc = nd_ctx_init(&c, node_dir, NULL, e);
    if (!rc)
        rc = nd_db_open(node_dir, 1, &db, e);
    if (!rc)
        rc = startup_checks(&c, db, e);
    nd_db_close(db);
    nd_ctx_destroy(&c);
    return rc;
}

/* Everything a running node holds, started in order by start_parts() and
 * stopped in reverse by stop_parts(). */
typedef struct daemon_parts {
    sqlite3 *db;
    SSL_CTX *sctx;
    sn_server *srv;
    nd_inbound in;
    nd_delivery out;
    nd_jobs jobs;
    nd_admin admin;
    lookup_ctx lk;
    event_ctx evx;
    sn_peer_service svc;
    nd_witness_sync wit;
    nd_roster_srv roster;
    nd_service sv; /* notify, watchdog, SIGHUP: on the loop's tick */
    nd_dash *dash;
    const nd_dicom_service_opts *dicom_opts; /* NULL: no DICOM listener */
    nd_dicom_service dicom;
    int dicom_started;
    int port;
    int in_init, out_started, jobs_started, admin_started, import_started;
} daemon_parts;

/* The peer server: TLS context, listener, the peer protocol's callbacks. */
static int start_server(nd_ctx *c, daemon_parts *p, sc_error *e)
{
    int rc;
    p->lk.c = c;
    p->lk.db = p->db;
    p->evx.c = c;
    p->evx.db = p->db;
    sn_tls_config tc = {c->cfg.tls_cert, c->cfg.tls_key, c->cfg.tls_ca, tls_lookup, &p->lk};
    if ((rc = sn_tls_server_ctx_create(&p->sctx, &tc, e)))
        return sc_error_wrap(
            e, "TLS (node.conf tls-cert, tls-key, tls-ca; 'sldd init --tls' makes them)");
    sn_server_config sc;
    memset(&sc, 0, sizeof sc);
    sc.address = c->cfg.listen_addr;
    sc.port = (uint16_t)c->cfg.listen_port;
    sc.ssl_ctx = p->sctx;
    sc.max_body_bytes = c->cfg.base.max_bundle_bytes;
    sc.max_connections = c->cfg.max_connections;
    sc.on_event = on_event;
    sc.event_arg = &p->evx;
    if ((rc = sn_server_create(&p->srv, &sc, e)))
        return rc;
    g_server = p->srv;
    if (g_stop_asked)
        sn_server_stop(p->srv); /* a signal came during the start-up checks */
    nd_service_init(&p->sv, c, p->db);
    if ((rc = sn_server_set_tick(p->srv, nd_service_tick_ms(&p->sv), nd_service_tick, &p->sv, e)) ||
        (rc = nd_inbound_init(&p->in, c, p->db, e)))
        return rc;
    p->in_init = 1;
    if ((rc = nd_witness_sync_start(&p->wit, c, p->db, e)))
        return rc;
    memset(&p->svc, 0, sizeof p->svc);
    p->svc.node_id = c->self_id;
    p->svc.max_bundle_bytes = c->cfg.base.max_bundle_bytes;
    p->svc.on_bundle = nd_inbound_on_bundle;
    p->svc.arg = &p->in;
    p->svc.on_audit_head = nd_witness_on_head;
    p->svc.audit_head_arg = &p->wit;
    p->roster.ctx = c;
    p->roster.db = p->db;
    p->svc.on_card = nd_roster_on_card;
    p->svc.card_arg = &p->roster;
    if ((rc = sn_peer_register(p->srv, &p->svc, e)))
        return rc;
    p->port = sn_server_port(p->srv);
    c->listen_port_bound = p->port;
    return 0;
}

/* The worker threads: jobs, admin API, delivery, import. */
static int start_workers(nd_ctx *c, daemon_parts *p, sc_error *e)
{
    int rc;
    if ((rc = nd_jobs_start(&p->jobs, c, e)))
        return rc;
    p->jobs_started = 1;
    if ((rc = nd_admin_start(&p->admin, c, &p->jobs, p->port, e)))
        return rc;
    p->admin_started = 1;
    if ((rc = nd_delivery_start(&p->out, c, e)))
        return rc;
    p->out_started = 1;
    if ((rc = nd_import_start(&p->in, e)))
        return rc;
    p->import_started = 1;
    if (p->dicom_opts) {
        p->dicom_started = 1; /* stopped (what started of it) even when start fails */
        if ((rc = nd_dicom_service_start(&p->dicom, c, p->dicom_opts, e)))
            return rc;
    }
    return 0;
}

/* The dashboard, last: it serves the admin API's routes. */
static int start_dash(nd_ctx *c, daemon_parts *p, const nd_dash_config *dash, sc_error *e)
{
    return nd_dash_start(&p->dash, c, &p->admin, dash, e);
}

static void stop_parts(nd_ctx *c, daemon_parts *p, const char *node_dir)
{
    nd_ctx_stop(c);
    nd_dash_stop(p->dash);
    if (p->dicom_started)
        nd_dicom_service_stop(&p->dicom);
    if (p->admin_started)
        nd_admin_stop(&p->admin);
    if (p->import_started)
        nd_import_join(&p->in);
    if (p->out_started)
        nd_delivery_join(&p->out);
    if (p->jobs_started)
        nd_jobs_join(&p->jobs);
    nd_witness_sync_stop(&p->wit); /* last: the final head covers everything */
    if (p->in_init)
        nd_inbound_destroy(&p->in);
    g_server = NULL; /* the handler must not reach a freed server */
    sn_server_destroy(p->srv);
    if (p->sctx)
        SSL_CTX_free(p->sctx);
    if (p->db) {
        sc_error ae = {0, ""};
        if (nd_audit_anchor(p->db, node_dir, &ae))
            nd_log(c, "error", "audit anchor: %s", ae.msg);
    }
    nd_db_close(p->db);
    char path[ND_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/%s", node_dir, ND_SERVE_INFO);
    unlink(path);
}

/* Serve until SIGTERM/SIGINT (or POST /v1/stop) stops the event loop. */
static int serve(nd_ctx *c, daemon_parts *p, sc_error *e)
{
    nd_log(c, "info", "node %s serving peers on %s:%d (mutual TLS 1.3), admin API on %s",
           c->self_id, c->cfg.listen_addr, p->port, p->admin.path);
    nd_notifyf(c, "READY=1\nMAINPID=%ld\nSTATUS=serving peers on %s:%d", (long)getpid(),
               c->cfg.listen_addr, p->port);
    int rc = sn_server_run(p->srv, e);
    nd_notifyf(c, "STOPPING=1\nSTATUS=stopping: finishing work in progress");
    nd_log(c, "info", "stopping: finishing work in progress");
    return rc;
}

int nd_daemon_run(const char *node_dir, const char *log_path, nd_log_format log_format, sc_error *e)
{
    nd_daemon_opts o = {log_path, log_format, NULL, NULL};
    return nd_daemon_run_with(node_dir, &o, e);
}

int nd_daemon_run_with(const char *node_dir, const nd_daemon_opts *o, sc_error *e)
{
    nd_ctx c;
    int lock_fd = -1, rc;
    daemon_parts p;
    saved_signals old;
    const nd_dash_config *dash = o->dash;
    memset(&p, 0, sizeof p);
    p.dicom_opts = o->dicom;
    catch_signals(&old);
    if ((rc = take_lock(node_dir, &lock_fd, e))) {
        restore_signals(&old);
        return rc;
    }
    rc = nd_ctx_init(&c, node_dir, o->log_path, e);
    c.log_format = o->log_format;
    if (rc) {
        nd_ctx_destroy(&c);
        close(lock_fd);
        restore_signals(&old);
        return rc;
    }
    nd_log(&c, "info", "starting node %s in %s (sldd %s)", c.self_id, node_dir, SLDD_VERSION);
    if (!(rc = nd_db_open(node_dir, 1, &p.db, e)) && !(rc = startup_checks(&c, p.db, e)) &&
        !(rc = nd_service_load_peers(&c.cfg, p.db, e)) && !(rc = nd_jobs_recover(&c, p.db, e)) &&
        !(rc = nd_audit_anchor(p.db, node_dir, e)) && !(rc = start_server(&c, &p, e)) &&
        !(rc = start_workers(&c, &p, e)) && !(rc = start_dash(&c, &p, dash, e)) &&
        !(rc = write_info(&c, p.port, e)))
        rc = serve(&c, &p, e);
    if (rc) {
        nd_log(&c, "error", "%s", e->msg);
        nd_notifyf(&c, "STATUS=failed: %.900s", e->msg);
    }
    stop_parts(&c, &p, node_dir);
    if (!rc)
        nd_log(&c, "info", "node %s stopped", c.self_id);
    nd_ctx_destroy(&c);
    close(lock_fd);
    restore_signals(&old);
    return rc;
}
