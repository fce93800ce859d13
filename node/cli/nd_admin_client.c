/*
 * nd_admin_client.c - one admin API request over NODE/admin.sock (see
 * nd_admin_client.h).
 */
#include "nd_admin_client.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "nd_admin_api.h"
#include "nd_buf.h"

#define ANSWER_MAX ((size_t)80 << 20)
#define TIMEOUT_MS 120000

static int connect_admin(const char *node_dir, int *fd_out, sc_error *e)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if ((size_t)snprintf(sa.sun_path, sizeof sa.sun_path, "%s/%s", node_dir, ND_ADMIN_SOCKET) >=
        sizeof sa.sun_path)
        return sc_error_set(e, SC_EINVAL, "%s: path too long for a unix socket", node_dir);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return sc_error_set(e, SC_EIO, "socket: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa)) {
        int err = errno;
        close(fd);
        if (err == ENOENT || err == ECONNREFUSED)
            return sc_error_set(e, SC_ENOTFOUND,
                                "no node daemon runs in %s (start 'sldd serve "
                                "--dir %s')",
                                node_dir, node_dir);
        return sc_error_set(e, SC_EIO, "%s: %s", sa.sun_path, strerror(err));
    }
    *fd_out = fd;
    return 0;
}

int nd_api_available(const char *node_dir)
{
    int fd;
    sc_error e = {0, ""};
    if (connect_admin(node_dir, &fd, &e))
        return 0;
    close(fd);
    return 1;
}

static int io_wait(int fd, short ev)
{
    struct pollfd p = {fd, ev, 0};
    int r;
    do
        r = poll(&p, 1, TIMEOUT_MS);
    while (r < 0 && errno == EINTR);
    return r > 0 ? 0 : -1;
}

int nd_api_request(const char *node_dir, const char *method, const char *path,
                   const char *content_type, const void *body, size_t len, nd_api_response *r,
                   sc_error *e)
{
    int fd, rc;
    nd_buf in;
    char head[1024];
    memset(r, 0, sizeof *r);
    if ((rc = connect_admin(node_dir, &fd, e)))
        return rc;
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: sldd\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     method, path, content_type ? content_type : "text/plain", body ? len : 0);
    if (n < 0 || (size_t)n >= sizeof head) {
        close(fd);
        return sc_error_set(e, SC_EINVAL, "request path too long");
    }
    const char *parts[2] = {head, body};
    size_t lens[2] = {(size_t)n, body ? len : 0};
    for (int i = 0; i < 2; i++) {
        size_t off = 0;
        while (off < lens[i]) {
            if (io_wait(fd, POLLOUT)) {
                close(fd);
                return sc_error_set(e, SC_EIO, "admin API: timed out sending");
            }
            ssize_t w = send(fd, parts[i] + off, lens[i] - off, MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                close(fd);
                return sc_error_set(e, SC_EIO, "admin API: %s", strerror(errno));
            }
            off += (size_t)w;
        }
    }
    nd_buf_init(&in, ANSWER_MAX);
    for (;;) {
        char chunk[65536];
        if (io_wait(fd, POLLIN)) {
            rc = sc_error_set(e, SC_EIO, "admin API: no answer within %d s", TIMEOUT_MS / 1000);
            break;
        }
        ssize_t got = recv(fd, chunk, sizeof chunk, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            rc = sc_error_set(e, SC_EIO, "admin API: %s", strerror(errno));
            break;
        }
        if (got == 0)
            break;
        nd_buf_add(&in, chunk, (size_t)got);
        if (in.failed) {
            rc = sc_error_set(e, SC_EFORMAT, "admin API: answer too large");
            break;
        }
    }
    close(fd);
    if (rc) {
        nd_buf_free(&in);
        return rc;
    }
    char *text = in.data ? in.data : (char *)"";
    char *sep = in.data ? strstr(text, "\r\n\r\n") : NULL;
    if (!sep || sscanf(text, "HTTP/1.1 %d", &r->status) != 1) {
        nd_buf_free(&in);
        return sc_error_set(e, SC_EFORMAT, "admin API: malformed answer");
    }
    *sep = 0;
    const char *ct = strstr(text, "\r\nContent-Type: ");
    if (ct)
        sscanf(ct + 16, "%95[^\r]", r->content_type);
    size_t blen = in.len - (size_t)(sep + 4 - text);
    r->body = malloc(blen + 1);
    if (!r->body) {
        nd_buf_free(&in);
        return sc_error_set(e, SC_ENOMEM, "out of memory");
    }
    memcpy(r->body, sep + 4, blen);
    r->body[blen] = 0;
    r->len = blen;
    nd_buf_free(&in);
    return 0;
}

void nd_api_response_free(nd_api_response *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

int nd_api_print(const char *node_dir, const char *path, const char *who)
{
    nd_api_response r;
    sc_error e = {0, ""};
    if (nd_api_request(node_dir, "GET", path, NULL, NULL, 0, &r, &e)) {
        fprintf(stderr, "%s: %s\n", who, e.msg);
        return 1;
    }
    int ok = r.status >= 200 && r.status < 300;
    fwrite(r.body, 1, r.len, ok ? stdout : stderr);
    nd_api_response_free(&r);
    return ok ? 0 : 1;
}
