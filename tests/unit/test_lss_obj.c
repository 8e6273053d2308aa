/*  Tests for `lss obj` — the real build/bin/lss binary against a real private PostgreSQL.
 *
 *  The group setup starts a throw-away cluster (lss_testpg.h); each case runs lss as a
 *  child process (stdin from a file, stdout and stderr captured to files, a deadline on
 *  its exit) and works in its own namespace. The wait case waits for the child's watch
 *  connection to show in pg_stat_activity before changing the object, so it really
 *  exercises the watch path rather than the first read.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "lss_testproc.h"

#include "lss_testpg.h"

#define S_RUN_MS   30000
#define S_OUT_MAX  262144
#define S_ARGS_MAX 32

typedef struct {
    int code; /* exit code, or -1 if it did not exit normally in time */
    char out[S_OUT_MAX];
    char err[16384];
} s_res_t;

static s_res_t s_res;

static void s_slurp (const char *path, char *buf, size_t size)
{
    FILE *f = fopen (path, "rb");
    size_t n = f ? fread (buf, 1, size - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose (f);
}

/* Spawns lss obj [--dsn DSN] ARGS (NULL-terminated array); stdin from input (NULL = empty).
 * Fills s_res; returns the exit code. */
static int s_run_argv (const char *input, bool dsn_flag, const char *const *args)
{
    char lss[PATH_MAX], in_path[] = "/tmp/lss-obj-in-XXXXXX",
                        out_path[] = "/tmp/lss-obj-out-XXXXXX",
                        err_path[] = "/tmp/lss-obj-err-XXXXXX";
    tp_build_path (lss, sizeof lss, "bin/lss");
    int fds[3] = {mkstemp (in_path), mkstemp (out_path), mkstemp (err_path)};
    assert_true (fds[0] >= 0 && fds[1] >= 0 && fds[2] >= 0);
    if (input)
        assert_int_equal (write (fds[0], input, strlen (input)), (ssize_t)strlen (input));
    lseek (fds[0], 0, SEEK_SET);
    char *argv[S_ARGS_MAX + 5];
    int n = 0;
    argv[n++] = lss;
    argv[n++] = (char *)"obj";
    if (dsn_flag) {
        argv[n++] = (char *)"--dsn";
        argv[n++] = s_dsn;
    }
    for (int i = 0; args[i]; i++) {
        assert_true (i < S_ARGS_MAX);
        argv[n++] = (char *)args[i];
    }
    argv[n] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init (&fa);
    for (int i = 0; i < 3; i++)
        posix_spawn_file_actions_adddup2 (&fa, fds[i], i);
    tp_proc_t p;
    memset (&p, 0, sizeof p);
    p.out_fd = -1;
    assert_int_equal (posix_spawn (&p.pid, lss, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy (&fa);
    int status = tp_wait (&p, S_RUN_MS);
    s_res.code = status >= 0 && WIFEXITED (status) ? WEXITSTATUS (status) : -1;
    for (int i = 0; i < 3; i++)
        close (fds[i]);
    s_slurp (out_path, s_res.out, sizeof s_res.out);
    s_slurp (err_path, s_res.err, sizeof s_res.err);
    unlink (in_path);
    unlink (out_path);
    unlink (err_path);
    return s_res.code;
}

#define s_run(input, ...) s_run_argv ((input), true, (const char *const[]){__VA_ARGS__, NULL})

static void s_expect (int code, const char *out_has, const char *err_has)
{
    if (s_res.code != code || (out_has && !strstr (s_res.out, out_has)) ||
        (err_has && !strstr (s_res.err, err_has)))
        fprintf (stderr, "exit %d (want %d)\nstdout: %s\nstderr: %s\n", s_res.code, code,
                 s_res.out, s_res.err);
    assert_int_equal (s_res.code, code);
    if (out_has)
        assert_non_null (strstr (s_res.out, out_has));
    if (err_has)
        assert_non_null (strstr (s_res.err, err_has));
}

/* `get -o json` of one object (caller owns). */
static json_t *s_get_json (const char *kind, const char *ns, const char *name)
{
    s_run (NULL, "get", kind, name, "-n", ns, "-o", "json");
    s_expect (0, NULL, NULL);
    json_error_t jerr;
    json_t *o = json_loads (s_res.out, 0, &jerr);
    assert_non_null (o);
    return o;
}

static const char *s_str (const json_t *o, const char *a, const char *b)
{
    return json_string_value (json_object_get (json_object_get (o, a), b));
}

static json_int_t s_int (const json_t *o, const char *a, const char *b)
{
    return json_integer_value (json_object_get (json_object_get (o, a), b));
}

static char s_doc[8192];

/* A Sandbox document in YAML. */
static const char *s_sandbox (const char *ns, const char *name, const char *labels,
                              const char *spec)
{
    snprintf (s_doc, sizeof s_doc,
              "apiVersion: llmsafespace.dev/v1\nkind: Sandbox\nmetadata:\n  name: %s\n"
              "  namespace: %s\n  labels: {%s}\nspec: {%s}\n",
              name, ns, labels, spec);
    return s_doc;
}

/* ------------------------------------------------------------------ cases */

static void test_apply_create_update (void **state)
{
    (void)state;
    s_run (s_sandbox ("t-apply", "a", "tier: web", "runtime: 'python:3.11', timeout: 60"),
           "apply", "-f", "-");
    s_expect (0, "sandbox/a created", NULL);
    json_t *v1 = s_get_json ("sandbox", "t-apply", "a");
    assert_int_equal (s_int (v1, "metadata", "generation"), 1);

    /* same document again: nothing written */
    s_run (s_doc, "apply", "-f", "-");
    s_expect (0, "sandbox/a unchanged", NULL);
    json_t *same = s_get_json ("sb", "t-apply", "a");
    assert_string_equal (s_str (same, "metadata", "resourceVersion"),
                         s_str (v1, "metadata", "resourceVersion"));

    /* a label change: new resourceVersion, same generation */
    s_run (s_sandbox ("t-apply", "a", "tier: db", "runtime: 'python:3.11', timeout: 60"),
           "apply", "-f", "-");
    s_expect (0, "sandbox/a configured", NULL);
    json_t *v2 = s_get_json ("Sandboxes", "t-apply", "a");
    assert_string_not_equal (s_str (v2, "metadata", "resourceVersion"),
                             s_str (v1, "metadata", "resourceVersion"));
    assert_int_equal (s_int (v2, "metadata", "generation"), 1);
    assert_string_equal (s_str (json_object_get (v2, "metadata"), "labels", "tier"), "db");
    assert_string_equal (s_str (v2, "metadata", "uid"), s_str (v1, "metadata", "uid"));

    /* a spec change: generation 2 */
    s_run (s_sandbox ("t-apply", "a", "tier: db", "runtime: 'python:3.11', timeout: 90"),
           "apply", "-f", "-");
    s_expect (0, "sandbox/a configured", NULL);
    json_t *v3 = s_get_json ("SB", "t-apply", "a");
    assert_int_equal (s_int (v3, "metadata", "generation"), 2);
    assert_int_equal (s_int (v3, "spec", "timeout"), 90);

    /* a stale resourceVersion in the document is a precondition: conflict, exit 1 */
    char stale[8192];
    snprintf (stale, sizeof stale,
              "{\"apiVersion\": \"llmsafespace.dev/v1\", \"kind\": \"Sandbox\", \"metadata\": "
              "{\"name\": \"a\", \"namespace\": \"t-apply\", \"resourceVersion\": \"%s\"}, "
              "\"spec\": {\"timeout\": 5}}",
              s_str (v1, "metadata", "resourceVersion"));
    s_run (stale, "apply", "-f", "-");
    s_expect (1, NULL, "sandbox/a");

    /* several documents, JSON and YAML mixed, namespace from -n */
    s_run ("kind: WarmPool\napiVersion: llmsafespace.dev/v1\nmetadata: {name: p1}\n"
           "spec: {runtime: bash, minSize: 1}\n---\n"
           "{\"kind\": \"WarmPool\", \"apiVersion\": \"llmsafespace.dev/v1\", "
           "\"metadata\": {\"name\": \"p2\"}, \"spec\": {\"minSize\": 2}}\n---\n",
           "apply", "-n", "t-apply", "-f", "-");
    s_expect (0, "warmpool/p1 created\nwarmpool/p2 created", NULL);
    s_run (NULL, "get", "wp", "-n", "t-apply", "-o", "name");
    s_expect (0, "warmpool/p1\nwarmpool/p2\n", NULL);
    json_decref (v1);
    json_decref (same);
    json_decref (v2);
    json_decref (v3);
}

static void test_apply_status (void **state)
{
    (void)state;
    s_run (s_sandbox ("t-status", "s", "", "timeout: 60"), "apply", "-f", "-");
    s_expect (0, "created", NULL);
    json_t *before = s_get_json ("sandbox", "t-status", "s");
    const char *doc = "apiVersion: llmsafespace.dev/v1\nkind: Sandbox\nmetadata: {name: s, "
                      "namespace: t-status}\nspec: {timeout: 1}\nstatus: {phase: Running}\n";
    s_run (doc, "apply", "--status", "-f", "-");
    s_expect (0, "sandbox/s status updated", NULL);
    json_t *after = s_get_json ("sandbox", "t-status", "s");
    assert_string_equal (s_str (after, "status", "phase"), "Running");
    assert_int_equal (s_int (after, "spec", "timeout"), 60); /* --status leaves spec alone */
    assert_int_equal (s_int (after, "metadata", "generation"), 1);
    assert_string_not_equal (s_str (after, "metadata", "resourceVersion"),
                             s_str (before, "metadata", "resourceVersion"));
    /* a plain apply ignores status (status subresource) */
    s_run ("apiVersion: llmsafespace.dev/v1\nkind: Sandbox\nmetadata: {name: s, namespace: "
           "t-status, labels: {}}\nspec: {timeout: 60}\nstatus: {phase: Failed}\n",
           "apply", "-f", "-");
    s_expect (0, "sandbox/s unchanged", NULL);
    json_t *kept = s_get_json ("sandbox", "t-status", "s");
    assert_string_equal (s_str (kept, "status", "phase"), "Running");
    /* --status on an object that does not exist */
    s_run ("apiVersion: llmsafespace.dev/v1\nkind: Sandbox\nmetadata: {name: nope, namespace: "
           "t-status}\nstatus: {phase: Running}\n",
           "apply", "--status", "-f", "-");
    s_expect (1, NULL, "sandbox/nope");
    /* --status without a status */
    s_run (s_sandbox ("t-status", "s", "", ""), "apply", "--status", "-f", "-");
    s_expect (2, NULL, "status");
    json_decref (before);
    json_decref (after);
    json_decref (kept);
}

static void test_get_outputs (void **state)
{
    (void)state;
    s_run (s_sandbox ("t-get", "g1", "", "timeout: 60"), "apply", "-f", "-");
    s_expect (0, "created", NULL);
    s_run (s_sandbox ("t-get", "g2", "", "timeout: 60"), "apply", "-f", "-");
    s_run ("apiVersion: llmsafespace.dev/v1\nkind: Sandbox\nmetadata: {name: g2, namespace: "
           "t-get}\nstatus: {phase: Creating}\n",
           "apply", "--status", "-f", "-");
    s_expect (0, NULL, NULL);

    s_run (NULL, "get", "sb", "-n", "t-get");
    s_expect (0, "NAME", NULL);
    assert_non_null (strstr (s_res.out, "PHASE"));
    assert_non_null (strstr (s_res.out, "AGE"));
    char *row = strstr (s_res.out, "\ng2 ");
    assert_non_null (row);
    assert_non_null (strstr (row, "Creating"));
    assert_non_null (strstr (s_res.out, "\ng1 "));

    s_run (NULL, "get", "sb", "-n", "t-get", "-o", "json");
    s_expect (0, NULL, NULL);
    json_t *list = json_loads (s_res.out, 0, NULL);
    assert_non_null (list);
    assert_string_equal (json_string_value (json_object_get (list, "kind")), "List");
    assert_int_equal (json_array_size (json_object_get (list, "items")), 2);
    assert_non_null (s_str (list, "metadata", "resourceVersion"));
    json_decref (list);

    s_run (NULL, "get", "sandbox", "g1", "-n", "t-get", "-o", "name");
    s_expect (0, "sandbox/g1\n", NULL);

    /* YAML output applies back unchanged (types and quoting survive) */
    s_run (NULL, "get", "sandbox", "g2", "-n", "t-get", "-o", "yaml");
    s_expect (0, "kind: Sandbox\n", NULL);
    assert_non_null (strstr (s_res.out, "phase: Creating"));
    char yaml[S_OUT_MAX];
    snprintf (yaml, sizeof yaml, "%s", s_res.out);
    s_run (yaml, "apply", "-f", "-");
    s_expect (0, "sandbox/g2 unchanged", NULL);

    s_run (NULL, "get", "sandbox", "missing", "-n", "t-get");
    s_expect (1, NULL, "sandbox \"missing\" not found in namespace \"t-get\"");
    s_run (NULL, "get", "sb", "-n", "t-empty");
    s_expect (0, NULL, "No resources found in t-empty namespace.");
    s_run (NULL, "get", "sb", "-n", "t-get", "-o", "wide");
    s_expect (2, NULL, "-o");
}

static void test_label_selector (void **state)
{
    (void)state;
    s_run (s_sandbox ("t-sel", "w1", "tier: web, env: prod", ""), "apply", "-f", "-");
    s_run (s_sandbox ("t-sel", "w2", "tier: web", ""), "apply", "-f", "-");
    s_run (s_sandbox ("t-sel", "d1", "tier: db", ""), "apply", "-f", "-");
    s_run (s_sandbox ("t-sel", "n1", "", ""), "apply", "-f", "-");
    s_expect (0, "created", NULL);
    s_run (NULL, "get", "sb", "-n", "t-sel", "-l", "tier=web", "-o", "name");
    s_expect (0, NULL, NULL);
    assert_string_equal (s_res.out, "sandbox/w1\nsandbox/w2\n");
    s_run (NULL, "get", "sb", "-n", "t-sel", "-l", "tier=web,env=prod", "-o", "name");
    assert_string_equal (s_res.out, "sandbox/w1\n");
    s_run (NULL, "get", "sb", "-n", "t-sel", "-l", "!tier", "-o", "name");
    assert_string_equal (s_res.out, "sandbox/n1\n");
    s_run (NULL, "get", "sb", "-n", "t-sel", "-l", "tier!=web", "-o", "name");
    assert_string_equal (s_res.out, "sandbox/d1\nsandbox/n1\n");
    s_run (NULL, "get", "sb", "-n", "t-sel", "-l", "tier=a=b");
    s_expect (2, NULL, NULL);
    assert_true (strlen (s_res.err) > 0);
    s_run (NULL, "get", "sb", "w1", "-n", "t-sel", "-l", "tier=web");
    s_expect (2, NULL, "-l");
}

static void test_delete (void **state)
{
    (void)state;
    s_run (s_sandbox ("t-del", "x", "", ""), "apply", "-f", "-");
    s_expect (0, "created", NULL);
    s_run (NULL, "delete", "sandbox", "x", "-n", "t-del");
    s_expect (0, "sandbox/x deleted", NULL);
    s_run (NULL, "get", "sandbox", "x", "-n", "t-del");
    s_expect (1, NULL, "not found");
    s_run (NULL, "delete", "sandbox", "x", "-n", "t-del");
    s_expect (1, NULL, "sandbox \"x\" not found");
    s_run (NULL, "delete", "sandbox");
    s_expect (2, NULL, "usage");
    /* cluster-scoped kinds refuse a namespace */
    s_run (NULL, "delete", "rte", "python-3.11", "-n", "t-del");
    s_expect (2, NULL, "cluster-scoped");
}

static void test_watch_count (void **state)
{
    (void)state;
    s_run (NULL, "get", "sb", "-n", "t-watch", "-o", "json");
    s_expect (0, NULL, NULL);
    json_t *list = json_loads (s_res.out, 0, NULL);
    char rv[64];
    snprintf (rv, sizeof rv, "%s", s_str (list, "metadata", "resourceVersion"));
    json_decref (list);
    s_run (s_sandbox ("t-watch", "w", "", ""), "apply", "-f", "-");
    s_run ("apiVersion: llmsafespace.dev/v1\nkind: Sandbox\nmetadata: {name: w, namespace: "
           "t-watch}\nstatus: {phase: Running}\n",
           "apply", "--status", "-f", "-");
    s_run (NULL, "delete", "sb", "w", "-n", "t-watch");
    s_expect (0, "deleted", NULL);
    /* an event in another namespace must not show */
    s_run (s_sandbox ("t-watch-other", "o", "", ""), "apply", "-f", "-");

    s_run (NULL, "watch", "sandbox", "-n", "t-watch", "--from", rv, "--count", "3", "--timeout",
           "10");
    s_expect (0, NULL, NULL);
    const char *types[] = {"ADDED", "MODIFIED", "DELETED"};
    char *line = s_res.out;
    for (int i = 0; i < 3; i++) {
        char *nl = strchr (line, '\n');
        assert_non_null (nl);
        *nl = '\0';
        json_t *ev = json_loads (line, 0, NULL);
        assert_non_null (ev);
        assert_string_equal (json_string_value (json_object_get (ev, "type")), types[i]);
        assert_string_equal (s_str (json_object_get (ev, "object"), "metadata", "name"), "w");
        json_decref (ev);
        line = nl + 1;
    }
    assert_string_equal (line, "");
    /* nothing more comes: --count unmet by --timeout → exit 1 */
    s_run (NULL, "watch", "sandbox", "-n", "t-watch", "--count", "1", "--timeout", "1");
    s_expect (1, NULL, "timed out");
    assert_string_equal (s_res.out, "");
    s_run (NULL, "watch", "nokind");
    s_expect (2, NULL, "unknown kind");
}

/* Backends of the test database other than ours. */
static int s_backends (void)
{
    PGconn *c = PQconnectdb (s_dsn);
    int n = -1;
    if (PQstatus (c) == CONNECTION_OK) {
        PGresult *r = PQexec (c, "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                                 "current_database() AND pid <> pg_backend_pid()");
        if (PQresultStatus (r) == PGRES_TUPLES_OK)
            n = (int)strtol (PQgetvalue (r, 0, 0), NULL, 10);
        PQclear (r);
    }
    PQfinish (c);
    return n;
}

static void test_wait_met_and_timeout (void **state)
{
    (void)state;
    s_run (s_sandbox ("t-wait", "w", "", ""), "apply", "-f", "-");
    s_expect (0, "created", NULL);
    char lss[PATH_MAX];
    tp_build_path (lss, sizeof lss, "bin/lss");
    char *argv[] = {lss,
                    "obj",
                    "--dsn",
                    s_dsn,
                    "wait",
                    "sb",
                    "w",
                    "-n",
                    "t-wait",
                    "--for",
                    "jsonpath=.status.phase=Running",
                    "--timeout",
                    "20",
                    NULL};
    tp_proc_t p;
    assert_int_equal (tp_spawn (&p, argv, NULL, true), 0);
    /* its store connection and its watch connection: the watch is open */
    long long deadline = tp_now_ms () + 10000;
    while (s_backends () < 2 && tp_now_ms () < deadline)
        usleep (20000); /* polling a condition with a deadline */
    assert_true (s_backends () >= 2);
    assert_int_equal (waitpid (p.pid, NULL, WNOHANG), 0); /* not met yet: still waiting */
    s_run ("apiVersion: llmsafespace.dev/v1\nkind: Sandbox\nmetadata: {name: w, namespace: "
           "t-wait}\nstatus: {phase: Running}\n",
           "apply", "--status", "-f", "-");
    s_expect (0, "status updated", NULL);
    char line[512] = "";
    assert_int_equal (tp_read_line (&p, line, sizeof line, 15000), 0);
    assert_string_equal (line, "sandbox/w condition met");
    int status = tp_wait (&p, 15000);
    assert_true (WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 0);

    /* timed out: exit 1, the last value seen in the message */
    s_run (NULL, "wait", "sb", "w", "-n", "t-wait", "--for", "jsonpath={.status.phase}=Failed",
           "--timeout", "1");
    s_expect (1, NULL, "\"Running\"");
    assert_non_null (strstr (s_res.err, "timed out"));
    /* numbers compare by their JSON text */
    s_run (NULL, "wait", "sb", "w", "-n", "t-wait", "--for", "jsonpath=.metadata.generation=1",
           "--timeout", "5");
    s_expect (0, "condition met", NULL);
    /* delete */
    s_run (NULL, "wait", "sb", "w", "-n", "t-wait", "--for", "delete", "--timeout", "1");
    s_expect (1, NULL, "still exists");
    s_run (NULL, "delete", "sb", "w", "-n", "t-wait");
    s_run (NULL, "wait", "sb", "w", "-n", "t-wait", "--for", "delete", "--timeout", "5");
    s_expect (0, "condition met", NULL);
    s_run (NULL, "wait", "sb", "w", "-n", "t-wait", "--for", "phase=Running");
    s_expect (2, NULL, "--for");
}

static void test_yaml_types (void **state)
{
    (void)state;
    const char *doc = "apiVersion: llmsafespace.dev/v1\n"
                      "kind: Sandbox\n"
                      "metadata: {name: types, namespace: t-types}\n"
                      "spec:\n"
                      "  int: 42\n"
                      "  neg: -7\n"
                      "  hex: 0x1F\n"
                      "  oct: 0o17\n"
                      "  under: 1_000\n"
                      "  float: 1.5\n"
                      "  exp: 1e3\n"
                      "  byes: yes\n"
                      "  boff: off\n" /* a plain key reads as YAML too: */
                      "  on: x\n"
                      "  t: True\n"
                      "  nul: null\n"
                      "  tilde: ~\n"
                      "  empty:\n"
                      "  qint: \"42\"\n"
                      "  qbool: 'true'\n"
                      "  tagged: !!str 12\n"
                      "  tfloat: !!float 3\n"
                      "  word: hello world\n"
                      "  version: 3.11.2\n"
                      "  time: 2024-05-01T10:00:00Z\n"
                      "  list: [1, \"1\", a, false]\n"
                      "  anchor: &x {a: 1}\n"
                      "  alias: *x\n"
                      "  7: seven\n";
    s_run (doc, "apply", "-f", "-");
    s_expect (0, "created", NULL);
    json_t *o = s_get_json ("sandbox", "t-types", "types");
    json_t *spec = json_object_get (o, "spec");
#define S_IS(key, pred) assert_true (pred (json_object_get (spec, key)))
    assert_int_equal (json_integer_value (json_object_get (spec, "int")), 42);
    assert_int_equal (json_integer_value (json_object_get (spec, "neg")), -7);
    assert_int_equal (json_integer_value (json_object_get (spec, "hex")), 31);
    assert_int_equal (json_integer_value (json_object_get (spec, "oct")), 15);
    assert_int_equal (json_integer_value (json_object_get (spec, "under")), 1000);
    S_IS ("float", json_is_real);
    assert_true (json_real_value (json_object_get (spec, "float")) == 1.5);
    /* 1e3 is a float in YAML; the PostgreSQL store (jsonb) hands it back as 1000 */
    assert_true (json_number_value (json_object_get (spec, "exp")) == 1000.0);
    S_IS ("byes", json_is_true);
    S_IS ("boff", json_is_false);
    /* as in Kubernetes, a key `on` is the boolean true, turned into text */
    assert_string_equal (json_string_value (json_object_get (spec, "true")), "x");
    S_IS ("t", json_is_true);
    S_IS ("nul", json_is_null);
    S_IS ("tilde", json_is_null);
    S_IS ("empty", json_is_null);
    assert_string_equal (json_string_value (json_object_get (spec, "qint")), "42");
    assert_string_equal (json_string_value (json_object_get (spec, "qbool")), "true");
    assert_string_equal (json_string_value (json_object_get (spec, "tagged")), "12");
    S_IS ("tfloat", json_is_real);
    assert_string_equal (json_string_value (json_object_get (spec, "word")), "hello world");
    assert_string_equal (json_string_value (json_object_get (spec, "version")), "3.11.2");
    assert_string_equal (json_string_value (json_object_get (spec, "time")),
                         "2024-05-01T10:00:00Z");
    json_t *list = json_object_get (spec, "list");
    assert_true (json_is_integer (json_array_get (list, 0)));
    assert_true (json_is_string (json_array_get (list, 1)));
    assert_true (json_is_string (json_array_get (list, 2)));
    assert_true (json_is_false (json_array_get (list, 3)));
    assert_true (
        json_equal (json_object_get (spec, "anchor"), json_object_get (spec, "alias")));
    assert_string_equal (json_string_value (json_object_get (spec, "7")), "seven");
#undef S_IS
    /* YAML output quotes strings that would read back as other types, and round-trips */
    s_run (NULL, "get", "sandbox", "types", "-n", "t-types", "-o", "yaml");
    s_expect (0, "qint: \"42\"", NULL);
    assert_non_null (strstr (s_res.out, "qbool: \"true\""));
    assert_non_null (strstr (s_res.out, "int: 42\n"));
    char yaml[S_OUT_MAX];
    snprintf (yaml, sizeof yaml, "%s", s_res.out);
    s_run (yaml, "apply", "-f", "-");
    s_expect (0, "sandbox/types unchanged", NULL);
    json_decref (o);
}

static void test_invalid_input (void **state)
{
    (void)state;
    s_run ("kind: Sandbox\nmetadata: {name: x\n", "apply", "-f", "-");
    s_expect (2, NULL, "YAML line");
    s_run ("a: 1\n  b: 2\n", "apply", "-f", "-");
    s_expect (2, NULL, "YAML line");
    s_run ("\"unterminated\n", "apply", "-f", "-");
    s_expect (2, NULL, "YAML line");
    s_run ("kind: Sandbox\nkind: Pod\n", "apply", "-f", "-");
    s_expect (2, NULL, "duplicate key 'kind'");
    s_run ("kind: Sandbox\nspec: {x: .inf}\n", "apply", "-f", "-");
    s_expect (2, NULL, "quote it");
    s_run ("- a\n- b\n", "apply", "-f", "-");
    s_expect (2, NULL, "not a mapping");
    s_run ("kind: Sandbox\napiVersion: llmsafespace.dev/v1\nspec: {}\n", "apply", "-f", "-");
    s_expect (2, NULL, "metadata.name");
    s_run ("kind: Gadget\nmetadata: {name: g}\n", "apply", "-f", "-");
    s_expect (2, NULL, "kind: unknown kind \"Gadget\"");
    s_run ("kind: Sandbox\napiVersion: llmsafespace.dev/v1\nmetadata: {name: x, namespace: "
           "t-bad, labels: {tier: 'not valid!'}}\n",
           "apply", "-f", "-");
    s_expect (2, NULL, "labels");
    s_run ("kind: Sandbox\napiVersion: llmsafespace.dev/v1\nmetadata: {name: Bad_Name, "
           "namespace: t-bad}\n",
           "apply", "-f", "-");
    s_expect (2, NULL, "metadata.name");
    s_run ("kind: Sandbox\napiVersion: llmsafespace.dev/v1\nmetadata: {name: x, namespace: "
           "t-bad}\n",
           "apply", "-n", "other", "-f", "-");
    s_expect (2, NULL, "does not match -n");
    s_run ("", "apply", "-f", "-");
    s_expect (2, NULL, "no objects");
    s_run ("{\"kind\": \"Sandbox\", \"metadata\": {\"name\": *nope}}", "apply", "-f", "-");
    s_expect (2, NULL, "alias");
    /* nesting and alias expansion bounds */
    char deep[128] = "x: ";
    memset (deep + 3, '[', 100); /* deeper than OBJ_YAML_MAX_DEPTH */
    deep[103] = '\0';
    s_run (deep, "apply", "-f", "-");
    s_expect (2, NULL, "nested too deeply");
    const char *laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                         "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                         "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                         "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                         "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                         "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                         "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n";
    s_run ("kind: Sandbox\nspec: {x: 123456789012345678901234567890}\n", "apply", "-f", "-");
    s_expect (2, NULL, "too large");
    s_run (laughs, "apply", "-f", "-");
    s_expect (2, NULL, "too many values");
    /* nothing of the above reached the store */
    s_run (NULL, "get", "sb", "-n", "t-bad", "-o", "name");
    s_expect (0, NULL, NULL);
    assert_string_equal (s_res.out, "");

    s_run (NULL, "get", "gadgets");
    s_expect (2, NULL, "unknown kind \"gadgets\"");
    s_run (NULL, "frobnicate");
    s_expect (2, NULL, "unknown verb");
    s_run (NULL, "apply", "-f", "/nonexistent/file.yaml");
    s_expect (1, NULL, "cannot open");
    const char *bad_dsn[] = {"--dsn", "host=/nonexistent port=1 connect_timeout=2", "get", "sb",
                             NULL};
    s_run_argv (NULL, false, bad_dsn);
    s_expect (1, NULL, "cannot open the object store");
}

static void test_dsn_from_environment (void **state)
{
    (void)state;
    setenv ("LSS_STORE_DSN", s_dsn, 1);
    const char *args[] = {"apply", "-f", "-", NULL};
    s_run_argv (s_sandbox ("t-env", "e", "", ""), false, args);
    unsetenv ("LSS_STORE_DSN");
    s_expect (0, "sandbox/e created", NULL);
    s_run (NULL, "get", "sb", "e", "-n", "t-env", "-o", "name");
    s_expect (0, "sandbox/e", NULL);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_apply_create_update),
        cmocka_unit_test (test_apply_status),
        cmocka_unit_test (test_get_outputs),
        cmocka_unit_test (test_label_selector),
        cmocka_unit_test (test_delete),
        cmocka_unit_test (test_watch_count),
        cmocka_unit_test (test_wait_met_and_timeout),
        cmocka_unit_test (test_yaml_types),
        cmocka_unit_test (test_invalid_input),
        cmocka_unit_test (test_dsn_from_environment),
    };
    if (getenv ("TEST_FILTER"))
        cmocka_set_test_filter (getenv ("TEST_FILTER"));
    return cmocka_run_group_tests (tests, s_group_setup, s_group_teardown);
}
