/*  Unit tests for api_auth: API keys, SHA-256, constant-time compare, HS256 JWTs.
 *
 *  Tokens with a chosen header and payload are built here (s_token) and signed with the
 *  right HMAC, so that refusals are known to come from the header or claim checks and not
 *  from the signature. Known answers come from the openssl command line (see each test).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "api_auth.h"

#define S_SECRET "0123456789abcdef0123456789abcdef" /* 32 bytes */
#define S_NOW    INT64_C (1700000100)
#define S_KEYS   1000

static const char s_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void s_b64u (const unsigned char *in, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[o++] = s_alphabet[v >> 18 & 63];
        out[o++] = s_alphabet[v >> 12 & 63];
        if (i + 1 < len)
            out[o++] = s_alphabet[v >> 6 & 63];
        if (i + 2 < len)
            out[o++] = s_alphabet[v & 63];
    }
    out[o] = '\0';
}

/*  header.payload.HMAC(secret) for literal JSON texts (caller frees). */
static char *s_token (const char *header, const char *payload, const char *secret)
{
    size_t cap = 4 * (strlen (header) + strlen (payload)) + 128;
    char *t = malloc (cap);
    assert_non_null (t);
    s_b64u ((const unsigned char *)header, strlen (header), t);
    size_t n = strlen (t);
    t[n++] = '.';
    s_b64u ((const unsigned char *)payload, strlen (payload), t + n);
    n = strlen (t);
    unsigned char mac[32];
    unsigned int mac_len = 0;
    assert_non_null (HMAC (EVP_sha256 (), secret, (int)strlen (secret), (unsigned char *)t, n,
                           mac, &mac_len));
    t[n++] = '.';
    s_b64u (mac, mac_len, t + n);
    return t;
}

#define S_HS256 "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
#define S_GOOD  "{\"sub\":\"usr-abc\",\"iat\":1700000000,\"exp\":1700003600}"

static int s_verify (const char *token, char *err, size_t err_size)
{
    json_t *claims = NULL;
    int rc = api_jwt_verify (S_SECRET, strlen (S_SECRET), token, S_NOW, &claims, err, err_size);
    if (rc == 0)
        assert_non_null (claims);
    else
        assert_null (claims);
    json_decref (claims);
    return rc;
}

/*  Builds and verifies; returns verify's result. */
static int s_check (const char *header, const char *payload)
{
    char *t = s_token (header, payload, S_SECRET);
    char err[128] = "";
    int rc = s_verify (t, err, sizeof err);
    free (t);
    return rc;
}

/* ------------------------------------------------------------------ keys */

static int s_cmp (const void *a, const void *b)
{
    return strcmp (a, b);
}

static void test_key_shape_and_uniqueness (void **state)
{
    (void)state;
    char (*keys)[API_KEY_SIZE] = calloc (S_KEYS, API_KEY_SIZE);
    assert_non_null (keys);
    for (int i = 0; i < S_KEYS; i++) {
        assert_int_equal (api_key_generate (keys[i]), 0);
        assert_int_equal (strlen (keys[i]), API_KEY_LEN);
        assert_memory_equal (keys[i], "lsp_", 4);
        assert_true (api_key_well_formed (keys[i]));
        for (const char *p = keys[i] + 4; *p; p++)
            assert_non_null (strchr (s_alphabet, *p));
    }
    qsort (keys, S_KEYS, API_KEY_SIZE, s_cmp);
    for (int i = 1; i < S_KEYS; i++)
        assert_string_not_equal (keys[i - 1], keys[i]);
    free (keys);
}

static void test_key_well_formed_refusals (void **state)
{
    (void)state;
    char key[API_KEY_SIZE];
    assert_int_equal (api_key_generate (key), 0);
    char bad[64];
    assert_false (api_key_well_formed (NULL));
    assert_false (api_key_well_formed (""));
    assert_false (api_key_well_formed ("lsp_"));
    memcpy (bad, key, sizeof key);
    bad[0] = 'L'; /* prefix */
    assert_false (api_key_well_formed (bad));
    memcpy (bad, key, sizeof key);
    bad[API_KEY_LEN - 1] = '\0'; /* too short */
    assert_false (api_key_well_formed (bad));
    memcpy (bad, key, sizeof key);
    bad[API_KEY_LEN] = 'A'; /* too long */
    bad[API_KEY_LEN + 1] = '\0';
    assert_false (api_key_well_formed (bad));
    const char *chars = "+/= .\n\x80";
    for (const char *c = chars; *c; c++) {
        memcpy (bad, key, sizeof key);
        bad[10] = *c;
        assert_false (api_key_well_formed (bad));
    }
    /* 32 bytes end in a character whose low two bits are unused: they must be zero */
    memcpy (bad, key, sizeof key);
    bad[API_KEY_LEN - 1] = 'B';
    assert_false (api_key_well_formed (bad));
    bad[API_KEY_LEN - 1] = 'E';
    assert_true (api_key_well_formed (bad));
}

/*  printf '' | openssl dgst -sha256; printf abc | ...; printf lsp_test | ... */
static void test_sha256_vectors (void **state)
{
    (void)state;
    char hex[API_HASH_HEX_SIZE];
    assert_int_equal (api_sha256_hex ("", hex), 0);
    assert_string_equal (hex,
                         "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_int_equal (api_sha256_hex ("abc", hex), 0);
    assert_string_equal (hex,
                         "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal (api_sha256_hex ("lsp_test", hex), 0);
    assert_string_equal (hex,
                         "5031e6e47679c80c751765400783dac3040083c777c27e477b532e8199270eec");
    assert_int_equal (api_sha256_hex (NULL, hex), -1);
}

static void test_ct_equal (void **state)
{
    (void)state;
    assert_true (api_ct_equal ("abcdef", "abcdef", 6));
    assert_false (api_ct_equal ("abcdef", "abcdeg", 6));
    assert_false (api_ct_equal ("xbcdef", "abcdef", 6));
    assert_true (api_ct_equal ("ab", "ac", 1));
}

/* ------------------------------------------------------------------ JWT */

/*  b64u() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
 *  h=$(printf '%s' '{"alg":"HS256","typ":"JWT"}' | b64u)
 *  p=$(printf '%s' '{"sub":"usr-abc","iat":1700000000,"exp":1700003600}' | b64u)
 *  printf '%s' "$h.$p" | openssl dgst -sha256 -hmac 0123456789abcdef0123456789abcdef \
 *      -binary | b64u            → m_Fj-xi2cQQ7om00daAJBOITNXbJzgJxHjzr7LlnsSs */
static void test_jwt_known_answer (void **state)
{
    (void)state;
    const char *want = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
                       "eyJzdWIiOiJ1c3ItYWJjIiwiaWF0IjoxNzAwMDAwMDAwLCJleHAiOjE3MDAwMDM2MDB9."
                       "m_Fj-xi2cQQ7om00daAJBOITNXbJzgJxHjzr7LlnsSs";
    json_t *claims = json_pack ("{s:s, s:I, s:I}", "sub", "usr-abc", "iat",
                                (json_int_t)1700000000, "exp", (json_int_t)1700003600);
    char *token = NULL, err[128] = "";
    assert_int_equal (
        api_jwt_sign (S_SECRET, strlen (S_SECRET), claims, &token, err, sizeof err), 0);
    assert_string_equal (token, want);
    json_decref (claims);
    free (token);

    claims = NULL;
    assert_int_equal (
        api_jwt_verify (S_SECRET, strlen (S_SECRET), want, S_NOW, &claims, err, sizeof err), 0);
    assert_string_equal (json_string_value (json_object_get (claims, "sub")), "usr-abc");
    json_decref (claims);
}

static void test_jwt_round_trip (void **state)
{
    (void)state;
    json_t *claims =
        json_pack ("{s:s, s:s, s:I, s:I, s:{s:[i,i]}}", "sub", "usr-x", "jti", "j-1", "iat",
                   (json_int_t)S_NOW, "exp", (json_int_t)S_NOW + 60, "extra", "list", 1, 2);
    char *token = NULL, err[128] = "";
    assert_int_equal (
        api_jwt_sign (S_SECRET, strlen (S_SECRET), claims, &token, err, sizeof err), 0);
    json_t *got = NULL;
    assert_int_equal (
        api_jwt_verify (S_SECRET, strlen (S_SECRET), token, S_NOW, &got, err, sizeof err), 0);
    assert_true (json_equal (got, claims));
    json_decref (got);
    /* another secret */
    const char *other = "0123456789abcdef0123456789abcdeX";
    assert_int_equal (
        api_jwt_verify (other, strlen (other), token, S_NOW, &got, err, sizeof err), -1);
    assert_null (got);
    assert_string_equal (err, "bad signature");
    json_decref (claims);
    free (token);
}

static void test_jwt_tampered (void **state)
{
    (void)state;
    char *good = s_token (S_HS256, S_GOOD, S_SECRET);
    char err[128] = "";
    assert_int_equal (s_verify (good, err, sizeof err), 0);
    /* payload swapped for another (admin) subject, signature kept */
    char *forged = s_token (S_HS256, "{\"sub\":\"usr-admin\",\"exp\":1700003600}", S_SECRET);
    const char *sig = strrchr (good, '.');
    char *mixed = malloc (strlen (forged) + strlen (sig) + 1);
    memcpy (mixed, forged, (size_t)(strrchr (forged, '.') - forged));
    memcpy (mixed + (strrchr (forged, '.') - forged), sig, strlen (sig) + 1);
    assert_int_equal (s_verify (mixed, err, sizeof err), -1);
    assert_string_equal (err, "bad signature");
    /* every single character of the signature changed in turn */
    size_t sig_at = (size_t)(strrchr (good, '.') - good) + 1;
    for (size_t i = sig_at; good[i]; i++) {
        char saved = good[i];
        good[i] = saved == 'A' ? 'B' : 'A';
        assert_int_equal (s_verify (good, err, sizeof err), -1);
        good[i] = saved;
    }
    /* a payload byte flipped */
    size_t pay_at = (size_t)(strchr (good, '.') - good) + 1;
    good[pay_at + 3] = good[pay_at + 3] == 'x' ? 'y' : 'x';
    assert_int_equal (s_verify (good, err, sizeof err), -1);
    free (good);
    free (forged);
    free (mixed);
}

static void test_jwt_header_refusals (void **state)
{
    (void)state;
    char err[128] = "";
    /* alg none, unsigned (empty third segment) and "signed" */
    char *t = s_token ("{\"alg\":\"none\",\"typ\":\"JWT\"}", S_GOOD, S_SECRET);
    assert_int_equal (s_verify (t, err, sizeof err), -1);
    assert_string_equal (err, "unsupported alg");
    *(strrchr (t, '.') + 1) = '\0';
    assert_int_equal (s_verify (t, err, sizeof err), -1);
    free (t);
    const char *headers[] = {
        "{\"alg\":\"RS256\",\"typ\":\"JWT\"}",
        "{\"alg\":\"HS512\"}",
        "{\"alg\":\"hs256\"}",
        "{\"alg\":\"None\"}",
        "{\"typ\":\"JWT\"}",
        "{\"alg\":1}",
        "{\"alg\":null}",
        "{\"alg\":\"HS256\",\"typ\":\"JWS\"}",
        "{\"alg\":\"HS256\",\"typ\":7}",
        "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}",
        "{\"alg\":\"HS256\",\"alg\":\"HS256\"}", /* duplicate key */
        "{\"alg\":\"none\",\"alg\":\"HS256\"}",
        "[\"HS256\"]",
        "\"HS256\"",
        "{\"alg\":\"HS256\"",
        "",
    };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        if (s_check (headers[i], S_GOOD) != -1)
            fail_msg ("header accepted: %s", headers[i]);
    }
    /* typ is optional */
    assert_int_equal (s_check ("{\"alg\":\"HS256\"}", S_GOOD), 0);
    assert_int_equal (s_check ("{\"alg\":\"HS256\",\"kid\":\"k1\"}", S_GOOD), 0);
}

static void test_jwt_times (void **state)
{
    (void)state;
    char err[128] = "";
    char payload[256];
    /* exp: leeway of 30 s around S_NOW */
    snprintf (payload, sizeof payload, "{\"sub\":\"u\",\"exp\":%lld}",
              (long long)(S_NOW - API_JWT_LEEWAY_S + 1));
    assert_int_equal (s_check (S_HS256, payload), 0);
    snprintf (payload, sizeof payload, "{\"sub\":\"u\",\"exp\":%lld}",
              (long long)(S_NOW - API_JWT_LEEWAY_S));
    char *t = s_token (S_HS256, payload, S_SECRET);
    assert_int_equal (s_verify (t, err, sizeof err), -1);
    assert_string_equal (err, "token expired");
    free (t);
    /* nbf in the future */
    snprintf (payload, sizeof payload, "{\"sub\":\"u\",\"exp\":1800000000,\"nbf\":%lld}",
              (long long)(S_NOW + API_JWT_LEEWAY_S + 1));
    t = s_token (S_HS256, payload, S_SECRET);
    assert_int_equal (s_verify (t, err, sizeof err), -1);
    assert_string_equal (err, "token not yet valid");
    free (t);
    snprintf (payload, sizeof payload, "{\"sub\":\"u\",\"exp\":1800000000,\"nbf\":%lld}",
              (long long)(S_NOW + API_JWT_LEEWAY_S));
    assert_int_equal (s_check (S_HS256, payload), 0);
    /* iat in the future */
    snprintf (payload, sizeof payload, "{\"sub\":\"u\",\"exp\":1800000000,\"iat\":%lld}",
              (long long)(S_NOW + API_JWT_LEEWAY_S + 1));
    t = s_token (S_HS256, payload, S_SECRET);
    assert_int_equal (s_verify (t, err, sizeof err), -1);
    assert_string_equal (err, "token issued in the future");
    free (t);
    /* exp missing, or not an integer, or out of range */
    const char *bad[] = {
        "{\"sub\":\"u\"}",
        "{\"sub\":\"u\",\"exp\":\"1800000000\"}",
        "{\"sub\":\"u\",\"exp\":1800000000.0}",
        "{\"sub\":\"u\",\"exp\":1.8e9}",
        "{\"sub\":\"u\",\"exp\":null}",
        "{\"sub\":\"u\",\"exp\":true}",
        "{\"sub\":\"u\",\"exp\":-1}",
        "{\"sub\":\"u\",\"exp\":9223372036854775807}",
        "{\"sub\":\"u\",\"exp\":99999999999999999999999}",
        "{\"sub\":\"u\",\"exp\":1800000000,\"nbf\":\"0\"}",
        "{\"sub\":\"u\",\"exp\":1800000000,\"iat\":1.5}",
        "{\"sub\":\"u\",\"exp\":1800000000,\"exp\":1800000001}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (s_check (S_HS256, bad[i]) != -1)
            fail_msg ("claims accepted: %s", bad[i]);
}

static void test_jwt_sub_and_claims (void **state)
{
    (void)state;
    char big[600];
    snprintf (big, sizeof big, "{\"exp\":1800000000,\"sub\":\"%0300d\"}", 0);
    const char *bad[] = {
        "{\"exp\":1800000000}",
        "{\"exp\":1800000000,\"sub\":\"\"}",
        "{\"exp\":1800000000,\"sub\":42}",
        "{\"exp\":1800000000,\"sub\":null}",
        "{\"exp\":1800000000,\"sub\":[\"u\"]}",
        "{\"exp\":1800000000,\"sub\":\"u\",\"sub\":\"admin\"}", /* duplicate */
        "{\"exp\":1800000000,\"sub\":\"u\",\"jti\":\"\"}",
        "{\"exp\":1800000000,\"sub\":\"u\",\"jti\":5}",
        "{\"exp\":1800000000,\"sub\":\"u\\u0000x\"}",
        "[{\"exp\":1800000000,\"sub\":\"u\"}]",
        "\"u\"",
        "null",
        "{\"exp\":1800000000,\"sub\":\"u\"} x",
        big,
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (s_check (S_HS256, bad[i]) != -1)
            fail_msg ("claims accepted: %s", bad[i]);
    assert_int_equal (s_check (S_HS256, "{\"exp\":1800000000,\"sub\":\"u\",\"jti\":\"j\"}"), 0);
}

static void test_jwt_nesting (void **state)
{
    (void)state;
    char payload[512];
    int depth = 14; /* the payload object plus 14 arrays: inside the limit of 16 */
    int n = snprintf (payload, sizeof payload, "{\"sub\":\"u\",\"exp\":1800000000,\"x\":");
    for (int i = 0; i < depth; i++)
        payload[n++] = '[';
    for (int i = 0; i < depth; i++)
        payload[n++] = ']';
    payload[n++] = '}';
    payload[n] = '\0';
    assert_int_equal (s_check (S_HS256, payload), 0);
    depth = 40;
    n = snprintf (payload, sizeof payload, "{\"sub\":\"u\",\"exp\":1800000000,\"x\":");
    for (int i = 0; i < depth; i++)
        payload[n++] = '[';
    for (int i = 0; i < depth; i++)
        payload[n++] = ']';
    payload[n++] = '}';
    payload[n] = '\0';
    assert_int_equal (s_check (S_HS256, payload), -1);
}

static void test_jwt_oversized (void **state)
{
    (void)state;
    char err[128] = "";
    char *huge = malloc (API_JWT_MAX + 2);
    memset (huge, 'A', API_JWT_MAX + 1);
    huge[10] = '.';
    huge[20] = '.';
    huge[API_JWT_MAX + 1] = '\0';
    assert_int_equal (s_verify (huge, err, sizeof err), -1);
    assert_string_equal (err, "token too long");
    free (huge);
    /* a correctly signed token just past the limit */
    size_t pad = API_JWT_MAX;
    char *payload = malloc (pad + 64);
    int n = snprintf (payload, 64, "{\"sub\":\"u\",\"exp\":1800000000,\"p\":\"");
    memset (payload + n, 'x', pad - (size_t)n);
    memcpy (payload + pad, "\"}", 3);
    char *t = s_token (S_HS256, payload, S_SECRET);
    assert_true (strlen (t) > API_JWT_MAX);
    assert_int_equal (s_verify (t, err, sizeof err), -1);
    free (t);
    /* signing refuses to produce one */
    json_t *claims = json_pack ("{s:s, s:I, s:s}", "sub", "u", "exp", (json_int_t)1800000000,
                                "p", payload + n);
    char *out = (char *)"untouched";
    assert_int_equal (api_jwt_sign (S_SECRET, strlen (S_SECRET), claims, &out, err, sizeof err),
                      -1);
    assert_null (out);
    json_decref (claims);
    free (payload);
}

static void test_jwt_garbage (void **state)
{
    (void)state;
    char err[128] = "";
    char *good = s_token (S_HS256, S_GOOD, S_SECRET);
    const char *dot1 = strchr (good, '.'), *dot2 = strrchr (good, '.');
    char buf[1024];
    const char *plain[] = {"",           "a",    "a.b",  "a.b.c.d", "..",
                           "a..c",       ".b.c", "a.b.", "...",     "\xff\xfe.\x80.\x01",
                           "eyJ.eyJ.eyJ"};
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        if (s_verify (plain[i], err, sizeof err) != -1)
            fail_msg ("accepted: %s", plain[i]);
    assert_int_equal (api_jwt_verify (S_SECRET, strlen (S_SECRET), NULL, S_NOW,
                                      &(json_t *){NULL}, err, sizeof err),
                      -1);
    /* padding, the standard alphabet, whitespace, an extra dot, a fourth segment */
    const char *suffixes[] = {"=", "==", ".", ".x", " ", "\n"};
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        snprintf (buf, sizeof buf, "%s%s", good, suffixes[i]);
        if (s_verify (buf, err, sizeof err) != -1)
            fail_msg ("accepted with suffix %zu", i);
    }
    /* '+' or '/' in place of '-' or '_' anywhere, and '=' inside a segment */
    const char subst[] = "+/= ";
    for (size_t k = 0; k < 4; k++) {
        snprintf (buf, sizeof buf, "%s", good);
        buf[(size_t)(dot1 - good) + 2] = subst[k];
        assert_int_equal (s_verify (buf, err, sizeof err), -1);
        snprintf (buf, sizeof buf, "%s", good);
        buf[2] = subst[k];
        assert_int_equal (s_verify (buf, err, sizeof err), -1);
    }
    /* a segment of length 1 mod 4 (no encoder makes it) */
    snprintf (buf, sizeof buf, "%.*sA%s", (int)(dot2 - good), good, dot2);
    assert_int_equal (s_verify (buf, err, sizeof err), -1);
    /* a signature with non-zero unused bits in its last character (same bytes otherwise) */
    snprintf (buf, sizeof buf, "%s", good);
    size_t last = strlen (buf) - 1;
    const char *pos = strchr (s_alphabet, buf[last]);
    buf[last] = s_alphabet[(pos - s_alphabet) | 1];
    assert_int_equal (s_verify (buf, err, sizeof err), -1);
    /* signature too short / too long */
    snprintf (buf, sizeof buf, "%.*s", (int)strlen (good) - 4, good);
    assert_int_equal (s_verify (buf, err, sizeof err), -1);
    snprintf (buf, sizeof buf, "%sAAAA", good);
    assert_int_equal (s_verify (buf, err, sizeof err), -1);
    /* header that is not JSON, payload that is not JSON (both correctly signed) */
    assert_int_equal (s_check ("not json", S_GOOD), -1);
    assert_int_equal (s_check (S_HS256, "not json"), -1);
    assert_int_equal (s_check (S_HS256, "{\"sub\":\"u\",\"exp\":1800000000,"), -1);
    assert_int_equal (s_check (S_HS256, "{\"sub\":\"\xff\",\"exp\":1800000000}"), -1);
    free (good);
}

static void test_jwt_short_secret (void **state)
{
    (void)state;
    char err[128] = "";
    json_t *claims = json_pack ("{s:s, s:I}", "sub", "u", "exp", (json_int_t)1800000000);
    char *out = NULL;
    assert_int_equal (
        api_jwt_sign (S_SECRET, API_JWT_SECRET_MIN - 1, claims, &out, err, sizeof err), -1);
    assert_null (out);
    assert_int_equal (api_jwt_sign (NULL, 64, claims, &out, err, sizeof err), -1);
    assert_int_equal (api_jwt_sign (S_SECRET, strlen (S_SECRET), claims, &out, err, sizeof err),
                      0);
    json_t *got = NULL;
    assert_int_equal (
        api_jwt_verify (S_SECRET, API_JWT_SECRET_MIN - 1, out, S_NOW, &got, err, sizeof err),
        -1);
    assert_null (got);
    free (out);
    /* claims that are not an object */
    json_t *arr = json_array ();
    out = NULL;
    assert_int_equal (api_jwt_sign (S_SECRET, strlen (S_SECRET), arr, &out, err, sizeof err),
                      -1);
    assert_int_equal (api_jwt_sign (S_SECRET, strlen (S_SECRET), NULL, &out, err, sizeof err),
                      -1);
    assert_null (out);
    json_decref (arr);
    json_decref (claims);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_key_shape_and_uniqueness),
        cmocka_unit_test (test_key_well_formed_refusals),
        cmocka_unit_test (test_sha256_vectors),
        cmocka_unit_test (test_ct_equal),
        cmocka_unit_test (test_jwt_known_answer),
        cmocka_unit_test (test_jwt_round_trip),
        cmocka_unit_test (test_jwt_tampered),
        cmocka_unit_test (test_jwt_header_refusals),
        cmocka_unit_test (test_jwt_times),
        cmocka_unit_test (test_jwt_sub_and_claims),
        cmocka_unit_test (test_jwt_nesting),
        cmocka_unit_test (test_jwt_oversized),
        cmocka_unit_test (test_jwt_garbage),
        cmocka_unit_test (test_jwt_short_secret),
    };
    if (getenv ("TEST_FILTER"))
        cmocka_set_test_filter (getenv ("TEST_FILTER"));
    return cmocka_run_group_tests (tests, NULL, NULL);
}
