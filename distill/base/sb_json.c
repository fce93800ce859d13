/*
 * sb_json.c - walking JSON text in place (see sb_json.h).
 */
#include "sb_json.h"

#include <string.h>

#include "sb_parse.h"

static const char *ws(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    return s;
}

/* Past the closing quote of the string at s, or NULL. */
static const char *skip_string(const char *s)
{
    if (*s != '"')
        return NULL;
    for (s++; *s; s++) {
        if (*s == '\\') {
            if (!*++s)
                return NULL;
        } else if (*s == '"') {
            return s + 1;
        }
    }
    return NULL;
}

static const char *skip_value(const char *s, int depth)
{
    s = ws(s);
    if (depth > SB_JSON_MAX_DEPTH)
        return NULL;
    if (*s == '"')
        return skip_string(s);
    if (*s == '{' || *s == '[') {
        char close = *s == '{' ? '}' : ']';
        s = ws(s + 1);
        if (*s == close)
            return s + 1;
        for (;;) {
            if (close == '}') {
                s = skip_string(ws(s));
                if (!s)
                    return NULL;
                s = ws(s);
                if (*s != ':')
                    return NULL;
                s++;
            }
            s = skip_value(s, depth + 1);
            if (!s)
                return NULL;
            s = ws(s);
            if (*s == ',') {
                s++;
                continue;
            }
            return *s == close ? s + 1 : NULL;
        }
    }
    const char *start = s;
    while (*s && !strchr(",}] \t\r\n", *s))
        s++;
    return s > start ? s : NULL;
}

const char *sb_json_skip(const char *s)
{
    return s ? skip_value(s, 0) : NULL;
}

/* Is the string token at s (its opening quote) exactly key? */
static int key_is(const char *s, const char *end, const char *key)
{
    size_t klen = strlen(key);
    return (size_t)(end - s - 2) == klen && !strncmp(s + 1, key, klen);
}

const char *sb_json_member(const char *obj, const char *key)
{
    if (!obj || !key)
        return NULL;
    const char *s = ws(obj);
    if (*s != '{')
        return NULL;
    s = ws(s + 1);
    while (*s == '"') {
        const char *kend = skip_string(s);
        if (!kend)
            return NULL;
        int match = key_is(s, kend, key);
        s = ws(kend);
        if (*s != ':')
            return NULL;
        s = ws(s + 1);
        if (match)
            return s;
        s = skip_value(s, 0);
        if (!s)
            return NULL;
        s = ws(s);
        if (*s != ',')
            return NULL;
        s = ws(s + 1);
    }
    return NULL;
}

const char *sb_json_find(const char *s, const char *key)
{
    if (!s || !key)
        return NULL;
    int depth = 0;
    while (*s) {
        if (*s == '"') {
            const char *end = skip_string(s);
            if (!end)
                return NULL;
            const char *after = ws(end);
            if (*after == ':' && key_is(s, end, key))
                return ws(after + 1);
            s = end;
            continue;
        }
        if (*s == '{' || *s == '[') {
            if (++depth > SB_JSON_MAX_DEPTH)
                return NULL;
        } else if (*s == '}' || *s == ']') {
            depth--;
        }
        s++;
    }
    return NULL;
}

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* Code point of the \u escape at s (pointing at 'u'); *len = characters
 * read after the backslash.  -1 when malformed. */
static long unicode_escape(const char *s, int *len)
{
    unsigned hi, lo;
    if (hex4(s + 1, &hi))
        return -1;
    *len = 5;
    if (hi >= 0xDC00 && hi <= 0xDFFF)
        return -1;
    if (hi < 0xD800 || hi > 0xDBFF)
        return (long)hi;
    if (s[5] != '\\' || s[6] != 'u' || hex4(s + 7, &lo) || lo < 0xDC00 || lo > 0xDFFF)
        return -1;
    *len = 11;
    return 0x10000L + (((long)hi - 0xD800) << 10) + ((long)lo - 0xDC00);
}

static size_t utf8(long cp, char *b)
{
    if (cp < 0x80) {
        b[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    b[0] = (char)(0xF0 | (cp >> 18));
    b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    b[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

int sb_json_string(const char *v, char *out, size_t outlen)
{
    if (!out || outlen == 0)
        return SB_EINVAL;
    out[0] = '\0';
    if (!v || *v != '"')
        return SB_EINVAL;
    size_t n = 0;
    int cut = 0;
    for (const char *s = v + 1;; s++) {
        char b[4];
        size_t bl = 1;
        if (!*s)
            return SB_EINVAL; /* unterminated */
        if (*s == '"')
            break;
        if (*s != '\\') {
            b[0] = *s;
        } else {
            s++;
            switch (*s) {
            case '"':
            case '\\':
            case '/': b[0] = *s; break;
            case 'b': b[0] = '\b'; break;
            case 'f': b[0] = '\f'; break;
            case 'n': b[0] = '\n'; break;
            case 'r': b[0] = '\r'; break;
            case 't': b[0] = '\t'; break;
            case 'u': {
                int len;
                long cp = unicode_escape(s, &len);
                if (cp <= 0) /* malformed, or an embedded NUL */
                    return SB_EINVAL;
                bl = utf8(cp, b);
                s += len - 1;
                break;
            }
            default: return SB_EINVAL;
            }
        }
        if (n + bl < outlen) {
            memcpy(out + n, b, bl);
            n += bl;
        } else {
            cut = 1;
        }
        out[n] = '\0';
    }
    return cut ? SB_EINVAL : SB_OK;
}

int sb_json_number(const char *v, double *out)
{
    const char *end;
    double x;
    if (!v || !out || sb_parse_double_prefix(v, &x, &end))
        return SB_EINVAL;
    end = ws(end);
    if (*end && !strchr(",}]", *end))
        return SB_EINVAL;
    *out = x;
    return SB_OK;
}

int sb_json_is_null(const char *v)
{
    return v && !strncmp(v, "null", 4) && (!v[4] || strchr(",}] \t\r\n", v[4]));
}
