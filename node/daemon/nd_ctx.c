/*
 * nd_ctx.c - shared state of a running node: log, stop flag, wake-ups and
 * the crash-test hook (see nd_ctx.h).
 */
#include "nd_ctx.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nd_node.h"

int nd_ctx_init(nd_ctx *c, const char *node_dir, const char *log_path, sc_error *e)
{
    int rc;
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->log_mu, NULL);
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->cfg_mu, NULL);
    pthread_cond_init(&c->wake_out, NULL);
    pthread_cond_init(&c->wake_in, NULL);
    pthread_cond_init(&c->wake_jobs, NULL);
    atomic_init(&c->stopping, 0);
    nd_metrics_init(&c->metrics);
    c->log = stderr;
    if (log_path) {
        c->log = fopen(log_path, "a");
        if (!c->log) {
            c->log = stderr;
            return sc_error_set(e, SC_EIO, "cannot open log %s: %s", log_path, strerror(errno));
        }
        c->log_owned = 1;
    }
    if ((rc = nd_config_load(node_dir, &c->cfg, e)))
        return rc;
    snprintf(c->self_id, sizeof c->self_id, "%s", c->cfg.base.id);
    if ((rc = sc_node_keys_load(node_dir, &c->keys, e)) ||
        (rc = sc_trust_store_open_files(node_dir, c->self_id, &c->trust, e)))
        return rc;
    return 0;
}

void nd_ctx_destroy(nd_ctx *c)
{
    sc_node_keys_destroy(c->keys);
    sc_trust_store_destroy(c->trust);
    if (c->log_owned)
        fclose(c->log);
    pthread_cond_destroy(&c->wake_out);
    pthread_cond_destroy(&c->wake_in);
    pthread_cond_destroy(&c->wake_jobs);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->cfg_mu);
    pthread_mutex_destroy(&c->log_mu);
    nd_metrics_destroy(&c->metrics);
    memset(c, 0, sizeof *c);
}

static void log_v(nd_ctx *c, const char *level, const char *const *kv, const char *fmt, va_list ap)
{
    char msg[16384];
    struct timespec ts;
    nd_buf line;
    clock_gettime(CLOCK_REALTIME, &ts);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    if (n >= (int)sizeof msg)
        memcpy(msg + sizeof msg - 5, "...", 4); /* cut, and says so */
    nd_buf_init(&line, sizeof msg * 7 + 65536);
    nd_log_line(&line, c->log_format, &ts, c->self_id, level, n < 0 ? fmt : msg, kv);
    pthread_mutex_lock(&c->log_mu);
    if (!line.failed && line.len)
        fwrite(line.data, 1, line.len, c->log);
    fflush(c->log);
    pthread_mutex_unlock(&c->log_mu);
    nd_buf_free(&line);
}

void nd_log(nd_ctx *c, const char *level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_v(c, level, NULL, fmt, ap);
    va_end(ap);
}

void nd_log_kv(nd_ctx *c, const char *level, const char *const *kv, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_v(c, level, kv, fmt, ap);
    va_end(ap);
}

void nd_ctx_settings(nd_ctx *c, nd_settings *out)
{
    pthread_mutex_lock(&c->cfg_mu);
    out->privacy = c->cfg.privacy;
    memcpy(out->privacy_thresholds, c->cfg.privacy_thresholds, sizeof out->privacy_thresholds);
    memcpy(out->distill, c->cfg.distill, sizeof out->distill);
    out->retry_base_ms = c->cfg.retry_base_ms;
    out->retry_max_ms = c->cfg.retry_max_ms;
    out->witness_every_entries = c->cfg.witness_every_entries;
    out->witness_every_seconds = c->cfg.witness_every_seconds;
    out->rebuild = c->cfg.rebuild;
    out->max_epsilon = c->cfg.max_epsilon;
    out->epsilon_delta = c->cfg.epsilon_delta;
    pthread_mutex_unlock(&c->cfg_mu);
}

void nd_ctx_settings_set(nd_ctx *c, const nd_config *from)
{
    pthread_mutex_lock(&c->cfg_mu);
    c->cfg.privacy = from->privacy;
    memcpy(c->cfg.privacy_thresholds, from->privacy_thresholds, sizeof c->cfg.privacy_thresholds);
    memcpy(c->cfg.distill, from->distill, sizeof c->cfg.distill);
    c->cfg.retry_base_ms = from->retry_base_ms;
    c->cfg.retry_max_ms = from->retry_max_ms;
    c->cfg.witness_every_entries = from->witness_every_entries;
    c->cfg.witness_every_seconds = from->witness_every_seconds;
    c->cfg.rebuild = from->rebuild;
    c->cfg.max_epsilon = from->max_epsilon;
    c->cfg.epsilon_delta = from->epsilon_delta;
    pthread_mutex_unlock(&c->cfg_mu);
}

void nd_wake(nd_ctx *c, pthread_cond_t *cond, int *pending)
{
    pthread_mutex_lock(&c->mu);
    *pending = 1;
    pthread_cond_broadcast(cond);
    pthread_mutex_unlock(&c->mu);
}

void nd_wait(nd_ctx *c, pthread_cond_t *cond, int *pending, int64_t timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (timeout_ms < 0)
        timeout_ms = 0;
    ts.tv_sec += (time_t)(timeout_ms / 1000);
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->mu);
    while (!*pending && !atomic_load(&c->stopping))
        if (pthread_cond_timedwait(cond, &c->mu, &ts) == ETIMEDOUT)
            break;
    *pending = 0;
    pthread_mutex_unlock(&c->mu);
}

void nd_ctx_stop(nd_ctx *c)
{
    atomic_store(&c->stopping, 1);
    pthread_mutex_lock(&c->mu);
    pthread_cond_broadcast(&c->wake_out);
    pthread_cond_broadcast(&c->wake_in);
    pthread_cond_broadcast(&c->wake_jobs);
    pthread_mutex_unlock(&c->mu);
}

void nd_test_hold(nd_ctx *c, const char *point)
{
    const char *env = getenv("SLDD_TEST_HOLD");
    size_t n = strlen(point);
    if (!env)
        return;
    for (const char *p = env; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && !strncmp(p, point, n)) {
            char path[ND_PATH_MAX + 64];
            snprintf(path, sizeof path, "%s/hold.%s", c->cfg.dir, point);
            int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
            if (fd >= 0)
                close(fd);
            nd_log(c, "test", "holding at %s until killed or stopped", point);
            while (!atomic_load(&c->stopping)) {
                struct timespec ts = {0, 20000000L};
                nanosleep(&ts, NULL);
            }
            return;
        }
        p += len;
        if (*p == ',')
            p++;
    }
}
