/*
 * sn_peer.h - the peer protocol between nodes, transport side.
 *
 *   GET  /v1/health      -> 200, a small JSON object (who answers, who asked)
 *   POST /v1/bundles     -> body: one sealed bundle (opaque bytes here);
 *                           200 + receipt body from the daemon's callback
 *   POST /v1/audit-head  -> body: the sender's signed audit head (at most
 *                           SN_PEER_AUDIT_HEAD_MAX bytes, opaque here); the
 *                           daemon's callback answers (only registered
 *                           when the service has one)
 *   POST /v1/card        -> body: the sender's signed contact card (at most
 *                           SN_PEER_CARD_MAX bytes, opaque here): its keys
 *                           and admin roster; the daemon's callback answers
 *                           (only registered when the service has one)
 *
 * This layer only moves bytes between authenticated nodes: it never parses
 * a bundle.  The daemon's callback verifies and stores it and decides the
 * answer; delivery is idempotent because the callback answers a bundle it
 * already holds with the same receipt (it sees the sender's node id and
 * the body's SHA-256 before parsing anything).  See docs/network.md for the
 * status codes and what the sender does with each.
 */
#ifndef SN_PEER_H
#define SN_PEER_H

#include <stddef.h>

#include "sn_client.h"
#include "sn_server.h"

#define SN_PEER_HEALTH_PATH     "/v1/health"
#define SN_PEER_BUNDLES_PATH    "/v1/bundles"
#define SN_PEER_BUNDLE_TYPE     "application/vnd.sldd.bundle"
#define SN_PEER_RECEIPT_TYPE    "application/vnd.sldd.receipt"
#define SN_PEER_AUDIT_HEAD_PATH "/v1/audit-head"
#define SN_PEER_AUDIT_HEAD_TYPE "application/vnd.sldd.audit-head"
#define SN_PEER_AUDIT_HEAD_MAX  1024
#define SN_PEER_CARD_PATH       "/v1/card"
#define SN_PEER_CARD_TYPE       "application/vnd.sldd.card"
#define SN_PEER_CARD_MAX        65536

/* An inbound bundle as the daemon's callback sees it. */
typedef struct sn_bundle_in {
    const char *sender_node_id;      /* from the TLS client certificate pin */
    const unsigned char *sender_pin; /* SC_PIN_LEN bytes */
    const char *peer_addr;
    const unsigned char *body; /* the sealed bundle, valid during the call */
    size_t body_len;
    unsigned char body_sha256[32]; /* for deduplicating retransmissions */
    const char *content_type;      /* as sent, or NULL */
} sn_bundle_in;

/*
 * Decide about one bundle and fill resp: 200 with the receipt (also for a
 * bundle already received: same receipt again), 4xx to refuse for good
 * (400 malformed, 403 not for us / not allowed, 409 conflicting, 422
 * failed verification), 503 (with Retry-After) when it cannot be taken now.
 */
typedef void (*sn_bundle_fn)(void *arg, const sn_bundle_in *in, sn_response *resp);

/* An inbound audit head: the sender is authenticated, the body is not
 * checked here beyond its size (1..SN_PEER_AUDIT_HEAD_MAX bytes). */
typedef struct sn_audit_head_in {
    const char *sender_node_id;
    const char *peer_addr;
    const unsigned char *body; /* valid during the call, not NUL-terminated */
    size_t body_len;
} sn_audit_head_in;

/* Keep or refuse one head and fill resp (200 kept or already kept, 4xx
 * refused for good, 5xx try later). */
typedef void (*sn_audit_head_fn)(void *arg, const sn_audit_head_in *in, sn_response *resp);

/* An inbound contact card: the same shape as an audit head (sender
 * authenticated, body only size-checked: 1..SN_PEER_CARD_MAX bytes). */
typedef sn_audit_head_in sn_card_in;
typedef void (*sn_card_fn)(void *arg, const sn_card_in *in, sn_response *resp);

typedef struct sn_peer_service {
    const char *node_id;     /* this node, reported by /v1/health */
    size_t max_bundle_bytes; /* body cap for POST /v1/bundles */
    sn_bundle_fn on_bundle;
    void *arg;
    sn_audit_head_fn on_audit_head; /* NULL: POST /v1/audit-head is not offered */
    void *audit_head_arg;
    sn_card_fn on_card; /* NULL: POST /v1/card is not offered */
    void *card_arg;
} sn_peer_service;

/* Register GET /v1/health, POST /v1/bundles (and POST /v1/audit-head,
 * POST /v1/card) on s.  svc is not copied:
 * it and the strings it points to must outlive the server. */
int sn_peer_register(sn_server *s, const sn_peer_service *svc, sc_error *err) SC_WUR;

/* What a sender should do after an attempt. */
typedef enum sn_delivery {
    SN_DELIVERED = 0, /* 2xx: the receipt is in the response body */
    SN_RETRY = 1,     /* no answer, timeout, 408, 429, 5xx: back off and retry */
    SN_REFUSED = 2    /* other 4xx: the peer refused; retrying will not help */
} sn_delivery;

/* Classify a request's outcome (rc from sn_client_request and status). */
sn_delivery sn_peer_classify(int rc, long status);

/*
 * POST one sealed bundle to a peer: base_url is "https://host:port" (no
 * trailing path), pin the peer's public-key pin.  Returns the classification
 * in *outcome and sn_client_request's status; resp holds the receipt or the
 * refusal text.
 */
int sn_peer_deliver(sn_client *c, const char *base_url, const char *pin, const void *bundle,
                    size_t bundle_len, sn_client_response *resp, sn_delivery *outcome,
                    sc_error *err);

/* POST this node's signed audit head to a peer; like sn_peer_deliver. */
int sn_peer_send_audit_head(sn_client *c, const char *base_url, const char *pin, const void *head,
                            size_t head_len, sn_client_response *resp, sn_delivery *outcome,
                            sc_error *err);

/* POST this node's signed contact card to a peer; like sn_peer_deliver. */
int sn_peer_send_card(sn_client *c, const char *base_url, const char *pin, const void *card,
                      size_t card_len, sn_client_response *resp, sn_delivery *outcome,
                      sc_error *err);

/* GET /v1/health of a peer; 0 and resp->status 200 when it is up. */
int sn_peer_health(sn_client *c, const char *base_url, const char *pin, sn_client_response *resp,
                   sc_error *err);

#endif
