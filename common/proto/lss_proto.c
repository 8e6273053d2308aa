/*  lss_proto — envelope and typed message codec, table-driven from lss_messages.def.
 *
 *  Design: the .def file expands into one descriptor table per message (field name,
 *  type, limit, required, offset); encode, decode, free, compare and JSON views are
 *  generic walks over those tables. Decoding first runs lss_msgpack_check, which proves
 *  the bytes are one bounded msgpack value (so msgpack-c never allocates for counts the
 *  input cannot hold), then unpacks with msgpack-c and converts against the declaration.
 */
#include "lss_proto.h"
#include "lss_util.h"

#include <msgpack.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LSS_REQ 1
#define LSS_OPT 0

/* ------------------------------------------------------------------ descriptor tables */
#define LSS_MSG(id, type, doc) static const lss_field_desc_t s_fields_##id[] = {
#define LSS_FIELD(id, name, ftype, max, req, doc)                                              \
    {#name, LSS_FT_##ftype, (max), LSS_##req, offsetof (lss_##id##_t, name), (doc)},
#define LSS_END(id)                                                                            \
    {                                                                                          \
        NULL, 0, 0, 0, 0, NULL                                                                 \
    }                                                                                          \
    }                                                                                          \
    ;
#include "lss_messages.def"
#undef LSS_MSG
#undef LSS_FIELD
#undef LSS_END

static const lss_msg_desc_t s_descs[LSS_MSG_COUNT] = {
#define LSS_MSG(id, type, doc)                                                                 \
    [LSS_MSG_##id] = {LSS_MSG_##id,                                                            \
                      #id,                                                                     \
                      (type),                                                                  \
                      (doc),                                                                   \
                      s_fields_##id,                                                           \
                      sizeof s_fields_##id / sizeof s_fields_##id[0] - 1,                      \
                      sizeof (lss_##id##_t)},
#define LSS_FIELD(id, name, ftype, max, req, doc)
#define LSS_END(id)
#include "lss_messages.def"
#undef LSS_MSG
#undef LSS_FIELD
#undef LSS_END
};

const lss_msg_desc_t *lss_proto_desc (lss_msg_kind_t kind)
{
    if (kind <= LSS_MSG_NONE || kind >= LSS_MSG_COUNT)
        return NULL;
    return &s_descs[kind];
}

/* ------------------------------------------------------------------ type patterns */
static bool s_word_char (char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static bool s_alt_matches (const char *alt, size_t alt_len, const char *type)
{
    if (alt_len >= 2 && alt[0] == '*' && alt[1] == '.') {
        const char *p = type;
        while (s_word_char (*p))
            p++;
        if (p == type || *p != '.')
            return false;
        return strlen (p) == alt_len - 1 && memcmp (p, alt + 1, alt_len - 1) == 0;
    }
    return strlen (type) == alt_len && memcmp (type, alt, alt_len) == 0;
}

bool lss_proto_type_matches (lss_msg_kind_t kind, const char *type)
{
    const lss_msg_desc_t *desc = lss_proto_desc (kind);
    if (!desc || !type)
        return false;
    const char *alt = desc->pattern;
    while (*alt) {
        const char *bar = strchr (alt, '|');
        size_t n = bar ? (size_t)(bar - alt) : strlen (alt);
        if (s_alt_matches (alt, n, type))
            return true;
        if (!bar)
            break;
        alt = bar + 1;
    }
    return false;
}

/* Lookup table of every pattern alternative, built once: exact names compare by length
 * and bytes; "*.verb" alternatives by suffix. Decoding looks a kind up per message. */
#define S_MAX_ALTS 128
typedef struct {
    const char *text; /* exact name, or the ".verb" suffix of a wildcard */
    size_t len;
    bool wildcard;
    lss_msg_kind_t kind;
} s_alt_t;
static s_alt_t s_alts[S_MAX_ALTS];
static size_t s_alt_count;
static pthread_once_t s_alts_once = PTHREAD_ONCE_INIT;

static void s_alts_init (void)
{
    for (int k = LSS_MSG_NONE + 1; k < LSS_MSG_COUNT; k++) {
        const char *alt = s_descs[k].pattern;
        while (*alt && s_alt_count < S_MAX_ALTS) {
            const char *bar = strchr (alt, '|');
            size_t n = bar ? (size_t)(bar - alt) : strlen (alt);
            bool wild = n >= 2 && alt[0] == '*' && alt[1] == '.';
            s_alts[s_alt_count++] =
                (s_alt_t){wild ? alt + 1 : alt, wild ? n - 1 : n, wild, (lss_msg_kind_t)k};
            if (!bar)
                break;
            alt = bar + 1;
        }
    }
}

lss_msg_kind_t lss_proto_kind_of (const char *type)
{
    if (!type)
        return LSS_MSG_NONE;
    pthread_once (&s_alts_once, s_alts_init);
    size_t len = strlen (type);
    for (size_t i = 0; i < s_alt_count; i++) {
        const s_alt_t *a = &s_alts[i];
        if (!a->wildcard) {
            if (a->len == len && memcmp (a->text, type, len) == 0)
                return a->kind;
        } else if (len > a->len && memcmp (type + len - a->len, a->text, a->len) == 0) {
            const char *p = type; /* the wildcard part: one lowercase word */
            while (s_word_char (*p))
                p++;
            if (p == type + len - a->len && p != type)
                return a->kind;
        }
    }
    return LSS_MSG_NONE;
}

const char *lss_proto_type_name (lss_msg_kind_t kind)
{
    const lss_msg_desc_t *desc = lss_proto_desc (kind);
    if (!desc || strchr (desc->pattern, '*') || strchr (desc->pattern, '|'))
        return NULL;
    return desc->pattern;
}

/* ------------------------------------------------------------------ bodies */
#define FIELD_PTR(body, f) ((char *)(body) + (f)->offset)

void *lss_proto_body_new (lss_msg_kind_t kind)
{
    const lss_msg_desc_t *desc = lss_proto_desc (kind);
    return desc ? calloc (1, desc->size) : NULL;
}

static void s_strlist_clear (lss_strlist_t *list)
{
    for (size_t i = 0; i < list->count; i++)
        free (list->items[i]);
    free (list->items);
    list->items = NULL;
    list->count = 0;
}

static void s_strmap_clear (lss_strmap_t *map)
{
    for (size_t i = 0; i < map->count; i++) {
        free (map->keys[i]);
        free (map->values[i]);
    }
    free (map->keys);
    free (map->values);
    map->keys = map->values = NULL;
    map->count = 0;
}

void lss_proto_body_clear (lss_msg_kind_t kind, void *body)
{
    const lss_msg_desc_t *desc = lss_proto_desc (kind);
    if (!desc || !body)
        return;
    for (const lss_field_desc_t *f = desc->fields; f->name; f++) {
        void *p = FIELD_PTR (body, f);
        switch (f->type) {
        case LSS_FT_STR:
            free (*(char **)p);
            *(char **)p = NULL;
            break;
        case LSS_FT_BYTES:
            free (((lss_bytes_t *)p)->data);
            *(lss_bytes_t *)p = (lss_bytes_t){0};
            break;
        case LSS_FT_STRLIST:
            s_strlist_clear (p);
            break;
        case LSS_FT_STRMAP:
            s_strmap_clear (p);
            break;
        case LSS_FT_JSON:
            json_decref (*(json_t **)p);
            *(json_t **)p = NULL;
            break;
        case LSS_FT_INT:
        case LSS_FT_BOOL:
            break;
        }
    }
}

void lss_proto_body_free (lss_msg_kind_t kind, void **body_p)
{
    if (!body_p || !*body_p)
        return;
    lss_proto_body_clear (kind, *body_p);
    free (*body_p);
    *body_p = NULL;
}

static bool s_str_eq (const char *a, const char *b)
{
    return strcmp (a ? a : "", b ? b : "") == 0;
}

bool lss_proto_body_equal (lss_msg_kind_t kind, const void *a, const void *b)
{
    const lss_msg_desc_t *desc = lss_proto_desc (kind);
    if (!desc || !a || !b)
        return false;
    for (const lss_field_desc_t *f = desc->fields; f->name; f++) {
        const void *pa = FIELD_PTR (a, f), *pb = FIELD_PTR (b, f);
        switch (f->type) {
        case LSS_FT_STR:
            if (!s_str_eq (*(char *const *)pa, *(char *const *)pb))
                return false;
            break;
        case LSS_FT_BYTES: {
            const lss_bytes_t *x = pa, *y = pb;
            if (x->len != y->len || (x->len && memcmp (x->data, y->data, x->len)))
                return false;
            break;
        }
        case LSS_FT_INT:
            if (*(const int64_t *)pa != *(const int64_t *)pb)
                return false;
            break;
        case LSS_FT_BOOL:
            if (*(const bool *)pa != *(const bool *)pb)
                return false;
            break;
        case LSS_FT_STRLIST: {
            const lss_strlist_t *x = pa, *y = pb;
            if (x->count != y->count)
                return false;
            for (size_t i = 0; i < x->count; i++)
                if (!s_str_eq (x->items[i], y->items[i]))
                    return false;
            break;
        }
        case LSS_FT_STRMAP: {
            const lss_strmap_t *x = pa, *y = pb;
            if (x->count != y->count)
                return false;
            for (size_t i = 0; i < x->count; i++)
                if (!s_str_eq (x->keys[i], y->keys[i]) ||
                    !s_str_eq (x->values[i], y->values[i]))
                    return false;
            break;
        }
        case LSS_FT_JSON: {
            json_t *x = *(json_t *const *)pa, *y = *(json_t *const *)pb;
            if (!x != !y || (x && !json_equal (x, y)))
                return false;
            break;
        }
        }
    }
    return true;
}

/* ------------------------------------------------------------------ utf-8 */
static bool s_utf8_valid (const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            if (c == 0)
                return false; /* NUL would cut C strings short */
            i++;
            continue;
        }
        size_t len;
        uint32_t cp;
        if ((c & 0xE0) == 0xC0)
            len = 2, cp = c & 0x1F;
        else if ((c & 0xF0) == 0xE0)
            len = 3, cp = c & 0x0F;
        else if ((c & 0xF8) == 0xF0)
            len = 4, cp = c & 0x07;
        else
            return false;
        if (i + len > n)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

/* ------------------------------------------------------------------ JSON ⇄ msgpack */
static int s_pack_json (msgpack_packer *pk, const json_t *v, int depth)
{
    if (depth <= 0)
        return -1;
    switch (json_typeof (v)) {
    case JSON_OBJECT: {
        msgpack_pack_map (pk, json_object_size (v));
        const char *key;
        json_t *item;
        json_object_foreach ((json_t *)v, key, item)
        {
            size_t klen = strlen (key);
            msgpack_pack_str (pk, klen);
            msgpack_pack_str_body (pk, key, klen);
            if (s_pack_json (pk, item, depth - 1))
                return -1;
        }
        return 0;
    }
    case JSON_ARRAY: {
        msgpack_pack_array (pk, json_array_size (v));
        size_t i;
        json_t *item;
        json_array_foreach (v, i, item) if (s_pack_json (pk, item, depth - 1)) return -1;
        return 0;
    }
    case JSON_STRING: {
        size_t n = json_string_length (v);
        msgpack_pack_str (pk, n);
        msgpack_pack_str_body (pk, json_string_value (v), n);
        return 0;
    }
    case JSON_INTEGER:
        return msgpack_pack_int64 (pk, json_integer_value (v));
    case JSON_REAL:
        return msgpack_pack_double (pk, json_real_value (v));
    case JSON_TRUE:
        return msgpack_pack_true (pk);
    case JSON_FALSE:
        return msgpack_pack_false (pk);
    case JSON_NULL:
        return msgpack_pack_nil (pk);
    }
    return -1;
}

/* Base64 via libsodium: libzmq already loads it, whereas libcrypto would cost every
 * agent ~400 KiB of private relocated pages. */
static json_t *s_base64 (const uint8_t *data, size_t len)
{
    if (len > (SIZE_MAX / 4) * 3 - 3)
        return NULL;
    size_t out_len = sodium_base64_encoded_len (len, sodium_base64_VARIANT_ORIGINAL);
    char *out = malloc (out_len);
    if (!out)
        return NULL;
    sodium_bin2base64 (out, out_len, data, len, sodium_base64_VARIANT_ORIGINAL);
    json_t *s = json_string (out);
    free (out);
    return s;
}

/* Converts a msgpack object to JSON. bin → base64 string. depth bounds recursion. */
static json_t *s_obj_to_json (const msgpack_object *o, int depth, char *err, size_t err_size)
{
    if (depth <= 0) {
        lss_errf (err, err_size, "nested deeper than allowed");
        return NULL;
    }
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return json_null ();
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean (o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > INT64_MAX) {
            lss_errf (err, err_size, "integer out of range");
            return NULL;
        }
        return json_integer ((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer (o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: {
        json_t *r = json_real (o->via.f64);
        if (!r)
            lss_errf (err, err_size, "non-finite number");
        return r;
    }
    case MSGPACK_OBJECT_STR: {
        if (!s_utf8_valid ((const uint8_t *)o->via.str.ptr, o->via.str.size)) {
            lss_errf (err, err_size, "string is not valid UTF-8");
            return NULL;
        }
        return json_stringn (o->via.str.ptr, o->via.str.size);
    }
    case MSGPACK_OBJECT_BIN:
        return s_base64 ((const uint8_t *)o->via.bin.ptr, o->via.bin.size);
    case MSGPACK_OBJECT_ARRAY: {
        json_t *arr = json_array ();
        for (uint32_t i = 0; arr && i < o->via.array.size; i++) {
            json_t *item = s_obj_to_json (&o->via.array.ptr[i], depth - 1, err, err_size);
            if (!item || json_array_append_new (arr, item)) {
                json_decref (arr);
                return NULL;
            }
        }
        return arr;
    }
    case MSGPACK_OBJECT_MAP: {
        json_t *obj = json_object ();
        for (uint32_t i = 0; obj && i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            if (kv->key.type != MSGPACK_OBJECT_STR ||
                !s_utf8_valid ((const uint8_t *)kv->key.via.str.ptr, kv->key.via.str.size)) {
                lss_errf (err, err_size, "map key is not a UTF-8 string");
                json_decref (obj);
                return NULL;
            }
            json_t *item = s_obj_to_json (&kv->val, depth - 1, err, err_size);
            if (!item ||
                json_object_setn_new (obj, kv->key.via.str.ptr, kv->key.via.str.size, item)) {
                json_decref (obj);
                return NULL;
            }
        }
        return obj;
    }
    default:
        lss_errf (err, err_size, "unsupported msgpack type %d", (int)o->type);
        return NULL;
    }
}

/* ------------------------------------------------------------------ encode */
static void s_pack_cstr (msgpack_packer *pk, const char *s)
{
    size_t n = strlen (s);
    msgpack_pack_str (pk, n);
    msgpack_pack_str_body (pk, s, n);
}

static bool s_field_present (const lss_field_desc_t *f, const void *p)
{
    switch (f->type) {
    case LSS_FT_STR:
        return *(char *const *)p != NULL;
    case LSS_FT_BYTES:
        return f->required || ((const lss_bytes_t *)p)->len > 0;
    case LSS_FT_INT:
        return f->required || *(const int64_t *)p != 0;
    case LSS_FT_BOOL:
        return f->required || *(const bool *)p;
    case LSS_FT_STRLIST:
        return f->required || ((const lss_strlist_t *)p)->count > 0;
    case LSS_FT_STRMAP:
        return f->required || ((const lss_strmap_t *)p)->count > 0;
    case LSS_FT_JSON:
        return *(json_t *const *)p != NULL;
    }
    return false;
}

static int s_pack_field (msgpack_packer *pk, const lss_field_desc_t *f, const void *p)
{
    switch (f->type) {
    case LSS_FT_STR: {
        const char *s = *(char *const *)p;
        if (strlen (s) > f->max)
            return -1;
        s_pack_cstr (pk, s);
        return 0;
    }
    case LSS_FT_BYTES: {
        const lss_bytes_t *b = p;
        if (b->len > f->max)
            return -1;
        msgpack_pack_bin (pk, b->len);
        if (b->len)
            msgpack_pack_bin_body (pk, b->data, b->len);
        return 0;
    }
    case LSS_FT_INT:
        return msgpack_pack_int64 (pk, *(const int64_t *)p);
    case LSS_FT_BOOL:
        return *(const bool *)p ? msgpack_pack_true (pk) : msgpack_pack_false (pk);
    case LSS_FT_STRLIST: {
        const lss_strlist_t *l = p;
        if (l->count > f->max)
            return -1;
        msgpack_pack_array (pk, l->count);
        for (size_t i = 0; i < l->count; i++) {
            if (!l->items[i] || strlen (l->items[i]) > LSS_PROTO_MAX_LIST_ITEM)
                return -1;
            s_pack_cstr (pk, l->items[i]);
        }
        return 0;
    }
    case LSS_FT_STRMAP: {
        const lss_strmap_t *m = p;
        if (m->count > f->max)
            return -1;
        msgpack_pack_map (pk, m->count);
        for (size_t i = 0; i < m->count; i++) {
            if (!m->keys[i] || !m->values[i] || strlen (m->keys[i]) > LSS_PROTO_MAX_LIST_ITEM ||
                strlen (m->values[i]) > LSS_PROTO_MAX_LIST_ITEM)
                return -1;
            s_pack_cstr (pk, m->keys[i]);
            s_pack_cstr (pk, m->values[i]);
        }
        return 0;
    }
    case LSS_FT_JSON:
        return s_pack_json (pk, *(json_t *const *)p, (int)f->max + 1);
    }
    return -1;
}

int lss_proto_encode (const lss_envelope_t *env, lss_msg_kind_t kind, const void *body,
                      uint8_t **out, size_t *out_len)
{
    const lss_msg_desc_t *desc = lss_proto_desc (kind);
    if (!desc || !body || !env || !lss_proto_type_matches (kind, env->type))
        return -1;
    size_t present = 0;
    for (const lss_field_desc_t *f = desc->fields; f->name; f++) {
        bool has = s_field_present (f, FIELD_PTR (body, f));
        if (f->required && !has)
            return -1;
        present += has;
    }
    /* Size the buffer once: bulk fields dominate (output chunks, file data), and growing
     * from msgpack's 8 KiB start would realloc and copy several times per message. */
    size_t estimate = 512;
    for (const lss_field_desc_t *f = desc->fields; f->name; f++) {
        const void *p = FIELD_PTR (body, f);
        if (f->type == LSS_FT_BYTES)
            estimate += ((const lss_bytes_t *)p)->len + 8;
        else if (f->type == LSS_FT_STR && *(char *const *)p)
            estimate += strnlen (*(char *const *)p, f->max + 1) + 8;
    }
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    if (estimate > MSGPACK_SBUFFER_INIT_SIZE && estimate <= LSS_PROTO_MAX_MESSAGE) {
        sbuf.data = malloc (estimate);
        sbuf.alloc = sbuf.data ? estimate : 0;
    }
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);

    msgpack_pack_map (&pk, env->trace[0] ? 8 : 7);
    s_pack_cstr (&pk, "v");
    msgpack_pack_uint32 (&pk, env->v ? env->v : LSS_PROTO_VERSION);
    s_pack_cstr (&pk, "type");
    s_pack_cstr (&pk, env->type);
    s_pack_cstr (&pk, "id");
    s_pack_cstr (&pk, env->id);
    s_pack_cstr (&pk, "seq");
    msgpack_pack_uint64 (&pk, env->seq);
    s_pack_cstr (&pk, "src");
    s_pack_cstr (&pk, env->src);
    s_pack_cstr (&pk, "ts");
    msgpack_pack_int64 (&pk, env->ts);
    if (env->trace[0]) {
        s_pack_cstr (&pk, "trace");
        s_pack_cstr (&pk, env->trace);
    }
    s_pack_cstr (&pk, "body");
    msgpack_pack_map (&pk, present);
    for (const lss_field_desc_t *f = desc->fields; f->name; f++) {
        const void *p = FIELD_PTR (body, f);
        if (!s_field_present (f, p))
            continue;
        s_pack_cstr (&pk, f->name);
        if (s_pack_field (&pk, f, p)) {
            msgpack_sbuffer_destroy (&sbuf);
            return -1;
        }
    }
    if (!sbuf.data || sbuf.size > LSS_PROTO_MAX_MESSAGE) {
        msgpack_sbuffer_destroy (&sbuf);
        return -1;
    }
    *out_len = sbuf.size;
    *out = (uint8_t *)msgpack_sbuffer_release (&sbuf);
    return 0;
}

/* ------------------------------------------------------------------ structural check */
typedef struct {
    const uint8_t *start, *p, *end;
    char *err;
    size_t err_size;
} s_cursor_t;

static int s_need (s_cursor_t *c, uint64_t n)
{
    if ((uint64_t)(c->end - c->p) < n) {
        lss_errf (c->err, c->err_size, "truncated at byte %zu", (size_t)(c->p - c->start));
        return -2;
    }
    return 0;
}

static uint64_t s_be (const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Skips one value; counts are checked against the bytes left (each element >= 1 byte). */
static int s_skip (s_cursor_t *c, int depth)
{
    if (depth < 0) {
        lss_errf (c->err, c->err_size, "nested deeper than %d levels", LSS_PROTO_MAX_DEPTH);
        return -2;
    }
    if (s_need (c, 1))
        return -2;
    uint8_t b = *c->p++;
    uint64_t n = 0, elems = 0;
    int lenbytes = 0;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
        return 0;
    if (b >= 0xa0 && b <= 0xbf)
        n = b & 0x1f;
    else if (b >= 0x90 && b <= 0x9f)
        elems = b & 0x0f;
    else if (b >= 0x80 && b <= 0x8f)
        elems = 2u * (b & 0x0f);
    else
        switch (b) {
        case 0xc4:
        case 0xd9:
            lenbytes = 1;
            break;
        case 0xc5:
        case 0xda:
            lenbytes = 2;
            break;
        case 0xc6:
        case 0xdb:
            lenbytes = 4;
            break;
        case 0xca:
            n = 4;
            break;
        case 0xcb:
            n = 8;
            break;
        case 0xcc:
        case 0xd0:
            n = 1;
            break;
        case 0xcd:
        case 0xd1:
            n = 2;
            break;
        case 0xce:
        case 0xd2:
            n = 4;
            break;
        case 0xcf:
        case 0xd3:
            n = 8;
            break;
        case 0xdc:
        case 0xdd:
        case 0xde:
        case 0xdf: {
            int nb = (b == 0xdc || b == 0xde) ? 2 : 4;
            if (s_need (c, (uint64_t)nb))
                return -2;
            elems = s_be (c->p, nb) * ((b >= 0xde) ? 2 : 1);
            c->p += nb;
            break;
        }
        default:
            lss_errf (c->err, c->err_size, "unsupported msgpack type byte 0x%02x", b);
            return -2;
        }
    if (lenbytes) {
        if (s_need (c, (uint64_t)lenbytes))
            return -2;
        n = s_be (c->p, lenbytes);
        c->p += lenbytes;
    }
    if (n) {
        if (s_need (c, n))
            return -2;
        c->p += n;
        return 0;
    }
    if (elems > (uint64_t)(c->end - c->p)) {
        lss_errf (c->err, c->err_size, "container claims %llu elements, only %zu bytes left",
                  (unsigned long long)elems, (size_t)(c->end - c->p));
        return -2;
    }
    for (uint64_t i = 0; i < elems; i++)
        if (s_skip (c, depth - 1))
            return -2;
    return 0;
}

int lss_msgpack_check (const uint8_t *data, size_t len, int max_depth, char *err,
                       size_t err_size)
{
    if (!data || len == 0) {
        lss_errf (err, err_size, "empty message");
        return -2;
    }
    s_cursor_t c = {data, data, data + len, err, err_size};
    if (s_skip (&c, max_depth))
        return -2;
    if (c.p != c.end) {
        lss_errf (err, err_size, "%zu trailing bytes after the message", (size_t)(c.end - c.p));
        return -2;
    }
    return 0;
}

/* ------------------------------------------------------------------ decode */
static int s_unpack (const uint8_t *data, size_t len, size_t max_len, msgpack_unpacked *msg,
                     char *err, size_t err_size)
{
    if (len > max_len || len > LSS_PROTO_MAX_MESSAGE) {
        lss_errf (err, err_size, "message of %zu bytes exceeds the limit of %zu", len,
                  max_len < LSS_PROTO_MAX_MESSAGE ? max_len : (size_t)LSS_PROTO_MAX_MESSAGE);
        return -2;
    }
    if (lss_msgpack_check (data, len, LSS_PROTO_MAX_DEPTH, err, err_size))
        return -2;
    size_t off = 0;
    msgpack_unpacked_init (msg);
    if (msgpack_unpack_next (msg, (const char *)data, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        off != len) {
        msgpack_unpacked_destroy (msg);
        lss_errf (err, err_size, "msgpack could not be unpacked");
        return -2;
    }
    if (msg->data.type != MSGPACK_OBJECT_MAP) {
        msgpack_unpacked_destroy (msg);
        lss_errf (err, err_size, "message is not a map");
        return -2;
    }
    return 0;
}

static bool s_key_is (const msgpack_object *k, const char *name)
{
    size_t n = strlen (name);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
           memcmp (k->via.str.ptr, name, n) == 0;
}

static int s_copy_str (const msgpack_object *o, size_t max, char *out, const char *what,
                       char *err, size_t err_size)
{
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size > max ||
        !s_utf8_valid ((const uint8_t *)o->via.str.ptr, o->via.str.size)) {
        lss_errf (err, err_size, "envelope %s must be a UTF-8 string of at most %zu bytes",
                  what, max);
        return -2;
    }
    memcpy (out, o->via.str.ptr, o->via.str.size);
    out[o->via.str.size] = '\0';
    return 0;
}

static char *s_dup_str (const msgpack_object *o, size_t max)
{
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size > max ||
        !s_utf8_valid ((const uint8_t *)o->via.str.ptr, o->via.str.size))
        return NULL;
    char *s = malloc (o->via.str.size + 1);
    if (s) {
        memcpy (s, o->via.str.ptr, o->via.str.size);
        s[o->via.str.size] = '\0';
    }
    return s;
}

static int s_decode_field (const lss_field_desc_t *f, const msgpack_object *o, void *p,
                           char *err, size_t err_size)
{
    switch (f->type) {
    case LSS_FT_STR:
        if (!(*(char **)p = s_dup_str (o, f->max)))
            goto bad;
        return 0;
    case LSS_FT_BYTES: {
        if (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size > f->max)
            goto bad;
        lss_bytes_t *b = p;
        b->len = o->via.bin.size;
        b->data = malloc (b->len ? b->len : 1);
        if (!b->data)
            goto bad;
        if (b->len)
            memcpy (b->data, o->via.bin.ptr, b->len);
        return 0;
    }
    case LSS_FT_INT:
        if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX)
            *(int64_t *)p = (int64_t)o->via.u64;
        else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            *(int64_t *)p = o->via.i64;
        else
            goto bad;
        return 0;
    case LSS_FT_BOOL:
        if (o->type != MSGPACK_OBJECT_BOOLEAN)
            goto bad;
        *(bool *)p = o->via.boolean;
        return 0;
    case LSS_FT_STRLIST: {
        if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > f->max)
            goto bad;
        lss_strlist_t *l = p;
        l->items =
            calloc ((size_t)o->via.array.size + 1, sizeof (char *)); /* NULL-terminated */
        if (!l->items)
            goto bad;
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (!(l->items[i] = s_dup_str (&o->via.array.ptr[i], LSS_PROTO_MAX_LIST_ITEM)))
                goto bad;
            l->count++;
        }
        return 0;
    }
    case LSS_FT_STRMAP: {
        if (o->type != MSGPACK_OBJECT_MAP || o->via.map.size > f->max)
            goto bad;
        lss_strmap_t *m = p;
        size_t n = o->via.map.size ? o->via.map.size : 1;
        m->keys = calloc (n, sizeof (char *));
        m->values = calloc (n, sizeof (char *));
        if (!m->keys || !m->values)
            goto bad;
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            m->keys[i] = s_dup_str (&o->via.map.ptr[i].key, LSS_PROTO_MAX_LIST_ITEM);
            m->values[i] = s_dup_str (&o->via.map.ptr[i].val, LSS_PROTO_MAX_LIST_ITEM);
            m->count++;
            if (!m->keys[i] || !m->values[i])
                goto bad;
        }
        return 0;
    }
    case LSS_FT_JSON:
        if (!(*(json_t **)p = s_obj_to_json (o, (int)f->max + 1, NULL, 0)))
            goto bad;
        return 0;
    }
bad : {
    static const char *const names[] = {"string",  "binary",           "integer",
                                        "boolean", "array of strings", "map of strings",
                                        "value"};
    lss_errf (err, err_size, "field '%s' must be a %s within its limit of %u", f->name,
              names[f->type], f->max);
}
    return -2;
}

static int s_decode_body (const lss_msg_desc_t *desc, const msgpack_object *o, void *body,
                          char *err, size_t err_size)
{
    if (o->type != MSGPACK_OBJECT_MAP) {
        lss_errf (err, err_size, "body of %s must be a map", desc->pattern);
        return -2;
    }
    uint64_t seen = 0; /* messages have < 64 fields (checked in the round-trip test) */
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR) {
            lss_errf (err, err_size, "body key is not a string");
            return -2;
        }
        size_t idx = 0;
        const lss_field_desc_t *f = desc->fields;
        for (; f->name; f++, idx++)
            if (s_key_is (&kv->key, f->name))
                break;
        if (!f->name)
            continue; /* a newer sender's field: ignored */
        if (seen & (1ull << idx)) {
            lss_errf (err, err_size, "field '%s' appears twice", f->name);
            return -2;
        }
        seen |= 1ull << idx;
        if (s_decode_field (f, &kv->val, FIELD_PTR (body, f), err, err_size))
            return -2;
    }
    size_t idx = 0;
    for (const lss_field_desc_t *f = desc->fields; f->name; f++, idx++)
        if (f->required && !(seen & (1ull << idx))) {
            lss_errf (err, err_size, "required field '%s' is missing", f->name);
            return -2;
        }
    return 0;
}

enum {
    E_V = 1,
    E_TYPE = 2,
    E_ID = 4,
    E_SEQ = 8,
    E_SRC = 16,
    E_TS = 32,
    E_TRACE = 64,
    E_BODY = 128
};
#define E_REQUIRED (E_V | E_TYPE | E_ID | E_SEQ | E_SRC | E_TS | E_BODY)

static int s_decode_envelope (const msgpack_object *root, lss_envelope_t *env,
                              const msgpack_object **body, char *err, size_t err_size)
{
    memset (env, 0, sizeof *env);
    unsigned seen = 0;
    for (uint32_t i = 0; i < root->via.map.size; i++) {
        const msgpack_object *k = &root->via.map.ptr[i].key, *v = &root->via.map.ptr[i].val;
        unsigned bit = 0;
        int rc = 0;
        if (s_key_is (k, "v")) {
            bit = E_V;
            if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 != LSS_PROTO_VERSION) {
                lss_errf (err, err_size, "unsupported envelope version");
                return -2;
            }
            env->v = LSS_PROTO_VERSION;
        } else if (s_key_is (k, "type")) {
            bit = E_TYPE;
            rc = s_copy_str (v, LSS_PROTO_TYPE_MAX, env->type, "type", err, err_size);
        } else if (s_key_is (k, "id")) {
            bit = E_ID;
            rc = s_copy_str (v, LSS_PROTO_ID_MAX, env->id, "id", err, err_size);
        } else if (s_key_is (k, "src")) {
            bit = E_SRC;
            rc = s_copy_str (v, LSS_PROTO_SRC_MAX, env->src, "src", err, err_size);
        } else if (s_key_is (k, "trace")) {
            bit = E_TRACE;
            rc = s_copy_str (v, LSS_PROTO_TRACE_MAX, env->trace, "trace", err, err_size);
        } else if (s_key_is (k, "seq")) {
            bit = E_SEQ;
            if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
                lss_errf (err, err_size, "envelope seq must be a non-negative integer");
                return -2;
            }
            env->seq = v->via.u64;
        } else if (s_key_is (k, "ts")) {
            bit = E_TS;
            if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= INT64_MAX)
                env->ts = (int64_t)v->via.u64;
            else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
                env->ts = v->via.i64;
            else {
                lss_errf (err, err_size, "envelope ts must be an integer");
                return -2;
            }
        } else if (s_key_is (k, "body")) {
            bit = E_BODY;
            *body = v;
        } else if (k->type != MSGPACK_OBJECT_STR) {
            lss_errf (err, err_size, "envelope key is not a string");
            return -2;
        }
        if (rc)
            return -2;
        if (bit & seen) {
            lss_errf (err, err_size, "envelope key appears twice");
            return -2;
        }
        seen |= bit;
    }
    if ((seen & E_REQUIRED) != E_REQUIRED) {
        static const char *const names[] = {"v",   "type", "id",    "seq",
                                            "src", "ts",   "trace", "body"};
        for (int b = 0; b < 8; b++)
            if ((E_REQUIRED & (1u << b)) && !(seen & (1u << b))) {
                lss_errf (err, err_size, "envelope field '%s' is missing", names[b]);
                break;
            }
        return -2;
    }
    return 0;
}

int lss_proto_decode (const uint8_t *data, size_t len, size_t max_len, lss_envelope_t *env,
                      lss_msg_kind_t *kind, void **body, char *err, size_t err_size)
{
    *kind = LSS_MSG_NONE;
    *body = NULL;
    msgpack_unpacked msg;
    if (s_unpack (data, len, max_len, &msg, err, err_size))
        return -2;
    const msgpack_object *body_obj = NULL;
    int rc = s_decode_envelope (&msg.data, env, &body_obj, err, err_size);
    if (rc == 0) {
        lss_msg_kind_t k = lss_proto_kind_of (env->type);
        if (k != LSS_MSG_NONE) {
            void *b = lss_proto_body_new (k);
            if (!b) {
                lss_errf (err, err_size, "out of memory");
                rc = -2;
            } else if ((rc = s_decode_body (lss_proto_desc (k), body_obj, b, err, err_size)))
                lss_proto_body_free (k, &b);
            else {
                *kind = k;
                *body = b;
            }
        }
    }
    msgpack_unpacked_destroy (&msg);
    return rc;
}

json_t *lss_proto_to_json (const uint8_t *data, size_t len, size_t max_len, char *err,
                           size_t err_size)
{
    msgpack_unpacked msg;
    if (s_unpack (data, len, max_len, &msg, err, err_size))
        return NULL;
    json_t *out = s_obj_to_json (&msg.data, LSS_PROTO_MAX_DEPTH + 1, err, err_size);
    msgpack_unpacked_destroy (&msg);
    return out;
}

json_t *lss_proto_body_to_json (lss_msg_kind_t kind, const void *body)
{
    const lss_msg_desc_t *desc = lss_proto_desc (kind);
    if (!desc || !body)
        return NULL;
    json_t *obj = json_object ();
    for (const lss_field_desc_t *f = desc->fields; obj && f->name; f++) {
        const void *p = FIELD_PTR (body, f);
        json_t *v = NULL;
        switch (f->type) {
        case LSS_FT_STR: {
            const char *s = *(char *const *)p;
            v = s ? json_string (s) : NULL;
            break;
        }
        case LSS_FT_BYTES: {
            const lss_bytes_t *b = p;
            v = b->len ? s_base64 (b->data, b->len) : json_string ("");
            break;
        }
        case LSS_FT_INT:
            v = json_integer (*(const int64_t *)p);
            break;
        case LSS_FT_BOOL:
            v = json_boolean (*(const bool *)p);
            break;
        case LSS_FT_STRLIST: {
            const lss_strlist_t *l = p;
            v = json_array ();
            for (size_t i = 0; v && i < l->count; i++)
                json_array_append_new (v, json_string (l->items[i]));
            break;
        }
        case LSS_FT_STRMAP: {
            const lss_strmap_t *m = p;
            v = json_object ();
            for (size_t i = 0; v && i < m->count; i++)
                json_object_set_new (v, m->keys[i], json_string (m->values[i]));
            break;
        }
        case LSS_FT_JSON:
            v = json_incref (*(json_t *const *)p);
            break;
        }
        if (v)
            json_object_set_new (obj, f->name, v);
    }
    return obj;
}
