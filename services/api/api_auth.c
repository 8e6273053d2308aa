/*  api_auth — API keys (random, base64url) and HS256 JWTs for the edge API.
 *
 *  Design note: everything here is pure computation on bounded input. The base64url
 *  decoder is strict (RFC 4648 §5 alphabet only, no '=' padding, no length that no
 *  encoder produces, unused trailing bits must be zero) so that one token has exactly
 *  one spelling. A JWT is verified in the order that keeps untrusted bytes away from
 *  the JSON parser for as long as possible: length and shape, then the header (only
 *  {"alg":"HS256"} with an optional "typ":"JWT" and no "crit"), then the HMAC
 *  (CRYPTO_memcmp), and only then the payload, parsed with JSON_REJECT_DUPLICATES and a
 *  nesting limit. Claim times are integers in [0, S_TIME_MAX] so that the leeway
 *  arithmetic cannot overflow.
 */
#include "api_auth.h"
#include "lss_util.h"

#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#define S_KEY_RANDOM_BYTES 32
#define S_KEY_BODY_LEN     43 /* base64url of 32 bytes, unpadded */
#define S_SIG_BYTES        32 /* HMAC-SHA256 */
#define S_SEGMENT_MAX      API_JWT_MAX
#define S_JSON_DEPTH_MAX   16
#define S_TIME_MAX         INT64_C (253402300799) /* 9999-12-31T23:59:59Z */
#define S_SUB_MAX          255
#define S_JTI_MAX          128
#define S_HEADER           "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

static const char s_b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* ------------------------------------------------------------------ base64url */

/*  Encodes len bytes into out (NUL-ended, unpadded). Returns the text length, or -1
 *  if out_size is too small. */
static long s_b64url_encode (const uint8_t *in, size_t len, char *out, size_t out_size)
{
    size_t need = len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0);
    if (need + 1 > out_size)
        return -1;
    size_t o = 0, i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = s_b64url[v >> 18 & 63];
        out[o++] = s_b64url[v >> 12 & 63];
        out[o++] = s_b64url[v >> 6 & 63];
        out[o++] = s_b64url[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = s_b64url[v >> 18 & 63];
        out[o++] = s_b64url[v >> 12 & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = s_b64url[v >> 18 & 63];
        out[o++] = s_b64url[v >> 12 & 63];
        out[o++] = s_b64url[v >> 6 & 63];
    }
    out[o] = '\0';
    return (long)o;
}

static int s_b64url_value (char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/*  Decodes exactly len characters of unpadded base64url into out. Refuses characters
 *  outside the alphabet (including '=', '+', '/', whitespace), a length of 1 mod 4 and
 *  non-zero unused bits in the last character. Returns the byte count or -1. */
static long s_b64url_decode (const char *in, size_t len, uint8_t *out, size_t out_size)
{
    if (len % 4 == 1)
        return -1;
    size_t need = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
    if (need > out_size)
        return -1;
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int v = s_b64url_value (in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6 | (uint32_t)v) & 0xFFFFFF;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    if (acc & ((1u << bits) - 1)) /* leftover bits must be zero (canonical form) */
        return -1;
    return (long)o;
}

/* ------------------------------------------------------------------ keys, hashes */

int api_key_generate (char out[API_KEY_SIZE])
{
    uint8_t raw[S_KEY_RANDOM_BYTES];
    if (lss_random_bytes (raw, sizeof raw) != 0)
        return -1;
    memcpy (out, API_KEY_PREFIX, strlen (API_KEY_PREFIX));
    long n = s_b64url_encode (raw, sizeof raw, out + strlen (API_KEY_PREFIX),
                              API_KEY_SIZE - strlen (API_KEY_PREFIX));
    OPENSSL_cleanse (raw, sizeof raw);
    return n == S_KEY_BODY_LEN ? 0 : -1;
}

bool api_key_well_formed (const char *key)
{
    size_t plen = strlen (API_KEY_PREFIX);
    if (!key || strnlen (key, API_KEY_SIZE) != API_KEY_LEN ||
        strncmp (key, API_KEY_PREFIX, plen) != 0)
        return false;
    uint8_t raw[S_KEY_RANDOM_BYTES];
    return s_b64url_decode (key + plen, S_KEY_BODY_LEN, raw, sizeof raw) == S_KEY_RANDOM_BYTES;
}

int api_sha256_hex (const char *text, char out[API_HASH_HEX_SIZE])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (!text || !EVP_Digest (text, strlen (text), md, &md_len, EVP_sha256 (), NULL) ||
        md_len != 32)
        return -1;
    for (unsigned int i = 0; i < md_len; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[2 * md_len] = '\0';
    return 0;
}

bool api_ct_equal (const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp (a, b, n) == 0;
}

/* ------------------------------------------------------------------ JWT */

static int s_hmac (const void *secret, size_t secret_len, const char *data, size_t len,
                   uint8_t mac[S_SIG_BYTES])
{
    unsigned int mac_len = 0;
    if (secret_len > INT_MAX ||
        !HMAC (EVP_sha256 (), secret, (int)secret_len, (const unsigned char *)data, len, mac,
               &mac_len) ||
        mac_len != S_SIG_BYTES)
        return -1;
    return 0;
}

int api_jwt_sign (const void *secret, size_t secret_len, const json_t *claims, char **out,
                  char *err, size_t err_size)
{
    int rc = -1;
    char *payload = NULL, *token = NULL;
    *out = NULL;
    if (!secret || secret_len < API_JWT_SECRET_MIN) {
        lss_errf (err, err_size, "secret shorter than %d bytes", API_JWT_SECRET_MIN);
        goto cleanup;
    }
    if (!json_is_object (claims)) {
        lss_errf (err, err_size, "claims are not an object");
        goto cleanup;
    }
    payload = json_dumps (claims, JSON_COMPACT);
    if (!payload) {
        lss_errf (err, err_size, "claims do not serialize");
        goto cleanup;
    }
    size_t plen = strlen (payload);
    if (plen > API_JWT_MAX) {
        lss_errf (err, err_size, "token longer than %d bytes", API_JWT_MAX);
        goto cleanup;
    }
    token = malloc (API_JWT_MAX + 1);
    if (!token) {
        lss_errf (err, err_size, "out of memory");
        goto cleanup;
    }
    long h =
        s_b64url_encode ((const uint8_t *)S_HEADER, strlen (S_HEADER), token, API_JWT_MAX + 1);
    if (h < 0 || (size_t)h + 1 > API_JWT_MAX)
        goto too_long;
    token[h] = '.';
    long p = s_b64url_encode ((const uint8_t *)payload, plen, token + h + 1,
                              API_JWT_MAX + 1 - (size_t)h - 1);
    if (p < 0)
        goto too_long;
    size_t signed_len = (size_t)h + 1 + (size_t)p;
    uint8_t mac[S_SIG_BYTES];
    if (s_hmac (secret, secret_len, token, signed_len, mac) != 0) {
        lss_errf (err, err_size, "HMAC failed");
        goto cleanup;
    }
    if (signed_len + 1 > API_JWT_MAX)
        goto too_long;
    token[signed_len] = '.';
    if (s_b64url_encode (mac, sizeof mac, token + signed_len + 1,
                         API_JWT_MAX + 1 - signed_len - 1) < 0)
        goto too_long;
    *out = token;
    token = NULL;
    rc = 0;
    goto cleanup;
too_long:
    lss_errf (err, err_size, "token longer than %d bytes", API_JWT_MAX);
cleanup:
    free (payload);
    free (token);
    return rc;
}

/*  True if v nests no deeper than max_depth containers. */
static bool s_depth_ok (const json_t *v, int max_depth)
{
    if (!json_is_object (v) && !json_is_array (v))
        return true;
    if (max_depth <= 0)
        return false;
    if (json_is_array (v)) {
        size_t i;
        const json_t *item;
        json_array_foreach (v, i, item) if (!s_depth_ok (item, max_depth - 1)) return false;
        return true;
    }
    const char *k;
    const json_t *item;
    json_object_foreach ((json_t *)v, k,
                         item) if (!s_depth_ok (item, max_depth - 1)) return false;
    return true;
}

/*  Decodes one base64url segment and parses it as a JSON object. */
static json_t *s_segment_json (const char *seg, size_t len)
{
    uint8_t *raw = malloc (len + 1);
    json_t *v = NULL;
    if (!raw)
        return NULL;
    long n = s_b64url_decode (seg, len, raw, len);
    if (n > 0) {
        json_error_t jerr;
        v = json_loadb ((const char *)raw, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
        if (v && (!json_is_object (v) || !s_depth_ok (v, S_JSON_DEPTH_MAX))) {
            json_decref (v);
            v = NULL;
        }
    }
    free (raw);
    return v;
}

/*  Reads an optional time claim: 1 and *t if present and valid, 0 if absent, -1 if
 *  present but not an integer in [0, S_TIME_MAX]. */
static int s_time_claim (const json_t *claims, const char *name, int64_t *t)
{
    const json_t *v = json_object_get (claims, name);
    if (!v)
        return 0;
    if (!json_is_integer (v) || json_integer_value (v) < 0 ||
        json_integer_value (v) > S_TIME_MAX)
        return -1;
    *t = (int64_t)json_integer_value (v);
    return 1;
}

/*  Header: an object with alg "HS256", typ absent or "JWT", nothing critical. */
static int s_check_header (const json_t *hdr, char *err, size_t err_size)
{
    const json_t *alg = json_object_get (hdr, "alg");
    if (!json_is_string (alg) || strcmp (json_string_value (alg), "HS256") != 0) {
        lss_errf (err, err_size, "unsupported alg");
        return -1;
    }
    const json_t *typ = json_object_get (hdr, "typ");
    if (typ && (!json_is_string (typ) || strcmp (json_string_value (typ), "JWT") != 0)) {
        lss_errf (err, err_size, "bad typ");
        return -1;
    }
    if (json_object_get (hdr, "crit")) {
        lss_errf (err, err_size, "critical header parameters not supported");
        return -1;
    }
    return 0;
}

static int s_check_claims (const json_t *claims, int64_t now_s, char *err, size_t err_size)
{
    int64_t exp = 0, nbf = 0, iat = 0;
    int has_exp = s_time_claim (claims, "exp", &exp);
    int has_nbf = s_time_claim (claims, "nbf", &nbf);
    int has_iat = s_time_claim (claims, "iat", &iat);
    if (has_exp < 0 || has_nbf < 0 || has_iat < 0) {
        lss_errf (err, err_size, "bad time claim");
        return -1;
    }
    if (!has_exp) {
        lss_errf (err, err_size, "missing exp");
        return -1;
    }
    if (now_s < 0)
        now_s = 0;
    if (now_s > S_TIME_MAX)
        now_s = S_TIME_MAX;
    if (exp <= now_s - API_JWT_LEEWAY_S) {
        lss_errf (err, err_size, "token expired");
        return -1;
    }
    if (has_nbf && nbf > now_s + API_JWT_LEEWAY_S) {
        lss_errf (err, err_size, "token not yet valid");
        return -1;
    }
    if (has_iat && iat > now_s + API_JWT_LEEWAY_S) {
        lss_errf (err, err_size, "token issued in the future");
        return -1;
    }
    const json_t *sub = json_object_get (claims, "sub");
    if (!json_is_string (sub) || json_string_length (sub) == 0 ||
        json_string_length (sub) > S_SUB_MAX) {
        lss_errf (err, err_size, "missing or bad sub");
        return -1;
    }
    const json_t *jti = json_object_get (claims, "jti");
    if (jti && (!json_is_string (jti) || json_string_length (jti) == 0 ||
                json_string_length (jti) > S_JTI_MAX)) {
        lss_errf (err, err_size, "bad jti");
        return -1;
    }
    return 0;
}

int api_jwt_verify (const void *secret, size_t secret_len, const char *token, int64_t now_s,
                    json_t **claims, char *err, size_t err_size)
{
    json_t *hdr = NULL, *payload = NULL;
    int rc = -1;
    *claims = NULL;
    if (!secret || secret_len < API_JWT_SECRET_MIN) {
        lss_errf (err, err_size, "secret shorter than %d bytes", API_JWT_SECRET_MIN);
        return -1;
    }
    size_t len = token ? strnlen (token, API_JWT_MAX + 1) : 0;
    if (len > API_JWT_MAX) {
        lss_errf (err, err_size, "token too long");
        return -1;
    }
    const char *dot1 = token ? memchr (token, '.', len) : NULL;
    const char *dot2 = dot1 ? memchr (dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (!dot1 || !dot2 || memchr (dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) ||
        dot1 == token || dot2 == dot1 + 1 || dot2 + 1 == token + len) {
        lss_errf (err, err_size, "malformed token");
        return -1;
    }
    size_t hlen = (size_t)(dot1 - token);
    size_t plen = (size_t)(dot2 - dot1 - 1);
    size_t slen = len - (size_t)(dot2 + 1 - token);
    hdr = s_segment_json (token, hlen);
    if (!hdr) {
        lss_errf (err, err_size, "malformed header");
        goto cleanup;
    }
    if (s_check_header (hdr, err, err_size) != 0)
        goto cleanup;
    uint8_t sig[S_SIG_BYTES + 3], mac[S_SIG_BYTES];
    if (s_b64url_decode (dot2 + 1, slen, sig, sizeof sig) != S_SIG_BYTES) {
        lss_errf (err, err_size, "malformed signature");
        goto cleanup;
    }
    if (s_hmac (secret, secret_len, token, (size_t)(dot2 - token), mac) != 0) {
        lss_errf (err, err_size, "HMAC failed");
        goto cleanup;
    }
    if (!api_ct_equal (sig, mac, S_SIG_BYTES)) {
        lss_errf (err, err_size, "bad signature");
        goto cleanup;
    }
    payload = s_segment_json (dot1 + 1, plen);
    if (!payload) {
        lss_errf (err, err_size, "malformed claims");
        goto cleanup;
    }
    if (s_check_claims (payload, now_s, err, err_size) != 0)
        goto cleanup;
    *claims = payload;
    payload = NULL;
    rc = 0;
cleanup:
    json_decref (hdr);
    json_decref (payload);
    return rc;
}
