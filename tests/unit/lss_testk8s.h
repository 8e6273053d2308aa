/*  lss_testk8s — the fake Kubernetes API server (tests/fake_k8s/fake_k8s.py) for tests
 *  (header-only; needs lss_testproc.h first).
 *
 *  tk_start spawns the fake in a mkdtemp directory (it generates its CA, server and
 *  client certificates there with openssl and prints its port); tk_kubeconfig writes a
 *  kubeconfig for it; tk_config makes an lss_config_t with store.backend=kubernetes and
 *  that kubeconfig; tk_hook calls one of its /_fake/ test hooks over TLS; tk_stop kills
 *  it and removes the directory. Everything waits with deadlines.
 */
#ifndef LSS_TESTK8S_H
#define LSS_TESTK8S_H

#include <curl/curl.h>
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lss_config.h"

#define TK_TOKEN "lss-test-token-0123456789"

typedef struct {
    tp_proc_t proc;
    char dir[256];
    int port;
    char url[128];
    char ca[512], cert[512], key[512];
    char kubeconfig[512];
} tk_fake_t;

static inline void tk_rmdir (const char *dir)
{
    DIR *d = opendir (dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir (d))) {
        if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0)
            continue;
        char path[2048];
        if (snprintf (path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path)
            continue;
        struct stat st;
        if (lstat (path, &st) == 0 && S_ISDIR (st.st_mode))
            tk_rmdir (path);
        else
            unlink (path);
    }
    closedir (d);
    rmdir (dir);
}

/*  Writes text to path (0600). Returns 0 or -1. */
static inline int tk_write (const char *path, const char *text)
{
    FILE *f = fopen (path, "w");
    if (!f)
        return -1;
    int rc = fputs (text, f) >= 0 ? 0 : -1;
    if (fclose (f) != 0)
        rc = -1;
    chmod (path, 0600);
    return rc;
}

/*  Reads a whole small file into a new string (caller frees), or NULL. */
static inline char *tk_read (const char *path)
{
    FILE *f = fopen (path, "r");
    if (!f)
        return NULL;
    char *buf = malloc (1 << 20);
    size_t n = buf ? fread (buf, 1, (1 << 20) - 1, f) : 0;
    fclose (f);
    if (buf)
        buf[n] = '\0';
    return buf;
}

/*  Base64 of a file's bytes (caller frees), for the -data forms. */
static inline char *tk_base64_file (const char *path)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *raw = tk_read (path);
    if (!raw)
        return NULL;
    size_t n = strlen (raw), o = 0;
    char *out = malloc (n / 3 * 4 + 8);
    for (size_t i = 0; out && i < n; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)raw[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)(unsigned char)raw[i + 1] << 8;
        if (i + 2 < n)
            v |= (uint32_t)(unsigned char)raw[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    if (out)
        out[o] = '\0';
    free (raw);
    return out;
}

/*  Writes a kubeconfig for the fake at path: one context "fake" (current), cluster with
 *  the CA file, user with user_yaml (the lines under "user:", indented 4), namespace ns. */
static inline int tk_kubeconfig (const tk_fake_t *f, const char *path, const char *user_yaml,
                                 const char *ns)
{
    char *text = malloc (65536);
    if (!text)
        return -1;
    snprintf (text, 65536,
              "apiVersion: v1\nkind: Config\ncurrent-context: fake\n"
              "clusters:\n- name: fake-cluster\n  cluster:\n    server: %s\n"
              "    certificate-authority: %s\n"
              "contexts:\n- name: fake\n  context:\n    cluster: fake-cluster\n"
              "    user: tester\n    namespace: %s\n"
              "users:\n- name: tester\n  user:\n%s\n",
              f->url, f->ca, ns ? ns : "default", user_yaml);
    int rc = tk_write (path, text);
    free (text);
    return rc;
}

static inline int tk_start_args (tk_fake_t *f, const char *bookmark_ms)
{
    memset (f, 0, sizeof *f);
    snprintf (f->dir, sizeof f->dir, "/tmp/lss-k8s-XXXXXX");
    if (!mkdtemp (f->dir))
        return -1;
    char script[PATH_MAX];
    const char *root = getenv ("LSS_ROOT");
    snprintf (script, sizeof script, "%s/tests/fake_k8s/fake_k8s.py",
              root && *root ? root : ".");
    char *argv[] = {
        "/usr/bin/python3",  script, "--dir", f->dir, "--token", TK_TOKEN, "--bookmark-ms",
        (char *)bookmark_ms, NULL};
    if (tp_spawn (&f->proc, argv, NULL, true) != 0)
        return -1;
    char line[2048];
    if (tp_read_line (&f->proc, line, sizeof line, 60000) != 0) {
        fprintf (stderr, "fake_k8s did not start: %s\n", line);
        return -1;
    }
    json_t *j = json_loads (line, 0, NULL);
    const char *url = json_string_value (json_object_get (j, "url"));
    const char *ca = json_string_value (json_object_get (j, "ca"));
    const char *cert = json_string_value (json_object_get (j, "client_cert"));
    const char *key = json_string_value (json_object_get (j, "client_key"));
    int rc = url && ca && cert && key ? 0 : -1;
    if (rc == 0) {
        f->port = (int)json_integer_value (json_object_get (j, "port"));
        snprintf (f->url, sizeof f->url, "%s", url);
        snprintf (f->ca, sizeof f->ca, "%s", ca);
        snprintf (f->cert, sizeof f->cert, "%s", cert);
        snprintf (f->key, sizeof f->key, "%s", key);
        snprintf (f->kubeconfig, sizeof f->kubeconfig, "%s/kubeconfig", f->dir);
        rc = tk_kubeconfig (f, f->kubeconfig, "    token: " TK_TOKEN, "lss-test");
    }
    json_decref (j);
    return rc;
}

/*  Starts the fake (bookmarks every 60 s unless asked for). */
static inline int tk_start (tk_fake_t *f)
{
    return tk_start_args (f, "60000");
}

static inline void tk_stop (tk_fake_t *f)
{
    if (f->proc.pid > 0) {
        kill (f->proc.pid, SIGTERM);
        if (tp_wait (&f->proc, 10000) == -1)
            fprintf (stderr, "fake_k8s had to be killed\n");
    }
    if (f->dir[0])
        tk_rmdir (f->dir);
    f->dir[0] = '\0';
}

static size_t tk_on_body (char *data, size_t size, size_t n, void *arg)
{
    size_t len = size * n;
    char **buf = arg;
    size_t have = *buf ? strlen (*buf) : 0;
    char *grown = realloc (*buf, have + len + 1);
    if (!grown)
        return 0;
    memcpy (grown + have, data, len);
    grown[have + len] = '\0';
    *buf = grown;
    return len;
}

/*  Calls a test hook ("/_fake/compact", ...) with body (borrowed, may be NULL: GET).
 *  Returns the decoded answer (caller owns) or NULL. */
static inline json_t *tk_hook (const tk_fake_t *f, const char *path, const json_t *body)
{
    CURL *easy = curl_easy_init ();
    char url[512], *answer = NULL, *payload = body ? json_dumps (body, JSON_COMPACT) : NULL;
    snprintf (url, sizeof url, "%s%s", f->url, path);
    struct curl_slist *h = curl_slist_append (NULL, "Content-Type: application/json");
    curl_easy_setopt (easy, CURLOPT_URL, url);
    curl_easy_setopt (easy, CURLOPT_CAINFO, f->ca);
    curl_easy_setopt (easy, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt (easy, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt (easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt (easy, CURLOPT_WRITEFUNCTION, tk_on_body);
    curl_easy_setopt (easy, CURLOPT_WRITEDATA, &answer);
    if (payload)
        curl_easy_setopt (easy, CURLOPT_POSTFIELDS, payload);
    CURLcode cc = curl_easy_perform (easy);
    long status = 0;
    curl_easy_getinfo (easy, CURLINFO_RESPONSE_CODE, &status);
    json_t *out =
        cc == CURLE_OK && status == 200 && answer ? json_loads (answer, 0, NULL) : NULL;
    if (!out)
        fprintf (stderr, "hook %s failed: %s %ld %s\n", path, curl_easy_strerror (cc), status,
                 answer ? answer : "");
    free (answer);
    free (payload);
    curl_slist_free_all (h);
    curl_easy_cleanup (easy);
    return out;
}

/*  Calls a hook and drops the answer; returns 0 if it answered. */
static inline int tk_hook0 (const tk_fake_t *f, const char *path, json_t *body_stolen)
{
    json_t *out = tk_hook (f, path, body_stolen);
    json_decref (body_stolen);
    int rc = out ? 0 : -1;
    json_decref (out);
    return rc;
}

/*  Injects one special answer: tk_inject (f, json_pack ("{s:s, s:i, s:i}", "path", p,
 *  "status", 429, "times", 2)). */
static inline int tk_inject (const tk_fake_t *f, json_t *inj_stolen)
{
    return tk_hook0 (f, "/_fake/inject", inj_stolen);
}

/*  A config over the real settings table for the fake's kubeconfig (or kubeconfig if not
 *  NULL), with extra "key=value" settings (NULL-terminated). Caller destroys. */
static inline lss_config_t *tk_config (const tk_fake_t *f, const char *kubeconfig,
                                       const char *const *extra)
{
    lss_config_t *cfg = lss_config_new (lss_settings, lss_settings_count);
    char err[256];
    if (!cfg || lss_config_set (cfg, "store.backend", "kubernetes", err, sizeof err) != 0 ||
        lss_config_set (cfg, "k8s.kubeconfig", kubeconfig ? kubeconfig : f->kubeconfig, err,
                        sizeof err) != 0) {
        lss_config_destroy (&cfg);
        return NULL;
    }
    for (size_t i = 0; extra && extra[i]; i++) {
        char key[128];
        const char *eq = strchr (extra[i], '=');
        snprintf (key, sizeof key, "%.*s", eq ? (int)(eq - extra[i]) : 0, extra[i]);
        if (!eq || lss_config_set (cfg, key, eq + 1, err, sizeof err) != 0) {
            fprintf (stderr, "tk_config %s: %s\n", extra[i], err);
            lss_config_destroy (&cfg);
            return NULL;
        }
    }
    return cfg;
}

#endif
