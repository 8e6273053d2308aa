/*  Unit tests for lss_proto: round trip of every declared message, encoder refusals,
 *  malformed msgpack (truncated, wrong types, huge lengths, deep nesting, trailing bytes,
 *  bad UTF-8, duplicates), a mutation fuzz, and docs/bus.md being up to date. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lss_proto.h"

static uint64_t s_rng = 88172645463325252ull;
static uint64_t s_rand (void)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return s_rng;
}

static char *s_rand_str (size_t max)
{
    size_t n = max ? s_rand () % (max < 40 ? max + 1 : 41) : 0;
    char *s = malloc (n + 4);
    for (size_t i = 0; i < n; i++)
        s[i] = (char)('a' + s_rand () % 26);
    s[n] = '\0';
    if (n >= 3 && s_rand () % 3 == 0)
        memcpy (s, "\xc3\xa9", 2); /* some UTF-8 */
    return s;
}

/* Fills every field of a body with random values within its limits. */
static void s_fill (lss_msg_kind_t kind, void *body)
{
    const lss_msg_desc_t *d = lss_proto_desc (kind);
    for (const lss_field_desc_t *f = d->fields; f->name; f++) {
        void *p = (char *)body + f->offset;
        switch (f->type) {
        case LSS_FT_STR:
            *(char **)p = s_rand_str (f->max);
            break;
        case LSS_FT_BYTES: {
            lss_bytes_t *b = p;
            b->len = s_rand () % 300;
            b->data = malloc (b->len + 1);
            for (size_t i = 0; i < b->len; i++)
                b->data[i] = (uint8_t)s_rand ();
            break;
        }
        case LSS_FT_INT:
            *(int64_t *)p = (int64_t)s_rand () * (s_rand () % 2 ? 1 : -1);
            break;
        case LSS_FT_BOOL:
            *(bool *)p = s_rand () % 2;
            break;
        case LSS_FT_STRLIST: {
            lss_strlist_t *l = p;
            l->count = s_rand () % 5;
            l->items = calloc (l->count + 1, sizeof (char *));
            for (size_t i = 0; i < l->count; i++)
                l->items[i] = s_rand_str (20);
            break;
        }
        case LSS_FT_STRMAP: {
            lss_strmap_t *m = p;
            m->count = s_rand () % 4;
            m->keys = calloc (m->count + 1, sizeof (char *));
            m->values = calloc (m->count + 1, sizeof (char *));
            for (size_t i = 0; i < m->count; i++) {
                m->keys[i] = s_rand_str (10);
                m->values[i] = s_rand_str (20);
            }
            break;
        }
        case LSS_FT_JSON:
            *(json_t **)p = json_pack ("{s:s, s:i, s:[i, b, n, f], s:{s:s}}", "name", "sb-1",
                                       "n", (json_int_t)(s_rand () % 1000), "list", 1, 1, 2.5,
                                       "nested", "k", "v");
            break;
        }
    }
}

static void s_env (lss_envelope_t *env, lss_msg_kind_t kind)
{
    memset (env, 0, sizeof *env);
    const char *t = lss_proto_type_name (kind);
    if (t)
        snprintf (env->type, sizeof env->type, "%s", t);
    else {
        /* a wildcard kind: its first alternative with "*" as the word "sandbox" */
        const char *pat = lss_proto_desc (kind)->pattern;
        size_t n = strcspn (pat, "|");
        assert_true (n > 2 && pat[0] == '*' && pat[1] == '.');
        snprintf (env->type, sizeof env->type, "sandbox%.*s", (int)(n - 1), pat + 1);
    }
    snprintf (env->id, sizeof env->id, "m-%llu", (unsigned long long)(s_rand () % 100000));
    env->seq = s_rand () % 1000000;
    snprintf (env->src, sizeof env->src, "test/1");
    env->ts = 1795000000000;
    if (s_rand () % 2)
        snprintf (env->trace, sizeof env->trace, "req-abc");
}

static void test_roundtrip_every_message (void **state)
{
    (void)state;
    for (int k = LSS_MSG_NONE + 1; k < LSS_MSG_COUNT; k++) {
        const lss_msg_desc_t *d = lss_proto_desc ((lss_msg_kind_t)k);
        assert_non_null (d);
        assert_true (d->field_count > 0 && d->field_count < 64);
        for (int iter = 0; iter < 50; iter++) {
            void *body = lss_proto_body_new ((lss_msg_kind_t)k);
            s_fill ((lss_msg_kind_t)k, body);
            lss_envelope_t env, env2;
            s_env (&env, (lss_msg_kind_t)k);
            uint8_t *buf;
            size_t len;
            assert_int_equal (lss_proto_encode (&env, (lss_msg_kind_t)k, body, &buf, &len), 0);
            lss_msg_kind_t kind2;
            void *body2;
            char err[256] = "";
            int rc =
                lss_proto_decode (buf, len, SIZE_MAX, &env2, &kind2, &body2, err, sizeof err);
            if (rc)
                fail_msg ("%s: %s", d->id, err);
            assert_int_equal (kind2, k);
            assert_string_equal (env2.type, env.type);
            assert_string_equal (env2.id, env.id);
            assert_string_equal (env2.src, env.src);
            assert_string_equal (env2.trace, env.trace);
            assert_int_equal (env2.seq, env.seq);
            assert_int_equal (env2.ts, env.ts);
            assert_true (lss_proto_body_equal ((lss_msg_kind_t)k, body, body2));
            /* A changed value must be noticed by the comparison (guards the test itself). */
            json_t *j = lss_proto_body_to_json ((lss_msg_kind_t)k, body2);
            assert_non_null (j);
            assert_true (json_object_size (j) > 0);
            json_decref (j);
            lss_proto_body_free ((lss_msg_kind_t)k, &body2);
            lss_proto_body_free ((lss_msg_kind_t)k, &body);
            assert_null (body);
            free (buf);
        }
    }
}

static void test_equal_detects_difference (void **state)
{
    (void)state;
    lss_exec_end_t a = {0}, b = {0};
    a.exec_id = "x";
    b.exec_id = "x";
    assert_true (lss_proto_body_equal (LSS_MSG_exec_end, &a, &b));
    b.exit_code = 1;
    assert_false (lss_proto_body_equal (LSS_MSG_exec_end, &a, &b));
}

static uint8_t *s_encode_exec_output (size_t *len)
{
    lss_exec_output_t out = {
        .exec_id = "e1", .stream = "stdout", .seq = 7, .data = {(uint8_t *)"hello", 5}};
    lss_envelope_t env = {.seq = 3, .ts = 5};
    snprintf (env.type, sizeof env.type, "%s", "exec.output");
    snprintf (env.id, sizeof env.id, "%s", "m1");
    snprintf (env.src, sizeof env.src, "%s", "agent");
    uint8_t *buf;
    assert_int_equal (lss_proto_encode (&env, LSS_MSG_exec_output, &out, &buf, len), 0);
    return buf;
}

static void test_encode_refuses_invalid (void **state)
{
    (void)state;
    lss_envelope_t env = {0};
    snprintf (env.type, sizeof env.type, "%s", "exec.output");
    uint8_t *buf = NULL;
    size_t len;
    lss_exec_output_t out = {.exec_id = NULL, .stream = "stdout"};
    assert_int_equal (lss_proto_encode (&env, LSS_MSG_exec_output, &out, &buf, &len), -1);
    out.exec_id = "e1";
    out.stream = "stdout-and-more"; /* over 8 bytes */
    assert_int_equal (lss_proto_encode (&env, LSS_MSG_exec_output, &out, &buf, &len), -1);
    out.stream = "stdout";
    snprintf (env.type, sizeof env.type, "%s", "exec.start"); /* type does not match kind */
    assert_int_equal (lss_proto_encode (&env, LSS_MSG_exec_output, &out, &buf, &len), -1);
    /* wildcard kinds need a concrete type */
    lss_object_event_t ev = {
        .kind = "Sandbox", .name = "a", .resource_version = "1", .object = json_object ()};
    snprintf (env.type, sizeof env.type, "%s", "*.added");
    assert_int_equal (lss_proto_encode (&env, LSS_MSG_object_event, &ev, &buf, &len), -1);
    snprintf (env.type, sizeof env.type, "%s", "sandbox.added");
    assert_int_equal (lss_proto_encode (&env, LSS_MSG_object_event, &ev, &buf, &len), 0);
    free (buf);
    json_decref (ev.object);
    assert_null (lss_proto_type_name (LSS_MSG_object_event));
    assert_string_equal (lss_proto_type_name (LSS_MSG_exec_start), "exec.start");
    assert_int_equal (lss_proto_kind_of ("warmpod.deleted"), LSS_MSG_object_event);
    assert_int_equal (lss_proto_kind_of ("Sandbox.deleted"), LSS_MSG_NONE);
    assert_int_equal (lss_proto_kind_of (".deleted"), LSS_MSG_NONE);
    assert_int_equal (lss_proto_kind_of ("exec.output"), LSS_MSG_exec_output);
    assert_int_equal (lss_proto_kind_of ("exec.outputs"), LSS_MSG_NONE);
}

static int s_decode (const uint8_t *buf, size_t len, char *err, size_t err_size)
{
    lss_envelope_t env;
    lss_msg_kind_t kind;
    void *body = NULL;
    int rc = lss_proto_decode (buf, len, 1 << 20, &env, &kind, &body, err, err_size);
    lss_proto_body_free (kind, &body);
    return rc;
}

static void test_truncated_every_prefix (void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = s_encode_exec_output (&len);
    char err[256];
    assert_int_equal (s_decode (buf, len, err, sizeof err), 0);
    for (size_t n = 0; n < len; n++) {
        uint8_t *copy = malloc (n ? n : 1); /* exact size so ASan sees over-reads */
        memcpy (copy, buf, n);
        assert_int_equal (s_decode (copy, n, err, sizeof err), -2);
        free (copy);
    }
    free (buf);
}

static void test_trailing_bytes (void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = s_encode_exec_output (&len);
    uint8_t *longer = malloc (len + 1);
    memcpy (longer, buf, len);
    longer[len] = 0xc0;
    char err[256];
    assert_int_equal (s_decode (longer, len + 1, err, sizeof err), -2);
    assert_non_null (strstr (err, "trailing"));
    free (longer);
    free (buf);
}

/* Builds a message with a custom packer callback for the body. */
typedef void (*body_fn) (msgpack_packer *pk);
static void s_key (msgpack_packer *pk, const char *k)
{
    msgpack_pack_str (pk, strlen (k));
    msgpack_pack_str_body (pk, k, strlen (k));
}

static msgpack_sbuffer s_build (const char *type, body_fn fn)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init (&sb);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 7);
    s_key (&pk, "v");
    msgpack_pack_uint8 (&pk, 1);
    s_key (&pk, "type");
    s_key (&pk, type);
    s_key (&pk, "id");
    s_key (&pk, "m1");
    s_key (&pk, "seq");
    msgpack_pack_uint8 (&pk, 1);
    s_key (&pk, "src");
    s_key (&pk, "t");
    s_key (&pk, "ts");
    msgpack_pack_uint8 (&pk, 1);
    s_key (&pk, "body");
    fn (&pk);
    return sb;
}

static void s_body_wrong_type (msgpack_packer *pk)
{
    msgpack_pack_map (pk, 1);
    s_key (pk, "exec_id");
    msgpack_pack_int (pk, 5);
}
static void s_body_seq_string (msgpack_packer *pk)
{
    msgpack_pack_map (pk, 4);
    s_key (pk, "exec_id");
    s_key (pk, "e");
    s_key (pk, "stream");
    s_key (pk, "stdout");
    s_key (pk, "seq");
    s_key (pk, "7");
    s_key (pk, "data");
    msgpack_pack_bin (pk, 0);
}
static void s_body_bad_utf8 (msgpack_packer *pk)
{
    msgpack_pack_map (pk, 1);
    s_key (pk, "exec_id");
    msgpack_pack_str (pk, 2);
    msgpack_pack_str_body (pk, "\xc3\x28", 2);
}
static void s_body_nul (msgpack_packer *pk)
{
    msgpack_pack_map (pk, 1);
    s_key (pk, "exec_id");
    msgpack_pack_str (pk, 3);
    msgpack_pack_str_body (pk, "a\0b", 3);
}
static void s_body_dup (msgpack_packer *pk)
{
    msgpack_pack_map (pk, 2);
    s_key (pk, "exec_id");
    s_key (pk, "a");
    s_key (pk, "exec_id");
    s_key (pk, "b");
}
static void s_body_missing (msgpack_packer *pk)
{
    msgpack_pack_map (pk, 0);
}
static void s_body_not_map (msgpack_packer *pk)
{
    msgpack_pack_array (pk, 0);
}
static void s_body_long_id (msgpack_packer *pk)
{
    char id[100];
    memset (id, 'x', sizeof id - 1);
    id[99] = '\0';
    msgpack_pack_map (pk, 1);
    s_key (pk, "exec_id");
    s_key (pk, id);
}
static void s_body_too_many_args (msgpack_packer *pk)
{
    msgpack_pack_map (pk, 2);
    s_key (pk, "exec_id");
    s_key (pk, "a");
    s_key (pk, "argv");
    msgpack_pack_array (pk, 1025);
    for (int i = 0; i < 1025; i++)
        s_key (pk, "x");
}
static void s_body_ok_cancel (msgpack_packer *pk)
{
    msgpack_pack_map (pk, 2);
    s_key (pk, "exec_id");
    s_key (pk, "a");
    s_key (pk, "from_the_future");
    msgpack_pack_int (pk, 1);
}

static void test_wrong_types_and_limits (void **state)
{
    (void)state;
    struct {
        const char *type;
        body_fn fn;
        int rc;
        const char *needle;
    } cases[] = {
        {"exec.cancel", s_body_wrong_type, -2, "exec_id"},
        {"exec.output", s_body_seq_string, -2, "seq"},
        {"exec.cancel", s_body_bad_utf8, -2, "exec_id"},
        {"exec.cancel", s_body_nul, -2, "exec_id"},
        {"exec.cancel", s_body_dup, -2, "twice"},
        {"exec.cancel", s_body_missing, -2, "missing"},
        {"exec.cancel", s_body_not_map, -2, "map"},
        {"exec.cancel", s_body_long_id, -2, "exec_id"},
        {"exec.start", s_body_too_many_args, -2, "argv"},
        {"exec.cancel", s_body_ok_cancel, 0, NULL},
        {"no.such.type", s_body_missing, 0, NULL}, /* unknown type: envelope only */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        msgpack_sbuffer sb = s_build (cases[i].type, cases[i].fn);
        char err[256] = "";
        int rc = s_decode ((uint8_t *)sb.data, sb.size, err, sizeof err);
        if (rc != cases[i].rc)
            fail_msg ("case %zu: rc %d, err '%s'", i, rc, err);
        if (cases[i].needle && !strstr (err, cases[i].needle))
            fail_msg ("case %zu: error '%s' lacks '%s'", i, err, cases[i].needle);
        msgpack_sbuffer_destroy (&sb);
    }
}

static void test_huge_lengths_and_depth (void **state)
{
    (void)state;
    char err[256];
    /* array32 claiming 4 billion elements in 5 bytes */
    const uint8_t huge_array[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal (lss_msgpack_check (huge_array, sizeof huge_array, 32, err, sizeof err),
                      -2);
    assert_int_equal (s_decode (huge_array, sizeof huge_array, err, sizeof err), -2);
    const uint8_t huge_map[] = {0xdf, 0x7f, 0xff, 0xff, 0xff, 0xc0};
    assert_int_equal (s_decode (huge_map, sizeof huge_map, err, sizeof err), -2);
    const uint8_t huge_str[] = {0x81, 0xdb, 0xff, 0xff, 0xff, 0xf0, 'a'};
    assert_int_equal (s_decode (huge_str, sizeof huge_str, err, sizeof err), -2);
    const uint8_t huge_bin[] = {0xc6, 0x7f, 0xff, 0xff, 0xff};
    assert_int_equal (s_decode (huge_bin, sizeof huge_bin, err, sizeof err), -2);
    /* ext types are refused; 0xc1 is never valid */
    const uint8_t ext[] = {0xd4, 0x01, 0x00};
    assert_int_equal (lss_msgpack_check (ext, sizeof ext, 32, err, sizeof err), -2);
    const uint8_t never[] = {0xc1};
    assert_int_equal (lss_msgpack_check (never, 1, 32, err, sizeof err), -2);
    /* nesting: 33 arrays deep is refused, 10 deep passes the structural check */
    uint8_t deep[200];
    for (int i = 0; i < 200; i++)
        deep[i] = 0x91;
    deep[199] = 0xc0;
    assert_int_equal (lss_msgpack_check (deep, sizeof deep, 32, err, sizeof err), -2);
    assert_non_null (strstr (err, "deeper"));
    assert_int_equal (s_decode (deep, sizeof deep, err, sizeof err), -2);
    assert_int_equal (lss_msgpack_check (deep + 189, 11, 32, err, sizeof err), 0);
    /* a message over the caller's limit is refused before parsing */
    size_t len;
    uint8_t *buf = s_encode_exec_output (&len);
    lss_envelope_t env;
    lss_msg_kind_t kind;
    void *body;
    assert_int_equal (lss_proto_decode (buf, len, len - 1, &env, &kind, &body, err, sizeof err),
                      -2);
    assert_non_null (strstr (err, "exceeds"));
    free (buf);
    assert_int_equal (s_decode (NULL, 0, err, sizeof err), -2);
}

static void test_envelope_errors (void **state)
{
    (void)state;
    char err[256];
    /* wrong version */
    size_t len;
    uint8_t *buf = s_encode_exec_output (&len);
    assert_int_equal (buf[0], 0x87); /* fixmap of 7 */
    assert_int_equal (buf[1], 0xa1); /* "v" */
    buf[3] = 2;                      /* v = 2 */
    assert_int_equal (s_decode (buf, len, err, sizeof err), -2);
    assert_non_null (strstr (err, "version"));
    free (buf);
    /* not a map */
    const uint8_t arr[] = {0x90};
    assert_int_equal (s_decode (arr, 1, err, sizeof err), -2);
    /* missing body */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init (&sb);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 1);
    s_key (&pk, "v");
    msgpack_pack_uint8 (&pk, 1);
    assert_int_equal (s_decode ((uint8_t *)sb.data, sb.size, err, sizeof err), -2);
    assert_non_null (strstr (err, "missing"));
    msgpack_sbuffer_destroy (&sb);
}

static void test_mutation_fuzz (void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = s_encode_exec_output (&len);
    uint8_t *copy = malloc (len);
    int ok = 0, bad = 0;
    for (int iter = 0; iter < 20000; iter++) {
        memcpy (copy, buf, len);
        int flips = 1 + (int)(s_rand () % 4);
        for (int f = 0; f < flips; f++)
            copy[s_rand () % len] = (uint8_t)s_rand ();
        char err[256];
        int rc = s_decode (copy, len, err, sizeof err);
        assert_true (rc == 0 || rc == -2);
        rc == 0 ? ok++ : bad++;
        json_t *j = lss_proto_to_json (copy, len, 1 << 20, err, sizeof err);
        json_decref (j);
    }
    assert_true (bad > 0);
    free (copy);
    free (buf);
}

static void test_to_json_generic (void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = s_encode_exec_output (&len);
    char err[256];
    json_t *j = lss_proto_to_json (buf, len, 1 << 20, err, sizeof err);
    assert_non_null (j);
    assert_string_equal (json_string_value (json_object_get (j, "type")), "exec.output");
    json_t *body = json_object_get (j, "body");
    assert_string_equal (json_string_value (json_object_get (body, "data")), "aGVsbG8=");
    assert_int_equal (json_integer_value (json_object_get (body, "seq")), 7);
    json_decref (j);
    free (buf);
}

static void test_docs_up_to_date (void **state)
{
    (void)state;
    const char *root = getenv ("LSS_ROOT");
    char path[4096];
    snprintf (path, sizeof path, "%s/docs/bus.md", root ? root : ".");
    FILE *f = fopen (path, "rb");
    if (!f)
        fail_msg ("cannot open %s (run `make docs`)", path);
    char *want = lss_proto_doc_markdown ();
    size_t want_len = strlen (want);
    char *have = malloc (want_len + 2);
    size_t n = fread (have, 1, want_len + 1, f);
    fclose (f);
    if (n != want_len || memcmp (have, want, want_len))
        fail_msg ("docs/bus.md is stale: run `make docs` and commit it");
    assert_non_null (strstr (want, "## `exec.start`"));
    assert_non_null (strstr (want, "| `exec_id` | string ≤ 64 B | yes |"));
    free (have);
    free (want);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_roundtrip_every_message),
        cmocka_unit_test (test_equal_detects_difference),
        cmocka_unit_test (test_encode_refuses_invalid),
        cmocka_unit_test (test_truncated_every_prefix),
        cmocka_unit_test (test_trailing_bytes),
        cmocka_unit_test (test_wrong_types_and_limits),
        cmocka_unit_test (test_huge_lengths_and_depth),
        cmocka_unit_test (test_envelope_errors),
        cmocka_unit_test (test_mutation_fuzz),
        cmocka_unit_test (test_to_json_generic),
        cmocka_unit_test (test_docs_up_to_date),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
