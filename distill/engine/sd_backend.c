/*
 * sd_backend.c - the backend registry.
 *
 * The CPU backend is built into distill/ and always answers to "cpu".  Other
 * backends (the CUDA one in gpu/) live outside this library, which must not
 * depend on them, so they register a factory under a name at start-up and
 * sd_backend_create() looks the name up here.  The table is small and static:
 * a handful of backends at most, registered once before any thread starts.
 */
#include "sd_backend.h"

#include <string.h>

#define SD_BACKEND_MAX_REGISTERED 8
#define SD_BACKEND_NAME_MAX       32

typedef struct sd_backend_entry {
    char name[SD_BACKEND_NAME_MAX];
    sd_backend_factory factory;
} sd_backend_entry;

static sd_backend_entry sd_backend_table[SD_BACKEND_MAX_REGISTERED];
static int sd_backend_count;

int sd_backend_register(const char *name, sd_backend_factory factory)
{
    if (!name || !factory || !name[0] || strlen(name) >= SD_BACKEND_NAME_MAX ||
        strcmp(name, "cpu") == 0)
        return SD_EINVAL;
    for (int i = 0; i < sd_backend_count; i++) {
        if (strcmp(sd_backend_table[i].name, name) == 0) {
            /* re-registering replaces: a test may install a stub */
            sd_backend_table[i].factory = factory;
            return SD_OK;
        }
    }
    if (sd_backend_count >= SD_BACKEND_MAX_REGISTERED)
        return SD_ENOMEM;
    memcpy(sd_backend_table[sd_backend_count].name, name, strlen(name) + 1);
    sd_backend_table[sd_backend_count].factory = factory;
    sd_backend_count++;
    return SD_OK;
}

int sd_backend_create(sd_backend **out, const char *name, sd_error *err)
{
    if (!out)
        return sd_error_set(err, SD_EINVAL, "sd_backend_create: out is NULL");
    *out = NULL;
    if (!name || !name[0] || strcmp(name, "cpu") == 0)
        return sd_backend_cpu_create(out, 0, err);
    for (int i = 0; i < sd_backend_count; i++)
        if (strcmp(sd_backend_table[i].name, name) == 0)
            return sd_backend_table[i].factory(out, err);
    return sd_error_set(err, SD_EUNSUPPORTED, "backend '%s' is not available in this build", name);
}

void sd_backend_destroy(sd_backend *be)
{
    if (be && be->destroy)
        be->destroy(be);
}
