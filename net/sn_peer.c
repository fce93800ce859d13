/*
 * sn_peer.c - the peer protocol's endpoints and the sender's side (see
 * sn_peer.h).
 */
#include "sn_peer.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>

static void health_handler(void *arg, const sn_request *req, sn_response *resp)
{
    const sn_peer_service *svc = arg;
    /* Node ids are [A-Za-z0-9._-] (sn_x509_node_id_valid): no JSON escaping. */
    if (sn_response_printf(
            resp, 200, "application/json",
            "{\"status\":\"ok\",\"node\":\"%s\",\"peer\":\"%s\",\"version\":\"%s\"}\n",
            svc->node_id, req->peer_node_id, SLDD_VERSION) != 0)
        resp->status = 500;
}

static void bundle_handler(void *arg, const sn_request *req, sn_response *resp)
{
    const sn_peer_service *svc = arg;
    sn_bundle_in in;
    unsigned int md_len = 0;

    if (req->body_len == 0) {
        if (sn_response_printf(resp, 400, NULL, "400 Bad Request: empty bundle\n") != 0)
            resp->status = 400;
        return;
    }
    memset(&in, 0, sizeof in);
    if (EVP_Digest(req->body, req->body_len, in.body_sha256, &md_len, EVP_sha256(), NULL) != 1 ||
        md_len != sizeof in.body_sha256) {
        ERR_clear_error();
        resp->status = 500;
        return;
    }
    in.sender_node_id = req->peer_node_id;
    in.sender_pin = req->peer_pin;
    in.peer_addr = req->peer_addr;
    in.body = req->body;
    in.body_len = req->body_len;
    in.content_type = sn_http_header_get(req->head, "Content-Type");
    svc->on_bundle(svc->arg, &in, resp);
}

/* A small signed object (audit head, card) for fn; what names it in a
 * refusal of an empty body. */
static void small_post(const sn_request *req, sn_response *resp, const char *what,
                       void (*fn)(void *, const sn_audit_head_in *, sn_response *), void *fn_arg)
{
    sn_audit_head_in in;
    if (req->body_len == 0) {
        if (sn_response_printf(resp, 400, NULL, "400 Bad Request: empty %s\n", what) != 0)
            resp->status = 400;
        return;
    }
    memset(&in, 0, sizeof in);
    in.sender_node_id = req->peer_node_id;
    in.peer_addr = req->peer_addr;
    in.body = req->body;
    in.body_len = req->body_len;
    fn(fn_arg, &in, resp);
}

static void audit_head_handler(void *arg, const sn_request *req, sn_response *resp)
{
    const sn_peer_service *svc = arg;
    small_post(req, resp, "audit head", svc->on_audit_head, svc->audit_head_arg);
}

static void card_handler(void *arg, const sn_request *req, sn_response *resp)
{
    const sn_peer_service *svc = arg;
    small_post(req, resp, "contact card", svc->on_card, svc->card_arg);
}

int sn_peer_register(sn_server *s, const sn_peer_service *svc, sc_error *err)
{
    int rc;
    if (!s || !svc || !svc->on_bundle)
        return sc_error_set(err, SC_EINVAL, "peer service: server and bundle callback required");
    if (!sn_x509_node_id_valid(svc->node_id))
        return sc_error_set(err, SC_EINVAL, "peer service: invalid node id '%s'",
                            svc->node_id ? svc->node_id : "(null)");
    if (svc->max_bundle_bytes == 0)
        return sc_error_set(err, SC_EINVAL, "peer service: max_bundle_bytes is 0");
    rc = sn_server_route(s, "GET", SN_PEER_HEALTH_PATH, 0, health_handler, (void *)svc, err);
    if (!rc)
        rc = sn_server_route(s, "POST", SN_PEER_BUNDLES_PATH, svc->max_bundle_bytes, bundle_handler,
                             (void *)svc, err);
    if (!rc && svc->on_audit_head)
        rc = sn_server_route(s, "POST", SN_PEER_AUDIT_HEAD_PATH, SN_PEER_AUDIT_HEAD_MAX,
                             audit_head_handler, (void *)svc, err);
    if (!rc && svc->on_card)
        rc = sn_server_route(s, "POST", SN_PEER_CARD_PATH, SN_PEER_CARD_MAX, card_handler,
                             (void *)svc, err);
    return rc;
}

sn_delivery sn_peer_classify(int rc, long status)
{
    if (rc != 0)
        return SN_RETRY; /* nothing was answered: the peer may be down or slow */
    if (status >= 200 && status < 300)
        return SN_DELIVERED;
    if (status == 408 || status == 429 || status >= 500)
        return SN_RETRY;
    return SN_REFUSED;
}

static int make_url(const char *base, const char *path, char *out, size_t out_size, sc_error *err)
{
    size_t n;
    if (!base)
        return sc_error_set(err, SC_EINVAL, "peer: no base URL");
    n = strlen(base);
    if (n && base[n - 1] == '/')
        n--;
    if ((size_t)snprintf(out, out_size, "%.*s%s", (int)n, base, path) >= out_size)
        return sc_error_set(err, SC_EINVAL, "peer: URL too long");
    return 0;
}

/* POST body to base_url + path and classify the answer. */
static int post(sn_client *c, const char *base_url, const char *path, const char *pin,
                const char *type, const void *body, size_t len, sn_client_response *resp,
                sn_delivery *outcome, sc_error *err)
{
    char url[1024];
    int rc;
    if (outcome)
        *outcome = SN_RETRY;
    if (resp)
        memset(resp, 0, sizeof *resp);
    if (!outcome || !body || !len)
        return sc_error_set(err, SC_EINVAL, "peer: nothing to send or no outcome");
    rc = make_url(base_url, path, url, sizeof url, err);
    if (rc)
        return rc;
    rc = sn_client_request(c, "POST", url, pin, type, body, len, resp, err);
    *outcome = sn_peer_classify(rc, resp ? resp->status : 0);
    return rc;
}

int sn_peer_deliver(sn_client *c, const char *base_url, const char *pin, const void *bundle,
                    size_t bundle_len, sn_client_response *resp, sn_delivery *outcome,
                    sc_error *err)
{
    return post(c, base_url, SN_PEER_BUNDLES_PATH, pin, SN_PEER_BUNDLE_TYPE, bundle, bundle_len,
                resp, outcome, err);
}

int sn_peer_send_audit_head(sn_client *c, const char *base_url, const char *pin, const void *head,
                            size_t head_len, sn_client_response *resp, sn_delivery *outcome,
                            sc_error *err)
{
    return post(c, base_url, SN_PEER_AUDIT_HEAD_PATH, pin, SN_PEER_AUDIT_HEAD_TYPE, head, head_len,
                resp, outcome, err);
}

int sn_peer_send_card(sn_client *c, const char *base_url, const char *pin, const void *card,
                      size_t card_len, sn_client_response *resp, sn_delivery *outcome,
                      sc_error *err)
{
    return post(c, base_url, SN_PEER_CARD_PATH, pin, SN_PEER_CARD_TYPE, card, card_len, resp,
                outcome, err);
}

int sn_peer_health(sn_client *c, const char *base_url, const char *pin, sn_client_response *resp,
                   sc_error *err)
{
    char url[1024];
    int rc = make_url(base_url, SN_PEER_HEALTH_PATH, url, sizeof url, err);
    if (resp)
        memset(resp, 0, sizeof *resp);
    if (rc)
        return rc;
    return sn_client_request(c, "GET", url, pin, NULL, NULL, 0, resp, err);
}
