/*
 * sn_net.c - status names, one-time library setup and the SIGPIPE guard
 * (see sn_net.h).
 */
#include "sn_net.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/thread.h>

const char *sn_status_name(int code)
{
    switch (code) {
    case SN_ETIMEOUT: return "timeout";
    case SN_ECONNECT: return "connect-failed";
    case SN_ETLS: return "tls-failed";
    case SN_ETOOBIG: return "too-large";
    case SN_EPROTO: return "protocol-error";
    case SN_EUNSUPPORTED: return "unsupported";
    default: return sc_status_name(code);
    }
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;
static char init_msg[160];

static void global_init(void)
{
    CURLcode cc;
    if (evthread_use_pthreads() != 0) {
        init_rc = SC_EINVAL;
        snprintf(init_msg, sizeof init_msg, "evthread_use_pthreads failed");
        return;
    }
    cc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (cc != CURLE_OK) {
        init_rc = SN_EUNSUPPORTED;
        snprintf(init_msg, sizeof init_msg, "curl_global_init: %s", curl_easy_strerror(cc));
    }
}

int sn_global_init(sc_error *err)
{
    if (pthread_once(&init_once, global_init) != 0)
        return sc_error_set(err, SC_EINVAL, "pthread_once failed");
    if (init_rc)
        return sc_error_set(err, init_rc, "network library setup: %s", init_msg);
    return 0;
}

void sn_sigpipe_block(sn_sigpipe_guard *g)
{
    sigset_t set, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    g->was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
    g->active = pthread_sigmask(SIG_BLOCK, &set, &g->old) == 0;
    g->was_blocked = g->active && sigismember(&g->old, SIGPIPE) == 1;
}

void sn_sigpipe_restore(sn_sigpipe_guard *g)
{
    sigset_t set, pending;
    if (!g->active)
        return;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    /* Consume a SIGPIPE our own writes raised while it was blocked, unless
     * the caller had it blocked (then it is theirs to handle). */
    if (!g->was_blocked && !g->was_pending && sigpending(&pending) == 0 &&
        sigismember(&pending, SIGPIPE) == 1) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
    g->active = 0;
}
