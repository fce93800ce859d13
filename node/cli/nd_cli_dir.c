/*
 * nd_cli_dir.c - the default node directory (see nd_cli_dir.h).
 */
#include "nd_cli_dir.h"

#include <stdlib.h>

const char *nd_cli_node_dir(const char *given)
{
    if (given)
        return given;
    const char *env = getenv("SLDD_DIR");
    return env && *env ? env : ND_DEFAULT_NODE_DIR;
}
