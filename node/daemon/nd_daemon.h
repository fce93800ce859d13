/*
 * nd_daemon.h - `sldd serve`: one node, in the foreground.
 *
 * Start-up: take the node lock (one daemon per node directory), open the
 * state database (WAL, synchronous=FULL) and check it (PRAGMA
 * integrity_check, every referenced object present and intact, stray temp
 * files removed, audit chain verified), load peers' addresses from
 * node.conf, put jobs left running back in the queue, then serve: the peer
 * protocol over mutual TLS on the network thread, the admin API, the
 * outbound and import workers, the job runner and the witness sender
 * (nd_witness_sync.h); SIGHUP reloads node.conf and systemd is told
 * what happens (nd_service.h).  SIGTERM or SIGINT stop it cleanly: the server
 * finishes open requests, a running distillation writes a checkpoint, the
 * workers finish their current step, and the final audit head goes to the
 * peers.
 */
#ifndef ND_DAEMON_H
#define ND_DAEMON_H

#include "nd_log.h"
#include "nd_dash.h"
#include "sc_error.h"

/* NODE/serve.json (node, pid, address, port, admin socket): written once
 * the listeners and every worker are up, removed at the stop. */
#define ND_SERVE_INFO "serve.json"
#define ND_LOCK_FILE  "serve.lock"

/* Run until stopped by a signal.  log_path NULL logs to stderr, as text
 * or JSON lines (nd_log.h).  Speaks systemd's notify protocol when
 * NOTIFY_SOCKET is set and reloads node.conf on SIGHUP (nd_service.h). */
int nd_daemon_run(const char *node_dir, const char *log_path, nd_log_format log_format,
                  sc_error *e) SC_WUR;

/* What `sldd serve` may add to the node: the dashboard on dash->listen
 * (nd_dash.h) when dash is not NULL and names an address; on-arrival DICOM
 * detection (nd_dicom_scp.h) when dicom is not NULL. */
struct nd_dicom_service_opts;
typedef struct nd_daemon_opts {
    const char *log_path; /* NULL: stderr */
    nd_log_format log_format;
    const nd_dash_config *dash;
    const struct nd_dicom_service_opts *dicom;
} nd_daemon_opts;

/* The same as nd_daemon_run, with those. */
int nd_daemon_run_with(const char *node_dir, const nd_daemon_opts *o, sc_error *e) SC_WUR;

/* The startup checks alone (for `sldd serve --check`): 0 when the state is
 * sound; problems are logged to stderr. */
int nd_daemon_check(const char *node_dir, sc_error *e) SC_WUR;

#endif
