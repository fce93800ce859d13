/*
 * nd_dash_assets.h - the dashboard's page, style sheet, scripts and the
 * vendored libsodium build, compiled into the binary (the table is
 * generated at build time by node/web/nd_embed.c from node/web/ and
 * third_party/): the dashboard reads no file at run time and names no
 * other host.
 */
#ifndef ND_DASH_ASSETS_H
#define ND_DASH_ASSETS_H

#include <stddef.h>

typedef struct nd_dash_asset {
    const char *path; /* URL path, "/index.html" */
    const char *type; /* Content-Type */
    const unsigned char *data;
    size_t len;
} nd_dash_asset;

extern const nd_dash_asset nd_dash_assets[];
extern const size_t nd_dash_n_assets;

#endif
