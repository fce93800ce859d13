/*
 * sn_net.h - status codes and process-wide setup for the network library.
 *
 * The library (prefix sn_) is the transport the node daemon stands on: an
 * HTTPS/1.1 server on libevent + OpenSSL (sn_server.h), a libcurl client
 * (sn_client.h) and the peer protocol's endpoints (sn_peer.h).  It reports
 * errors through sc_error (crypto/sc_error.h) with the SC_E* codes plus the
 * transport codes below; sn_status_name() names both.
 */
#ifndef SN_NET_H
#define SN_NET_H

#include <signal.h>

#include "sc_error.h"

enum {
    SN_ETIMEOUT = -200,    /* connect or transfer took longer than allowed */
    SN_ECONNECT = -201,    /* could not connect to the peer */
    SN_ETLS = -202,        /* TLS handshake or peer verification failed */
    SN_ETOOBIG = -203,     /* response larger than the configured cap */
    SN_EPROTO = -204,      /* malformed or unexpected HTTP */
    SN_EUNSUPPORTED = -205 /* the linked library lacks something needed */
};

/* Stable short name of an SN_E* or SC_E* code, never NULL. */
const char *sn_status_name(int code);

/*
 * One-time setup: libevent's pthread locking and curl_global_init.  Called
 * by sn_server_create and sn_client_create themselves; safe to call again
 * and from several threads.
 */
int sn_global_init(sc_error *err);

/*
 * Writing to a socket the peer has closed raises SIGPIPE, which kills the
 * process by default.  The library blocks SIGPIPE on the calling thread for
 * the duration of a server loop or a client request (writes then fail with
 * EPIPE instead) and consumes one it raised before unblocking.  A daemon is
 * still wise to ignore SIGPIPE process-wide.
 */
typedef struct sn_sigpipe_guard {
    sigset_t old;
    int active, was_blocked, was_pending;
} sn_sigpipe_guard;

void sn_sigpipe_block(sn_sigpipe_guard *g);
void sn_sigpipe_restore(sn_sigpipe_guard *g);

#endif
