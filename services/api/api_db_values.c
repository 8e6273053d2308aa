/*  api_db_values — checking what goes into the api's database and reading what comes out.
 *
 *  Design note: arguments are checked here before any statement is sent (so a refusal
 *  is API_DB_INVALID, not a server error), and row values are read as if the server
 *  could send anything: copies are truncated to the destination, numbers that do not
 *  parse read as 0. UTF-8 is checked strictly (shortest form, no surrogates, at most
 *  U+10FFFF); control characters are C0, DEL and C1.
 */
#include "api_db_internal.h"
#include "lss_util.h"

#include <inttypes.h>
#include <string.h>

/* ------------------------------------------------------------------ validators */

/*  Length of the UTF-8 sequence at s (valid, shortest form, no surrogates, at most
 *  U+10FFFF) and its code point, or 0 if invalid. */
static size_t s_utf8_seq (const unsigned char *s, size_t left, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF)
        n = 2, v = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3, v = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, v = c & 0x07, min = 0x10000;
    else
        return 0;
    if (left < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return n;
}

static bool s_control (uint32_t cp)
{
    return cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F);
}

bool api_dbi_text_ok (const char *s, size_t max_bytes)
{
    size_t len = s ? strnlen (s, max_bytes + 1) : 0;
    if (len == 0 || len > max_bytes)
        return false;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = s_utf8_seq ((const unsigned char *)s + i, len - i, &cp);
        if (n == 0 || s_control (cp))
            return false;
        i += n;
    }
    return true;
}

bool api_dbi_id_ok (const char *s, size_t size)
{
    size_t len = s ? strnlen (s, size) : 0;
    if (len == 0 || len >= size)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7F)
            return false;
    return true;
}

bool api_dbi_k8s_name_ok (const char *s, size_t max)
{
    size_t len = s ? strnlen (s, max + 1) : 0;
    if (len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && ((c != '-' && c != '.') || i == 0 || i == len - 1))
            return false;
    }
    return true;
}

bool api_dbi_one_of (const char *s, const char *const *set)
{
    for (; s && *set; set++)
        if (strcmp (s, *set) == 0)
            return true;
    return false;
}

bool api_dbi_page_ok (int limit, int offset)
{
    return limit >= 1 && limit <= API_DB_LIST_MAX && offset >= 0 &&
           offset <= API_DBI_OFFSET_MAX;
}

char *api_dbi_utf8_clip (const char *src, size_t max, char *dst)
{
    size_t o = 0, len = src ? strlen (src) : 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = s_utf8_seq ((const unsigned char *)src + i, len - i, &cp);
        if (n == 0 || (s_control (cp) && cp != '\n' && cp != '\t')) {
            if (o + 1 > max)
                break;
            dst[o++] = '?';
            i += n ? n : 1;
            continue;
        }
        if (o + n > max)
            break;
        memcpy (dst + o, src + i, n);
        o += n;
        i += n;
    }
    dst[o] = '\0';
    return dst;
}

/* ------------------------------------------------------------------ rows */

void api_dbi_copy (char *dst, size_t size, const PGresult *res, int row, int col)
{
    const char *v = PQgetisnull (res, row, col) ? "" : PQgetvalue (res, row, col);
    size_t n = strnlen (v, size - 1);
    memcpy (dst, v, n);
    dst[n] = '\0';
}

int64_t api_dbi_i64 (const PGresult *res, int row, int col)
{
    int64_t v = 0;
    if (PQgetisnull (res, row, col) ||
        lss_parse_int64 (PQgetvalue (res, row, col), INT64_MIN, INT64_MAX, &v) != 0)
        return 0;
    return v;
}

bool api_dbi_bool (const PGresult *res, int row, int col)
{
    return !PQgetisnull (res, row, col) && strcmp (PQgetvalue (res, row, col), "t") == 0;
}

char *api_dbi_fmt_i64 (char *buf, int64_t v)
{
    lss_fmt (buf, API_DBI_I64_SIZE, "%" PRId64, v);
    return buf;
}

int64_t api_dbi_affected (PGresult *res)
{
    int64_t n = 0;
    const char *t = PQcmdTuples (res);
    return t && lss_parse_int64 (t, 0, INT64_MAX, &n) == 0 ? n : 0;
}
