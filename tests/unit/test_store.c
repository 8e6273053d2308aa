/*  Unit tests for lss_store, the same cases against both backends: a real private
 *  PostgreSQL (group "postgres") and the fake Kubernetes API server (group "kubernetes",
 *  tests/fake_k8s/fake_k8s.py over TLS with a bearer token).
 *
 *  The PostgreSQL group setup starts a throw-away cluster with scripts/pg-tmp in a
 *  mkdtemp directory; the Kubernetes one starts the fake in another. Teardowns stop them
 *  and remove the directories. Each case works in its own namespace so cases do not see
 *  each other's objects. Where the backends legitimately differ (Kubernetes' garbage
 *  collector runs shortly after a removal, not in the same transaction; a compacted
 *  watch reports GONE from the stream rather than from watch_new; etcd compacts by
 *  itself) the case accepts what the contract in lss_store.h allows for that backend.
 *  Kubernetes-only behaviour (auth, retries, reconnects, hostile servers) is in
 *  test_store_k8s.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <libpq-fe.h>
#include <inttypes.h>
#include <pthread.h>

#include "lss_store.h"
#include "lss_testproc.h"
#include "lss_util.h"

#define S_DEADLINE_MS 5000

#include "lss_testpg.h"
#include "lss_testk8s.h"

static bool s_k8s; /* the group running: false = PostgreSQL, true = the fake Kubernetes */
static tk_fake_t s_fake;

static lss_store_t *s_open (void)
{
    char err[LSS_STORE_ERR_SIZE] = "";
    lss_store_t *store = NULL;
    if (s_k8s) {
        lss_config_t *cfg = tk_config (&s_fake, NULL, NULL);
        assert_non_null (cfg);
        store = lss_store_new_from_config (cfg, err, sizeof err);
        lss_config_destroy (&cfg);
    } else
        store = lss_store_pg_new (s_dsn, err, sizeof err);
    if (!store)
        fprintf (stderr, "open store: %s\n", err);
    assert_non_null (store);
    assert_string_equal (lss_store_backend (store), s_k8s ? "kubernetes" : "postgres");
    return store;
}

/*  Drops the events up to rv: the store's own compaction, or the fake's hook (etcd
 *  compacts by itself, so lss_store_compact does nothing on Kubernetes). */
static int s_compact (lss_store_t *st, const char *rv)
{
    char err[LSS_STORE_ERR_SIZE];
    if (!s_k8s)
        return lss_store_compact (st, rv, err, sizeof err);
    assert_int_equal (lss_store_compact (st, rv, err, sizeof err), LSS_STORE_OK);
    return tk_hook0 (&s_fake, "/_fake/compact", json_pack ("{s:s}", "rv", rv));
}

static json_t *s_obj (const char *kind, const char *ns, const char *name)
{
    const lss_store_kind_t *info = lss_store_kind_info (kind);
    json_t *o = json_pack ("{s:s, s:s, s:{s:s}, s:{s:i}}", "apiVersion",
                           info ? info->api_version : "llmsafespace.dev/v1", "kind", kind,
                           "metadata", "name", name, "spec", "n", 1);
    if (ns)
        json_object_set_new (json_object_get (o, "metadata"), "namespace", json_string (ns));
    return o;
}

static json_t *s_meta (json_t *o)
{
    return json_object_get (o, "metadata");
}

static const char *s_mstr (const json_t *o, const char *key)
{
    return json_string_value (json_object_get (json_object_get (o, "metadata"), key));
}

static json_int_t s_gen (const json_t *o)
{
    return json_integer_value (json_object_get (json_object_get (o, "metadata"), "generation"));
}

static json_t *s_create (lss_store_t *st, json_t *o)
{
    char err[LSS_STORE_ERR_SIZE] = "";
    json_t *out = NULL;
    int rc = lss_store_create (st, o, &out, err, sizeof err);
    if (rc != LSS_STORE_OK)
        fprintf (stderr, "create: %s\n", err);
    assert_int_equal (rc, LSS_STORE_OK);
    json_decref (o);
    return out;
}

static int64_t s_rv (const json_t *o)
{
    int64_t v = -1;
    assert_int_equal (lss_parse_int64 (s_mstr (o, "resourceVersion"), 0, INT64_MAX, &v), 0);
    return v;
}

static void test_create_get_list (void **state)
{
    (void)state;
    lss_store_t *st = s_open ();
    char err[LSS_STORE_ERR_SIZE];
    const char *app[] = {"a", "b", "a", "a", "b"};
    for (int i = 0; i < 5; i++) {
        char name[16];
        snprintf (name, sizeof name, "sb-%d", i);
        json_t *o = s_obj ("Sandbox", "list", name);
        json_object_set_new (s_meta (o), "labels",
                             i < 3 ? json_pack ("{s:s, s:s}", "app", app[i], "tier", "web")
                                   : json_pack ("{s:s}", "app", app[i]));
        json_object_set_new (o, "status", json_pack ("{s:s}", "phase", "Bogus"));
        json_decref (s_create (st, o));
    }
    json_t *got = NULL;
    assert_int_equal (lss_store_get (st, "Sandbox", "list", "sb-1", &got, err, sizeof err),
                      LSS_STORE_OK);
    assert_string_equal (s_mstr (got, "name"), "sb-1");
    assert_string_equal (s_mstr (got, "namespace"), "list");
    assert_int_equal (strlen (s_mstr (got, "uid")), 36);
    assert_true (s_rv (got) > 0);
    assert_int_equal (s_gen (got), 1);
    int64_t ms;
    assert_int_equal (lss_time_parse_rfc3339 (s_mstr (got, "creationTimestamp"), &ms), 0);
    assert_null (json_object_get (got, "status")); /* status only via the subresource */
    assert_int_equal (json_integer_value (json_object_get (json_object_get (got, "spec"), "n")),
                      1);
    json_decref (got);
    assert_int_equal (lss_store_get (st, "Sandbox", "list", "nope", &got, err, sizeof err),
                      LSS_STORE_NOT_FOUND);
    assert_null (got);

    struct {
        const char *sel;
        size_t count;
    } cases[] = {{"app=a", 3}, {"app==b", 2},  {"app!=a", 2},
                 {"tier", 3},  {"!tier", 2},   {"app=a,tier=web", 2},
                 {"", 5},      {"app=zzz", 0}, {"app!=zzz", 5}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *list = NULL;
        assert_int_equal (lss_store_list (st, "Sandbox", "list", cases[i].sel, 0, NULL, &list,
                                          err, sizeof err),
                          LSS_STORE_OK);
        if (json_array_size (json_object_get (list, "items")) != cases[i].count)
            fprintf (stderr, "selector %s\n", cases[i].sel);
        assert_int_equal (json_array_size (json_object_get (list, "items")), cases[i].count);
        json_decref (list);
    }

    /* paging: 2 + 2 + 1, one resourceVersion, no duplicates, in name order */
    char token[2048] = "";
    char page_rv[32] = "";
    int seen = 0;
    for (int page = 0; page < 3; page++) {
        json_t *list = NULL;
        assert_int_equal (lss_store_list (st, "Sandbox", "list", NULL, 2, page ? token : NULL,
                                          &list, err, sizeof err),
                          LSS_STORE_OK);
        json_t *items = json_object_get (list, "items");
        assert_int_equal (json_array_size (items), page < 2 ? 2 : 1);
        for (size_t i = 0; i < json_array_size (items); i++) {
            char want[16];
            snprintf (want, sizeof want, "sb-%d", seen++);
            assert_string_equal (s_mstr (json_array_get (items, i), "name"), want);
        }
        const json_t *lm = json_object_get (list, "metadata");
        const char *rv = json_string_value (json_object_get (lm, "resourceVersion"));
        assert_non_null (rv);
        if (page == 0) {
            snprintf (page_rv, sizeof page_rv, "%s", rv);
            /* a write between pages does not move the list's resourceVersion */
            json_decref (s_create (st, s_obj ("Sandbox", "other", "between")));
        } else
            assert_string_equal (rv, page_rv);
        const char *cont = json_string_value (json_object_get (lm, "continue"));
        if (page < 2) {
            assert_non_null (cont);
            snprintf (token, sizeof token, "%s", cont);
        } else
            assert_null (cont);
        json_decref (list);
    }
    assert_int_equal (seen, 5);
    json_t *list = NULL;
    assert_int_equal (
        lss_store_list (st, "Sandbox", "list", NULL, 2, "zz", &list, err, sizeof err),
        LSS_STORE_INVALID);
    assert_int_equal (
        lss_store_list (st, "Sandbox", "list", NULL, 1001, NULL, &list, err, sizeof err),
        LSS_STORE_INVALID);
    /* all namespaces */
    assert_int_equal (
        lss_store_list (st, "Sandbox", NULL, NULL, 0, NULL, &list, err, sizeof err),
        LSS_STORE_OK);
    assert_true (json_array_size (json_object_get (list, "items")) >= 6);
    json_decref (list);

    /* cluster-scoped kind */
    json_t *re = s_create (st, s_obj ("RuntimeEnvironment", NULL, "python-3.12"));
    assert_null (s_mstr (re, "namespace"));
    json_decref (re);
    assert_int_equal (
        lss_store_get (st, "RuntimeEnvironment", "", "python-3.12", &got, err, sizeof err),
        LSS_STORE_OK);
    json_decref (got);
    lss_store_destroy (&st);
    assert_null (st);
}

static void test_generate_name_and_conflict (void **state)
{
    (void)state;
    lss_store_t *st = s_open ();
    char err[LSS_STORE_ERR_SIZE];
    json_t *in = s_obj ("Sandbox", "gen", "x");
    json_object_del (s_meta (in), "name");
    json_object_set_new (s_meta (in), "generateName", json_string ("sb-"));
    json_t *a = NULL, *b = NULL;
    assert_int_equal (lss_store_create (st, in, &a, err, sizeof err), LSS_STORE_OK);
    assert_int_equal (lss_store_create (st, in, &b, err, sizeof err), LSS_STORE_OK);
    assert_int_equal (strlen (s_mstr (a, "name")), 8);
    assert_memory_equal (s_mstr (a, "name"), "sb-", 3);
    for (const char *p = s_mstr (a, "name") + 3; *p; p++)
        assert_true ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9'));
    assert_string_not_equal (s_mstr (a, "name"), s_mstr (b, "name"));
    assert_string_not_equal (s_mstr (a, "uid"), s_mstr (b, "uid"));
    json_decref (a);
    json_decref (b);
    json_decref (in);

    json_decref (s_create (st, s_obj ("Sandbox", "gen", "fixed")));
    json_t *dup = s_obj ("Sandbox", "gen", "fixed");
    json_t *out = NULL;
    assert_int_equal (lss_store_create (st, dup, &out, err, sizeof err), LSS_STORE_CONFLICT);
    assert_null (out);
    assert_non_null (strstr (err, "already exists"));
    /* same name, other namespace or other kind: fine */
    json_object_set_new (s_meta (dup), "namespace", json_string ("gen2"));
    assert_int_equal (lss_store_create (st, dup, NULL, err, sizeof err), LSS_STORE_OK);
    json_object_set_new (dup, "kind", json_string ("WarmPool"));
    assert_int_equal (lss_store_create (st, dup, NULL, err, sizeof err), LSS_STORE_OK);
    json_decref (dup);
    lss_store_destroy (&st);
}

static void test_update_conflict_and_generation (void **state)
{
    (void)state;
    lss_store_t *st = s_open ();
    char err[LSS_STORE_ERR_SIZE];
    json_t *v1 = s_create (st, s_obj ("Sandbox", "upd", "sb"));
    json_t *v2 = NULL, *v3 = NULL, *out = NULL;

    /* metadata-only change: new rv, same generation */
    json_t *in = json_deep_copy (v1);
    json_object_set_new (s_meta (in), "labels", json_pack ("{s:s}", "x", "y"));
    assert_int_equal (lss_store_update (st, in, &v2, err, sizeof err), LSS_STORE_OK);
    assert_true (s_rv (v2) > s_rv (v1));
    assert_int_equal (s_gen (v2), 1);
    assert_string_equal (s_mstr (v2, "uid"), s_mstr (v1, "uid"));
    assert_string_equal (s_mstr (v2, "creationTimestamp"), s_mstr (v1, "creationTimestamp"));

    /* stale resourceVersion: conflict, nothing written */
    json_object_set_new (in, "spec", json_pack ("{s:i}", "n", 2));
    assert_int_equal (lss_store_update (st, in, &out, err, sizeof err), LSS_STORE_CONFLICT);
    assert_null (out);
    json_decref (in);

    /* spec change: generation 2 */
    in = json_deep_copy (v2);
    json_object_set_new (in, "spec", json_pack ("{s:i}", "n", 2));
    assert_int_equal (lss_store_update (st, in, &v3, err, sizeof err), LSS_STORE_OK);
    assert_int_equal (s_gen (v3), 2);
    json_decref (in);

    /* an identical spec (keys reordered) does not bump it */
    in = json_deep_copy (v3);
    json_object_set_new (in, "spec", json_pack ("{s:i}", "n", 2));
    json_object_set_new (s_meta (in), "annotations", json_pack ("{s:s}", "a.io/b", "c"));
    assert_int_equal (lss_store_update (st, in, &out, err, sizeof err), LSS_STORE_OK);
    assert_int_equal (s_gen (out), 2);
    assert_true (s_rv (out) > s_rv (v3));
    json_decref (out);
    json_decref (in);

    /* missing resourceVersion: invalid; wrong uid: conflict; unknown object: not found */
    in = s_obj ("Sandbox", "upd", "sb");
    assert_int_equal (lss_store_update (st, in, NULL, err, sizeof err), LSS_STORE_INVALID);
    assert_non_null (strstr (err, "metadata.resourceVersion"));
    json_object_set_new (s_meta (in), "resourceVersion", json_string ("1"));
    json_object_set_new (s_meta (in), "name", json_string ("missing"));
    assert_int_equal (lss_store_update (st, in, NULL, err, sizeof err), LSS_STORE_NOT_FOUND);
    json_decref (in);
    json_t *cur = NULL;
    assert_int_equal (lss_store_get (st, "Sandbox", "upd", "sb", &cur, err, sizeof err), 0);
    json_object_set_new (s_meta (cur), "uid", json_string ("not-the-uid"));
    assert_int_equal (lss_store_update (st, cur, NULL, err, sizeof err), LSS_STORE_CONFLICT);
    json_decref (cur);
    json_decref (v1);
    json_decref (v2);
    json_decref (v3);
    lss_store_destroy (&st);
}

static void test_status_subresource (void **state)
{
    (void)state;
    lss_store_t *st = s_open ();
    char err[LSS_STORE_ERR_SIZE];
    json_t *v1 = s_create (st, s_obj ("Sandbox", "status", "sb"));

    /* update_status: status written, spec ignored, generation unchanged */
    json_t *in = json_deep_copy (v1);
    json_object_set_new (in, "status", json_pack ("{s:s}", "phase", "Running"));
    json_object_set_new (in, "spec", json_pack ("{s:i}", "n", 99));
    json_object_set_new (s_meta (in), "labels", json_pack ("{s:s}", "x", "y"));
    json_t *v2 = NULL;
    assert_int_equal (lss_store_update_status (st, in, &v2, err, sizeof err), LSS_STORE_OK);
    json_decref (in);
    assert_string_equal (
        json_string_value (json_object_get (json_object_get (v2, "status"), "phase")),
        "Running");
    assert_int_equal (json_integer_value (json_object_get (json_object_get (v2, "spec"), "n")),
                      1);
    assert_null (json_object_get (s_meta (v2), "labels"));
    assert_int_equal (s_gen (v2), 1);
    assert_true (s_rv (v2) > s_rv (v1));

    /* status with a stale rv: conflict */
    in = json_deep_copy (v1);
    json_object_set_new (in, "status", json_pack ("{s:s}", "phase", "Failed"));
    assert_int_equal (lss_store_update_status (st, in, NULL, err, sizeof err),
                      LSS_STORE_CONFLICT);
    json_decref (in);

    /* update: status in the input is ignored, spec taken */
    in = json_deep_copy (v2);
    json_object_set_new (in, "status", json_pack ("{s:s}", "phase", "Failed"));
    json_object_set_new (in, "spec", json_pack ("{s:i}", "n", 3));
    json_t *v3 = NULL;
    assert_int_equal (lss_store_update (st, in, &v3, err, sizeof err), LSS_STORE_OK);
    json_decref (in);
    assert_string_equal (
        json_string_value (json_object_get (json_object_get (v3, "status"), "phase")),
        "Running");
    assert_int_equal (json_integer_value (json_object_get (json_object_get (v3, "spec"), "n")),
                      3);
    assert_int_equal (s_gen (v3), 2);
    json_t *got = NULL;
    assert_int_equal (lss_store_get (st, "Sandbox", "status", "sb", &got, err, sizeof err), 0);
    assert_true (json_equal (got, v3));
    json_decref (got);
    json_decref (v1);
    json_decref (v2);
    json_decref (v3);
    lss_store_destroy (&st);
}

static void test_delete_and_finalizers (void **state)
{
    (void)state;
    lss_store_t *st = s_open ();
    char err[LSS_STORE_ERR_SIZE];
    json_t *got = NULL;

    /* no finalizers: removed at once; precondition checked */
    json_t *plain = s_create (st, s_obj ("Sandbox", "del", "plain"));
    assert_int_equal (lss_store_delete (st, "Sandbox", "del", "plain", "1", err, sizeof err),
                      LSS_STORE_CONFLICT);
    assert_int_equal (lss_store_delete (st, "Sandbox", "del", "plain",
                                        s_mstr (plain, "resourceVersion"), err, sizeof err),
                      LSS_STORE_OK);
    assert_int_equal (lss_store_get (st, "Sandbox", "del", "plain", &got, err, sizeof err),
                      LSS_STORE_NOT_FOUND);
    assert_int_equal (lss_store_delete (st, "Sandbox", "del", "plain", NULL, err, sizeof err),
                      LSS_STORE_NOT_FOUND);
    json_decref (plain);

    /* finalizers: deletionTimestamp, then removal with the last finalizer */
    json_t *in = s_obj ("Sandbox", "del", "fin");
    json_object_set_new (s_meta (in), "finalizers",
                         json_pack ("[s, s]", "llmsafespace.dev/pod", "example.com/b"));
    json_t *v1 = s_create (st, in);
    assert_int_equal (lss_store_delete (st, "Sandbox", "del", "fin", NULL, err, sizeof err),
                      LSS_STORE_OK);
    json_t *v2 = NULL;
    assert_int_equal (lss_store_get (st, "Sandbox", "del", "fin", &v2, err, sizeof err), 0);
    assert_non_null (s_mstr (v2, "deletionTimestamp"));
    assert_true (s_rv (v2) > s_rv (v1));
    /* a second delete changes nothing */
    assert_int_equal (lss_store_delete (st, "Sandbox", "del", "fin", NULL, err, sizeof err),
                      LSS_STORE_OK);
    assert_int_equal (lss_store_get (st, "Sandbox", "del", "fin", &got, err, sizeof err), 0);
    assert_int_equal (s_rv (got), s_rv (v2));
    assert_string_equal (s_mstr (got, "deletionTimestamp"), s_mstr (v2, "deletionTimestamp"));
    json_decref (got);

    /* no new finalizers while deleting; deletionTimestamp cannot be cleared */
    in = json_deep_copy (v2);
    json_array_append_new (json_object_get (s_meta (in), "finalizers"),
                           json_string ("example.com/new"));
    assert_int_equal (lss_store_update (st, in, NULL, err, sizeof err), LSS_STORE_INVALID);
    assert_non_null (strstr (err, "metadata.finalizers"));
    json_decref (in);
    in = json_deep_copy (v2);
    json_array_remove (json_object_get (s_meta (in), "finalizers"), 0);
    json_object_del (s_meta (in), "deletionTimestamp");
    json_t *v3 = NULL;
    assert_int_equal (lss_store_update (st, in, &v3, err, sizeof err), LSS_STORE_OK);
    json_decref (in);
    assert_non_null (s_mstr (v3, "deletionTimestamp"));
    assert_int_equal (json_array_size (json_object_get (s_meta (v3), "finalizers")), 1);

    /* last finalizer removed: the object goes away */
    in = json_deep_copy (v3);
    json_object_set_new (s_meta (in), "finalizers", json_array ());
    json_t *out = (json_t *)1;
    assert_int_equal (lss_store_update (st, in, &out, err, sizeof err), LSS_STORE_OK);
    assert_null (out);
    json_decref (in);
    assert_int_equal (lss_store_get (st, "Sandbox", "del", "fin", &got, err, sizeof err),
                      LSS_STORE_NOT_FOUND);
    json_decref (v1);
    json_decref (v2);
    json_decref (v3);
    lss_store_destroy (&st);
}

static json_t *s_owned (const char *kind, const char *name, const json_t *owner)
{
    json_t *o = s_obj (kind, "gc", name);
    json_object_set_new (
        s_meta (o), "ownerReferences",
        json_pack ("[{s:s, s:s, s:s, s:s, s:b}]", "apiVersion", "llmsafespace.dev/v1", "kind",
                   json_string_value (json_object_get (owner, "kind")), "name",
                   s_mstr (owner, "name"), "uid", s_mstr (owner, "uid"), "controller", 1));
    return o;
}

static void test_patch (void **state)
{
    (void)state;
    lss_store_t *st = s_open ();
    char err[LSS_STORE_ERR_SIZE];
    json_t *in = s_obj ("Sandbox", "patch", "sb");
    json_object_set_new (s_meta (in), "labels", json_pack ("{s:s, s:s}", "a", "1", "b", "2"));
    json_object_set_new (s_meta (in), "finalizers", json_pack ("[s]", "example.com/f"));
    json_t *v1 = s_create (st, in);

    /* labels merged key by key (null drops one), spec merged, status ignored */
    json_t *p = json_pack ("{s:{s:{s:n, s:s}}, s:{s:i}, s:{s:s}}", "metadata", "labels", "a",
                           "c", "3", "spec", "m", 2, "status", "phase", "Hacked");
    json_t *v2 = NULL;
    assert_int_equal (lss_store_patch (st, "Sandbox", "patch", "sb", p, &v2, err, sizeof err),
                      LSS_STORE_OK);
    json_decref (p);
    json_t *labels = json_object_get (s_meta (v2), "labels");
    assert_null (json_object_get (labels, "a"));
    assert_string_equal (json_string_value (json_object_get (labels, "b")), "2");
    assert_string_equal (json_string_value (json_object_get (labels, "c")), "3");
    assert_int_equal (json_integer_value (json_object_get (json_object_get (v2, "spec"), "n")),
                      1);
    assert_int_equal (json_integer_value (json_object_get (json_object_get (v2, "spec"), "m")),
                      2);
    assert_null (json_object_get (v2, "status"));
    assert_int_equal (s_gen (v2), 2);
    assert_true (s_rv (v2) > s_rv (v1));

    /* with a resourceVersion it is a precondition */
    p = json_pack ("{s:{s:s, s:{s:s}}}", "metadata", "resourceVersion",
                   s_mstr (v1, "resourceVersion"), "labels", "d", "4");
    json_t *out = NULL;
    assert_int_equal (lss_store_patch (st, "Sandbox", "patch", "sb", p, &out, err, sizeof err),
                      LSS_STORE_CONFLICT);
    assert_null (out);
    json_decref (p);
    /* a patch that breaks validation is refused */
    p = json_pack ("{s:{s:{s:s}}}", "metadata", "labels", "bad key", "x");
    assert_int_equal (lss_store_patch (st, "Sandbox", "patch", "sb", p, NULL, err, sizeof err),
                      LSS_STORE_INVALID);
    json_decref (p);
    p = json_object ();
    assert_int_equal (
        lss_store_patch (st, "Sandbox", "patch", "nope", p, NULL, err, sizeof err),
        LSS_STORE_NOT_FOUND);
    json_decref (p);

    /* the finalizer dropped by a patch while deleting: the object goes away */
    assert_int_equal (lss_store_delete (st, "Sandbox", "patch", "sb", NULL, err, sizeof err),
                      LSS_STORE_OK);
    p = json_pack ("{s:{s:n}}", "metadata", "finalizers");
    out = (json_t *)1;
    assert_int_equal (lss_store_patch (st, "Sandbox", "patch", "sb", p, &out, err, sizeof err),
                      LSS_STORE_OK);
    assert_null (out);
    json_decref (p);
    json_t *got = NULL;
    assert_int_equal (lss_store_get (st, "Sandbox", "patch", "sb", &got, err, sizeof err),
                      LSS_STORE_NOT_FOUND);
    json_decref (v1);
    json_decref (v2);
    lss_store_destroy (&st);
}

typedef enum { S_GONE, S_DELETING } s_settle_t;

/*  Whether gc/name of kind is gone (or marked for deletion) now (PostgreSQL), or becomes
 *  so within the deadline (Kubernetes). */
static bool s_settled (lss_store_t *st, const char *kind, const char *name, s_settle_t want)
{
    long long deadline = tp_now_ms () + (s_k8s ? S_DEADLINE_MS : 0);
    for (;;) {
        char err[LSS_STORE_ERR_SIZE];
        json_t *got = NULL;
        int rc = lss_store_get (st, kind, "gc", name, &got, err, sizeof err);
        bool ok = want == S_GONE ? rc == LSS_STORE_NOT_FOUND
                                 : rc == LSS_STORE_OK && s_mstr (got, "deletionTimestamp");
        json_decref (got);
        if (ok || tp_now_ms () >= deadline)
            return ok;
        poll (NULL, 0, 20); /* re-read interval of a condition with a deadline */
    }
}

static void test_owner_cascade (void **state)
{
    (void)state;
    lss_store_t *st = s_open ();
    char err[LSS_STORE_ERR_SIZE];
    json_t *pool = s_create (st, s_obj ("WarmPool", "gc", "pool"));
    json_t *c1 = s_create (st, s_owned ("WarmPod", "c1", pool));
    json_t *c2in = s_owned ("WarmPod", "c2", pool);
    json_object_set_new (s_meta (c2in), "finalizers", json_pack ("[s]", "example.com/f"));
    json_t *c2 = s_create (st, c2in);
    json_t *g1 = s_create (st, s_owned ("Pod", "g1", c1));
    json_t *other = s_create (st, s_obj ("Pod", "gc", "unrelated"));

    assert_int_equal (lss_store_delete (st, "WarmPool", "gc", "pool", NULL, err, sizeof err),
                      LSS_STORE_OK);
    json_t *got = NULL;
    assert_int_equal (lss_store_get (st, "WarmPool", "gc", "pool", &got, err, sizeof err),
                      LSS_STORE_NOT_FOUND);
    /* PostgreSQL cascades in the deleting transaction; Kubernetes' garbage collector
     * shortly after (s_settled waits for it, with a deadline) */
    assert_true (s_settled (st, "WarmPod", "c1", S_GONE));
    assert_true (s_settled (st, "Pod", "g1", S_GONE));
    assert_true (s_settled (st, "WarmPod", "c2", S_DELETING));
    assert_int_equal (lss_store_get (st, "Pod", "gc", "unrelated", &got, err, sizeof err), 0);
    assert_null (s_mstr (got, "deletionTimestamp"));
    json_decref (got);
    json_decref (pool);
    json_decref (c1);
    json_decref (c2);
    json_decref (g1);
    json_decref (other);
    lss_store_destroy (&st);
}

/*  Waits for the next event with a deadline. */
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

static void s_expect (lss_store_watch_t *w, lss_store_event_type_t type, const char *name,
                      int64_t *rv)
{
    lss_store_event_t ev = {0};
    assert_int_equal (s_next (w, &ev, S_DEADLINE_MS), 1);
    if (strcmp (s_mstr (ev.object, "name"), name) != 0 || ev.type != type)
        fprintf (stderr, "got %s %s\n", lss_store_event_type_name (ev.type),
                 s_mstr (ev.object, "name"));
    assert_int_equal (ev.type, type);
    assert_string_equal (s_mstr (ev.object, "name"), name);
    int64_t r = s_rv (ev.object);
    assert_true (r > *rv);
    *rv = r;
    json_decref (ev.object);
}

static void test_watch_order_and_resume (void **state)
{
    (void)state;
    lss_store_t *st = s_open ();
    char err[LSS_STORE_ERR_SIZE], start[32];
    int code = 0;
    assert_int_equal (lss_store_current_rv (st, start, sizeof start, err, sizeof err), 0);

    /* events made while no watch exists */
    json_t *a = s_create (st, s_obj ("Sandbox", "watch", "a"));
    json_decref (s_create (st, s_obj ("Sandbox", "elsewhere", "noise")));
    json_decref (s_create (st, s_obj ("WarmPool", "watch", "noise")));
    json_object_set_new (a, "spec", json_pack ("{s:i}", "n", 5));
    assert_int_equal (lss_store_update (st, a, NULL, err, sizeof err), 0);
    json_decref (s_create (st, s_obj ("Sandbox", "watch", "b")));
    assert_int_equal (lss_store_delete (st, "Sandbox", "watch", "a", NULL, err, sizeof err), 0);

    lss_store_watch_t *w =
        lss_store_watch_new (st, "Sandbox", "watch", start, &code, err, sizeof err);
    assert_non_null (w);
    assert_true (lss_store_watch_fd (w) >= 0);
    int64_t rv = 0;
    s_expect (w, LSS_STORE_ADDED, "a", &rv);
    s_expect (w, LSS_STORE_MODIFIED, "a", &rv);
    char mid[32];
    snprintf (mid, sizeof mid, "%" PRId64, rv);
    s_expect (w, LSS_STORE_ADDED, "b", &rv);
    s_expect (w, LSS_STORE_DELETED, "a", &rv);
    lss_store_event_t ev = {0};
    assert_int_equal (lss_store_watch_next (w, &ev), 0);
    assert_null (ev.object);

    /* live events arrive through the descriptor */
    json_decref (s_create (st, s_obj ("Sandbox", "watch", "c")));
    s_expect (w, LSS_STORE_ADDED, "c", &rv);
    char last[32];
    snprintf (last, sizeof last, "%s", lss_store_watch_rv (w));
    lss_store_watch_destroy (&w);
    assert_null (w);

    /* resume from the middle: only what came after, no duplicates */
    w = lss_store_watch_new (st, "Sandbox", "watch", mid, &code, err, sizeof err);
    assert_non_null (w);
    rv = 0;
    s_expect (w, LSS_STORE_ADDED, "b", &rv);
    s_expect (w, LSS_STORE_DELETED, "a", &rv);
    s_expect (w, LSS_STORE_ADDED, "c", &rv);
    assert_int_equal (s_next (w, &ev, 300), 0);
    lss_store_watch_destroy (&w);

    /* from "" means from now: no replay */
    w = lss_store_watch_new (st, "Sandbox", NULL, "", &code, err, sizeof err);
    assert_non_null (w);
    assert_int_equal (s_next (w, &ev, 300), 0);
    json_decref (s_create (st, s_obj ("Sandbox", "watch2", "d")));
    rv = 0;
    s_expect (w, LSS_STORE_ADDED, "d", &rv);
    lss_store_watch_destroy (&w);

    /* many events, more than one fetch batch, all in order */
    w = lss_store_watch_new (st, "Sandbox", "bulk", last, &code, err, sizeof err);
    assert_non_null (w);
    for (int i = 0; i < 250; i++) {
        char name[16];
        snprintf (name, sizeof name, "o-%03d", i);
        json_decref (s_create (st, s_obj ("Sandbox", "bulk", name)));
    }
    rv = 0;
    for (int i = 0; i < 250; i++) {
        char name[16];
        snprintf (name, sizeof name, "o-%03d", i);
        s_expect (w, LSS_STORE_ADDED, name, &rv);
    }
    assert_int_equal (s_next (w, &ev, 200), 0);
    lss_store_watch_destroy (&w);
    json_decref (a);
    lss_store_destroy (&st);
}

static void test_watch_gone (void **state)
{
    (void)state;
    lss_store_t *st = s_open ();
    char err[LSS_STORE_ERR_SIZE], before[32], now[32];
    int code = 0;
    assert_int_equal (lss_store_current_rv (st, before, sizeof before, err, sizeof err), 0);
    lss_store_watch_t *lagging =
        lss_store_watch_new (st, "Sandbox", "gone", before, &code, err, sizeof err);
    assert_non_null (lagging);
    json_decref (s_create (st, s_obj ("Sandbox", "gone", "a")));
    json_decref (s_create (st, s_obj ("Sandbox", "gone", "b")));
    json_t *list = NULL;
    assert_int_equal (
        lss_store_list (st, "Sandbox", "gone", NULL, 1, NULL, &list, err, sizeof err), 0);
    const char *token =
        json_string_value (json_object_get (json_object_get (list, "metadata"), "continue"));
    assert_non_null (token);
    json_decref (s_create (st, s_obj ("Sandbox", "gone", "c")));
    assert_int_equal (lss_store_current_rv (st, now, sizeof now, err, sizeof err), 0);
    if (!s_k8s) /* Kubernetes has no compaction call to refuse it */
        assert_int_equal (lss_store_compact (st, "999999999", err, sizeof err),
                          LSS_STORE_INVALID);
    assert_int_equal (s_compact (st, now), LSS_STORE_OK);
    json_decref (s_create (st, s_obj ("Sandbox", "gone", "d")));

    /* from below the compaction point: gone (Kubernetes: as the stream's first event);
     * from it: the later events */
    int64_t n;
    assert_int_equal (lss_parse_int64 (now, 0, INT64_MAX, &n), 0);
    char below[32];
    snprintf (below, sizeof below, "%" PRId64, n - 1);
    lss_store_event_t ev = {0};
    lss_store_watch_t *w =
        lss_store_watch_new (st, "Sandbox", "gone", below, &code, err, sizeof err);
    if (w) {
        assert_true (s_k8s);
        assert_int_equal (s_next (w, &ev, S_DEADLINE_MS), LSS_STORE_GONE);
        assert_null (ev.object);
        assert_int_equal (lss_store_watch_next (w, &ev), LSS_STORE_GONE); /* sticky */
        lss_store_watch_destroy (&w);
    } else
        assert_int_equal (code, LSS_STORE_GONE);
    w = lss_store_watch_new (st, "Sandbox", "gone", now, &code, err, sizeof err);
    assert_non_null (w);
    assert_int_equal (code, LSS_STORE_OK);
    int64_t rv = 0;
    s_expect (w, LSS_STORE_ADDED, "d", &rv);
    lss_store_watch_destroy (&w);

    if (!s_k8s) {
        /* a watch that had not read its events yet: gone, and it stays gone */
        assert_int_equal (lss_store_watch_next (lagging, &ev), LSS_STORE_GONE);
        assert_int_equal (lss_store_watch_next (lagging, &ev), LSS_STORE_GONE);
        assert_null (ev.object);
    } else {
        /* an open Kubernetes watch was sent its events as they happened: it delivers
         * them in order, unless the compaction overtook the server's stream first, in
         * which case it ends in GONE (never a gap) */
        const char *names[] = {"a", "b", "c", "d"};
        rv = 0;
        for (size_t i = 0; i < 4; i++) {
            int got = s_next (lagging, &ev, S_DEADLINE_MS);
            if (got == LSS_STORE_GONE)
                break;
            assert_int_equal (got, 1);
            assert_int_equal (ev.type, LSS_STORE_ADDED);
            assert_string_equal (s_mstr (ev.object, "name"), names[i]);
            assert_true (s_rv (ev.object) > rv);
            rv = s_rv (ev.object);
            json_decref (ev.object);
        }
    }
    lss_store_watch_destroy (&lagging);

    /* a continue token from before the compaction: gone */
    json_t *page = NULL;
    assert_int_equal (
        lss_store_list (st, "Sandbox", "gone", NULL, 1, token, &page, err, sizeof err),
        LSS_STORE_GONE);
    assert_null (page);
    json_decref (list);
    lss_store_destroy (&st);
}

static void test_invalid (void **state)
{
    (void)state;
    lss_store_t *st = s_open ();
    char err[LSS_STORE_ERR_SIZE];
    struct {
        const char *kind, *ns, *name, *field;
    } names[] = {
        {"Sandbox", "inv", "Bad_Name", "metadata.name"},
        {"Sandbox", "inv", "-x", "metadata.name"},
        {"Sandbox", "inv", "a..b", "metadata.name"},
        {"Sandbox", "Bad", "ok", "metadata.namespace"},
        {"Sandbox", NULL, "ok", "metadata.namespace"},
        {"RuntimeEnvironment", "inv", "ok", "metadata.namespace"},
        {"Gadget", "inv", "ok", "kind"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        json_t *o = s_obj (names[i].kind, names[i].ns, names[i].name);
        err[0] = '\0';
        assert_int_equal (lss_store_create (st, o, NULL, err, sizeof err), LSS_STORE_INVALID);
        if (!strstr (err, names[i].field))
            fprintf (stderr, "case %zu: %s\n", i, err);
        assert_non_null (strstr (err, names[i].field));
        json_decref (o);
    }
    char longname[300];
    memset (longname, 'a', 254);
    longname[254] = '\0';
    json_t *o = s_obj ("Sandbox", "inv", longname);
    assert_int_equal (lss_store_create (st, o, NULL, err, sizeof err), LSS_STORE_INVALID);
    json_decref (o);
    longname[253] = '\0';
    memcpy (longname + 60, ".", 1); /* labels of at most 63 */
    memcpy (longname + 120, ".", 1);
    memcpy (longname + 180, ".", 1);
    memcpy (longname + 240, ".", 1);
    o = s_obj ("Sandbox", "inv", longname);
    assert_int_equal (lss_store_create (st, o, NULL, err, sizeof err), LSS_STORE_OK);
    json_decref (o);

    struct {
        const char *key, *value;
    } labels[] = {{"bad key", "v"},    {"a/b/c", "v"}, {"-a", "v"}, {"Example.COM/a", "v"},
                  {"ok", "bad value"}, {"ok", "-v"},   {"", "v"}};
    for (size_t i = 0; i < sizeof labels / sizeof labels[0]; i++) {
        o = s_obj ("Sandbox", "inv", "labelled");
        json_object_set_new (s_meta (o), "labels",
                             json_pack ("{s:s}", labels[i].key, labels[i].value));
        assert_int_equal (lss_store_create (st, o, NULL, err, sizeof err), LSS_STORE_INVALID);
        assert_non_null (strstr (err, "metadata.labels"));
        json_decref (o);
    }
    char value[70];
    memset (value, 'v', 64);
    value[64] = '\0';
    o = s_obj ("Sandbox", "inv", "labelled");
    json_object_set_new (s_meta (o), "labels", json_pack ("{s:s}", "k", value));
    assert_int_equal (lss_store_create (st, o, NULL, err, sizeof err), LSS_STORE_INVALID);
    value[63] = '\0';
    json_object_set_new (s_meta (o), "labels",
                         json_pack ("{s:s, s:s}", "k", value, "example.com/x_y.z", ""));
    assert_int_equal (lss_store_create (st, o, NULL, err, sizeof err), LSS_STORE_OK);
    json_decref (o);

    /* bad selector terms and too many of them */
    json_t *list = NULL;
    assert_int_equal (
        lss_store_list (st, "Sandbox", "inv", "bad key=x", 0, NULL, &list, err, sizeof err),
        LSS_STORE_INVALID);
    char sel[512] = "";
    for (int i = 0; i < 21; i++)
        snprintf (sel + strlen (sel), sizeof sel - strlen (sel), "%sk%d", i ? "," : "", i);
    assert_int_equal (
        lss_store_list (st, "Sandbox", "inv", sel, 0, NULL, &list, err, sizeof err),
        LSS_STORE_INVALID);
    assert_null (list);

    /* larger than 1 MiB */
    char *big = malloc (LSS_STORE_OBJECT_MAX_BYTES + 1);
    assert_non_null (big);
    memset (big, 'x', LSS_STORE_OBJECT_MAX_BYTES);
    big[LSS_STORE_OBJECT_MAX_BYTES] = '\0';
    o = s_obj ("Sandbox", "inv", "big");
    json_object_set_new (o, "spec", json_pack ("{s:s}", "blob", big));
    free (big);
    assert_int_equal (lss_store_create (st, o, NULL, err, sizeof err), LSS_STORE_INVALID);
    json_decref (o);
    json_t *got = NULL;
    assert_int_equal (lss_store_get (st, "Sandbox", "inv", "big", &got, err, sizeof err),
                      LSS_STORE_NOT_FOUND);

    /* a Secret's data: Kubernetes keeps it; PostgreSQL refuses it by name, never drops it */
    o = s_obj ("Secret", "inv", "key");
    json_object_set_new (o, "data", json_pack ("{s:s}", "secret", "eA=="));
    int rc = lss_store_create (st, o, NULL, err, sizeof err);
    json_decref (o);
    if (s_k8s) {
        assert_int_equal (rc, 0);
        assert_int_equal (lss_store_get (st, "Secret", "inv", "key", &got, err, sizeof err), 0);
        assert_string_equal (
            json_string_value (json_object_get (json_object_get (got, "data"), "secret")),
            "eA==");
        json_decref (got);
    } else {
        assert_int_equal (rc, LSS_STORE_INVALID);
        assert_non_null (strstr (err, "data"));
    }
    lss_store_destroy (&st);
}

static void test_migrations_idempotent (void **state)
{
    (void)state;
    if (s_k8s)
        skip (); /* PostgreSQL's schema */
    lss_store_t *a = s_open ();
    char err[LSS_STORE_ERR_SIZE];
    json_decref (s_create (a, s_obj ("Sandbox", "mig", "keep")));
    lss_store_t *b = s_open (); /* migrations already applied: a no-op */
    json_t *got = NULL;
    assert_int_equal (lss_store_get (b, "Sandbox", "mig", "keep", &got, err, sizeof err), 0);
    json_decref (got);
    PGconn *conn = PQconnectdb (s_dsn);
    assert_int_equal (PQstatus (conn), CONNECTION_OK);
    PGresult *res = PQexec (conn, "SELECT count(*), max(version) FROM store_schema_migrations");
    assert_int_equal (PQresultStatus (res), PGRES_TUPLES_OK);
    assert_string_equal (PQgetvalue (res, 0, 0), PQgetvalue (res, 0, 1));
    PQclear (res);
    PQfinish (conn);
    lss_store_destroy (&a);
    lss_store_destroy (&b);
    assert_null (lss_store_pg_new ("host=/nonexistent port=1 dbname=x", err, sizeof err));
    assert_non_null (strstr (err, "connect"));
}

/*  Items of one list call (asserting it succeeded), or -1 on UNAVAILABLE when
 *  allow_unavailable (a connection the server has just closed). */
static int s_list_n (lss_store_t *st, const char *ns, const char *sel, int limit,
                     const char *token, char *next, size_t next_size, bool allow_unavailable)
{
    char err[LSS_STORE_ERR_SIZE] = "";
    json_t *page = NULL;
    int rc = lss_store_list (st, "Sandbox", ns, sel, limit, token, &page, err, sizeof err);
    if (rc == LSS_STORE_UNAVAILABLE && allow_unavailable)
        return -1;
    if (rc != LSS_STORE_OK)
        fprintf (stderr, "list: %d %s\n", rc, err);
    assert_int_equal (rc, LSS_STORE_OK);
    int n = (int)json_array_size (json_object_get (page, "items"));
    const char *c =
        json_string_value (json_object_get (json_object_get (page, "metadata"), "continue"));
    if (next)
        snprintf (next, next_size, "%s", c ? c : "");
    json_decref (page);
    return n;
}

/*  A list statement is prepared once per connection and shape: the same shape with other
 *  values reuses it, the table is bounded (then lists run unnamed), and a new connection
 *  starts with none. */
static void test_list_statements_prepared (void **state)
{
    (void)state;
    if (s_k8s)
        skip (); /* PostgreSQL's statements */
    lss_store_t *st = s_open ();
    const char *app[] = {"x", "x", "y"};
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf (name, sizeof name, "sb-%d", i);
        json_t *o = s_obj ("Sandbox", "prep", name);
        json_object_set_new (s_meta (o), "labels", json_pack ("{s:s}", "app", app[i]));
        json_decref (s_create (st, o));
    }
    assert_int_equal (lss_store_pg_list_prepared (st), 0);
    assert_int_equal (s_list_n (st, "prep", "app=x", 0, NULL, NULL, 0, false), 2);
    assert_int_equal (lss_store_pg_list_prepared (st), 1);
    /* same shape, other value: the same statement, the other value's answer */
    assert_int_equal (s_list_n (st, "prep", "app=y", 0, NULL, NULL, 0, false), 1);
    assert_int_equal (s_list_n (st, "prep", "app=z", 0, NULL, NULL, 0, false), 0);
    assert_int_equal (lss_store_pg_list_prepared (st), 1);
    assert_int_equal (s_list_n (st, "prep", NULL, 0, NULL, NULL, 0, false), 3);
    assert_int_equal (lss_store_pg_list_prepared (st), 2);
    /* paging: the first page and the continued ones (a shape of its own) */
    char token[1024] = "";
    int seen = s_list_n (st, "prep", NULL, 1, NULL, token, sizeof token, false);
    while (token[0]) {
        char cur[1024];
        snprintf (cur, sizeof cur, "%s", token);
        seen += s_list_n (st, "prep", NULL, 1, cur, token, sizeof token, false);
    }
    assert_int_equal (seen, 3);
    assert_int_equal (lss_store_pg_list_prepared (st), 3);

    /* more shapes than the table holds: the rest run unnamed, with the right answers */
    char sel[1024] = "app=x";
    for (int k = 1; k < LSS_STORE_SELECTOR_MAX_TERMS; k++) {
        assert_int_equal (s_list_n (st, "prep", sel, 0, NULL, NULL, 0, false), 2);
        assert_int_equal (s_list_n (st, "", sel, 0, NULL, NULL, 0, false), 2);
        size_t len = strlen (sel);
        snprintf (sel + len, sizeof sel - len, ",!absent%d", k);
    }
    assert_int_equal (lss_store_pg_list_prepared (st), LSS_STORE_PG_LIST_PREPARED_MAX);
    assert_int_equal (s_list_n (st, "prep", sel, 0, NULL, NULL, 0, false), 2);

    /* the server closes the connection: the next one starts with no statements */
    assert_true (s_pg_rows ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                            " WHERE application_name = 'lss' AND pid <> pg_backend_pid()") >=
                 1);
    int n = -1;
    for (int i = 0; i < 3 && n < 0; i++)
        n = s_list_n (st, "prep", "app=x", 0, NULL, NULL, 0, true);
    assert_int_equal (n, 2);
    assert_int_equal (lss_store_pg_list_prepared (st), 1);
    lss_store_destroy (&st);
}

typedef struct {
    lss_store_t *store;
    json_t *obj;
    pthread_barrier_t *barrier;
    int rc;
} s_racer_t;

static void *s_racer (void *arg)
{
    s_racer_t *r = arg;
    char err[LSS_STORE_ERR_SIZE];
    pthread_barrier_wait (r->barrier);
    r->rc = lss_store_update (r->store, r->obj, NULL, err, sizeof err);
    if (r->rc != LSS_STORE_OK && r->rc != LSS_STORE_CONFLICT)
        fprintf (stderr, "racer: %d %s\n", r->rc, err);
    return NULL;
}

static void test_concurrent_updates (void **state)
{
    (void)state;
    lss_store_t *a = s_open ();
    lss_store_t *b = s_open ();
    json_t *v = s_create (a, s_obj ("Sandbox", "race", "sb"));
    for (int round = 0; round < 10; round++) {
        pthread_barrier_t barrier;
        pthread_barrier_init (&barrier, NULL, 2);
        s_racer_t r[2] = {{a, json_deep_copy (v), &barrier, 1},
                          {b, json_deep_copy (v), &barrier, 1}};
        json_object_set_new (r[0].obj, "spec",
                             json_pack ("{s:s, s:i}", "by", "a", "round", round));
        json_object_set_new (r[1].obj, "spec",
                             json_pack ("{s:s, s:i}", "by", "b", "round", round));
        pthread_t t[2];
        for (int i = 0; i < 2; i++)
            assert_int_equal (pthread_create (&t[i], NULL, s_racer, &r[i]), 0);
        for (int i = 0; i < 2; i++)
            pthread_join (t[i], NULL);
        pthread_barrier_destroy (&barrier);
        int ok = (r[0].rc == LSS_STORE_OK) + (r[1].rc == LSS_STORE_OK);
        int conflict = (r[0].rc == LSS_STORE_CONFLICT) + (r[1].rc == LSS_STORE_CONFLICT);
        assert_int_equal (ok, 1);
        assert_int_equal (conflict, 1);
        json_t *got = NULL;
        char err[LSS_STORE_ERR_SIZE];
        assert_int_equal (lss_store_get (a, "Sandbox", "race", "sb", &got, err, sizeof err), 0);
        const char *winner = r[0].rc == LSS_STORE_OK ? "a" : "b";
        assert_string_equal (
            json_string_value (json_object_get (json_object_get (got, "spec"), "by")), winner);
        json_decref (r[0].obj);
        json_decref (r[1].obj);
        json_decref (v);
        v = got;
    }
    json_decref (v);
    lss_store_destroy (&a);
    lss_store_destroy (&b);
}

static int s_k8s_setup (void **state)
{
    (void)state;
    s_k8s = true;
    if (tk_start (&s_fake) != 0) {
        tk_stop (&s_fake);
        return -1;
    }
    return 0;
}

static int s_k8s_teardown (void **state)
{
    (void)state;
    tk_stop (&s_fake);
    return 0;
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_create_get_list),
        cmocka_unit_test (test_generate_name_and_conflict),
        cmocka_unit_test (test_update_conflict_and_generation),
        cmocka_unit_test (test_status_subresource),
        cmocka_unit_test (test_delete_and_finalizers),
        cmocka_unit_test (test_patch),
        cmocka_unit_test (test_owner_cascade),
        cmocka_unit_test (test_watch_order_and_resume),
        cmocka_unit_test (test_watch_gone),
        cmocka_unit_test (test_invalid),
        cmocka_unit_test (test_migrations_idempotent),
        cmocka_unit_test (test_concurrent_updates),
        cmocka_unit_test (test_list_statements_prepared),
    };
    int failed =
        cmocka_run_group_tests_name ("postgres", tests, s_group_setup, s_group_teardown);
    failed += cmocka_run_group_tests_name ("kubernetes", tests, s_k8s_setup, s_k8s_teardown);
    return failed;
}
