/*  api_auth — credentials of the edge API: API keys and HS256 JWTs. Pure logic, no I/O.
 *
 *  API keys are "lsp_" + 43 URL-safe base64 characters (32 random bytes from the
 *  kernel). Only their SHA-256 (hex) is stored; a presented key is hashed, looked up by
 *  hash, and the stored hash compared with the computed one in constant time. The first
 *  12 characters ("lsp_" + 8) are kept as a display prefix.
 *
 *  JWTs are HS256 only (OpenSSL HMAC). A token whose header names any other alg
 *  ("none", "RS256", ...) is refused; the signature is compared in constant time; exp
 *  and sub are required, iat may not lie in the future beyond the leeway, nbf is
 *  honoured. Tokens are bounded (API_JWT_MAX bytes) and their JSON parsed with depth
 *  and size limits.
 */
#ifndef API_AUTH_H
#define API_AUTH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define API_KEY_PREFIX     "lsp_"
#define API_KEY_LEN        47 /* "lsp_" + 43 */
#define API_KEY_SIZE       (API_KEY_LEN + 1)
#define API_KEY_SHOWN_LEN  12 /* display prefix */
#define API_HASH_HEX_SIZE  65 /* SHA-256 in hex + NUL */
#define API_JWT_MAX        8192
#define API_JWT_LEEWAY_S   30
#define API_JWT_SECRET_MIN 32 /* bytes; shorter secrets are refused */

/*  A new random API key into out. Returns 0 or -1 (randomness failed). */
int api_key_generate (char out[API_KEY_SIZE]);

/*  True if key has the exact shape of an API key (prefix, length, alphabet). */
bool api_key_well_formed (const char *key);

/*  SHA-256 of text (its strlen bytes) as lowercase hex into out. Returns 0 or -1. */
int api_sha256_hex (const char *text, char out[API_HASH_HEX_SIZE]);

/*  Constant-time equality of two n-byte buffers (CRYPTO_memcmp). */
bool api_ct_equal (const void *a, const void *b, size_t n);

/*  Signs claims (borrowed JSON object) as an HS256 JWT. *out (caller frees) is the
 *  compact token. Returns 0, or -1 with a message in err (secret shorter than
 *  API_JWT_SECRET_MIN, claims not an object, token longer than API_JWT_MAX). */
int api_jwt_sign (const void *secret, size_t secret_len, const json_t *claims, char **out,
                  char *err, size_t err_size);

/*  Verifies token at now_s (epoch seconds): structure, header {"alg":"HS256"} (typ
 *  optional, "JWT" if present; "crit" refused), signature, exp (required, > now -
 *  leeway), nbf, iat (<= now + leeway; all three integers), sub (required, non-empty
 *  string of at most 255 bytes), jti (if present, a 1..128-byte string). On 0, *claims
 *  (caller decrefs) is the payload. Returns -1 with a short reason in err ("malformed token",
 *  "bad signature", "token expired", ...) suitable for logs, not for clients. */
int api_jwt_verify (const void *secret, size_t secret_len, const char *token, int64_t now_s,
                    json_t **claims, char *err, size_t err_size);

#endif
