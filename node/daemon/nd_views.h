/*
 * nd_views.h - what the admin API shows: bundles, one bundle as an
 * approver needs to see it, jobs, peers and the node's status, each as
 * JSON (for tools and the dashboard) or as text (for the CLI).  Read-only
 * over the state database and the object store.
 */
#ifndef ND_VIEWS_H
#define ND_VIEWS_H

#include <sqlite3.h>

#include "nd_buf.h"
#include "nd_ctx.h"

int nd_view_bundles(sqlite3 *db, nd_buf *b, int json, sc_error *e) SC_WUR;
int nd_view_bundle(nd_ctx *c, sqlite3 *db, const char *id, nd_buf *b, int json, sc_error *e) SC_WUR;
int nd_view_jobs(sqlite3 *db, nd_buf *b, int json, sc_error *e) SC_WUR;
int nd_view_job(sqlite3 *db, int64_t id, nd_buf *b, int json, sc_error *e) SC_WUR;
int nd_view_peers(nd_ctx *c, sqlite3 *db, nd_buf *b, int json, sc_error *e) SC_WUR;

#endif
