/*
 * nd_config.c - the daemon's part of node.conf (see nd_config.h).
 */
#include "nd_config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nd_buf.h"
#include "sb_parse.h"
#include "sc_util.h"
#include "sn_x509.h"
#include "sp_check.h"

static int resolve(char *out, const char *dir, const char *v, sc_error *e)
{
    if ((size_t)snprintf(out, ND_PATH_MAX, "%s%s%s", v[0] == '/' ? "" : dir, v[0] == '/' ? "" : "/",
                         v) >= ND_PATH_MAX)
        return sc_error_set(e, SC_EINVAL, "path too long: %s", v);
    return 0;
}

static int parse_listen(nd_config *c, const char *v, sc_error *e)
{
    const char *colon = strrchr(v, ':');
    const char *host = v, *hend = colon;
    int port;
    if (!colon)
        return sc_error_set(e, SC_EFORMAT, "listen: want ADDRESS:PORT, got '%s'", v);
    if (*v == '[') { /* [::1]:8443 */
        host = v + 1;
        if (hend == v || hend[-1] != ']')
            return sc_error_set(e, SC_EFORMAT, "listen: bad IPv6 form '%s'", v);
        hend--;
    }
    if ((size_t)(hend - host) >= sizeof c->listen_addr || hend == host)
        return sc_error_set(e, SC_EFORMAT, "listen: bad address in '%s'", v);
    memcpy(c->listen_addr, host, (size_t)(hend - host));
    c->listen_addr[hend - host] = 0;
    if (sb_parse_int(colon + 1, 0, 65535, &port))
        return sc_error_set(e, SC_EFORMAT, "listen: bad port in '%s'", v);
    c->listen_port = port;
    return 0;
}

static int parse_peer(nd_config *c, char *v, sc_error *e)
{
    char *id = strtok(v, " \t"), *url = strtok(NULL, " \t"), *pins = strtok(NULL, " \t");
    unsigned char pin[SC_PIN_LEN];
    if (!id || !url || !pins || strtok(NULL, " \t"))
        return sc_error_set(e, SC_EFORMAT, "peer: want 'ID URL PIN[;PIN...]'");
    if (!sp_valid_id(id))
        return sc_error_set(e, SC_EFORMAT, "peer: '%s' is not a node id", id);
    if (strncmp(url, "https://", 8) || strlen(url) >= ND_URL_MAX)
        return sc_error_set(e, SC_EFORMAT, "peer %s: URL must be https://HOST:PORT", id);
    if (strlen(pins) >= ND_PINS_MAX)
        return sc_error_set(e, SC_EFORMAT, "peer %s: pins too long", id);
    char tmp[ND_PINS_MAX];
    snprintf(tmp, sizeof tmp, "%s", pins);
    for (char *save = NULL, *p = strtok_r(tmp, ";", &save); p; p = strtok_r(NULL, ";", &save))
        if (sn_x509_pin_parse(p, pin, e))
            return sc_error_wrap(e, "peer %s", id);
    if (c->n_peers == ND_MAX_PEERS)
        return sc_error_set(e, SC_EFORMAT, "more than %d peers", ND_MAX_PEERS);
    nd_peer_addr *pa = &c->peers[c->n_peers++];
    snprintf(pa->id, sizeof pa->id, "%s", id);
    snprintf(pa->url, sizeof pa->url, "%s", url);
    snprintf(pa->pins, sizeof pa->pins, "%s", pins);
    return 0;
}

/* rebuild-max-params, -inner-steps, -tflop, -memory-mib (nd_rebuild.h) */
static int parse_rebuild(nd_rebuild_limits *r, const char *key, const char *val, sc_error *e)
{
    long long x;
    if (!strcmp(key, "rebuild-max-params")) {
        if (nd_parse_int(val, 1, 1000000000000LL, &x))
            return sc_error_set(e, SC_EFORMAT, "rebuild-max-params: 1..10^12");
        r->max_params = (uint64_t)x;
    } else if (!strcmp(key, "rebuild-max-inner-steps")) {
        if (nd_parse_int(val, 1, 1000000000LL, &x))
            return sc_error_set(e, SC_EFORMAT, "rebuild-max-inner-steps: 1..10^9");
        r->max_inner_steps = (uint64_t)x;
    } else if (!strcmp(key, "rebuild-max-tflop")) {
        if (nd_parse_int(val, 1, 1000000000LL, &x))
            return sc_error_set(e, SC_EFORMAT, "rebuild-max-tflop: 1..10^9");
        r->max_flop = (double)x * 1e12;
    } else if (!strcmp(key, "rebuild-max-memory-mib")) {
        if (nd_parse_int(val, 1, 1LL << 30, &x))
            return sc_error_set(e, SC_EFORMAT, "rebuild-max-memory-mib: 1..2^30");
        r->max_memory = (uint64_t)x << 20;
    } else {
        return sc_error_set(e, SC_EFORMAT,
                            "unknown key '%s' (rebuild-max-params, "
                            "rebuild-max-inner-steps, rebuild-max-tflop, "
                            "rebuild-max-memory-mib)",
                            key);
    }
    return 0;
}

int nd_config_load(const char *node_dir, nd_config *c, sc_error *e)
{
    char path[ND_PATH_MAX], *cur, *key, *val;
    uint8_t *buf;
    size_t len;
    int rc, r;
    memset(c, 0, sizeof *c);
    if (strlen(node_dir) >= sizeof c->dir)
        return sc_error_set(e, SC_EINVAL, "node directory path too long");
    snprintf(c->dir, sizeof c->dir, "%s", node_dir);
    if ((rc = nd_node_config_load(node_dir, &c->base, e)))
        return rc;
    snprintf(c->listen_addr, sizeof c->listen_addr, "127.0.0.1");
    c->listen_port = 8443;
    c->privacy = ND_PRIVACY_BLOCK;
    c->epsilon_delta = 1e-5;
    snprintf(c->device, sizeof c->device, "cpu");
    c->retry_base_ms = 2000;
    c->retry_max_ms = 600000;
    c->max_connections = 64;
    c->witness_every_entries = 100;
    c->witness_every_seconds = 600;
    nd_rebuild_limits_default(&c->rebuild);
    if ((rc = resolve(c->tls_cert, node_dir, "tls/node.pem", e)) ||
        (rc = resolve(c->tls_key, node_dir, "tls/node.key", e)) ||
        (rc = resolve(c->tls_ca, node_dir, "tls/ca.pem", e)) ||
        (rc = sc_path_join(path, sizeof path, node_dir, "node.conf", e)) ||
        (rc = sc_file_read(path, 65536, 0, &buf, &len, e)))
        return rc;
    cur = (char *)buf;
    rc = 0;
    while (!rc && (r = sc_kv_next(&cur, &key, &val)) == 1) {
        long long x;
        if (!strcmp(key, "listen"))
            rc = parse_listen(c, val, e);
        else if (!strcmp(key, "tls-cert"))
            rc = resolve(c->tls_cert, node_dir, val, e);
        else if (!strcmp(key, "tls-key"))
            rc = resolve(c->tls_key, node_dir, val, e);
        else if (!strcmp(key, "tls-ca"))
            rc = resolve(c->tls_ca, node_dir, val, e);
        else if (!strcmp(key, "data"))
            rc = *val ? resolve(c->data, node_dir, val, e) : 0;
        else if (!strcmp(key, "peer"))
            rc = parse_peer(c, val, e);
        else if (!strcmp(key, "privacy-policy")) {
            if (!strcmp(val, "off"))
                c->privacy = ND_PRIVACY_OFF;
            else if (!strcmp(val, "block"))
                c->privacy = ND_PRIVACY_BLOCK;
            else if (!strcmp(val, "require"))
                c->privacy = ND_PRIVACY_REQUIRE;
            else
                rc = sc_error_set(e, SC_EFORMAT, "privacy-policy is off, block or require");
        } else if (!strcmp(key, "privacy-thresholds")) {
            if (strlen(val) >= sizeof c->privacy_thresholds)
                rc = sc_error_set(e, SC_EFORMAT, "privacy-thresholds: too long");
            else
                snprintf(c->privacy_thresholds, sizeof c->privacy_thresholds, "%s", val);
        } else if (!strcmp(key, "max-epsilon")) {
            if (sb_parse_double(val, 1e-3, 1e3, &c->max_epsilon))
                rc = sc_error_set(e, SC_EFORMAT, "max-epsilon: a number in [0.001, 1000]");
        } else if (!strcmp(key, "epsilon-delta")) {
            if (sb_parse_double(val, 1e-15, 0.1, &c->epsilon_delta))
                rc = sc_error_set(e, SC_EFORMAT, "epsilon-delta: a number in [1e-15, 0.1]");
        } else if (!strcmp(key, "distill")) {
            if (strlen(val) >= sizeof c->distill)
                rc = sc_error_set(e, SC_EFORMAT, "distill: options too long");
            else
                snprintf(c->distill, sizeof c->distill, "%s", val);
        } else if (!strcmp(key, "device")) {
            if (strlen(val) >= sizeof c->device)
                rc = sc_error_set(e, SC_EFORMAT, "device: unknown '%s'", val);
            else
                snprintf(c->device, sizeof c->device, "%s", val);
        } else if (!strcmp(key, "retry-base-ms")) {
            if (nd_parse_int(val, 10, 86400000, &x))
                rc = sc_error_set(e, SC_EFORMAT, "retry-base-ms: 10..86400000");
            c->retry_base_ms = x;
        } else if (!strcmp(key, "retry-max-ms")) {
            if (nd_parse_int(val, 10, 7 * 86400000LL, &x))
                rc = sc_error_set(e, SC_EFORMAT, "retry-max-ms: 10..604800000");
            c->retry_max_ms = x;
        } else if (!strcmp(key, "max-connections")) {
            if (nd_parse_int(val, 1, 4096, &x))
                rc = sc_error_set(e, SC_EFORMAT, "max-connections: 1..4096");
            c->max_connections = (int)x;
        } else if (!strcmp(key, "witness-every-entries")) {
            if (nd_parse_int(val, 0, 1000000, &x))
                rc = sc_error_set(e, SC_EFORMAT, "witness-every-entries: 0..1000000");
            c->witness_every_entries = x;
        } else if (!strcmp(key, "witness-every-seconds")) {
            if (nd_parse_int(val, 0, 604800, &x))
                rc = sc_error_set(e, SC_EFORMAT, "witness-every-seconds: 0..604800");
            c->witness_every_seconds = x;
        } else if (!strncmp(key, "rebuild-", 8)) {
            rc = parse_rebuild(&c->rebuild, key, val, e);
        }
        /* other keys belong to the crypto library (nd_node_config_load) */
    }
    if (!rc && r < 0)
        rc = sc_error_set(e, SC_EFORMAT, "malformed line");
    if (!rc && c->retry_max_ms < c->retry_base_ms)
        c->retry_max_ms = c->retry_base_ms;
    free(buf);
    if (rc)
        return sc_error_wrap(e, "%s", path);
    return 0;
}

int nd_config_append(const char *node_dir, const char *lines, sc_error *e)
{
    char path[ND_PATH_MAX];
    int rc = sc_path_join(path, sizeof path, node_dir, "node.conf", e);
    if (rc)
        return rc;
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return sc_error_set(e, SC_EIO, "%s: %s", path, strerror(errno));
    size_t n = strlen(lines), off = 0;
    while (off < n) {
        ssize_t w = write(fd, lines + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = sc_error_set(e, SC_EIO, "%s: %s", path, strerror(errno));
            break;
        }
        off += (size_t)w;
    }
    if (!rc && fsync(fd))
        rc = sc_error_set(e, SC_EIO, "%s: fsync: %s", path, strerror(errno));
    if (close(fd) && !rc)
        rc = sc_error_set(e, SC_EIO, "%s: %s", path, strerror(errno));
    return rc;
}

const char *nd_privacy_policy_name(nd_privacy_policy p)
{
    return p == ND_PRIVACY_OFF ? "off" : p == ND_PRIVACY_REQUIRE ? "require" : "block";
}

int64_t nd_backoff_ms(int64_t base, int64_t max, int attempts, double u)
{
    int64_t d = base;
    for (int i = 0; i < attempts && d < max; i++)
        d *= 2;
    if (d > max)
        d = max;
    if (u < 0)
        u = 0;
    if (u >= 1)
        u = 0.999999;
    return d / 2 + (int64_t)((double)(d - d / 2) * u);
}
