/*  Unit tests for lss_obj: paths, labels, sanitizing, refs, conditions, owners,
 *  finalizers, quantities. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "lss_obj.h"

static json_t *s_obj (void)
{
    json_t *o =
        json_loads ("{\"apiVersion\":\"llmsafespace.dev/v1\",\"kind\":\"Sandbox\","
                    "\"metadata\":{\"name\":\"sb\",\"namespace\":\"ns\",\"uid\":\"u-1\","
                    "\"labels\":{\"a\":\"1\",\"n\":5}},"
                    "\"spec\":{\"timeout\":600,\"runtime\":\"python:3.11\"}}",
                    0, NULL);
    assert_non_null (o);
    return o;
}

static void test_paths_and_labels (void **state)
{
    (void)state;
    json_t *o = s_obj ();
    assert_string_equal (lss_obj_str (o, "metadata.name"), "sb");
    assert_null (lss_obj_str (o, "metadata.nope"));
    assert_null (lss_obj_str (o, "spec.timeout")); /* not a string */
    assert_null (lss_obj_str (o, "spec.runtime.deeper"));
    assert_int_equal (lss_obj_int (o, "spec.timeout", -1), 600);
    assert_int_equal (lss_obj_int (o, "spec.runtime", -1), -1);
    assert_string_equal (lss_obj_label (o, "a"), "1");
    assert_null (lss_obj_label (o, "n"));
    assert_null (lss_obj_annotation (o, "x"));
    assert_int_equal (lss_obj_set_annotation (o, "llmsafespace.dev/warm-pod", "wp-1"), 0);
    assert_string_equal (lss_obj_annotation (o, LSS_ANN_WARM_POD), "wp-1");
    assert_int_equal (lss_obj_set_label (o, "b", "2"), 0);
    assert_string_equal (lss_obj_label (o, "b"), "2");
    assert_null (lss_obj_at (NULL, "a"));
    json_decref (o);
}

static void test_sanitize_and_split (void **state)
{
    (void)state;
    char out[64];
    assert_int_equal (lss_obj_sanitize_label ("python:3.11", out, sizeof out), 0);
    assert_string_equal (out, "python-3.11");
    assert_int_equal (lss_obj_sanitize_label ("--a b--", out, sizeof out), 0);
    assert_string_equal (out, "a-b");
    assert_int_equal (lss_obj_sanitize_label (":::", out, sizeof out), -1);
    assert_int_equal (lss_obj_sanitize_label ("", out, sizeof out), -1);
    char longs[200];
    memset (longs, 'x', sizeof longs - 1);
    longs[sizeof longs - 1] = '\0';
    assert_int_equal (lss_obj_sanitize_label (longs, out, sizeof out), 0);
    assert_int_equal (strlen (out), 63);
    assert_int_equal (lss_obj_sanitize_label ("abcdef", out, 4), -1);

    char ns[64], name[254];
    assert_int_equal (lss_obj_split_ref ("ns-1/sb-2", ns, sizeof ns, name, sizeof name), 0);
    assert_string_equal (ns, "ns-1");
    assert_string_equal (name, "sb-2");
    assert_int_equal (lss_obj_split_ref ("nosplit", ns, sizeof ns, name, sizeof name), -1);
    assert_int_equal (lss_obj_split_ref ("/x", ns, sizeof ns, name, sizeof name), -1);
    assert_int_equal (lss_obj_split_ref ("x/", ns, sizeof ns, name, sizeof name), -1);
    assert_int_equal (lss_obj_split_ref ("a/b/c", ns, sizeof ns, name, sizeof name), -1);
    assert_int_equal (lss_obj_split_ref ("A/b", ns, sizeof ns, name, sizeof name), -1);
    assert_int_equal (lss_obj_split_ref ("a/../b", ns, sizeof ns, name, sizeof name), -1);
}

static void test_conditions (void **state)
{
    (void)state;
    json_t *o = s_obj ();
    assert_null (lss_obj_condition (o, "Ready"));
    assert_int_equal (lss_obj_set_condition (o, "Ready", "False", "Creating", "pod made", 1000),
                      1);
    json_t *c = lss_obj_condition (o, "Ready");
    assert_non_null (c);
    assert_string_equal (json_string_value (json_object_get (c, "lastTransitionTime")),
                         "1970-01-01T00:00:01.000Z");
    /* same again: nothing changes */
    assert_int_equal (lss_obj_set_condition (o, "Ready", "False", "Creating", "pod made", 5000),
                      0);
    /* reason changes, status not: transition time kept */
    assert_int_equal (lss_obj_set_condition (o, "Ready", "False", "Waiting", NULL, 6000), 1);
    c = lss_obj_condition (o, "Ready");
    assert_string_equal (json_string_value (json_object_get (c, "lastTransitionTime")),
                         "1970-01-01T00:00:01.000Z");
    assert_null (json_object_get (c, "message"));
    /* status changes: transition time moves */
    assert_int_equal (lss_obj_set_condition (o, "Ready", "True", "AgentReady", NULL, 7000), 1);
    c = lss_obj_condition (o, "Ready");
    assert_string_equal (json_string_value (json_object_get (c, "lastTransitionTime")),
                         "1970-01-01T00:00:07.000Z");
    assert_int_equal (lss_obj_set_condition (o, "PodScheduled", "True", NULL, NULL, 7000), 1);
    assert_int_equal (json_array_size (lss_obj_at (o, "status.conditions")), 2);
    assert_int_equal (lss_obj_set_condition (o, NULL, "True", NULL, NULL, 0), -1);
    json_decref (o);
}

static void test_owner_and_finalizers (void **state)
{
    (void)state;
    json_t *owner = s_obj ();
    json_t *ref = lss_obj_owner_ref (owner);
    assert_non_null (ref);
    assert_string_equal (json_string_value (json_object_get (ref, "uid")), "u-1");
    assert_string_equal (json_string_value (json_object_get (ref, "kind")), "Sandbox");
    json_t *child =
        json_pack ("{s:{s:s, s:[o]}}", "metadata", "name", "pod", "ownerReferences", ref);
    assert_true (lss_obj_owned_by (child, "u-1"));
    assert_false (lss_obj_owned_by (child, "u-2"));
    json_object_del (json_object_get (owner, "metadata"), "uid");
    assert_null (lss_obj_owner_ref (owner));

    assert_false (lss_obj_has_finalizer (child, LSS_FINALIZER_SANDBOX));
    assert_int_equal (lss_obj_add_finalizer (child, LSS_FINALIZER_SANDBOX), 1);
    assert_int_equal (lss_obj_add_finalizer (child, LSS_FINALIZER_SANDBOX), 0);
    assert_int_equal (lss_obj_add_finalizer (child, "other"), 1);
    assert_true (lss_obj_has_finalizer (child, LSS_FINALIZER_SANDBOX));
    assert_int_equal (lss_obj_remove_finalizer (child, LSS_FINALIZER_SANDBOX), 1);
    assert_int_equal (lss_obj_remove_finalizer (child, LSS_FINALIZER_SANDBOX), 0);
    assert_true (lss_obj_has_finalizer (child, "other"));
    assert_false (lss_obj_deleting (child));
    json_object_set_new (json_object_get (child, "metadata"), "deletionTimestamp",
                         json_string ("2026-01-01T00:00:00Z"));
    assert_true (lss_obj_deleting (child));
    json_decref (child);
    json_decref (owner);
}

static void test_quantities (void **state)
{
    (void)state;
    int64_t v;
    assert_int_equal (lss_obj_parse_cpu ("1", &v), 0);
    assert_int_equal (v, 1000);
    assert_int_equal (lss_obj_parse_cpu ("0.5", &v), 0);
    assert_int_equal (v, 500);
    assert_int_equal (lss_obj_parse_cpu ("500m", &v), 0);
    assert_int_equal (v, 500);
    assert_int_equal (lss_obj_parse_cpu ("2.125", &v), 0);
    assert_int_equal (v, 2125);
    assert_int_equal (lss_obj_parse_cpu ("0.0001", &v), -1);
    assert_int_equal (lss_obj_parse_cpu ("-1", &v), -1);
    assert_int_equal (lss_obj_parse_cpu ("1.5m", &v), -1);
    assert_int_equal (lss_obj_parse_cpu ("m", &v), -1);
    assert_int_equal (lss_obj_parse_cpu ("99999999999999999999", &v), -1);
    assert_int_equal (lss_obj_parse_cpu ("", &v), -1);
    assert_int_equal (lss_obj_parse_bytes ("1Gi", &v), 0);
    assert_int_equal (v, 1073741824);
    assert_int_equal (lss_obj_parse_bytes ("128Mi", &v), 0);
    assert_int_equal (v, 134217728);
    assert_int_equal (lss_obj_parse_bytes ("1G", &v), 0);
    assert_int_equal (v, 1000000000);
    assert_int_equal (lss_obj_parse_bytes ("512", &v), 0);
    assert_int_equal (v, 512);
    assert_int_equal (lss_obj_parse_bytes ("1e3", &v), 0);
    assert_int_equal (v, 1000);
    assert_int_equal (lss_obj_parse_bytes ("1.5Gi", &v), -1);
    assert_int_equal (lss_obj_parse_bytes ("1Xi", &v), -1);
    assert_int_equal (lss_obj_parse_bytes ("9999999999Ti", &v), -1);
    assert_int_equal (lss_obj_parse_bytes (NULL, &v), -1);
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_paths_and_labels), cmocka_unit_test (test_sanitize_and_split),
        cmocka_unit_test (test_conditions),       cmocka_unit_test (test_owner_and_finalizers),
        cmocka_unit_test (test_quantities),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
