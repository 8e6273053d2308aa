/*  The Kubernetes store backend against the fake API server: what only it has.
 *
 *  Auth (bearer token, in-cluster token file and its rotation, client certificates as
 *  files and -data, insecure-skip-tls-verify, a wrong CA), kubeconfig parsing and its
 *  errors (exec plugins, missing entries, malformed and hostile YAML), retries of 429
 *  (honouring Retry-After) and 5xx, the error mapping, watch reconnects (server timeout,
 *  ended and cut streams), 410 and relist, bookmarks, a stalled server and hostile
 *  answers (garbage, huge bodies, malformed events) — errors, never a crash or a hang.
 *  One fake serves the whole group; each case uses its own namespace and clears its
 *  injections.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <inttypes.h>

#include "lss_log.h"
#include "lss_store.h"
#include "lss_testproc.h"
#include "lss_util.h"
#include "lss_testk8s.h"

#define S_DEADLINE_MS 10000

static tk_fake_t s_fake;

static int s_setup (void **state)
{
    (void)state;
    if (tk_start (&s_fake) != 0) {
        tk_stop (&s_fake);
        return -1;
    }
    return 0;
}

static int s_teardown (void **state)
{
    (void)state;
    tk_stop (&s_fake);
    return 0;
}

static void s_clear (void)
{
    assert_int_equal (tk_hook0 (&s_fake, "/_fake/clear", json_object ()), 0);
    assert_int_equal (
        tk_hook0 (&s_fake, "/_fake/tokens", json_pack ("{s:[s]}", "tokens", TK_TOKEN)), 0);
}

/*  A store from a config with these extra settings (NULL-terminated; may be NULL), on
 *  kubeconfig (NULL = the fake's own). NULL if it cannot be made (err filled). */
static lss_store_t *s_store (const char *kubeconfig, const char *const *extra, char *err,
                             size_t err_size)
{
    lss_config_t *cfg = tk_config (&s_fake, kubeconfig, extra);
    assert_non_null (cfg);
    lss_store_t *st = lss_store_new_from_config (cfg, err, err_size);
    lss_config_destroy (&cfg);
    return st;
}

static lss_store_t *s_open (const char *const *extra)
{
    char err[LSS_STORE_ERR_SIZE] = "";
    lss_store_t *st = s_store (NULL, extra, err, sizeof err);
    if (!st)
        fprintf (stderr, "open: %s\n", err);
    assert_non_null (st);
    return st;
}

static json_t *s_obj (const char *ns, const char *name)
{
    return json_pack ("{s:s, s:s, s:{s:s, s:s}, s:{s:i}}", "apiVersion", "llmsafespace.dev/v1",
                      "kind", "Sandbox", "metadata", "name", name, "namespace", ns, "spec", "n",
                      1);
}

static void s_create (lss_store_t *st, const char *ns, const char *name)
{
    char err[LSS_STORE_ERR_SIZE];
    json_t *o = s_obj (ns, name);
    int rc = lss_store_create (st, o, NULL, err, sizeof err);
    if (rc != LSS_STORE_OK)
        fprintf (stderr, "create %s/%s: %s\n", ns, name, err);
    assert_int_equal (rc, LSS_STORE_OK);
    json_decref (o);
}

static const char *s_mstr (const json_t *o, const char *key)
{
    return json_string_value (json_object_get (json_object_get (o, "metadata"), key));
}

/*  Requests of the fake's log whose path starts with prefix (and, if watch >= 0, that
 *  are or are not watches): a new array of {method, path, query, auth, t}. */
static json_t *s_requests (const char *prefix, int watch)
{
    json_t *all = tk_hook (&s_fake, "/_fake/requests", NULL);
    assert_non_null (all);
    json_t *out = json_array ();
    size_t i;
    json_t *r;
    json_array_foreach (json_object_get (all, "requests"), i, r)
    {
        const char *path = json_string_value (json_object_get (r, "path"));
        const char *w =
            json_string_value (json_object_get (json_object_get (r, "query"), "watch"));
        bool is_watch = w && strcmp (w, "true") == 0;
        if (path && strncmp (path, prefix, strlen (prefix)) == 0 &&
            (watch < 0 || is_watch == (watch == 1)))
            json_array_append (out, r);
    }
    json_decref (all);
    return out;
}

/*  Waits for the next event with a deadline (1 event, 0 none in time, or a code). */
static int s_next (lss_store_watch_t *w, lss_store_event_t *ev, int timeout_ms)
{
    long long deadline = tp_now_ms () + timeout_ms;
    for (;;) {
        int rc = lss_store_watch_next (w, ev);
        if (rc != 0)
            return rc;
        long long left = deadline - tp_now_ms ();
        if (left <= 0)
            return 0;
        struct pollfd pfd = {lss_store_watch_fd (w), POLLIN, 0};
        poll (&pfd, 1, left < 200 ? (int)left : 200);
    }
}

static void s_expect (lss_store_watch_t *w, lss_store_event_type_t type, const char *name)
{
    lss_store_event_t ev = {0};
    int rc = s_next (w, &ev, S_DEADLINE_MS);
    if (rc != 1)
        fprintf (stderr, "expected %s %s, got %d\n", lss_store_event_type_name (type), name,
                 rc);
    assert_int_equal (rc, 1);
    assert_int_equal (ev.type, type);
    assert_string_equal (s_mstr (ev.object, "name"), name);
    json_decref (ev.object);
}

/* ------------------------------------------------------------------ auth */

static void test_token_auth (void **state)
{
    (void)state;
    char err[LSS_STORE_ERR_SIZE];
    json_t *got = NULL;
    lss_store_t *st = s_open (NULL);
    assert_int_equal (lss_store_get (st, "Sandbox", "auth", "nope", &got, err, sizeof err),
                      LSS_STORE_NOT_FOUND);
    assert_non_null (strstr (err, "not found"));
    lss_store_destroy (&st);

    /* a token the server does not know: 401 → unavailable, with the server's message */
    char path[600];
    snprintf (path, sizeof path, "%s/wrong-token", s_fake.dir);
    assert_int_equal (tk_kubeconfig (&s_fake, path, "    token: not-the-token", "auth"), 0);
    st = s_store (path, NULL, err, sizeof err);
    assert_non_null (st);
    assert_int_equal (lss_store_get (st, "Sandbox", "auth", "nope", &got, err, sizeof err),
                      LSS_STORE_UNAVAILABLE);
    assert_non_null (strstr (err, "Unauthorized"));
    assert_null (got);
    /* a watch is refused the same way, at once */
    int code = 0;
    assert_null (lss_store_watch_new (st, "Sandbox", "auth", "1", &code, err, sizeof err));
    assert_int_equal (code, LSS_STORE_UNAVAILABLE);
    assert_non_null (strstr (err, "Unauthorized"));
    lss_store_destroy (&st);
}

static void test_in_cluster_token_rotation (void **state)
{
    (void)state;
    char err[LSS_STORE_ERR_SIZE], sa[600], path[700], port[16];
    snprintf (sa, sizeof sa, "%s/sa", s_fake.dir);
    assert_int_equal (mkdir (sa, 0700), 0);
    char *ca = tk_read (s_fake.ca);
    assert_non_null (ca);
    snprintf (path, sizeof path, "%s/ca.crt", sa);
    assert_int_equal (tk_write (path, ca), 0);
    free (ca);
    snprintf (path, sizeof path, "%s/namespace", sa);
    assert_int_equal (tk_write (path, "incluster\n"), 0);
    snprintf (path, sizeof path, "%s/token", sa);
    assert_int_equal (tk_write (path, "rotating-token-1\n"), 0);
    assert_int_equal (tk_hook0 (&s_fake, "/_fake/tokens",
                                json_pack ("{s:[s]}", "tokens", "rotating-token-1")),
                      0);
    snprintf (port, sizeof port, "%d", s_fake.port);
    setenv ("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
    setenv ("KUBERNETES_SERVICE_PORT", port, 1);
    char sa_setting[700];
    snprintf (sa_setting, sizeof sa_setting, "k8s.serviceaccount_dir=%s", sa);
    const char *extra[] = {"k8s.kubeconfig=", sa_setting, NULL};
    lss_config_t *cfg = tk_config (&s_fake, NULL, extra);
    lss_store_t *st = lss_store_new_from_config (cfg, err, sizeof err);
    lss_config_destroy (&cfg);
    unsetenv ("KUBERNETES_SERVICE_HOST");
    unsetenv ("KUBERNETES_SERVICE_PORT");
    if (!st)
        fprintf (stderr, "in-cluster: %s\n", err);
    assert_non_null (st);
    s_create (st, "incluster", "a");
    /* the namespace file is the default namespace (current_rv lists there) */
    char rv[64];
    assert_int_equal (tk_hook0 (&s_fake, "/_fake/requests/clear", json_object ()), 0);
    assert_int_equal (lss_store_current_rv (st, rv, sizeof rv, err, sizeof err), LSS_STORE_OK);
    json_t *reqs = s_requests ("/apis/llmsafespace.dev/v1/namespaces/incluster/sandboxes", 0);
    assert_int_equal (json_array_size (reqs), 1);
    json_decref (reqs);

    /* the kubelet rotates the token (a new file swapped in) and the old one stops
     * working: the next request reads the new one */
    char tmp[700];
    snprintf (tmp, sizeof tmp, "%s/token.new", sa);
    assert_int_equal (tk_write (tmp, "rotating-token-2"), 0);
    assert_int_equal (rename (tmp, path), 0);
    assert_int_equal (tk_hook0 (&s_fake, "/_fake/tokens",
                                json_pack ("{s:[s]}", "tokens", "rotating-token-2")),
                      0);
    json_t *got = NULL;
    assert_int_equal (lss_store_get (st, "Sandbox", "incluster", "a", &got, err, sizeof err),
                      LSS_STORE_OK);
    json_decref (got);
    /* rewritten in place with the same size and the server switching first: the 401
     * makes the client re-read the file and try once more */
    assert_int_equal (tk_hook0 (&s_fake, "/_fake/tokens",
                                json_pack ("{s:[s]}", "tokens", "rotating-token-3")),
                      0);
    assert_int_equal (tk_write (path, "rotating-token-3"), 0);
    assert_int_equal (lss_store_get (st, "Sandbox", "incluster", "a", &got, err, sizeof err),
                      LSS_STORE_OK);
    json_decref (got);
    lss_store_destroy (&st);
    s_clear ();

    /* in-cluster without the variables or the token file: a clear error */
    setenv ("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
    setenv ("KUBERNETES_SERVICE_PORT", "x", 1);
    cfg = tk_config (&s_fake, NULL, extra);
    assert_null (lss_store_new_from_config (cfg, err, sizeof err));
    assert_non_null (strstr (err, "KUBERNETES_SERVICE_PORT"));
    setenv ("KUBERNETES_SERVICE_PORT", port, 1);
    unlink (path);
    assert_null (lss_store_new_from_config (cfg, err, sizeof err));
    assert_non_null (strstr (err, "token"));
    lss_config_destroy (&cfg);
    unsetenv ("KUBERNETES_SERVICE_HOST");
    unsetenv ("KUBERNETES_SERVICE_PORT");
}

/*  get on a fresh store over kubeconfig text at path: the code. */
static int s_probe (const char *path, char *err, size_t err_size)
{
    lss_store_t *st = s_store (path, NULL, err, err_size);
    if (!st)
        return 1;
    json_t *got = NULL;
    int rc = lss_store_get (st, "Sandbox", "certs", "nope", &got, err, err_size);
    json_decref (got);
    lss_store_destroy (&st);
    return rc;
}

static void test_client_certificates (void **state)
{
    (void)state;
    char err[LSS_STORE_ERR_SIZE], path[600];
    snprintf (path, sizeof path, "%s/kc-cert", s_fake.dir);
    assert_int_equal (tk_hook0 (&s_fake, "/_fake/requests/clear", json_object ()), 0);

    /* files, relative to the kubeconfig's directory */
    assert_int_equal (tk_kubeconfig (&s_fake, path,
                                     "    client-certificate: client.crt\n"
                                     "    client-key: client.key",
                                     "certs"),
                      0);
    assert_int_equal (s_probe (path, err, sizeof err), LSS_STORE_NOT_FOUND);

    /* the -data forms, CA included */
    char *ca = tk_base64_file (s_fake.ca), *cert = tk_base64_file (s_fake.cert),
         *key = tk_base64_file (s_fake.key);
    assert_non_null (ca);
    assert_non_null (cert);
    assert_non_null (key);
    char *text = malloc (65536);
    snprintf (text, 65536,
              "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
              "clusters:\n- name: k\n  cluster:\n    server: %s/\n"
              "    certificate-authority-data: %s\n"
              "contexts:\n- name: c\n  context: {cluster: k, user: u}\n"
              "users:\n- name: u\n  user:\n    client-certificate-data: %s\n"
              "    client-key-data: %s\n",
              s_fake.url, ca, cert, key);
    assert_int_equal (tk_write (path, text), 0);
    assert_int_equal (s_probe (path, err, sizeof err), LSS_STORE_NOT_FOUND);
    json_t *reqs = s_requests ("/apis/llmsafespace.dev/v1/namespaces/certs", -1);
    assert_int_equal (json_array_size (reqs), 2);
    for (size_t i = 0; i < 2; i++)
        assert_string_equal (
            json_string_value (json_object_get (json_array_get (reqs, i), "auth")), "cert");
    json_decref (reqs);

    /* insecure-skip-tls-verify without a CA works; a wrong CA does not */
    snprintf (text, 65536,
              "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
              "clusters:\n- name: k\n  cluster:\n    server: %s\n"
              "    insecure-skip-tls-verify: true\n"
              "contexts:\n- name: c\n  context: {cluster: k, user: u}\n"
              "users:\n- name: u\n  user: {token: %s}\n",
              s_fake.url, TK_TOKEN);
    assert_int_equal (tk_write (path, text), 0);
    assert_int_equal (s_probe (path, err, sizeof err), LSS_STORE_NOT_FOUND);
    snprintf (text, 65536,
              "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
              "clusters:\n- name: k\n  cluster:\n    server: %s\n"
              "    certificate-authority: %s\n"
              "contexts:\n- name: c\n  context: {cluster: k, user: u}\n"
              "users:\n- name: u\n  user: {token: %s}\n",
              s_fake.url, s_fake.cert, TK_TOKEN);
    assert_int_equal (tk_write (path, text), 0);
    assert_int_equal (s_probe (path, err, sizeof err), LSS_STORE_UNAVAILABLE);
    free (text);
    free (ca);
    free (cert);
    free (key);
}

static void test_kubeconfig_errors (void **state)
{
    (void)state;
    char err[LSS_STORE_ERR_SIZE], path[600];
    snprintf (path, sizeof path, "%s/kc-bad", s_fake.dir);
    struct {
        const char *text, *want;
    } cases[] = {
        {"apiVersion: v1\ncurrent-context: c\nclusters:\n- {name: k, cluster: {server: "
         "'https://127.0.0.1:1'}}\ncontexts:\n- {name: c, context: {cluster: k, user: "
         "robot}}\nusers:\n- name: robot\n  user:\n    exec:\n      command: aws\n",
         "user \"robot\" uses an exec credential plugin"},
        {"current-context: c\nclusters:\n- {name: k, cluster: {server: 'https://x'}}\n"
         "contexts:\n- {name: c, context: {cluster: k, user: g}}\nusers:\n- {name: g, user: "
         "{auth-provider: {name: gcp}}}\n",
         "auth-provider"},
        {"current-context: nope\ncontexts: []\n", "no context \"nope\""},
        {"contexts: []\n", "no current-context"},
        {"current-context: c\ncontexts:\n- {name: c, context: {cluster: k}}\n",
         "no cluster \"k\""},
        {"current-context: c\nclusters:\n- {name: k, cluster: {insecure-skip-tls-verify: "
         "true}}\ncontexts:\n- {name: c, context: {cluster: k}}\n",
         "server"},
        {"current-context: c\nclusters:\n- {name: k, cluster: {server: 'ftp://x'}}\n"
         "contexts:\n- {name: c, context: {cluster: k}}\n",
         "https://"},
        {"current-context: c\nclusters:\n- {name: k, cluster: {server: 'https://x', "
         "certificate-authority-data: '!!notbase64'}}\ncontexts:\n- {name: c, context: "
         "{cluster: k}}\n",
         "not base64"},
        {"current-context: c\nclusters:\n- {name: k, cluster: {server: 'https://x'}}\n"
         "contexts:\n- {name: c, context: {cluster: k, user: u}}\nusers:\n- {name: u, user: "
         "{client-certificate: a.crt}}\n",
         "come together"},
        {"current-context: c\nclusters:\n- {name: k, cluster: {server: [1, 2]}}\n"
         "contexts:\n- {name: c, context: {cluster: k}}\n",
         "server"},
        {"key: [unclosed\n", "YAML error"},
        {"- just\n- a list\n", "not a mapping"},
        {"a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, "
         "*a]\n"
         "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, "
         "*c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e]\n",
         "too many nodes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal (tk_write (path, cases[i].text), 0);
        err[0] = '\0';
        lss_store_t *st = s_store (path, NULL, err, sizeof err);
        if (st || !strstr (err, cases[i].want))
            fprintf (stderr, "case %zu: %s\n", i, err);
        assert_null (st);
        assert_non_null (strstr (err, cases[i].want));
    }
    /* a file that is not there */
    lss_store_t *st = s_store ("/nonexistent/kubeconfig", NULL, err, sizeof err);
    assert_null (st);
    assert_non_null (strstr (err, "/nonexistent/kubeconfig"));

    /* k8s.context picks another context, whose namespace becomes the default */
    char *text = malloc (8192);
    snprintf (
        text, 8192,
        "apiVersion: v1\ncurrent-context: broken\n"
        "clusters:\n- name: k\n  cluster:\n    server: %s\n    certificate-authority: %s\n"
        "contexts:\n- {name: broken, context: {cluster: missing}}\n"
        "- {name: good, context: {cluster: k, user: u, namespace: ctxns}}\n"
        "users:\n- {name: u, user: {token: %s}}\n",
        s_fake.url, s_fake.ca, TK_TOKEN);
    assert_int_equal (tk_write (path, text), 0);
    free (text);
    assert_null (s_store (path, NULL, err, sizeof err));
    const char *extra[] = {"k8s.context=good", NULL};
    st = s_store (path, extra, err, sizeof err);
    assert_non_null (st);
    assert_int_equal (tk_hook0 (&s_fake, "/_fake/requests/clear", json_object ()), 0);
    char rv[64];
    assert_int_equal (lss_store_current_rv (st, rv, sizeof rv, err, sizeof err), LSS_STORE_OK);
    json_t *reqs = s_requests ("/apis/llmsafespace.dev/v1/namespaces/ctxns/", -1);
    assert_int_equal (json_array_size (reqs), 1);
    json_decref (reqs);
    lss_store_destroy (&st);
    /* and k8s.namespace wins over the context's */
    const char *extra2[] = {"k8s.context=good", "k8s.namespace=over", NULL};
    st = s_store (path, extra2, err, sizeof err);
    assert_non_null (st);
    assert_int_equal (lss_store_current_rv (st, rv, sizeof rv, err, sizeof err), LSS_STORE_OK);
    reqs = s_requests ("/apis/llmsafespace.dev/v1/namespaces/over/", -1);
    assert_int_equal (json_array_size (reqs), 1);
    json_decref (reqs);
    lss_store_destroy (&st);

    /* an unknown backend */
    lss_config_t *cfg = tk_config (&s_fake, NULL, NULL);
    assert_int_equal (lss_config_set (cfg, "store.backend", "etcd", err, sizeof err), 0);
    assert_null (lss_store_new_from_config (cfg, err, sizeof err));
    assert_non_null (strstr (err, "store.backend"));
    lss_config_destroy (&cfg);
}

/* ------------------------------------------------------------------ retries and errors */

static void test_retry_after_429 (void **state)
{
    (void)state;
    char err[LSS_STORE_ERR_SIZE];
    lss_store_t *st = s_open (NULL);
    s_create (st, "retry", "a");
    const char *path = "/apis/llmsafespace.dev/v1/namespaces/retry/sandboxes/a";
    assert_int_equal (tk_hook0 (&s_fake, "/_fake/requests/clear", json_object ()), 0);
    assert_int_equal (
        tk_inject (&s_fake,
                   json_pack ("{s:s, s:s, s:i, s:i, s:{s:s}}", "method", "GET", "path", path,
                              "status", 429, "times", 2, "headers", "Retry-After", "1")),
        0);
    json_t *got = NULL;
    assert_int_equal (lss_store_get (st, "Sandbox", "retry", "a", &got, err, sizeof err),
                      LSS_STORE_OK);
    assert_string_equal (s_mstr (got, "name"), "a");
    json_decref (got);
    json_t *reqs = s_requests (path, 0);
    assert_int_equal (json_array_size (reqs), 3);
    for (size_t i = 1; i < 3; i++) { /* each retry waited the second it was told */
        double gap = json_real_value (json_object_get (json_array_get (reqs, i), "t")) -
                     json_real_value (json_object_get (json_array_get (reqs, i - 1), "t"));
        assert_true (gap >= 0.95);
    }
    json_decref (reqs);
    lss_store_destroy (&st);

    /* bounded: k8s.max_retries retries, each wait capped by k8s.retry_max_wait */
    const char *extra[] = {"k8s.max_retries=2", "k8s.retry_max_wait=100ms", NULL};
    st = s_open (extra);
    assert_int_equal (tk_hook0 (&s_fake, "/_fake/requests/clear", json_object ()), 0);
    assert_int_equal (
        tk_inject (&s_fake, json_pack ("{s:s, s:i, s:i, s:s, s:{s:s}}", "path", path, "status",
                                       429, "times", 100, "message", "slow down", "headers",
                                       "Retry-After", "3600")),
        0);
    long long t0 = tp_now_ms ();
    assert_int_equal (lss_store_get (st, "Sandbox", "retry", "a", &got, err, sizeof err),
                      LSS_STORE_UNAVAILABLE);
    assert_true (tp_now_ms () - t0 < 30000); /* not an hour */
    assert_non_null (strstr (err, "slow down"));
    reqs = s_requests (path, 0);
    assert_int_equal (json_array_size (reqs), 3);
    json_decref (reqs);
    s_clear ();
    lss_store_destroy (&st);
}

static void test_retry_5xx_and_error_mapping (void **state)
{
    (void)state;
    char err[LSS_STORE_ERR_SIZE];
    const char *extra[] = {"k8s.max_retries=3", NULL};
    lss_store_t *st = s_open (extra);
    const char *coll = "/apis/llmsafespace.dev/v1/namespaces/errs/sandboxes";
    /* two 503s, then the create goes through */
    assert_int_equal (tk_hook0 (&s_fake, "/_fake/requests/clear", json_object ()), 0);
    assert_int_equal (tk_inject (&s_fake, json_pack ("{s:s, s:s, s:i, s:i}", "method", "POST",
                                                     "path", coll, "status", 503, "times", 2)),
                      0);
    s_create (st, "errs", "a");
    json_t *reqs = s_requests (coll, 0);
    assert_int_equal (json_array_size (reqs), 3);
    json_decref (reqs);
    /* a 500 that does not stop: max_retries + 1 attempts, then unavailable */
    assert_int_equal (tk_hook0 (&s_fake, "/_fake/requests/clear", json_object ()), 0);
    assert_int_equal (tk_inject (&s_fake, json_pack ("{s:s, s:i, s:i, s:s}", "path", coll,
                                                     "status", 500, "times", 100, "message",
                                                     "etcdserver: request timed out")),
                      0);
    json_t *list = NULL;
    assert_int_equal (
        lss_store_list (st, "Sandbox", "errs", NULL, 0, NULL, &list, err, sizeof err),
        LSS_STORE_UNAVAILABLE);
    assert_non_null (strstr (err, "etcdserver"));
    reqs = s_requests (coll, 0);
    assert_int_equal (json_array_size (reqs), 4);
    json_decref (reqs);
    s_clear ();

    /* each status maps to its code, with the server's message, and is not retried */
    struct {
        int status, code;
    } map[] = {{400, LSS_STORE_INVALID},   {422, LSS_STORE_INVALID},
               {404, LSS_STORE_NOT_FOUND}, {409, LSS_STORE_CONFLICT},
               {410, LSS_STORE_GONE},      {403, LSS_STORE_UNAVAILABLE},
               {413, LSS_STORE_INVALID},   {418, LSS_STORE_UNAVAILABLE}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        char msg[64];
        snprintf (msg, sizeof msg, "spec.x: Invalid value: %d", map[i].status);
        assert_int_equal (
            tk_inject (&s_fake, json_pack ("{s:s, s:i, s:i, s:s}", "path", coll, "status",
                                           map[i].status, "times", 1, "message", msg)),
            0);
        json_t *o = s_obj ("errs", "b");
        err[0] = '\0';
        assert_int_equal (lss_store_create (st, o, NULL, err, sizeof err), map[i].code);
        assert_non_null (strstr (err, msg));
        json_decref (o);
    }
    s_clear ();
    /* the server's own 422 and 400 pass their message through */
    json_t *o = json_pack ("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "v1", "kind", "Sandbox",
                           "metadata", "name", "c", "namespace", "errs");
    assert_int_equal (lss_store_create (st, o, NULL, err, sizeof err), LSS_STORE_INVALID);
    assert_non_null (strstr (err, "API version"));
    json_decref (o);
    lss_store_destroy (&st);
}

/* ------------------------------------------------------------------ watches */

static void test_watch_reconnects (void **state)
{
    (void)state;
    char err[LSS_STORE_ERR_SIZE];
    const char *extra[] = {"k8s.watch_timeout=1s", NULL};
    lss_store_t *st = s_open (extra);
    int code = 0;
    assert_int_equal (tk_hook0 (&s_fake, "/_fake/requests/clear", json_object ()), 0);
    lss_store_watch_t *w =
        lss_store_watch_new (st, "Sandbox", "rewatch", "", &code, err, sizeof err);
    assert_non_null (w);
    int fd = lss_store_watch_fd (w);
    assert_true (fd >= 0);
    s_create (st, "rewatch", "a");
    s_expect (w, LSS_STORE_ADDED, "a");
    char rv_a[64];
    snprintf (rv_a, sizeof rv_a, "%s", lss_store_watch_rv (w));

    /* the server ends the stream (as at its timeoutSeconds): reopened from the last
     * resourceVersion, on the same descriptor, nothing lost or repeated */
    assert_int_equal (
        tk_hook0 (&s_fake, "/_fake/watches", json_pack ("{s:s}", "action", "end")), 0);
    s_create (st, "rewatch", "b");
    s_expect (w, LSS_STORE_ADDED, "b");
    assert_int_equal (lss_store_watch_fd (w), fd);
    /* and timeoutSeconds=1 ends streams by itself: after 2.5 s events still arrive */
    long long until = tp_now_ms () + 2500;
    lss_store_event_t ev = {0};
    while (tp_now_ms () < until)
        assert_int_equal (s_next (w, &ev, (int)(until - tp_now_ms ())), 0);
    s_create (st, "rewatch", "c");
    s_expect (w, LSS_STORE_ADDED, "c");
    json_t *reqs = s_requests ("/apis/llmsafespace.dev/v1/namespaces/rewatch/sandboxes", 1);
    assert_true (json_array_size (reqs) >= 3);
    bool from_a = false;
    size_t i;
    json_t *r;
    json_array_foreach (reqs, i, r)
    {
        const json_t *q = json_object_get (r, "query");
        const char *qrv = json_string_value (json_object_get (q, "resourceVersion"));
        from_a = from_a || (i > 0 && qrv && strcmp (qrv, rv_a) == 0);
        assert_string_equal (json_string_value (json_object_get (q, "allowWatchBookmarks")),
                             "true");
        assert_string_equal (json_string_value (json_object_get (q, "timeoutSeconds")), "1");
    }
    assert_true (from_a); /* a stream reopened from the last event's resourceVersion */
    json_decref (reqs);

    /* a cut connection: unavailable (sticky); watching again from its rv loses nothing */
    assert_int_equal (
        tk_hook0 (&s_fake, "/_fake/watches", json_pack ("{s:s}", "action", "drop")), 0);
    assert_int_equal (s_next (w, &ev, S_DEADLINE_MS), LSS_STORE_UNAVAILABLE);
    assert_int_equal (lss_store_watch_next (w, &ev), LSS_STORE_UNAVAILABLE);
    s_create (st, "rewatch", "d");
    char rv[64];
    snprintf (rv, sizeof rv, "%s", lss_store_watch_rv (w));
    lss_store_watch_destroy (&w);
    w = lss_store_watch_new (st, "Sandbox", "rewatch", rv, &code, err, sizeof err);
    assert_non_null (w);
    s_expect (w, LSS_STORE_ADDED, "d");
    /* the watch outlives its store */
    lss_store_destroy (&st);
    lss_store_t *other = s_open (NULL);
    s_create (other, "rewatch", "e");
    s_expect (w, LSS_STORE_ADDED, "e");
    lss_store_watch_destroy (&w);
    lss_store_destroy (&other);
}

static void test_watch_gone_and_relist (void **state)
{
    (void)state;
    char err[LSS_STORE_ERR_SIZE];
    lss_store_t *st = s_open (NULL);
    int code = 0;
    lss_store_watch_t *w =
        lss_store_watch_new (st, "Sandbox", "relist", "", &code, err, sizeof err);
    assert_non_null (w);
    /* events elsewhere move the store on without reaching this watch; the stream ends
     * and, before it is reopened, everything up to now is compacted */
    s_create (st, "relist-other", "x");
    s_create (st, "relist-other", "y");
    assert_int_equal (
        tk_hook0 (&s_fake, "/_fake/watches", json_pack ("{s:s}", "action", "end")), 0);
    assert_int_equal (tk_hook0 (&s_fake, "/_fake/compact", json_object ()), 0);
    lss_store_event_t ev = {0};
    assert_int_equal (s_next (w, &ev, S_DEADLINE_MS), LSS_STORE_GONE);
    lss_store_watch_destroy (&w);
    /* relist, and watch from the list's resourceVersion */
    s_create (st, "relist", "a");
    json_t *list = NULL;
    assert_int_equal (
        lss_store_list (st, "Sandbox", "relist", NULL, 0, NULL, &list, err, sizeof err),
        LSS_STORE_OK);
    assert_int_equal (json_array_size (json_object_get (list, "items")), 1);
    const char *rv = json_string_value (
        json_object_get (json_object_get (list, "metadata"), "resourceVersion"));
    w = lss_store_watch_new (st, "Sandbox", "relist", rv, &code, err, sizeof err);
    assert_non_null (w);
    json_decref (list);
    s_create (st, "relist", "b");
    s_expect (w, LSS_STORE_ADDED, "b");
    lss_store_watch_destroy (&w);
    lss_store_destroy (&st);
}

static void test_watch_bookmarks (void **state)
{
    (void)state;
    char err[LSS_STORE_ERR_SIZE], now[64];
    lss_store_t *st = s_open (NULL);
    int code = 0;
    lss_store_watch_t *w =
        lss_store_watch_new (st, "Sandbox", "bm", "", &code, err, sizeof err);
    assert_non_null (w);
    char start[64];
    snprintf (start, sizeof start, "%s", lss_store_watch_rv (w));
    s_create (st, "bm-other", "x");
    assert_int_equal (lss_store_current_rv (st, now, sizeof now, err, sizeof err),
                      LSS_STORE_OK);
    assert_string_not_equal (now, start);
    assert_int_equal (tk_hook0 (&s_fake, "/_fake/bookmark", json_object ()), 0);
    /* the bookmark is no event, but moves the watch's resourceVersion to now */
    long long deadline = tp_now_ms () + S_DEADLINE_MS;
    lss_store_event_t ev = {0};
    while (strcmp (lss_store_watch_rv (w), now) != 0 && tp_now_ms () < deadline)
        assert_int_equal (s_next (w, &ev, 100), 0);
    assert_string_equal (lss_store_watch_rv (w), now);
    s_create (st, "bm", "a");
    s_expect (w, LSS_STORE_ADDED, "a");
    lss_store_watch_destroy (&w);
    lss_store_destroy (&st);
}

/* ------------------------------------------------------------------ bounded and hostile */

static void test_stalled_server (void **state)
{
    (void)state;
    char err[LSS_STORE_ERR_SIZE];
    const char *extra[] = {"k8s.request_timeout=500ms", "k8s.max_retries=0", NULL};
    lss_store_t *st = s_open (extra);
    const char *coll = "/apis/llmsafespace.dev/v1/namespaces/stall/sandboxes";
    assert_int_equal (
        tk_inject (&s_fake, json_pack ("{s:s, s:b, s:i, s:i}", "path", coll, "stall", 1,
                                       "stall_ms", 20000, "times", 2)),
        0);
    json_t *got = NULL;
    long long t0 = tp_now_ms ();
    assert_int_equal (lss_store_get (st, "Sandbox", "stall", "a", &got, err, sizeof err),
                      LSS_STORE_UNAVAILABLE);
    int code = 0;
    assert_null (lss_store_watch_new (st, "Sandbox", "stall", "1", &code, err, sizeof err));
    assert_int_equal (code, LSS_STORE_UNAVAILABLE);
    assert_true (tp_now_ms () - t0 < 10000); /* both bounded by the request timeout */
    s_clear ();
    /* a connection closed without an answer */
    assert_int_equal (tk_inject (&s_fake, json_pack ("{s:s, s:b, s:i}", "path", coll, "close",
                                                     1, "times", 2)),
                      0);
    assert_int_equal (lss_store_get (st, "Sandbox", "stall", "a", &got, err, sizeof err),
                      LSS_STORE_UNAVAILABLE);
    lss_store_destroy (&st);
    s_clear ();

    /* nobody listening */
    char path[600], *text = malloc (4096);
    snprintf (path, sizeof path, "%s/kc-closed", s_fake.dir);
    snprintf (text, 4096,
              "current-context: c\nclusters:\n- {name: k, cluster: {server: "
              "'https://127.0.0.1:1'}}\ncontexts:\n- {name: c, context: {cluster: k}}\n");
    assert_int_equal (tk_write (path, text), 0);
    free (text);
    st = s_store (path, NULL, err, sizeof err);
    assert_non_null (st);
    assert_int_equal (lss_store_get (st, "Sandbox", "stall", "a", &got, err, sizeof err),
                      LSS_STORE_UNAVAILABLE);
    assert_null (lss_store_watch_new (st, "Sandbox", "stall", "1", &code, err, sizeof err));
    assert_int_equal (code, LSS_STORE_UNAVAILABLE);
    lss_store_destroy (&st);
}

static void test_hostile_answers (void **state)
{
    (void)state;
    char err[LSS_STORE_ERR_SIZE];
    const char *extra[] = {"k8s.max_response=1Mi", "k8s.max_retries=0", NULL};
    lss_store_t *st = s_open (extra);
    const char *coll = "/apis/llmsafespace.dev/v1/namespaces/hostile/sandboxes";
    struct {
        const char *body;
        int status;
    } bodies[] = {
        {"{not json", 200},
        {"[1, 2, 3]", 200},
        {"{\"items\": 5, \"metadata\": {\"resourceVersion\": \"1\"}}", 200},
        {"{\"items\": [], \"metadata\": {\"resourceVersion\": 7}}", 200},
        {"{\"items\": [{\"metadata\": {}}], \"metadata\": {\"resourceVersion\": \"1\"}}", 200},
        {"{\"items\": [], \"metadata\": {\"resourceVersion\": \"1\", \"continue\": {}}}", 200},
        {"{\"kind\": \"Status\", \"message\": 17, \"code\": \"x\"}", 500},
        {"", 200},
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        assert_int_equal (tk_inject (&s_fake, json_pack ("{s:s, s:i, s:s, s:i}", "path", coll,
                                                         "status", bodies[i].status, "body",
                                                         bodies[i].body, "times", 1)),
                          0);
        json_t *list = NULL;
        if (lss_store_list (st, "Sandbox", "hostile", NULL, 0, NULL, &list, err, sizeof err) !=
            LSS_STORE_UNAVAILABLE)
            fprintf (stderr, "body %zu accepted\n", i);
        assert_null (list);
    }
    /* get of an object without metadata */
    assert_int_equal (tk_inject (&s_fake, json_pack ("{s:s, s:i, s:s}", "path", coll, "status",
                                                     200, "body", "{\"spec\": {}}")),
                      0);
    json_t *got = NULL;
    assert_int_equal (lss_store_get (st, "Sandbox", "hostile", "a", &got, err, sizeof err),
                      LSS_STORE_UNAVAILABLE);
    /* a huge answer is cut at k8s.max_response */
    assert_int_equal (
        tk_inject (&s_fake, json_pack ("{s:s, s:i}", "path", coll, "huge", 8 << 20)), 0);
    json_t *list = NULL;
    assert_int_equal (
        lss_store_list (st, "Sandbox", "hostile", NULL, 0, NULL, &list, err, sizeof err),
        LSS_STORE_UNAVAILABLE);
    assert_non_null (strstr (err, "larger than"));
    s_clear ();

    /* malformed watch streams: each ends the watch with unavailable */
    char big[4096];
    memset (big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    const char *streams[][2] = {
        {"{garbage", NULL},
        {"{\"type\": \"ADDED\"}", NULL},
        {"{\"type\": \"ADDED\", \"object\": 7}", NULL},
        {"{\"type\": \"WHAT\", \"object\": {\"metadata\": {\"resourceVersion\": \"9\", "
         "\"name\": \"a\"}}}",
         NULL},
        {"{\"type\": \"ADDED\", \"object\": {\"kind\": \"Pod\", \"metadata\": "
         "{\"resourceVersion\": \"9\", \"name\": \"a\"}}}",
         NULL},
        {"{\"type\": \"MODIFIED\", \"object\": {\"metadata\": {\"name\": \"a\"}}}", NULL},
        {"{\"type\": \"ERROR\", \"object\": {\"kind\": \"Status\", \"code\": 500, \"message\": "
         "\"internal\"}}",
         NULL},
        {"{\"type\": \"ADDED\", \"object\": {\"metadata\": {\"resourceVersion\": \"9\", "
         "\"name\": \"a\"}}, \"type\": \"DELETED\"}",
         NULL},
        {"{\"type\": \"ADDED\", \"obj", "ends inside an event"},
    };
    for (size_t i = 0; i < sizeof streams / sizeof streams[0]; i++) {
        json_t *inj = json_pack ("{s:s, s:b, s:[s], s:i}", "path", coll, "watch", 1, "lines",
                                 streams[i][0], "hold_ms", 200);
        if (streams[i][1])
            json_object_set_new (inj, "no_newline", json_true ());
        assert_int_equal (tk_inject (&s_fake, inj), 0);
        int code = 0;
        lss_store_watch_t *w =
            lss_store_watch_new (st, "Sandbox", "hostile", "1", &code, err, sizeof err);
        assert_non_null (w);
        lss_store_event_t ev = {0};
        int rc = s_next (w, &ev, S_DEADLINE_MS);
        if (rc != LSS_STORE_UNAVAILABLE)
            fprintf (stderr, "stream %zu: %d\n", i, rc);
        assert_int_equal (rc, LSS_STORE_UNAVAILABLE);
        assert_null (ev.object);
        lss_store_watch_destroy (&w);
    }
    /* an event larger than the line limit, sent without end */
    /* 1200 pieces of 4 KiB: past 2 MiB in one line */
    assert_int_equal (tk_inject (&s_fake, json_pack ("{s:s, s:b, s:[s], s:i, s:b, s:i}", "path",
                                                     coll, "watch", 1, "lines", big, "repeat",
                                                     1200, "no_newline", 1, "hold_ms", 5000)),
                      0);
    int code = 0;
    lss_store_watch_t *w =
        lss_store_watch_new (st, "Sandbox", "hostile", "1", &code, err, sizeof err);
    assert_non_null (w);
    lss_store_event_t ev = {0};
    assert_int_equal (s_next (w, &ev, S_DEADLINE_MS), LSS_STORE_UNAVAILABLE);
    lss_store_watch_destroy (&w);
    /* a refused watch: 403 with a Status, at once */
    assert_int_equal (
        tk_inject (&s_fake,
                   json_pack ("{s:s, s:b, s:i, s:s}", "path", coll, "watch", 1, "status", 403,
                              "message", "sandboxes is forbidden: User cannot watch")),
        0);
    assert_null (lss_store_watch_new (st, "Sandbox", "hostile", "1", &code, err, sizeof err));
    assert_int_equal (code, LSS_STORE_UNAVAILABLE);
    assert_non_null (strstr (err, "forbidden"));
    /* and a 410 answered before the stream starts: gone */
    assert_int_equal (tk_inject (&s_fake, json_pack ("{s:s, s:b, s:i}", "path", coll, "watch",
                                                     1, "status", 410)),
                      0);
    assert_null (lss_store_watch_new (st, "Sandbox", "hostile", "1", &code, err, sizeof err));
    assert_int_equal (code, LSS_STORE_GONE);
    s_clear ();
    lss_store_destroy (&st);
}

static void test_other_kinds (void **state)
{
    (void)state;
    char err[LSS_STORE_ERR_SIZE];
    lss_store_t *st = s_open (NULL);
    /* the REST paths of the other kinds the controllers use */
    const char *kinds[] = {"Secret",        "Service", "Event",    "PersistentVolumeClaim",
                           "NetworkPolicy", "Lease",   "WarmPool", "WarmPod",
                           "SandboxProfile"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        const lss_store_kind_t *k = lss_store_kind_info (kinds[i]);
        assert_non_null (k);
        json_t *o = json_pack ("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", k->api_version, "kind",
                               kinds[i], "metadata", "name", "x", "namespace", "kinds");
        json_t *out = NULL;
        assert_int_equal (lss_store_create (st, o, &out, err, sizeof err), LSS_STORE_OK);
        assert_string_equal (json_string_value (json_object_get (out, "kind")), kinds[i]);
        json_decref (out);
        json_t *list = NULL;
        assert_int_equal (
            lss_store_list (st, kinds[i], "kinds", NULL, 0, NULL, &list, err, sizeof err),
            LSS_STORE_OK);
        /* items of built-in lists come without apiVersion/kind; the store fills them in */
        json_t *item = json_array_get (json_object_get (list, "items"), 0);
        assert_string_equal (json_string_value (json_object_get (item, "apiVersion")),
                             k->api_version);
        json_decref (list);
        assert_int_equal (lss_store_delete (st, kinds[i], "kinds", "x", NULL, err, sizeof err),
                          LSS_STORE_OK);
        json_decref (o);
    }
    lss_store_destroy (&st);
}

int main (void)
{
    lss_log_init ("test_store_k8s", LSS_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_token_auth),
        cmocka_unit_test (test_in_cluster_token_rotation),
        cmocka_unit_test (test_client_certificates),
        cmocka_unit_test (test_kubeconfig_errors),
        cmocka_unit_test (test_retry_after_429),
        cmocka_unit_test (test_retry_5xx_and_error_mapping),
        cmocka_unit_test (test_watch_reconnects),
        cmocka_unit_test (test_watch_gone_and_relist),
        cmocka_unit_test (test_watch_bookmarks),
        cmocka_unit_test (test_stalled_server),
        cmocka_unit_test (test_hostile_answers),
        cmocka_unit_test (test_other_kinds),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
