/*
 * nd_cli_dir.c - the default node directory (see nd_cli_dir.h).
 */
#include "nd_cli_dir.h"

#include <stdio.h>
#include <stdlib.h>

#include "nd_node.h"

const char *nd_cli_node_dir(const char *given)
{
    if (given)
        return given;
    const char *env = getenv("SLDD_DIR");
    return env && *env ? env : ND_DEFAULT_NODE_DIR;
}

int nd_cli_node_dir_check(const char *prog, const char *dir)
{
    nd_node_config c;
    sc_error e = {0, ""};
    if (nd_node_config_load(dir, &c, &e) != SC_ENOTFOUND)
        return 0;
    fprintf(stderr, "%s: %s\n", prog, e.msg);
    return -1;
}
