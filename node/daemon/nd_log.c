/*
 * nd_log.c - formatting the daemon's log lines (see nd_log.h).
 */
#include "nd_log.h"

#include <stdio.h>
#include <string.h>

int nd_log_format_parse(const char *name, nd_log_format *out)
{
    if (!strcmp(name, "text"))
        *out = ND_LOG_TEXT;
    else if (!strcmp(name, "json"))
        *out = ND_LOG_JSON;
    else
        return -1;
    return 0;
}

static void text_str(nd_buf *out, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char ch = (*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7f ? '?' : (char)*p;
        nd_buf_add(out, &ch, 1);
    }
}

void nd_log_line(nd_buf *out, nd_log_format f, const struct timespec *ts, const char *node,
                 const char *level, const char *msg, const char *const *kv)
{
    char tb[32] = "?", stamp[48];
    struct tm tm;
    if (gmtime_r(&ts->tv_sec, &tm))
        strftime(tb, sizeof tb, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp, sizeof stamp, "%s.%03ldZ", tb, ts->tv_nsec / 1000000);
    if (f == ND_LOG_JSON) {
        nd_buf_printf(out, "{\"ts\":\"%s\",\"level\":", stamp);
        nd_buf_json_str(out, level);
        nd_buf_str(out, ",\"node\":");
        nd_buf_json_str(out, node);
        nd_buf_str(out, ",\"msg\":");
        nd_buf_json_str(out, msg);
        nd_buf_str(out, ",\"fields\":{");
        int first = 1;
        for (size_t i = 0; kv && kv[i]; i += 2) {
            if (!kv[i + 1])
                continue;
            if (!first)
                nd_buf_str(out, ",");
            first = 0;
            nd_buf_json_str(out, kv[i]);
            nd_buf_str(out, ":");
            nd_buf_json_str(out, kv[i + 1]);
        }
        nd_buf_str(out, "}}\n");
        return;
    }
    nd_buf_printf(out, "%s %s %-5s ", stamp, node, level);
    text_str(out, msg);
    for (size_t i = 0; kv && kv[i]; i += 2) {
        if (!kv[i + 1])
            continue;
        nd_buf_printf(out, " %s=", kv[i]);
        text_str(out, kv[i + 1]);
    }
    nd_buf_str(out, "\n");
}
