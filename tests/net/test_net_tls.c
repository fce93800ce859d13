/*
 * test_net_tls.c - the server and client end to end over loopback: mutual
 * TLS 1.3 with pinned peers, the peer protocol, and every bound.
 *
 * A test federation (CA, hospital-a serving, hospital-b a known peer,
 * hospital-c signed by the CA but not a peer, and a hospital-b certificate
 * from a foreign CA) is made in a temporary directory; the server runs in
 * a thread on 127.0.0.1 with an ephemeral port and short timeouts.  Peers:
 * the library's own libcurl client, a raw OpenSSL client that can do what
 * a well-behaved client would not (no certificate, TLS 1.2, a half-sent
 * head), and the `openssl s_client` and `curl` tools as independent
 * implementations.  Every wait is bounded; nothing asserts on time.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "../sd_test.h"
#include "sn_tls.h"
#include "sn_x509.h"
#include "sn_client.h"
#include "sn_peer.h"
#include "sn_server.h"

#define BUNDLE_CAP 4096
#define SINK_CAP   (4u << 20)

static char dir[64];
static unsigned char pin_a[SC_PIN_LEN], pin_b[SC_PIN_LEN], pin_c[SC_PIN_LEN];
static char curl_pin_a[SC_PIN_CURL_SIZE], curl_pin_c[SC_PIN_CURL_SIZE];

static const char *P(const char *name)
{
    static char bufs[16][256];
    static int next;
    char *b = bufs[next++ % 16];
    snprintf(b, 256, "%s/%s", dir, name);
    return b;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- server-side record of events and bundles ---- */

#define MAX_EVENTS 1024
static pthread_mutex_t rec_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    sn_event_kind kind;
    int status;
    char node[SC_NODE_ID_MAX + 1];
    char reason[400];
} events[MAX_EVENTS];
static int n_events;
static char seen_sender[SC_NODE_ID_MAX + 1];
static unsigned char seen_sha[32];
static int seen_bundles;

static void on_event(void *arg, const sn_event *ev)
{
    (void)arg;
    pthread_mutex_lock(&rec_lock);
    if (n_events < MAX_EVENTS) {
        events[n_events].kind = ev->kind;
        events[n_events].status = ev->status;
        snprintf(events[n_events].node, sizeof events[n_events].node, "%s",
                 ev->peer_node_id ? ev->peer_node_id : "-");
        snprintf(events[n_events].reason, sizeof events[n_events].reason, "%s", ev->reason);
        n_events++;
    }
    pthread_mutex_unlock(&rec_lock);
    if (getenv("SN_TEST_VERBOSE"))
        fprintf(stderr, "  [server] kind=%d peer=%s node=%s status=%d: %s\n", (int)ev->kind,
                ev->peer_addr, ev->peer_node_id ? ev->peer_node_id : "-", ev->status, ev->reason);
}

static int event_mark(void)
{
    int n;
    pthread_mutex_lock(&rec_lock);
    n = n_events;
    pthread_mutex_unlock(&rec_lock);
    return n;
}

/* Wait (at most ~10 s) for an event since `from` of this kind whose reason
 * contains needle; the server logs after the client already saw the end. */
static int wait_event(int from, sn_event_kind kind, const char *needle)
{
    for (int tries = 0; tries < 1000; tries++) {
        int found = 0;
        pthread_mutex_lock(&rec_lock);
        for (int i = from; i < n_events && !found; i++)
            found = events[i].kind == kind && strstr(events[i].reason, needle) != NULL;
        pthread_mutex_unlock(&rec_lock);
        if (found)
            return 1;
        sleep_ms(10);
    }
    fprintf(stderr, "no event kind %d with '%s' since %d; events were:\n", (int)kind, needle, from);
    pthread_mutex_lock(&rec_lock);
    for (int i = from; i < n_events; i++)
        fprintf(stderr, "  kind=%d status=%d node=%s: %s\n", (int)events[i].kind, events[i].status,
                events[i].node, events[i].reason);
    pthread_mutex_unlock(&rec_lock);
    return 0;
}

static void to_hex(const unsigned char *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static void on_bundle(void *arg, const sn_bundle_in *in, sn_response *resp)
{
    char hex[65];
    (void)arg;
    pthread_mutex_lock(&rec_lock);
    snprintf(seen_sender, sizeof seen_sender, "%s", in->sender_node_id);
    memcpy(seen_sha, in->body_sha256, 32);
    seen_bundles++;
    pthread_mutex_unlock(&rec_lock);
    to_hex(in->body_sha256, 32, hex);
    if (sn_response_printf(resp, 200, SN_PEER_RECEIPT_TYPE, "receipt:%s", hex) != 0)
        resp->status = 500;
}

/* POST /v1/audit-head: says who sent how much. */
static void on_audit_head(void *arg, const sn_audit_head_in *in, sn_response *resp)
{
    (void)arg;
    if (sn_response_printf(resp, 200, NULL, "head of %zu bytes from %s", in->body_len,
                           in->sender_node_id) != 0)
        resp->status = 500;
}

/* POST /v1/card: the same, for a card. */
static void on_card(void *arg, const sn_card_in *in, sn_response *resp)
{
    (void)arg;
    if (sn_response_printf(resp, 200, NULL, "card of %zu bytes from %s", in->body_len,
                           in->sender_node_id) != 0)
        resp->status = 500;
}

/* POST /v1/sink: a large-body route (bodies above curl's 100-continue
 * threshold); answers with the body's length and first byte. */
static void sink_handler(void *arg, const sn_request *req, sn_response *resp)
{
    (void)arg;
    if (sn_response_printf(resp, 200, NULL, "got %zu bytes from %s, first %d", req->body_len,
                           req->peer_node_id, req->body_len ? req->body[0] : -1) != 0)
        resp->status = 500;
}

/* GET /v1/big: a response larger than a small client cap. */
static void big_handler(void *arg, const sn_request *req, sn_response *resp)
{
    static unsigned char big[8192];
    (void)arg;
    (void)req;
    memset(big, 'x', sizeof big);
    if (sn_response_set(resp, 200, "application/octet-stream", big, sizeof big) != 0)
        resp->status = 500;
    if (sn_response_add_header(resp, "X-Test", "big") != 0)
        resp->status = 500;
}

/* ---- the server under test ---- */

typedef struct test_server {
    sn_server *s;
    pthread_t thread;
    int started;
    int run_rc;
    sc_error err;
    uint16_t port;
} test_server;

static void *server_main(void *arg)
{
    test_server *t = arg;
    t->run_rc = sn_server_run(t->s, &t->err);
    return NULL;
}

static sn_peer_service service = {"hospital-a",  BUNDLE_CAP, on_bundle, NULL,
                                  on_audit_head, NULL,       on_card,   NULL};

static int server_start(test_server *t, SSL_CTX *ctx, int max_conns, int head_timeout_ms)
{
    sn_server_config cfg;
    sc_error e;
    memset(t, 0, sizeof *t);
    memset(&cfg, 0, sizeof cfg);
    cfg.address = "127.0.0.1";
    cfg.port = 0;
    cfg.ssl_ctx = ctx;
    cfg.max_body_bytes = SINK_CAP;
    cfg.max_connections = max_conns;
    cfg.head_timeout_ms = head_timeout_ms;
    cfg.request_timeout_ms = 5000;
    cfg.io_timeout_ms = 1000;
    cfg.linger_ms = 300;
    cfg.shutdown_timeout_ms = 2000;
    cfg.on_event = on_event;
    if (sn_server_create(&t->s, &cfg, &e) != 0) {
        fprintf(stderr, "sn_server_create: %s\n", e.msg);
        return -1;
    }
    if (sn_peer_register(t->s, &service, &e) != 0 ||
        sn_server_route(t->s, "POST", "/v1/sink", SINK_CAP, sink_handler, NULL, &e) != 0 ||
        sn_server_route(t->s, "GET", "/v1/big", 0, big_handler, NULL, &e) != 0) {
        fprintf(stderr, "routes: %s\n", e.msg);
        return -1;
    }
    t->port = sn_server_port(t->s);
    if (pthread_create(&t->thread, NULL, server_main, t) != 0)
        return -1;
    t->started = 1;
    return 0;
}

static void server_stop(test_server *t)
{
    if (t->started) {
        sn_server_stop(t->s);
        pthread_join(t->thread, NULL);
        t->started = 0;
    }
    sn_server_destroy(t->s);
    t->s = NULL;
}

/* ---- a raw client: TCP, then optionally TLS, all blocking with 10 s
 * socket timeouts so that no read can hang the test ---- */

typedef struct raw_conn {
    int fd;
    SSL *ssl;
} raw_conn;

static int tcp_connect(uint16_t port)
{
    struct sockaddr_in a;
    struct timeval tv = {10, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0 ||
        connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* A client context that checks nothing about the server (the server is
 * what is being tested) and speaks exactly `version`. */
static SSL_CTX *raw_ctx(const char *cert, const char *key, int version)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return NULL;
    if (!SSL_CTX_set_min_proto_version(ctx, version) ||
        !SSL_CTX_set_max_proto_version(ctx, version) ||
        (cert && SSL_CTX_use_certificate_file(ctx, cert, SSL_FILETYPE_PEM) != 1) ||
        (key && SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    return ctx;
}

/* Returns 1 if the client side of the handshake completed. */
static int raw_open(raw_conn *r, SSL_CTX *ctx, uint16_t port)
{
    r->ssl = NULL;
    r->fd = tcp_connect(port);
    if (r->fd < 0)
        return 0;
    if (!ctx)
        return 1;
    r->ssl = SSL_new(ctx);
    if (!r->ssl || SSL_set_fd(r->ssl, r->fd) != 1)
        return 0;
    return SSL_connect(r->ssl) == 1;
}

static void raw_close(raw_conn *r)
{
    if (r->ssl)
        SSL_free(r->ssl);
    if (r->fd >= 0)
        close(r->fd);
    r->ssl = NULL;
    r->fd = -1;
    ERR_clear_error();
}

static int raw_write(raw_conn *r, const void *buf, size_t n)
{
    if (r->ssl)
        return SSL_write(r->ssl, buf, (int)n) == (int)n ? 0 : -1;
    return send(r->fd, buf, n, 0) == (ssize_t)n ? 0 : -1;
}

/* Read until the server closes.  Returns 1 if it closed (or reset), 0 if
 * the 10 s socket timeout ran out with the connection still open. */
static int raw_read_all(raw_conn *r, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (;;) {
        int got;
        errno = 0;
        if (r->ssl)
            got = SSL_read(r->ssl, out + n, (int)(cap - 1 - n));
        else
            got = (int)recv(r->fd, out + n, cap - 1 - n, 0);
        if (got <= 0) {
            int timed_out = errno == EAGAIN || errno == EWOULDBLOCK;
            out[n] = '\0';
            ERR_clear_error();
            return !timed_out;
        }
        n += (size_t)got;
        if (n + 1 >= cap) {
            out[n] = '\0';
            return 1;
        }
    }
}

/* One request over a raw TLS connection with hospital-b's certificate;
 * returns the whole answer. */
static void raw_request(SSL_CTX *ctx, uint16_t port, const char *req, size_t len, char *out,
                        size_t cap)
{
    raw_conn r;
    out[0] = '\0';
    if (raw_open(&r, ctx, port) && raw_write(&r, req, len) == 0)
        raw_read_all(&r, out, cap);
    raw_close(&r);
}

/* ---- fixture ---- */

static int make_fixture(void)
{
    sc_error e;
    sn_x509_node_req req = {NULL, NULL, 0, 30};
    const char *ids[] = {"hospital-a", "hospital-b", "hospital-c"};
    const char *files[][2] = {{"a.pem", "a.key"}, {"b.pem", "b.key"}, {"c.pem", "c.key"}};
    unsigned char *pins[] = {pin_a, pin_b, pin_c};

    if (sn_x509_make_ca(P("ca.pem"), P("ca.key"), "Test Federation CA", 30, &e) != 0 ||
        sn_x509_make_ca(P("evil-ca.pem"), P("evil-ca.key"), "Foreign CA", 30, &e) != 0) {
        fprintf(stderr, "CA: %s\n", e.msg);
        return -1;
    }
    for (int i = 0; i < 3; i++) {
        req.node_id = ids[i];
        if (sn_x509_make_node_cert(P("ca.pem"), P("ca.key"), &req, P(files[i][0]), P(files[i][1]),
                                   pins[i], &e) != 0) {
            fprintf(stderr, "node cert: %s\n", e.msg);
            return -1;
        }
    }
    req.node_id = "hospital-b";
    if (sn_x509_make_node_cert(P("evil-ca.pem"), P("evil-ca.key"), &req, P("evil-b.pem"),
                               P("evil-b.key"), NULL, &e) != 0) {
        fprintf(stderr, "foreign cert: %s\n", e.msg);
        return -1;
    }
    if (sn_x509_pin_to_curl(pin_a, curl_pin_a, sizeof curl_pin_a) != 0 ||
        sn_x509_pin_to_curl(pin_c, curl_pin_c, sizeof curl_pin_c) != 0)
        return -1;
    return 0;
}

static sn_client *make_client(const char *cert, const char *key, const char *ca, long total_ms,
                              size_t max_resp)
{
    sn_client_config cfg;
    sn_client *c = NULL;
    sc_error e;
    memset(&cfg, 0, sizeof cfg);
    cfg.cert_file = cert;
    cfg.key_file = key;
    cfg.ca_file = ca;
    cfg.connect_timeout_ms = 2000;
    cfg.total_timeout_ms = total_ms;
    cfg.max_response_bytes = max_resp;
    if (sn_client_create(&c, &cfg, &e) != 0)
        fprintf(stderr, "sn_client_create: %s\n", e.msg);
    return c;
}

static void base_url(uint16_t port, char *out, size_t n)
{
    snprintf(out, n, "https://127.0.0.1:%u", (unsigned)port);
}

/* ---- tests ---- */

static void test_good_peer(uint16_t port)
{
    sn_client *c = make_client(P("b.pem"), P("b.key"), P("ca.pem"), 5000, 65536);
    sn_client_response resp;
    sn_delivery outcome;
    sc_error e;
    unsigned char bundle[1000];
    char url[64], want[80], hex[65];
    int rc;

    CHECK(c != NULL);
    if (!c)
        return;
    base_url(port, url, sizeof url);
    sc_error_clear(&e);
    rc = sn_peer_health(c, url, curl_pin_a, &resp, &e);
    CHECKF(rc == 0 && resp.status == 200, "health: rc %d status %ld %s", rc, resp.status, e.msg);
    CHECKF(resp.body && strstr((char *)resp.body, "\"node\":\"hospital-a\"") &&
               strstr((char *)resp.body, "\"peer\":\"hospital-b\""),
           "body %s", resp.body ? (char *)resp.body : "(null)");
    CHECK(!strcmp(resp.content_type, "application/json"));
    sn_client_response_free(&resp);

    for (size_t i = 0; i < sizeof bundle; i++)
        bundle[i] = (unsigned char)(i * 7);
    rc = sn_peer_deliver(c, url, curl_pin_a, bundle, sizeof bundle, &resp, &outcome, &e);
    CHECKF(rc == 0 && resp.status == 200 && outcome == SN_DELIVERED, "deliver: %d %ld %s", rc,
           resp.status, e.msg);
    pthread_mutex_lock(&rec_lock);
    CHECK(!strcmp(seen_sender, "hospital-b"));
    CHECK(seen_bundles == 1);
    to_hex(seen_sha, 32, hex);
    pthread_mutex_unlock(&rec_lock);
    snprintf(want, sizeof want, "receipt:%s", hex);
    CHECKF(resp.body && !strcmp((char *)resp.body, want), "receipt %s",
           resp.body ? (char *)resp.body : "(null)");
    CHECK(!strcmp(resp.content_type, SN_PEER_RECEIPT_TYPE));
    sn_client_response_free(&resp);

    /* A body above curl's 100-continue threshold goes through the
     * "Expect: 100-continue" path. */
    {
        size_t big = 2u << 20;
        unsigned char *body = malloc(big);
        char path[96];
        CHECK(body != NULL);
        if (body) {
            memset(body, 42, big);
            snprintf(path, sizeof path, "%s/v1/sink", url);
            rc = sn_client_request(c, "POST", path, curl_pin_a, "application/octet-stream", body,
                                   big, &resp, &e);
            CHECKF(rc == 0 && resp.status == 200 && resp.body &&
                       strstr((char *)resp.body, "got 2097152 bytes from hospital-b, first 42"),
                   "sink: %d %ld %s", rc, resp.status, rc ? e.msg : (char *)resp.body);
            sn_client_response_free(&resp);
            free(body);
        }
    }
    sn_client_destroy(c);
}

static void test_refused_clients(uint16_t port)
{
    sn_client *foreign = make_client(P("evil-b.pem"), P("evil-b.key"), P("ca.pem"), 5000, 65536);
    sn_client *unknown = make_client(P("c.pem"), P("c.key"), P("ca.pem"), 5000, 65536);
    SSL_CTX *nocert = raw_ctx(NULL, NULL, TLS1_3_VERSION);
    SSL_CTX *tls12 = raw_ctx(P("b.pem"), P("b.key"), TLS1_2_VERSION);
    sn_client_response resp;
    sc_error e;
    char url[64], out[4096];
    int rc, mark, ok;

    base_url(port, url, sizeof url);
    CHECK(foreign && unknown && nocert && tls12);

    /* No client certificate: refused in the handshake, no HTTP answer. */
    mark = event_mark();
    {
        raw_conn r;
        const char req[] = "GET /v1/health HTTP/1.1\r\nHost: a\r\n\r\n";
        raw_open(&r, nocert, port); /* the client side may finish: TLS 1.3 */
        if (r.ssl)
            raw_write(&r, req, sizeof req - 1);
        ok = raw_read_all(&r, out, sizeof out);
        raw_close(&r);
        CHECK(ok == 1);
        CHECKF(!strstr(out, "HTTP/1.1"), "got an answer without a certificate: %s", out);
    }
    CHECK(wait_event(mark, SN_EV_TLS_REFUSED, "did not return a certificate"));

    /* A certificate from another CA. */
    mark = event_mark();
    rc = sn_peer_health(foreign, url, curl_pin_a, &resp, &e);
    CHECKF(rc == SN_ETLS, "foreign CA: rc %d (%s) status %ld", rc, e.msg, resp.status);
    sn_client_response_free(&resp);
    CHECK(wait_event(mark, SN_EV_TLS_REFUSED, "unable to get local issuer certificate"));

    /* The federation's CA, but not in the peer list. */
    mark = event_mark();
    rc = sn_peer_health(unknown, url, curl_pin_a, &resp, &e);
    CHECKF(rc == SN_ETLS, "unknown peer: rc %d (%s) status %ld", rc, e.msg, resp.status);
    sn_client_response_free(&resp);
    CHECK(wait_event(mark, SN_EV_TLS_REFUSED, "is not in the peer list"));

    /* TLS 1.2, with an otherwise good certificate. */
    mark = event_mark();
    {
        raw_conn r;
        int connected = raw_open(&r, tls12, port);
        raw_close(&r);
        CHECK(!connected);
    }
    CHECK(wait_event(mark, SN_EV_TLS_REFUSED, "unsupported protocol"));

    SSL_CTX_free(nocert);
    SSL_CTX_free(tls12);
    sn_client_destroy(foreign);
    sn_client_destroy(unknown);
}

static void test_limits(test_server *t)
{
    sn_client *c = make_client(P("b.pem"), P("b.key"), P("ca.pem"), 5000, 65536);
    SSL_CTX *good = raw_ctx(P("b.pem"), P("b.key"), TLS1_3_VERSION);
    sn_client_response resp;
    sn_delivery outcome;
    sn_server_stats st0, st1;
    sc_error e;
    char url[64], out[8192];
    unsigned char bundle[BUNDLE_CAP + 1];
    int rc, mark, seen_before;

    CHECK(c && good);
    if (!c || !good)
        goto out;
    base_url(t->port, url, sizeof url);

    /* Oversized bundle: 413 from the server, the handler never runs. */
    memset(bundle, 1, sizeof bundle);
    pthread_mutex_lock(&rec_lock);
    seen_before = seen_bundles;
    pthread_mutex_unlock(&rec_lock);
    sn_server_get_stats(t->s, &st0);
    rc = sn_peer_deliver(c, url, curl_pin_a, bundle, sizeof bundle, &resp, &outcome, &e);
    CHECKF(rc == 0 && resp.status == 413 && outcome == SN_REFUSED, "oversized: %d %ld %s", rc,
           resp.status, e.msg);
    sn_client_response_free(&resp);
    sn_server_get_stats(t->s, &st1);
    CHECK(st1.handled == st0.handled);
    pthread_mutex_lock(&rec_lock);
    CHECK(seen_bundles == seen_before);
    pthread_mutex_unlock(&rec_lock);

    /* 413 is decided on Content-Length alone: a claimed gigabyte is
     * refused without a byte of it being sent, with or without Expect. */
    {
        const char req[] = "POST /v1/bundles HTTP/1.1\r\nHost: a\r\n"
                           "Content-Length: 1000000000\r\n\r\n";
        const char req2[] = "POST /v1/bundles HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                            "Content-Length: 1000000000\r\n\r\n";
        raw_request(good, t->port, req, sizeof req - 1, out, sizeof out);
        CHECKF(!strncmp(out, "HTTP/1.1 413 ", 13), "got: %.80s", out);
        CHECK(strstr(out, "exceeds the limit of 4096 bytes") != NULL);
        raw_request(good, t->port, req2, sizeof req2 - 1, out, sizeof out);
        CHECKF(!strncmp(out, "HTTP/1.1 413 ", 13), "got: %.80s", out);
        CHECK(!strstr(out, "100 Continue"));
    }

    /* A bundle over a raw connection, head and body in one write. */
    {
        char req[256];
        int n = snprintf(req, sizeof req,
                         "POST /v1/bundles HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
        raw_request(good, t->port, req, (size_t)n, out, sizeof out);
        CHECKF(!strncmp(out, "HTTP/1.1 200 OK\r\n", 17) && strstr(out, "\r\n\r\nreceipt:"),
               "got: %.200s", out);
        CHECK(strstr(out, "Connection: close\r\n") != NULL);
    }

    /* Head too large: 431. */
    {
        size_t n = 0;
        char *req = malloc(12000);
        CHECK(req != NULL);
        if (req) {
            n += (size_t)snprintf(req, 12000, "GET /v1/health HTTP/1.1\r\nHost: a\r\nX-Pad: ");
            memset(req + n, 'p', 9000);
            n += 9000;
            n += (size_t)snprintf(req + n, 12000 - n, "\r\n\r\n");
            raw_request(good, t->port, req, n, out, sizeof out);
            CHECKF(!strncmp(out, "HTTP/1.1 431 ", 13), "got: %.80s", out);
            free(req);
        }
    }

    /* Syntax and routing. */
    {
        const char no_host[] = "GET /v1/health HTTP/1.1\r\n\r\n";
        const char no_path[] = "GET /v1/nothing HTTP/1.1\r\nHost: a\r\n\r\n";
        const char bad_method[] = "DELETE /v1/health HTTP/1.1\r\nHost: a\r\n\r\n";
        const char no_length[] = "POST /v1/bundles HTTP/1.1\r\nHost: a\r\n\r\n";
        const char chunked[] = "POST /v1/bundles HTTP/1.1\r\nHost: a\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        raw_request(good, t->port, no_host, sizeof no_host - 1, out, sizeof out);
        CHECKF(!strncmp(out, "HTTP/1.1 400 ", 13), "got: %.80s", out);
        raw_request(good, t->port, no_path, sizeof no_path - 1, out, sizeof out);
        CHECKF(!strncmp(out, "HTTP/1.1 404 ", 13), "got: %.80s", out);
        raw_request(good, t->port, bad_method, sizeof bad_method - 1, out, sizeof out);
        CHECKF(!strncmp(out, "HTTP/1.1 405 ", 13) && strstr(out, "\r\nAllow: GET\r\n"),
               "got: %.200s", out);
        raw_request(good, t->port, no_length, sizeof no_length - 1, out, sizeof out);
        CHECKF(!strncmp(out, "HTTP/1.1 411 ", 13), "got: %.80s", out);
        raw_request(good, t->port, chunked, sizeof chunked - 1, out, sizeof out);
        CHECKF(!strncmp(out, "HTTP/1.1 501 ", 13), "got: %.80s", out);
    }

    /* Slowloris: half a head, then nothing.  The head timeout closes it. */
    mark = event_mark();
    sn_server_get_stats(t->s, &st0);
    {
        raw_conn r;
        const char half[] = "GET /v1/health HTTP/1.1\r\nHost: a\r\n";
        int closed = 0;
        if (raw_open(&r, good, t->port) && raw_write(&r, half, sizeof half - 1) == 0)
            closed = raw_read_all(&r, out, sizeof out);
        raw_close(&r);
        CHECKF(closed == 1, "slow client was not cut off");
        CHECK(!strstr(out, "HTTP/1.1"));
    }
    CHECK(wait_event(mark, SN_EV_TIMEOUT, "request head not received"));
    /* A TCP client that never starts TLS is cut off the same way. */
    {
        raw_conn r;
        int closed = 0;
        if (raw_open(&r, NULL, t->port))
            closed = raw_read_all(&r, out, sizeof out);
        raw_close(&r);
        CHECKF(closed == 1, "silent TCP client was not cut off");
    }
    CHECK(wait_event(mark, SN_EV_TIMEOUT, "TLS handshake not finished"));
    /* A body that stops coming: the idle read timeout closes it, and the
     * handler never sees a partial bundle. */
    pthread_mutex_lock(&rec_lock);
    seen_before = seen_bundles;
    pthread_mutex_unlock(&rec_lock);
    {
        raw_conn r;
        const char part[] = "POST /v1/bundles HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n"
                            "0123456789";
        int closed = 0;
        if (raw_open(&r, good, t->port) && raw_write(&r, part, sizeof part - 1) == 0)
            closed = raw_read_all(&r, out, sizeof out);
        raw_close(&r);
        CHECKF(closed == 1, "stalled body was not cut off");
        CHECK(!strstr(out, "HTTP/1.1"));
    }
    CHECK(wait_event(mark, SN_EV_TIMEOUT, "no read progress"));
    pthread_mutex_lock(&rec_lock);
    CHECK(seen_bundles == seen_before);
    pthread_mutex_unlock(&rec_lock);
    sn_server_get_stats(t->s, &st1);
    CHECK(st1.timeouts >= st0.timeouts + 3);

out:
    SSL_CTX_free(good);
    sn_client_destroy(c);
}

/* A TLS 1.2-only server for one connection, to show the client refuses
 * to go below TLS 1.3. */
typedef struct tls12_server {
    int lfd;
    SSL_CTX *ctx;
    int handshake_ok;
} tls12_server;

static void *tls12_main(void *arg)
{
    tls12_server *t = arg;
    struct timeval tv = {10, 0};
    int fd = accept(t->lfd, NULL, NULL);
    SSL *ssl;
    if (fd < 0)
        return NULL;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ssl = SSL_new(t->ctx);
    if (ssl && SSL_set_fd(ssl, fd) == 1)
        t->handshake_ok = SSL_accept(ssl) == 1;
    SSL_free(ssl);
    close(fd);
    ERR_clear_error();
    return NULL;
}

static void test_client_tls12_server(void)
{
    sn_client *c = make_client(P("b.pem"), P("b.key"), P("ca.pem"), 5000, 65536);
    tls12_server t;
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    pthread_t th;
    sn_client_response resp;
    sc_error e;
    char url[96];
    int rc;

    memset(&t, 0, sizeof t);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    t.ctx = SSL_CTX_new(TLS_server_method());
    t.lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (!c || !t.ctx || t.lfd < 0 || !SSL_CTX_set_min_proto_version(t.ctx, TLS1_2_VERSION) ||
        !SSL_CTX_set_max_proto_version(t.ctx, TLS1_2_VERSION) ||
        SSL_CTX_use_certificate_file(t.ctx, P("a.pem"), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_use_PrivateKey_file(t.ctx, P("a.key"), SSL_FILETYPE_PEM) != 1 ||
        bind(t.lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(t.lfd, 4) != 0 ||
        getsockname(t.lfd, (struct sockaddr *)&a, &len) != 0 ||
        pthread_create(&th, NULL, tls12_main, &t) != 0) {
        CHECK(0);
        goto out;
    }
    snprintf(url, sizeof url, "https://127.0.0.1:%u/v1/health", (unsigned)ntohs(a.sin_port));
    rc = sn_client_request(c, "GET", url, curl_pin_a, NULL, NULL, 0, &resp, &e);
    CHECKF(rc == SN_ETLS, "TLS 1.2 server: rc %d %s", rc, e.msg);
    sn_client_response_free(&resp);
    pthread_join(th, NULL);
    CHECK(!t.handshake_ok);
out:
    if (t.lfd >= 0)
        close(t.lfd);
    SSL_CTX_free(t.ctx);
    sn_client_destroy(c);
}

/* The SIGPIPE guard: a write to a closed socket fails with EPIPE instead
 * of killing the process, and no SIGPIPE is left pending. */
static void test_sigpipe_guard(void)
{
    int sv[2];
    sn_sigpipe_guard g;
    sigset_t pending;
    ssize_t n;
    int e;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
        CHECK(0);
        return;
    }
    close(sv[1]);
    sn_sigpipe_block(&g);
    n = write(sv[0], "x", 1);
    e = errno;
    sn_sigpipe_restore(&g);
    CHECK(n < 0 && e == EPIPE);
    CHECK(sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 0);
    close(sv[0]);
}

static void test_client_side(uint16_t port)
{
    sn_client *c = make_client(P("b.pem"), P("b.key"), P("ca.pem"), 5000, 1024);
    sn_client *wrong_ca = make_client(P("b.pem"), P("b.key"), P("evil-ca.pem"), 5000, 65536);
    sn_client *quick = make_client(P("b.pem"), P("b.key"), P("ca.pem"), 1000, 65536);
    sn_client_response resp;
    sc_error e;
    char url[96];
    int rc;

    CHECK(c && wrong_ca && quick);
    if (!c || !wrong_ca || !quick)
        goto out;

    /* Response larger than the client's cap. */
    snprintf(url, sizeof url, "https://127.0.0.1:%u/v1/big", (unsigned)port);
    rc = sn_client_request(c, "GET", url, curl_pin_a, NULL, NULL, 0, &resp, &e);
    CHECKF(rc == SN_ETOOBIG, "rc %d %s", rc, e.msg);
    sn_client_response_free(&resp);

    /* The server's key is not the pinned one. */
    snprintf(url, sizeof url, "https://127.0.0.1:%u/v1/health", (unsigned)port);
    rc = sn_client_request(c, "GET", url, curl_pin_c, NULL, NULL, 0, &resp, &e);
    CHECKF(rc == SN_ETLS, "rc %d %s", rc, e.msg);
    sn_client_response_free(&resp);

    /* Several pins: any one matching will do (key rotation overlap). */
    {
        char both[SC_PIN_CURL_SIZE + SC_PIN_HEX_SIZE + 1], hex_a[SC_PIN_HEX_SIZE];
        CHECK(sn_x509_pin_to_hex(pin_a, hex_a, sizeof hex_a) == 0);
        snprintf(both, sizeof both, "%s;%s", curl_pin_c, hex_a);
        rc = sn_client_request(c, "GET", url, both, NULL, NULL, 0, &resp, &e);
        CHECKF(rc == 0 && resp.status == 200, "rc %d %s", rc, e.msg);
        sn_client_response_free(&resp);
        snprintf(both, sizeof both, "%s;", curl_pin_c);
        rc = sn_client_request(c, "GET", url, both, NULL, NULL, 0, &resp, &e);
        CHECK(rc == SC_EFORMAT);
    }

    /* An audit head: the sender's id reaches the callback; the cap is the
     * route's own, far below the bundles'; an empty head is refused. */
    {
        static char head[SN_PEER_AUDIT_HEAD_MAX + 1];
        sn_delivery out;
        char base[64];
        memset(head, 'h', sizeof head);
        snprintf(base, sizeof base, "https://127.0.0.1:%u", (unsigned)port);
        rc = sn_peer_send_audit_head(c, base, curl_pin_a, head, SN_PEER_AUDIT_HEAD_MAX, &resp, &out,
                                     &e);
        CHECKF(rc == 0 && resp.status == 200 && out == SN_DELIVERED && resp.body &&
                   strstr((char *)resp.body, "head of 1024 bytes from hospital-b"),
               "rc %d status %ld %s", rc, resp.status, e.msg);
        sn_client_response_free(&resp);
        rc = sn_peer_send_audit_head(c, base, curl_pin_a, head, sizeof head, &resp, &out, &e);
        CHECKF(rc == 0 && resp.status == 413 && out == SN_REFUSED, "rc %d status %ld", rc,
               resp.status);
        sn_client_response_free(&resp);
        snprintf(url, sizeof url, "%s%s", base, SN_PEER_AUDIT_HEAD_PATH);
        rc = sn_client_request(c, "POST", url, curl_pin_a, SN_PEER_AUDIT_HEAD_TYPE, NULL, 0, &resp,
                               &e);
        CHECKF(rc == 0 && resp.status == 400, "rc %d status %ld", rc, resp.status);
        sn_client_response_free(&resp);
    }

    /* A contact card: the same route shape with its own, larger cap. */
    {
        static char card[SN_PEER_CARD_MAX + 1];
        sn_delivery out;
        char base[64];
        memset(card, 'k', sizeof card);
        snprintf(base, sizeof base, "https://127.0.0.1:%u", (unsigned)port);
        rc = sn_peer_send_card(c, base, curl_pin_a, card, SN_PEER_CARD_MAX, &resp, &out, &e);
        CHECKF(rc == 0 && resp.status == 200 && out == SN_DELIVERED && resp.body &&
                   strstr((char *)resp.body, "card of 65536 bytes from hospital-b"),
               "rc %d status %ld %s", rc, resp.status, e.msg);
        sn_client_response_free(&resp);
        rc = sn_peer_send_card(c, base, curl_pin_a, card, sizeof card, &resp, &out, &e);
        CHECKF(rc == 0 && resp.status == 413 && out == SN_REFUSED, "rc %d status %ld", rc,
               resp.status);
        sn_client_response_free(&resp);
    }

    /* The server's certificate is not from the CA the client trusts. */
    rc = sn_client_request(wrong_ca, "GET", url, curl_pin_a, NULL, NULL, 0, &resp, &e);
    CHECKF(rc == SN_ETLS, "rc %d %s", rc, e.msg);
    sn_client_response_free(&resp);

    /* No pin, plain http, and a bad pin string are refused before sending. */
    rc = sn_client_request(c, "GET", url, NULL, NULL, NULL, 0, &resp, &e);
    CHECK(rc == SC_EINVAL);
    rc = sn_client_request(c, "GET", "http://127.0.0.1:1/v1/health", curl_pin_a, NULL, NULL, 0,
                           &resp, &e);
    CHECK(rc == SC_EINVAL);
    rc = sn_client_request(c, "GET", url, "sha256//nope", NULL, NULL, 0, &resp, &e);
    CHECK(rc == SC_EFORMAT);

    /* A listener that accepts TCP but never answers: the total timeout. */
    {
        int l = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a;
        socklen_t len = sizeof a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (l >= 0 && bind(l, (struct sockaddr *)&a, sizeof a) == 0 && listen(l, 4) == 0 &&
            getsockname(l, (struct sockaddr *)&a, &len) == 0) {
            snprintf(url, sizeof url, "https://127.0.0.1:%u/v1/health",
                     (unsigned)ntohs(a.sin_port));
            rc = sn_client_request(quick, "GET", url, curl_pin_a, NULL, NULL, 0, &resp, &e);
            CHECKF(rc == SN_ETIMEOUT, "rc %d %s", rc, e.msg);
            CHECK(sn_peer_classify(rc, resp.status) == SN_RETRY);
            sn_client_response_free(&resp);
        } else {
            CHECK(0);
        }
        if (l >= 0)
            close(l);
        /* Now nothing listens there: connection refused. */
        rc = sn_client_request(quick, "GET", url, curl_pin_a, NULL, NULL, 0, &resp, &e);
        CHECKF(rc == SN_ECONNECT, "rc %d %s", rc, e.msg);
        sn_client_response_free(&resp);
    }

    CHECK(sn_peer_classify(0, 200) == SN_DELIVERED);
    CHECK(sn_peer_classify(0, 503) == SN_RETRY);
    CHECK(sn_peer_classify(0, 429) == SN_RETRY);
    CHECK(sn_peer_classify(0, 408) == SN_RETRY);
    CHECK(sn_peer_classify(0, 403) == SN_REFUSED);
    CHECK(sn_peer_classify(0, 413) == SN_REFUSED);
    CHECK(sn_peer_classify(SN_ETLS, 0) == SN_RETRY);
out:
    sn_client_destroy(c);
    sn_client_destroy(wrong_ca);
    sn_client_destroy(quick);
}

static int have_tool(const char *path)
{
    return !strstr(path, "NOTFOUND") && access(path, X_OK) == 0;
}

static int run_capture(const char *cmd, char *out, size_t out_size)
{
    FILE *p = popen(cmd, "r");
    size_t n = 0;
    out[0] = '\0';
    if (!p)
        return -1;
    while (n + 1 < out_size) {
        size_t r = fread(out + n, 1, out_size - 1 - n, p);
        if (r == 0)
            break;
        n += r;
    }
    out[n] = '\0';
    return pclose(p);
}

/* Independent peers: OpenSSL's s_client and the curl tool. */
static void test_tools(uint16_t port)
{
    char cmd[2048], out[16384];
    const char *req = "printf 'GET /v1/health HTTP/1.1\\r\\nHost: localhost\\r\\n"
                      "Connection: close\\r\\n\\r\\n'";
    int rc, mark;

    if (!have_tool(SN_TEST_OPENSSL)) {
        printf("openssl CLI not found: skipping the s_client checks\n");
    } else {
        snprintf(cmd, sizeof cmd,
                 "%s | timeout 20 '%s' s_client -connect 127.0.0.1:%u -servername localhost "
                 "-CAfile '%s' -cert '%s' -key '%s' -tls1_3 -brief -ign_eof 2>&1",
                 req, SN_TEST_OPENSSL, (unsigned)port, P("ca.pem"), P("b.pem"), P("b.key"));
        rc = run_capture(cmd, out, sizeof out);
        CHECKF(strstr(out, "Protocol version: TLSv1.3") && strstr(out, "HTTP/1.1 200 OK") &&
                   strstr(out, "\"peer\":\"hospital-b\""),
               "s_client with certificate (rc %d):\n%s", rc, out);

        mark = event_mark();
        snprintf(cmd, sizeof cmd,
                 "%s | timeout 20 '%s' s_client -connect 127.0.0.1:%u -servername localhost "
                 "-CAfile '%s' -tls1_3 -brief -ign_eof 2>&1",
                 req, SN_TEST_OPENSSL, (unsigned)port, P("ca.pem"));
        rc = run_capture(cmd, out, sizeof out);
        CHECKF(!strstr(out, "HTTP/1.1"), "s_client without certificate (rc %d):\n%s", rc, out);
        CHECK(wait_event(mark, SN_EV_TLS_REFUSED, "did not return a certificate"));

        mark = event_mark();
        snprintf(cmd, sizeof cmd,
                 "%s | timeout 20 '%s' s_client -connect 127.0.0.1:%u -servername localhost "
                 "-CAfile '%s' -cert '%s' -key '%s' -tls1_2 -brief -ign_eof 2>&1",
                 req, SN_TEST_OPENSSL, (unsigned)port, P("ca.pem"), P("b.pem"), P("b.key"));
        rc = run_capture(cmd, out, sizeof out);
        CHECKF(rc != 0 && !strstr(out, "HTTP/1.1") && !strstr(out, "TLSv1.3"),
               "s_client -tls1_2 (rc %d):\n%s", rc, out);
        CHECK(wait_event(mark, SN_EV_TLS_REFUSED, "unsupported protocol"));
    }

    if (!have_tool(SN_TEST_CURL)) {
        printf("curl tool not found: skipping the curl checks\n");
        return;
    }
    snprintf(cmd, sizeof cmd,
             "timeout 20 '%s' -sS --noproxy '*' --tlsv1.3 --cacert '%s' --cert '%s' --key '%s' "
             "https://127.0.0.1:%u/v1/health 2>&1",
             SN_TEST_CURL, P("ca.pem"), P("b.pem"), P("b.key"), (unsigned)port);
    rc = run_capture(cmd, out, sizeof out);
    CHECKF(rc == 0 && strstr(out, "\"peer\":\"hospital-b\""), "curl (rc %d): %s", rc, out);
    snprintf(cmd, sizeof cmd,
             "timeout 20 '%s' -sS --noproxy '*' --tlsv1.3 --cacert '%s' "
             "https://127.0.0.1:%u/v1/health 2>&1",
             SN_TEST_CURL, P("ca.pem"), (unsigned)port);
    rc = run_capture(cmd, out, sizeof out);
    CHECKF(rc != 0 && !strstr(out, "\"status\""), "curl without cert (rc %d): %s", rc, out);
    snprintf(cmd, sizeof cmd,
             "timeout 20 '%s' -sS --noproxy '*' --tlsv1.2 --tls-max 1.2 --cacert '%s' "
             "--cert '%s' --key '%s' https://127.0.0.1:%u/v1/health 2>&1",
             SN_TEST_CURL, P("ca.pem"), P("b.pem"), P("b.key"), (unsigned)port);
    rc = run_capture(cmd, out, sizeof out);
    CHECKF(rc != 0 && !strstr(out, "\"status\""), "curl TLS 1.2 (rc %d): %s", rc, out);
    snprintf(cmd, sizeof cmd,
             "timeout 20 '%s' -sS --noproxy '*' --tlsv1.3 --cacert '%s' --cert '%s' --key '%s' "
             "https://127.0.0.1:%u/v1/health 2>&1",
             SN_TEST_CURL, P("ca.pem"), P("c.pem"), P("c.key"), (unsigned)port);
    rc = run_capture(cmd, out, sizeof out);
    CHECKF(rc != 0 && !strstr(out, "\"status\""), "curl unknown peer (rc %d): %s", rc, out);
}

/* Certificates made by the openssl tool, as a hospital CA would issue
 * them: the node id comes from the pin, not the CN (a host name here), and
 * a certificate without clientAuth is refused when used by a client. */
static void make_cli_cert(const char *name, const char *eku, char *out, size_t out_size)
{
    char cmd[2048];
    FILE *f;
    snprintf(cmd, sizeof cmd, "%s.ext", name);
    f = fopen(P(cmd), "w");
    if (!f)
        return;
    fprintf(f, "extendedKeyUsage=%s\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n", eku);
    fclose(f);
    snprintf(cmd, sizeof cmd,
             "cd '%s' && '%s' req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "-keyout %s.key -out %s.csr -subj /CN=sldd01.radiology.example.org 2>&1 && "
             "'%s' x509 -req -in %s.csr -CA ca.pem -CAkey ca.key -set_serial 7 -days 1 "
             "-out %s.pem -extfile %s.ext 2>&1",
             dir, SN_TEST_OPENSSL, name, name, SN_TEST_OPENSSL, name, name, name);
    run_capture(cmd, out, out_size);
}

static void test_external_certs(uint16_t port, sn_tls_peers *peers)
{
    char out[8192], cmd[2048];
    unsigned char pin[SC_PIN_LEN];
    sc_error e;
    int mark;

    if (!have_tool(SN_TEST_OPENSSL)) {
        printf("openssl CLI not found: skipping the externally made certificates\n");
        return;
    }
    make_cli_cert("ext-good", "serverAuth,clientAuth", out, sizeof out);
    make_cli_cert("ext-server", "serverAuth", out, sizeof out);
    CHECKF(sn_x509_spki_pin_file(P("ext-good.pem"), pin, &e) == 0, "%s / %s", e.msg, out);
    CHECK(sn_tls_peers_add(peers, "hospital-d", pin, &e) == 0);
    CHECKF(sn_x509_spki_pin_file(P("ext-server.pem"), pin, &e) == 0, "%s / %s", e.msg, out);
    CHECK(sn_tls_peers_add(peers, "hospital-e", pin, &e) == 0);

    snprintf(cmd, sizeof cmd,
             "printf 'GET /v1/health HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n' | "
             "timeout 20 '%s' s_client -connect 127.0.0.1:%u -CAfile '%s' -cert '%s' "
             "-key '%s' -tls1_3 -brief -ign_eof 2>&1",
             SN_TEST_OPENSSL, (unsigned)port, P("ca.pem"), P("ext-good.pem"), P("ext-good.key"));
    run_capture(cmd, out, sizeof out);
    CHECKF(strstr(out, "HTTP/1.1 200 OK") && strstr(out, "\"peer\":\"hospital-d\""),
           "externally made certificate:\n%s", out);

    mark = event_mark();
    snprintf(cmd, sizeof cmd,
             "printf 'GET /v1/health HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n' | "
             "timeout 20 '%s' s_client -connect 127.0.0.1:%u -CAfile '%s' -cert '%s' "
             "-key '%s' -tls1_3 -brief -ign_eof 2>&1",
             SN_TEST_OPENSSL, (unsigned)port, P("ca.pem"), P("ext-server.pem"),
             P("ext-server.key"));
    run_capture(cmd, out, sizeof out);
    CHECKF(!strstr(out, "HTTP/1.1"), "serverAuth-only certificate got an answer:\n%s", out);
    CHECK(wait_event(mark, SN_EV_TLS_REFUSED, "unsuitable certificate purpose"));
}

/* A server with room for two connections drops the third at once. */
static void test_max_connections(SSL_CTX *ctx)
{
    test_server t;
    sn_server_stats st;
    raw_conn r1, r2, r3;
    char out[256];
    int closed;

    if (server_start(&t, ctx, 2, 3000) != 0) {
        CHECK(0);
        return;
    }
    raw_open(&r1, NULL, t.port);
    raw_open(&r2, NULL, t.port);
    for (int i = 0; i < 500; i++) {
        sn_server_get_stats(t.s, &st);
        if (st.active >= 2)
            break;
        sleep_ms(10);
    }
    CHECK(st.active == 2);
    raw_open(&r3, NULL, t.port);
    closed = raw_read_all(&r3, out, sizeof out);
    raw_close(&r3);
    CHECK(closed == 1);
    sn_server_get_stats(t.s, &st);
    CHECK(st.busy_dropped == 1);
    raw_close(&r1);
    raw_close(&r2);
    /* Once they are gone, a peer gets in again. */
    for (int i = 0; i < 500; i++) {
        sn_server_get_stats(t.s, &st);
        if (st.active == 0)
            break;
        sleep_ms(10);
    }
    {
        sn_client *c = make_client(P("b.pem"), P("b.key"), P("ca.pem"), 5000, 65536);
        sn_client_response resp;
        sc_error e;
        char url[64];
        base_url(t.port, url, sizeof url);
        CHECK(c && sn_peer_health(c, url, curl_pin_a, &resp, &e) == 0 && resp.status == 200);
        sn_client_response_free(&resp);
        sn_client_destroy(c);
    }
    server_stop(&t);
    CHECK(t.run_rc == 0);
}

static sn_server *signal_target;

static void on_sigusr1(int sig)
{
    (void)sig;
    sn_server_stop(signal_target);
}

/* Stop from a signal handler while a client is connected: the loop drains
 * and returns, and the port no longer accepts. */
static void test_signal_stop(test_server *t)
{
    struct sigaction sa;
    raw_conn idle;
    int fd;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigusr1;
    sigemptyset(&sa.sa_mask);
    signal_target = t->s;
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
    raw_open(&idle, NULL, t->port);
    CHECK(raise(SIGUSR1) == 0);
    pthread_join(t->thread, NULL);
    t->started = 0;
    CHECKF(t->run_rc == 0, "%s", t->err.msg);
    fd = tcp_connect(t->port);
    CHECK(fd < 0);
    if (fd >= 0)
        close(fd);
    raw_close(&idle);
    signal(SIGUSR1, SIG_DFL);
}

int main(void)
{
    SSL_CTX *server_ctx = NULL;
    sn_tls_peers *peers = NULL;
    sn_tls_config tcfg;
    test_server t;
    sc_error e;
    char cmd[128];
    int fixture_ok;

    test_sigpipe_guard();     /* first, while SIGPIPE still kills the process */
    signal(SIGPIPE, SIG_IGN); /* the raw test clients write to closed sockets */
    snprintf(dir, sizeof dir, "/tmp/sn_tls_XXXXXX");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    fixture_ok = make_fixture() == 0;
    CHECK(fixture_ok);
    if (!fixture_ok)
        goto out;
    CHECK(sn_tls_peers_create(&peers, &e) == 0);
    CHECK(sn_tls_peers_add(peers, "hospital-b", pin_b, &e) == 0);
    memset(&tcfg, 0, sizeof tcfg);
    tcfg.cert_file = P("a.pem");
    tcfg.key_file = P("a.key");
    tcfg.ca_file = P("ca.pem");
    tcfg.lookup = sn_tls_peers_lookup;
    tcfg.lookup_arg = peers;
    if (sn_tls_server_ctx_create(&server_ctx, &tcfg, &e) != 0) {
        fprintf(stderr, "server ctx: %s\n", e.msg);
        CHECK(0);
        goto out;
    }
    if (server_start(&t, server_ctx, 16, 1000) != 0) {
        CHECK(0);
        goto out;
    }
    test_good_peer(t.port);
    test_refused_clients(t.port);
    test_limits(&t);
    test_client_side(t.port);
    test_client_tls12_server();
    test_tools(t.port);
    test_external_certs(t.port, peers);
    test_max_connections(server_ctx);

    /* Removing a peer takes effect on its next connection. */
    {
        sn_client *c = make_client(P("b.pem"), P("b.key"), P("ca.pem"), 5000, 65536);
        sn_client_response resp;
        char url[64];
        int rc, mark = event_mark();
        base_url(t.port, url, sizeof url);
        CHECK(sn_tls_peers_remove_node(peers, "hospital-b") == 1);
        rc = c ? sn_peer_health(c, url, curl_pin_a, &resp, &e) : -1;
        CHECKF(rc == SN_ETLS, "removed peer: rc %d", rc);
        sn_client_response_free(&resp);
        CHECK(wait_event(mark, SN_EV_TLS_REFUSED, "is not in the peer list"));
        sn_client_destroy(c);
    }

    test_signal_stop(&t);
    sn_server_destroy(t.s);
out:
    SSL_CTX_free(server_ctx);
    sn_tls_peers_destroy(peers);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return sd_test_finish();
}
