/*
 * nd_cli_dir.c - the default node directory (see nd_cli_dir.h).
 */
#include "nd_cli_dir.h"

#include <stdlib.h>
#include <string.h>

const char *nd_cli_node_dir(const char *given)
{
    if (given)
        return given;
    const char *env = getenv("SLDD_DIR");
    return env && *env ? env : ND_DEFAULT_NODE_DIR;
}

const char *nd_cli_node_dir_argv(int argc, char **argv, int from)
{
    const char *dir = NULL;
    for (int i = from; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else if (!strncmp(argv[i], "--dir=", 6))
            dir = argv[i] + 6;
    }
    return nd_cli_node_dir(dir);
}
