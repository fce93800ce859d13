/*
 * nd_service.h - the node as a service: systemd's notify protocol and
 * SIGHUP.
 *
 * Notify: when NOTIFY_SOCKET is set (systemd's Type=notify), the daemon
 * sends READY=1 once it serves, RELOADING=1 / READY=1 around a reload,
 * STOPPING=1 when it stops, STATUS= lines, and WATCHDOG=1 every half
 * WATCHDOG_USEC when the unit has WatchdogSec=.  The protocol is a
 * datagram of "KEY=VALUE\n" lines to the unix socket NOTIFY_SOCKET names
 * (a path, or '@' for the abstract namespace); it is small enough to
 * speak directly, so the node does not link libsystemd.
 *
 * The watchdog is fed from the peer server's event loop (a tick, see
 * sn_server_set_tick), after a query on the loop's database connection:
 * a loop that hangs, or a database that stops answering, stops the
 * pings and systemd restarts the node.  The same tick applies a SIGHUP.
 *
 * SIGHUP reloads node.conf: it is read and checked whole first, and a file
 * that does not load (or names another node id) changes nothing: the
 * running configuration stays, with an error in the log and the audit log.
 * Otherwise its peer: lines go into the peers table and the settings of
 * nd_settings (privacy policy and thresholds, distill defaults, retry and
 * witness timing, rebuild limits) take effect for the next use; keys that
 * need a restart (listen, tls-*, data, device, max-connections, the size
 * and time limits of bundles) are named in the log when they changed.
 * Every reload is an audit entry (action "config") naming who sent the
 * signal (OS user and pid).
 */
#ifndef ND_SERVICE_H
#define ND_SERVICE_H

#include <sqlite3.h>
#include <stdint.h>

#include "nd_ctx.h"

typedef struct nd_service {
    nd_ctx *c;
    sqlite3 *db;         /* the loop thread's connection */
    int64_t watchdog_ms; /* WATCHDOG_USEC for this process, 0 when none */
    int64_t last_ping_ms;
} nd_service;

/* Send state ("READY=1\nSTATUS=...") to NOTIFY_SOCKET.  0 when sent or
 * when NOTIFY_SOCKET is unset; negative when it could not be sent. */
int nd_notify(const char *state);
/* nd_notify with a format; failures are logged. */
void nd_notifyf(nd_ctx *c, const char *fmt, ...) SC_PRINTF(2, 3);

/* Read WATCHDOG_USEC / WATCHDOG_PID. */
void nd_service_init(nd_service *s, nd_ctx *c, sqlite3 *db);
/* How often the tick must run (ms). */
int nd_service_tick_ms(const nd_service *s);
/* The tick (arg: nd_service): a pending SIGHUP, the watchdog. */
void nd_service_tick(void *arg);
/* Install the SIGHUP handler (it only records the signal and its sender). */
void nd_service_catch_sighup(void);

/* node.conf's peer: lines into the peers table (at start and reload). */
int nd_service_load_peers(const nd_config *cfg, sqlite3 *db, sc_error *e) SC_WUR;
/* Reload node.conf now (what SIGHUP does); actor names who asked.
 * 0 applied; negative when the old configuration was kept. */
int nd_service_reload(nd_service *s, const char *actor);

#endif
