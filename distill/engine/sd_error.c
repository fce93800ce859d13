/* sd_error.c - status codes and message formatting (see sd_error.h). */
#include "sd_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int sd_error_set(sd_error *e, int code, const char *fmt, ...)
{
    if (!e)
        return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->code = code;
    return code;
}

int sd_error_wrap(sd_error *e, const char *fmt, ...)
{
    if (!e)
        return SD_EINVAL;
    char prefix[256], old[sizeof e->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, e->msg, sizeof old);
    /* prefix + ": " + old, cut to fit (strings assembled by hand so the
     * compiler can see the bound) */
    size_t p = strnlen(prefix, sizeof prefix), o = strnlen(old, sizeof old - 1), cap = sizeof e->msg - 1;
    size_t at = 0;
    memcpy(e->msg, prefix, p < cap ? p : cap);
    at = p < cap ? p : cap;
    for (const char *sep = ": "; *sep && at < cap; sep++)
        e->msg[at++] = *sep;
    size_t rest = cap - at < o ? cap - at : o;
    memcpy(e->msg + at, old, rest);
    e->msg[at + rest] = '\0';
    return e->code;
}

int sd_error_wrap_code(sd_error *e, int code, const char *fmt, ...)
{
    if (!e)
        return code;
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (!e->msg[0])
        snprintf(e->msg, sizeof e->msg, "%s", sd_status_name(code));
    e->code = code;
    sd_error_wrap(e, "%s", what);
    return code;
}

void sd_error_clear(sd_error *e)
{
    if (e) {
        e->code = 0;
        e->msg[0] = '\0';
    }
}

const char *sd_status_name(int code)
{
    switch (code) {
    case SD_OK: return "ok";
    case SD_EINVAL: return "invalid argument";
    case SD_ENOMEM: return "out of memory";
    case SD_EIO: return "i/o error";
    case SD_EBACKEND: return "backend error";
    case SD_EFORMAT: return "bad format";
    case SD_EUNSUPPORTED: return "unsupported";
    case SD_ECANCELED: return "canceled";
    case SD_EHASH: return "hash mismatch";
    default: return "unknown error";
    }
}
