/*
 * node_test.h - what the node's C tests share: a fresh node directory with
 * its state database.  Header-only (static functions), after sd_test.h.
 */
#ifndef SLDD_NODE_TEST_H
#define SLDD_NODE_TEST_H

#include <stdio.h>
#include <sys/stat.h>

#include "nd_state.h"

/* ROOT/name, made, with a new state.db (schema of this sldd). */
static inline sqlite3 *nt_open_node(const char *root, const char *name, char *dir, size_t len)
{
    sqlite3 *db = NULL;
    sc_error e = {0, ""};
    snprintf(dir, len, "%s/%s", root, name);
    CHECK(mkdir(dir, 0700) == 0);
    CHECKF(nd_db_open(dir, 1, &db, &e) == 0, "%s", e.msg);
    return db;
}

#endif
