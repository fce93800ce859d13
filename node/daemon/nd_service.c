/*
 * nd_service.c - systemd notify, the watchdog and SIGHUP reloads (see
 * nd_service.h).
 */
#define _GNU_SOURCE /* getpwuid_r, siginfo_t fields */
#include "nd_service.h"

#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "nd_admin_api.h"
#include "nd_audit.h"
#include "nd_state.h"
#include "sb_parse.h"

/* set by the handler, taken by the tick */
static volatile sig_atomic_t g_hup, g_hup_pid, g_hup_uid;

static void on_sighup(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    g_hup_pid = si ? (sig_atomic_t)si->si_pid : 0;
    g_hup_uid = si ? (sig_atomic_t)si->si_uid : -1;
    g_hup = 1;
}

void nd_service_catch_sighup(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sighup;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGHUP, &sa, NULL);
}

int nd_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa;
    if (!path || !*path)
        return 0;
    size_t n = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || n >= sizeof sa.sun_path)
        return SC_EINVAL;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, n);
    if (path[0] == '@')
        sa.sun_path[0] = 0; /* abstract namespace */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return SC_EIO;
    ssize_t w = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
                       (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n));
    int err = errno;
    close(fd);
    errno = err;
    return w == (ssize_t)strlen(state) ? 0 : SC_EIO;
}

void nd_notifyf(nd_ctx *c, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (nd_notify(msg))
        nd_log(c, "error", "sd_notify to %s: %s", getenv("NOTIFY_SOCKET"), strerror(errno));
}

void nd_service_init(nd_service *s, nd_ctx *c, sqlite3 *db)
{
    const char *us = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
    long long v = 0, p = 0;
    memset(s, 0, sizeof *s);
    s->c = c;
    s->db = db;
    s->last_ping_ms = nd_now_ms();
    if (!us || sb_parse_i64(us, 1, INT64_MAX / 2, &v))
        return;
    if (pid && (sb_parse_i64(pid, 1, INT32_MAX, &p) || p != (long long)getpid()))
        return; /* meant for another process */
    s->watchdog_ms = v / 1000 > 0 ? v / 1000 : 1;
}

int nd_service_tick_ms(const nd_service *s)
{
    int64_t t = s->watchdog_ms ? s->watchdog_ms / 4 : 250;
    return (int)(t < 1 ? 1 : t > 250 ? 250 : t);
}

static void watchdog(nd_service *s)
{
    int64_t now = nd_now_ms(), n = 0;
    sc_error e = {0, ""};
    if (!s->watchdog_ms || now - s->last_ping_ms < s->watchdog_ms / 2)
        return;
    if (nd_db_int(s->db, &n, NULL, &e, "SELECT COUNT(*) FROM sqlite_master", "")) {
        nd_log(s->c, "error", "watchdog: the state database does not answer (%s); not pinging",
               e.msg);
        return;
    }
    s->last_ping_ms = now;
    if (nd_notify("WATCHDOG=1"))
        nd_log(s->c, "error", "watchdog: sd_notify: %s", strerror(errno));
}

void nd_service_tick(void *arg)
{
    nd_service *s = arg;
    if (g_hup && !atomic_load(&s->c->stopping)) {
        char actor[160], user[64] = "";
        long pid = (long)g_hup_pid, uid = (long)g_hup_uid;
        g_hup = 0;
        struct passwd pw, *res = NULL;
        char pwbuf[1024];
        if (uid >= 0 && getpwuid_r((uid_t)uid, &pw, pwbuf, sizeof pwbuf, &res) == 0 && res)
            snprintf(user, sizeof user, "%s", res->pw_name);
        else
            snprintf(user, sizeof user, "uid %ld", uid);
        snprintf(actor, sizeof actor, "os:%s (SIGHUP from pid %ld)", user, pid);
        (void)nd_service_reload(s, actor);
    }
    watchdog(s);
}

int nd_service_load_peers(const nd_config *cfg, sqlite3 *db, sc_error *e)
{
    for (size_t i = 0; i < cfg->n_peers; i++) {
        const nd_peer_addr *p = &cfg->peers[i];
        int rc = nd_peer_set(db, p->id, p->url, p->pins, "node.conf", e);
        if (rc)
            return rc;
    }
    return 0;
}

/* The keys a running node cannot take without a restart, when they differ. */
static void restart_keys(const nd_config *o, const nd_config *n, char *out, size_t size)
{
    struct {
        const char *key;
        int changed;
    } k[] = {
        {"listen", strcmp(o->listen_addr, n->listen_addr) || o->listen_port != n->listen_port},
        {"tls-cert", strcmp(o->tls_cert, n->tls_cert) != 0},
        {"tls-key", strcmp(o->tls_key, n->tls_key) != 0},
        {"tls-ca", strcmp(o->tls_ca, n->tls_ca) != 0},
        {"data", strcmp(o->data, n->data) != 0},
        {"device", strcmp(o->device, n->device) != 0},
        {"max-connections", o->max_connections != n->max_connections},
        {"max-bundle-bytes", o->base.max_bundle_bytes != n->base.max_bundle_bytes},
        {"parse-budget-bytes", o->base.parse_budget_bytes != n->base.parse_budget_bytes},
        {"clock-skew-seconds", o->base.clock_skew_seconds != n->base.clock_skew_seconds},
        {"min-admin-approvals", o->base.min_admin_approvals != n->base.min_admin_approvals},
        {"bundle-ttl-seconds", o->base.bundle_ttl_seconds != n->base.bundle_ttl_seconds},
    };
    out[0] = 0;
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (k[i].changed)
            snprintf(out + strlen(out), size - strlen(out), "%s%s", out[0] ? ", " : "", k[i].key);
}

static void record(nd_service *s, const char *actor, const char *outcome, const char *detail)
{
    sc_error e = {0, ""};
    nd_audit_entry en = {actor, "config", "", "", "", outcome, detail};
    if (nd_audit_append(s->db, &en, NULL, &e) || nd_audit_anchor(s->db, s->c->cfg.dir, &e))
        nd_log(s->c, "error", "audit: %s", e.msg);
}

int nd_service_reload(nd_service *s, const char *actor)
{
    nd_ctx *c = s->c;
    sc_error e = {0, ""};
    char detail[1200], later[400];
    struct timespec mt;
    clock_gettime(CLOCK_MONOTONIC, &mt);
    nd_notifyf(c, "RELOADING=1\nMONOTONIC_USEC=%" PRId64 "\nSTATUS=reloading node.conf",
               (int64_t)mt.tv_sec * 1000000 + mt.tv_nsec / 1000);
    nd_config *n = calloc(1, sizeof *n);
    int rc = n ? nd_config_load(c->cfg.dir, n, &e) : sc_error_set(&e, SC_ENOMEM, "out of memory");
    if (!rc && strcmp(n->base.id, c->self_id))
        rc = sc_error_set(&e, SC_EINVAL, "node.conf names node '%s', this node is '%s'", n->base.id,
                          c->self_id);
    if (!rc && !(rc = nd_db_begin(s->db, &e))) {
        if ((rc = nd_service_load_peers(n, s->db, &e)) == 0)
            rc = nd_db_commit(s->db, &e);
        else
            nd_db_rollback(s->db);
    }
    if (rc) {
        snprintf(detail, sizeof detail,
                 "node.conf not reloaded, the running configuration is "
                 "kept: %s",
                 e.msg);
        nd_log(c, "error", "reload (%s): %s", actor, detail);
        record(s, actor, "failed", detail);
        nd_metrics_reload(&c->metrics, 0);
    } else {
        nd_ctx_settings_set(c, n);
        restart_keys(&c->cfg, n, later, sizeof later);
        snprintf(detail, sizeof detail,
                 "node.conf reloaded: %zu peer line(s), privacy policy %s, retry %" PRId64
                 "..%" PRId64 " ms%s%s",
                 n->n_peers, nd_privacy_policy_name(n->privacy), n->retry_base_ms, n->retry_max_ms,
                 later[0] ? "; changed but need a restart: " : "", later);
        nd_log(c, later[0] ? "warn" : "info", "reload (%s): %s", actor, detail);
        record(s, actor, "ok", detail);
        nd_metrics_reload(&c->metrics, 1);
        nd_wake(c, &c->wake_out, &c->pending_out); /* new addresses or pins */
    }
    free(n);
    nd_notifyf(c, "READY=1\nSTATUS=serving (%s)", rc ? "reload failed" : "reloaded");
    return rc;
}
