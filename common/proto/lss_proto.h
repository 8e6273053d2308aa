/*  lss_proto — the bus envelope and the typed message codec.
 *
 *  Every message is a msgpack map {v, type, id, seq, src, ts, trace, body}. The bodies are
 *  declared once in lss_messages.def; this header turns that declaration into C structs
 *  (lss_<id>_t) and a kind enum (LSS_MSG_<ID>), and the codec walks descriptor tables
 *  built from the same file, so there is no hand-written per-message code to fall out
 *  of step. Decoding is bounds-checked before msgpack-c sees the bytes (size, depth,
 *  container counts against the bytes left, string lengths) and against the declaration
 *  (types, required fields, string/bytes/list limits); malformed input returns -2 with
 *  a reason, never a crash.
 */
#ifndef LSS_PROTO_H
#define LSS_PROTO_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LSS_PROTO_VERSION       1
#define LSS_PROTO_MAX_DEPTH     32          /* msgpack nesting limit */
#define LSS_PROTO_MAX_MESSAGE   (64u << 20) /* absolute cap; sockets set their own lower one */
#define LSS_PROTO_MAX_LIST_ITEM 65536       /* bytes per STRLIST item / STRMAP key or value */
#define LSS_PROTO_TYPE_MAX      64
#define LSS_PROTO_ID_MAX        64
#define LSS_PROTO_SRC_MAX       128
#define LSS_PROTO_TRACE_MAX     128

typedef struct {
    uint8_t *data;
    size_t len;
} lss_bytes_t;

/*  A list of strings. Decoded lists are NULL-terminated (items[count] == NULL), so they
 *  can be handed to exec as argv; lists given to the encoder need not be. */
typedef struct {
    char **items;
    size_t count;
} lss_strlist_t;

typedef struct {
    char **keys;
    char **values;
    size_t count;
} lss_strmap_t;

typedef enum {
    LSS_FT_STR,
    LSS_FT_BYTES,
    LSS_FT_INT,
    LSS_FT_BOOL,
    LSS_FT_STRLIST,
    LSS_FT_STRMAP,
    LSS_FT_JSON,
} lss_field_type_t;

#define LSS_CTYPE_STR     char *
#define LSS_CTYPE_BYTES   lss_bytes_t
#define LSS_CTYPE_INT     int64_t
#define LSS_CTYPE_BOOL    bool
#define LSS_CTYPE_STRLIST lss_strlist_t
#define LSS_CTYPE_STRMAP  lss_strmap_t
#define LSS_CTYPE_JSON    json_t *

/* Body structs: lss_<id>_t. */
#define LSS_MSG(id, type, doc)                    typedef struct {
#define LSS_FIELD(id, name, ftype, max, req, doc) LSS_CTYPE_##ftype name;
#define LSS_END(id)                                                                            \
    }                                                                                          \
    lss_##id##_t;
#include "lss_messages.def"
#undef LSS_MSG
#undef LSS_FIELD
#undef LSS_END

/* Kinds: LSS_MSG_<id> (lower-case id, matching the struct name). */
typedef enum {
    LSS_MSG_NONE = 0,
#define LSS_MSG(id, type, doc) LSS_MSG_##id,
#define LSS_FIELD(id, name, ftype, max, req, doc)
#define LSS_END(id)
#include "lss_messages.def"
#undef LSS_MSG
#undef LSS_FIELD
#undef LSS_END
    LSS_MSG_COUNT
} lss_msg_kind_t;

typedef struct {
    const char *name;
    lss_field_type_t type;
    uint32_t max; /* STR/BYTES: bytes; STRLIST/STRMAP: items; JSON: depth; INT/BOOL: 0 */
    bool required;
    size_t offset;
    const char *doc;
} lss_field_desc_t;

typedef struct {
    lss_msg_kind_t kind;
    const char *id;      /* "exec_start" */
    const char *pattern; /* "exec.start", "*.added|*.modified" */
    const char *doc;
    const lss_field_desc_t *fields;
    size_t field_count;
    size_t size; /* sizeof body struct */
} lss_msg_desc_t;

/*  The envelope around a body. Strings are inline and bounded. */
typedef struct {
    uint32_t v;
    char type[LSS_PROTO_TYPE_MAX + 1];
    char id[LSS_PROTO_ID_MAX + 1];
    uint64_t seq;
    char src[LSS_PROTO_SRC_MAX + 1];
    int64_t ts;
    char trace[LSS_PROTO_TRACE_MAX + 1];
} lss_envelope_t;

/*  Descriptor of a kind (NULL for out-of-range). */
const lss_msg_desc_t *lss_proto_desc (lss_msg_kind_t kind);
/*  The kind whose pattern matches an envelope type, or LSS_MSG_NONE. */
lss_msg_kind_t lss_proto_kind_of (const char *type);
/*  True if type matches the kind's pattern. */
bool lss_proto_type_matches (lss_msg_kind_t kind, const char *type);
/*  The concrete type of a kind whose pattern has no wildcard ("exec.start"), else NULL. */
const char *lss_proto_type_name (lss_msg_kind_t kind);

/*  Allocates a zeroed body of a kind (caller owns; free with lss_proto_body_free). */
void *lss_proto_body_new (lss_msg_kind_t kind);
/*  Frees a body's fields and the body itself; NULLs *body_p. */
void lss_proto_body_free (lss_msg_kind_t kind, void **body_p);
/*  Frees a body's fields but not the struct (for bodies on the stack). */
void lss_proto_body_clear (lss_msg_kind_t kind, void *body);
/*  Field-by-field equality (absent == empty). */
bool lss_proto_body_equal (lss_msg_kind_t kind, const void *a, const void *b);

/*  Encodes envelope + body into a malloc'd buffer (*out, *out_len; caller frees).
 *  env->type must match the kind (a wildcard kind needs a concrete type). Returns 0,
 *  or -1 when the body violates its declaration (missing required, over a limit). */
int lss_proto_encode (const lss_envelope_t *env, lss_msg_kind_t kind, const void *body,
                      uint8_t **out, size_t *out_len);

/*  Decodes one message. On success returns 0, fills env, and sets *kind and *body
 *  (caller owns; LSS_MSG_NONE and NULL body when the type is unknown — the envelope is
 *  still valid). Returns -2 for malformed input with a reason in err (err may be NULL). */
int lss_proto_decode (const uint8_t *data, size_t len, size_t max_len, lss_envelope_t *env,
                      lss_msg_kind_t *kind, void **body, char *err, size_t err_size);

/*  Generic view for tools: the whole message as JSON (bin → base64 strings), without
 *  needing to know the type. Returns NULL with err set on malformed input. */
json_t *lss_proto_to_json (const uint8_t *data, size_t len, size_t max_len, char *err,
                           size_t err_size);
/*  A typed body as JSON (field names as declared; bytes as base64). Caller owns. */
json_t *lss_proto_body_to_json (lss_msg_kind_t kind, const void *body);

/*  Structural check of msgpack bytes: one complete value, depth <= max_depth, every
 *  container's count possible in the bytes left, no ext types, no trailing bytes.
 *  Returns 0 or -2 with err. Used before handing bytes to msgpack-c. */
int lss_msgpack_check (const uint8_t *data, size_t len, int max_depth, char *err,
                       size_t err_size);

/*  The markdown reference of every message (docs/bus.md). Caller frees. */
char *lss_proto_doc_markdown (void);

#endif
