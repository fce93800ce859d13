/*
 * nd_admin_client.h - the CLI's side of the admin API (nd_admin_api.h):
 * one request over NODE/admin.sock, bounded answer.
 */
#ifndef ND_ADMIN_CLIENT_H
#define ND_ADMIN_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "sc_error.h"

typedef struct nd_api_response {
    int status;
    char content_type[96];
    uint8_t *body; /* NUL-terminated, malloc'ed */
    size_t len;
} nd_api_response;

/* 1 if a daemon answers on NODE/admin.sock, 0 if none runs there. */
int nd_api_available(const char *node_dir);
/* method "GET"/"POST"; body may be NULL.  0 once an answer was read
 * (whatever its status); SC_ENOTFOUND when no daemon runs. */
int nd_api_request(const char *node_dir, const char *method, const char *path,
                   const char *content_type, const void *body, size_t len, nd_api_response *r,
                   sc_error *e) SC_WUR;
void nd_api_response_free(nd_api_response *r);

/* GET path and print the body to stdout; on a non-2xx answer print it to
 * stderr.  Returns the CLI exit status (0, 1). */
int nd_api_print(const char *node_dir, const char *path, const char *who);

#endif
