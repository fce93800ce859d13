/*
 * nd_cli_ping.c - `sldd peer ping NAME` (see nd_cli_ping.h).
 *
 * One connection, made the way the delivery worker makes them: TLS 1.3
 * with this node's certificate, the federation CA, and the peer's pins
 * from the node's peers table (sldd peer address, node.conf peer: lines).
 * The handshake is timed and the key the peer presents is compared with
 * the pins: a mismatch is reported with the key that was presented.  Then
 * GET /v1/health over the same connection: the peer answers only once it
 * has checked our certificate against its own peer list, and says which
 * node it took us for.  Needs no running daemon, only the node directory.
 */
#define _GNU_SOURCE /* getaddrinfo, struct addrinfo */
#include "nd_cli_ping.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "nd_cli_dir.h"
#include "nd_config.h"
#include "nd_state.h"
#include "sb_parse.h"
#include "sn_net.h"
#include "sn_tls.h"
#include "sn_x509.h"

typedef struct ping_target {
    char id[65];
    char url[ND_URL_MAX], pins[ND_PINS_MAX];
    char host[256], port[8];
    char seen_pin[SC_PIN_CURL_SIZE]; /* what the peer presented */
    int pin_ok;
} ping_target;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The TLS layer's lookup: record the presented key, accept it only when
 * it is one of the peer's pins. */
static int pin_lookup(void *arg, const unsigned char pin[SC_PIN_LEN], char *node_id, size_t size)
{
    ping_target *t = arg;
    char pins[ND_PINS_MAX];
    if (sn_x509_pin_to_curl(pin, t->seen_pin, sizeof t->seen_pin))
        snprintf(t->seen_pin, sizeof t->seen_pin, "(unprintable)");
    snprintf(pins, sizeof pins, "%s", t->pins);
    for (char *save = NULL, *p = strtok_r(pins, ";", &save); p; p = strtok_r(NULL, ";", &save)) {
        unsigned char want[SC_PIN_LEN];
        if (sn_x509_pin_parse(p, want, NULL) == 0 && !memcmp(want, pin, SC_PIN_LEN) &&
            strlen(t->id) < size) {
            memcpy(node_id, t->id, strlen(t->id) + 1);
            t->pin_ok = 1;
            return 0;
        }
    }
    return SC_ENOTFOUND;
}

/* https://HOST:PORT[/] or https://[V6]:PORT into host and port. */
static int split_url(ping_target *t)
{
    const char *h = t->url + 8, *end;
    if (strncmp(t->url, "https://", 8))
        return -1;
    if (*h == '[') {
        end = strchr(++h, ']');
        if (!end || end[1] != ':')
            return -1;
    } else {
        end = strrchr(h, ':');
        if (!end)
            return -1;
    }
    size_t hl = (size_t)(end - h);
    const char *p = end + (*end == ']' ? 2 : 1);
    size_t pl = strcspn(p, "/");
    int port;
    char pt[8];
    if (!hl || hl >= sizeof t->host || !pl || pl >= sizeof pt)
        return -1;
    memcpy(pt, p, pl);
    pt[pl] = 0;
    if (sb_parse_int(pt, 1, 65535, &port))
        return -1;
    memcpy(t->host, h, hl);
    t->host[hl] = 0;
    snprintf(t->port, sizeof t->port, "%d", port);
    return 0;
}

/* The peer's address and pins: the peers table, else node.conf. */
static int find_peer(const char *dir, const nd_config *cfg, ping_target *t, sc_error *e)
{
    sqlite3 *db = NULL;
    int found = 0;
    if (nd_db_open(dir, 0, &db, e) == 0) {
        if (nd_db_text(db, t->url, sizeof t->url, &found, e, "SELECT url FROM peers WHERE id=?",
                       "t", t->id) == 0 &&
            found)
            found = nd_db_text(db, t->pins, sizeof t->pins, &found, e,
                               "SELECT pins FROM peers WHERE id=?", "t", t->id) == 0 &&
                    found;
        nd_db_close(db);
    }
    for (size_t i = 0; !found && i < cfg->n_peers; i++)
        if (!strcmp(cfg->peers[i].id, t->id)) {
            snprintf(t->url, sizeof t->url, "%s", cfg->peers[i].url);
            snprintf(t->pins, sizeof t->pins, "%s", cfg->peers[i].pins);
            found = 1;
        }
    if (!found)
        return sc_error_set(e, SC_ENOTFOUND,
                            "no address for peer '%s' (sldd peer address --id %s --url ... "
                            "--tls-pin ...)",
                            t->id, t->id);
    if (split_url(t))
        return sc_error_set(e, SC_EINVAL, "peer %s: URL '%s' is not https://HOST:PORT", t->id,
                            t->url);
    return 0;
}

/* TCP connect with a deadline; returns the socket or -1 (why in e). */
static int tcp_connect(const ping_target *t, int timeout_ms, sc_error *e)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    int g = getaddrinfo(t->host, t->port, &hints, &res);
    if (g) {
        sc_error_set(e, SN_ECONNECT, "%s: %s", t->host, gai_strerror(g));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0)
            continue;
        int r = connect(fd, a->ai_addr, a->ai_addrlen);
        if (r && errno == EINPROGRESS) {
            struct pollfd p = {fd, POLLOUT, 0};
            int err = 0;
            socklen_t l = sizeof err;
            r = poll(&p, 1, timeout_ms) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) == 0
                    ? (errno = err, err ? -1 : 0)
                    : (errno = ETIMEDOUT, -1);
        }
        if (r) {
            sc_error_set(e, SN_ECONNECT, "connect to %s port %s: %s", t->host, t->port,
                         strerror(errno));
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd >= 0) {
        /* blocking from here, with the same bound on every read and write */
        struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) ||
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) ||
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv)) {
            sc_error_set(e, SC_EIO, "socket options: %s", strerror(errno));
            close(fd);
            return -1;
        }
    }
    return fd;
}

/* GET /v1/health on ssl; the status and the body (cut to size). */
static int health(SSL *ssl, const ping_target *t, int *status, char *body, size_t size, sc_error *e)
{
    char req[512], ans[4096];
    int n = snprintf(req, sizeof req,
                     "GET /v1/health HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", t->host);
    if (n < 0 || (size_t)n >= sizeof req || SSL_write(ssl, req, n) != n)
        return sc_openssl_error(e, SC_EIO, "sending the request");
    size_t got = 0;
    for (;;) {
        int r = SSL_read(ssl, ans + got, (int)(sizeof ans - 1 - got));
        if (r <= 0)
            break;
        got += (size_t)r;
        if (got == sizeof ans - 1)
            break;
    }
    ERR_clear_error();
    ans[got] = 0;
    char *sep = strstr(ans, "\r\n\r\n");
    if (!got)
        return sc_error_set(e, SC_EIO,
                            "the peer closed the connection without an answer (it "
                            "refused this node's certificate: is this node in its "
                            "peer list?)");
    if (!sep || sscanf(ans, "HTTP/1.1 %d", status) != 1)
        return sc_error_set(e, SN_EPROTO, "malformed answer");
    snprintf(body, size, "%s", sep + 4);
    body[strcspn(body, "\r\n")] = 0;
    return 0;
}

/* Handshake (timed), pin verdict, then the request (timed). */
static int ping(const nd_config *cfg, ping_target *t, int timeout_ms)
{
    sc_error e = {0, ""};
    SSL_CTX *ctx = NULL;
    SSL *ssl = NULL;
    int rc = 1, status = 0;
    char body[1024] = "";
    sn_tls_config tc = {cfg->tls_cert, cfg->tls_key, cfg->tls_ca, pin_lookup, t};
    printf("peer %s at %s\n", t->id, t->url);
    double t0 = now_ms();
    int fd = -1;
    sn_sigpipe_guard guard; /* a peer that closes mid-write is an answer, not a signal */
    sn_sigpipe_block(&guard);
    if (sn_tls_client_ctx_create(&ctx, &tc, &e)) {
        printf("  this node's TLS setup: %s\n", e.msg);
        goto out;
    }
    if ((fd = tcp_connect(t, timeout_ms, &e)) < 0) {
        printf("  unreachable: %s\n", e.msg);
        goto out;
    }
    double t1 = now_ms();
    if (!(ssl = SSL_new(ctx)) || SSL_set_fd(ssl, fd) != 1 ||
        (!strchr(t->host, ':') && SSL_set_tlsext_host_name(ssl, t->host) != 1)) {
        sc_openssl_error(&e, SC_ECRYPTO, "SSL_new");
        printf("  TLS: %s\n", e.msg);
        goto out;
    }
    int hs = SSL_connect(ssl);
    double t2 = now_ms();
    printf("  TCP connect       %.1f ms\n", t1 - t0);
    if (t->seen_pin[0])
        printf("  presented key     %s: %s\n", t->seen_pin,
               t->pin_ok ? "matches the pinned key" : "DOES NOT MATCH the pinned key");
    if (!t->pin_ok && t->seen_pin[0])
        printf("  pinned            %s\n", t->pins);
    if (hs != 1) {
        const char *why = sn_tls_refusal(ssl);
        sc_openssl_error(&e, SN_ETLS, "TLS handshake");
        printf("  TLS handshake     failed after %.1f ms: %s\n", t2 - t1, why ? why : e.msg);
        goto out;
    }
    printf("  TLS handshake     %.1f ms (%s)\n", t2 - t1, SSL_get_version(ssl));
    if (health(ssl, t, &status, body, sizeof body, &e)) {
        printf("  GET /v1/health    failed after %.1f ms: %s\n", now_ms() - t2, e.msg);
        goto out;
    }
    double t3 = now_ms();
    printf("  GET /v1/health    %.1f ms: %d %s\n", t3 - t2, status, body);
    if (status == 200) {
        printf("reachable: %.1f ms in all\n", t3 - t0);
        rc = 0;
    }
out:
    if (ssl) {
        SSL_shutdown(ssl);
        SSL_free(ssl);
    }
    ERR_clear_error();
    if (fd >= 0)
        close(fd);
    SSL_CTX_free(ctx);
    sn_sigpipe_restore(&guard);
    return rc;
}

static void ping_usage(FILE *f)
{
    fprintf(f, "usage: sldd peer ping NAME [--dir NODE] [--timeout SECONDS]\n"
               "\n"
               "Connects to peer NAME as a delivery would (mutual TLS 1.3, its pins from\n"
               "'sldd peer address' or node.conf), times the TLS handshake, says whether the\n"
               "key it presents matches the pin, and asks GET /v1/health.  Exit status 0\n"
               "when the peer answered with a matching key.  --timeout bounds the connect\n"
               "and each read or write (default 10 s).\n");
}

int nd_cli_peer_ping(int argc, char **argv)
{
    static const struct option opts[] = {{"dir", required_argument, 0, 'd'},
                                         {"id", required_argument, 0, 'i'},
                                         {"timeout", required_argument, 0, 't'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *dir = NULL, *id = NULL;
    double timeout = 10;
    int o;
    optind = 2;
    while ((o = getopt_long(argc, argv, "d:i:t:h", opts, NULL)) != -1) {
        switch (o) {
        case 'd': dir = optarg; break;
        case 'i': id = optarg; break;
        case 't':
            if (sb_parse_double(optarg, 0.1, 600, &timeout)) {
                fprintf(stderr, "sldd peer ping: --timeout wants 0.1..600 seconds\n");
                return 2;
            }
            break;
        case 'h': ping_usage(stdout); return 0;
        default: ping_usage(stderr); return 2;
        }
    }
    if (!id && optind < argc)
        id = argv[optind++];
    if (!id || optind != argc || strlen(id) >= sizeof((ping_target *)0)->id) {
        ping_usage(stderr);
        return 2;
    }
    dir = nd_cli_node_dir(dir);
    static nd_config cfg; /* large: not on the stack */
    ping_target t;
    sc_error e = {0, ""};
    memset(&t, 0, sizeof t);
    snprintf(t.id, sizeof t.id, "%s", id);
    if (nd_config_load(dir, &cfg, &e) || find_peer(dir, &cfg, &t, &e)) {
        fprintf(stderr, "sldd peer ping: %s\n", e.msg);
        return 1;
    }
    return ping(&cfg, &t, (int)(timeout * 1000));
}
