/*  Unit tests for sandbox_spec: defaults, JSON parsing with per-field errors, bounds,
 *  validation of paths, env names and limits, and the JSON round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox_spec.h"

static lss_sandbox_spec_t *s_parse (const char *text, char *err, size_t err_size)
{
    json_error_t jerr;
    json_t *obj = json_loads (text, JSON_ALLOW_NUL, &jerr);
    assert_non_null (obj);
    lss_sandbox_spec_t *spec = lss_sandbox_spec_from_json (obj, err, err_size);
    json_decref (obj);
    return spec;
}

/*  Parses text, expects failure, and that the error names field. */
static void s_expect_error (const char *text, const char *field)
{
    char err[LSS_SANDBOX_ERR_SIZE] = "";
    lss_sandbox_spec_t *spec = s_parse (text, err, sizeof err);
    if (spec || !strstr (err, field))
        print_error ("spec %s: got \"%s\", wanted an error about %s\n", text, err, field);
    assert_null (spec);
    assert_non_null (strstr (err, field));
}

static void test_defaults (void **state)
{
    (void)state;
    lss_sandbox_spec_t *spec = lss_sandbox_spec_new ("sb-1");
    assert_non_null (spec);
    assert_int_equal (spec->uid, 1000);
    assert_int_equal (spec->gid, 1000);
    assert_true (spec->read_only_root);
    assert_false (spec->network);
    assert_int_equal (spec->level, LSS_SANDBOX_LEVEL_STANDARD);
    assert_int_equal (spec->ephemeral_bytes, LSS_SANDBOX_DEFAULT_EPHEMERAL_BYTES);
    char err[LSS_SANDBOX_ERR_SIZE];
    assert_int_equal (lss_sandbox_spec_validate (spec, err, sizeof err), -1); /* no argv */
    assert_non_null (strstr (err, "argv"));
    const char *argv[] = {"/bin/true"};
    assert_int_equal (lss_sandbox_spec_set_argv (spec, argv, 1), 0);
    assert_int_equal (lss_sandbox_spec_validate (spec, err, sizeof err), 0);
    lss_sandbox_spec_destroy (&spec);
    assert_null (spec);
    lss_sandbox_spec_destroy (&spec); /* NULL is fine */
}

static void test_ids (void **state)
{
    (void)state;
    assert_true (lss_sandbox_id_valid ("a"));
    assert_true (lss_sandbox_id_valid ("sb-123-x9"));
    assert_false (lss_sandbox_id_valid (""));
    assert_false (lss_sandbox_id_valid ("-a"));
    assert_false (lss_sandbox_id_valid ("a-"));
    assert_false (lss_sandbox_id_valid ("A"));
    assert_false (lss_sandbox_id_valid ("a_b"));
    assert_false (lss_sandbox_id_valid ("a/b"));
    assert_false (lss_sandbox_id_valid (".."));
    assert_false (lss_sandbox_id_valid (NULL));
    char long_id[80];
    memset (long_id, 'a', sizeof long_id);
    long_id[63] = '\0';
    assert_true (lss_sandbox_id_valid (long_id));
    long_id[63] = 'a';
    long_id[64] = '\0';
    assert_false (lss_sandbox_id_valid (long_id));
}

static void test_parse_full (void **state)
{
    (void)state;
    char err[LSS_SANDBOX_ERR_SIZE] = "";
    lss_sandbox_spec_t *spec = s_parse (
        "{\"id\": \"sb-1\", \"rootfs\": \"/srv/images/py\", \"argv\": [\"/opt/lss/agent\", "
        "\"--x\"], \"env\": {\"A\": \"1\", \"B_2\": \"two words\"}, \"uid\": 1001, \"gid\": "
        "1002, \"cpuMillicores\": 500, \"memoryBytes\": 268435456, \"pidsMax\": 128, "
        "\"ephemeralStorageBytes\": 1048576, \"tmpBytes\": 2097152, \"network\": true, "
        "\"readOnlyRoot\": false, \"securityLevel\": \"high\", \"writablePaths\": "
        "[\"/home/sandbox\"], \"roBinds\": [{\"src\": \"/usr/lib/lss/agent\", \"dest\": "
        "\"/opt/lss/agent\"}]}",
        err, sizeof err);
    if (!spec)
        print_error ("%s\n", err);
    assert_non_null (spec);
    assert_string_equal (spec->id, "sb-1");
    assert_string_equal (spec->rootfs, "/srv/images/py");
    assert_int_equal (spec->argc, 2);
    assert_string_equal (spec->argv[1], "--x");
    assert_int_equal (spec->envc, 2);
    assert_int_equal (spec->uid, 1001);
    assert_int_equal (spec->gid, 1002);
    assert_int_equal (spec->cpu_millicores, 500);
    assert_int_equal (spec->memory_bytes, 268435456);
    assert_int_equal (spec->pids_max, 128);
    assert_int_equal (spec->ephemeral_bytes, 1048576);
    assert_int_equal (spec->tmp_bytes, 2097152);
    assert_true (spec->network);
    assert_false (spec->read_only_root);
    assert_int_equal (spec->level, LSS_SANDBOX_LEVEL_HIGH);
    assert_int_equal (spec->writable_count, 1);
    assert_int_equal (spec->ro_bind_count, 1);
    assert_string_equal (spec->ro_binds[0].dest, "/opt/lss/agent");

    /* round trip */
    json_t *back = lss_sandbox_spec_to_json (spec);
    assert_non_null (back);
    lss_sandbox_spec_t *again = lss_sandbox_spec_from_json (back, err, sizeof err);
    assert_non_null (again);
    json_t *back2 = lss_sandbox_spec_to_json (again);
    assert_true (json_equal (back, back2));
    assert_string_equal (
        json_string_value (json_object_get (json_object_get (back, "env"), "B_2")),
        "two words");
    json_decref (back);
    json_decref (back2);
    lss_sandbox_spec_destroy (&again);
    lss_sandbox_spec_destroy (&spec);
}

static void test_parse_errors (void **state)
{
    (void)state;
    s_expect_error ("[]", "spec");
    s_expect_error ("{\"argv\": [\"/x\"]}", "id");
    s_expect_error ("{\"id\": \"Bad\", \"argv\": [\"/x\"]}", "id");
    s_expect_error ("{\"id\": \"a\"}", "argv");
    s_expect_error ("{\"id\": \"a\", \"argv\": []}", "argv");
    s_expect_error ("{\"id\": \"a\", \"argv\": [1]}", "argv[0]");
    s_expect_error ("{\"id\": \"a\", \"argv\": [\"/x\", \"a\\u0000b\"]}", "argv[1]");
    s_expect_error ("{\"id\": \"a\", \"argv\": [\"/x\"], \"bogus\": 1}",
                    "bogus: unknown field");
    s_expect_error ("{\"id\": \"a\", \"argv\": [\"/x\"], \"env\": {\"1A\": \"x\"}}",
                    "env.1A: name");
    s_expect_error ("{\"id\": \"a\", \"argv\": [\"/x\"], \"env\": {\"A=B\": \"x\"}}",
                    "env.A=B: name");
    s_expect_error ("{\"id\": \"a\", \"argv\": [\"/x\"], \"env\": {\"A\": 1}}", "env.A");
    s_expect_error ("{\"id\": \"a\", \"argv\": [\"/x\"], \"env\": []}", "env");
    s_expect_error ("{\"id\": \"a\", \"argv\": [\"/x\"], \"uid\": 0}", "uid");
    s_expect_error ("{\"id\": \"a\", \"argv\": [\"/x\"], \"gid\": 70000}", "gid");
    s_expect_error ("{\"id\": \"a\", \"argv\": [\"/x\"], \"uid\": \"1000\"}", "uid");
    s_expect_error ("{\"id\": \"a\", \"argv\": [\"/x\"], \"memoryBytes\": 1024}",
                    "memoryBytes");
    s_expect_error ("{\"id\": \"a\", \"argv\": [\"/x\"], \"memoryBytes\": -1}", "memoryBytes");
    s_expect_error ("{\"id\": \"a\", \"argv\": [\"/x\"], \"memoryBytes\": 1.5}", "memoryBytes");
    s_expect_error ("{\"id\": \"a\", \"argv\": [\"/x\"], \"cpuMillicores\": 5}",
                    "cpuMillicores");
    s_expect_error ("{\"id\": \"a\", \"argv\": [\"/x\"], \"pidsMax\": 1}", "pidsMax");
    s_expect_error ("{\"id\": \"a\", \"argv\": [\"/x\"], \"pidsMax\": 1000000}", "pidsMax");
    s_expect_error ("{\"id\": \"a\", \"argv\": [\"/x\"], \"ephemeralStorageBytes\": 0}",
                    "ephemeralStorageBytes");
    s_expect_error ("{\"id\": \"a\", \"argv\": [\"/x\"], \"tmpBytes\": 10}", "tmpBytes");
    s_expect_error ("{\"id\": \"a\", \"argv\": [\"/x\"], \"network\": 1}", "network");
    s_expect_error ("{\"id\": \"a\", \"argv\": [\"/x\"], \"securityLevel\": \"max\"}",
                    "securityLevel");
    s_expect_error ("{\"id\": \"a\", \"argv\": [\"/x\"], \"readOnlyRoot\": false}",
                    "readOnlyRoot");
    s_expect_error ("{\"id\": \"a\", \"argv\": [\"/x\"], \"rootfs\": \"relative\"}", "rootfs");
    s_expect_error ("{\"id\": \"a\", \"argv\": [\"/x\"], \"rootfs\": \"/\"}", "rootfs");
    s_expect_error ("{\"id\": \"a\", \"argv\": [\"/x\"], \"rootfs\": \"/a/../etc\"}", "rootfs");
    s_expect_error ("{\"id\": \"a\", \"argv\": [\"/x\"], \"writablePaths\": [\"/proc/x\"]}",
                    "writablePaths[0]");
    s_expect_error ("{\"id\": \"a\", \"argv\": [\"/x\"], \"writablePaths\": [\"/\"]}",
                    "writablePaths[0]");
    s_expect_error ("{\"id\": \"a\", \"argv\": [\"/x\"], \"writablePaths\": [\"/a//b\"]}",
                    "writablePaths[0]");
    s_expect_error ("{\"id\": \"a\", \"argv\": [\"/x\"], \"roBinds\": [{\"src\": \"/a\"}]}",
                    "roBinds[0]");
    s_expect_error (
        "{\"id\": \"a\", \"argv\": [\"/x\"], \"roBinds\": [{\"src\": \"/a\", \"dest\": "
        "\"/etc/passwd\"}]}",
        "/etc is reserved");
    s_expect_error (
        "{\"id\": \"a\", \"argv\": [\"/x\"], \"roBinds\": [{\"src\": \"a\", \"dest\": "
        "\"/opt/a\"}]}",
        "roBinds[0].src");
    s_expect_error (
        "{\"id\": \"a\", \"argv\": [\"/x\"], \"roBinds\": [{\"src\": \"/a\", \"dest\": "
        "\"/opt/a\", \"x\": 1}]}",
        "roBinds[0]");
    s_expect_error (
        "{\"id\": \"a\", \"argv\": [\"/x\"], \"roBinds\": [{\"src\": \"/a\", \"dest\": "
        "\"/run/lss/x\"}]}",
        "reserved");
}

static void test_bounds (void **state)
{
    (void)state;
    /* too many argv entries, env entries, binds, writable paths; oversize strings */
    char *text = malloc (1 << 20);
    assert_non_null (text);
    size_t n = (size_t)snprintf (text, 1 << 20, "{\"id\": \"a\", \"argv\": [");
    for (int i = 0; i <= LSS_SANDBOX_ARGV_MAX; i++)
        n += (size_t)snprintf (text + n, (1 << 20) - n, "%s\"x\"", i ? ", " : "");
    snprintf (text + n, (1 << 20) - n, "]}");
    s_expect_error (text, "argv");

    n = (size_t)snprintf (text, 1 << 20, "{\"id\": \"a\", \"argv\": [\"/x\"], \"env\": {");
    for (int i = 0; i <= LSS_SANDBOX_ENV_MAX; i++)
        n += (size_t)snprintf (text + n, (1 << 20) - n, "%s\"V%d\": \"x\"", i ? ", " : "", i);
    snprintf (text + n, (1 << 20) - n, "}}");
    s_expect_error (text, "env");

    n = (size_t)snprintf (text, 1 << 20, "{\"id\": \"a\", \"argv\": [\"/x\"], \"roBinds\": [");
    for (int i = 0; i <= LSS_SANDBOX_BINDS_MAX; i++)
        n +=
            (size_t)snprintf (text + n, (1 << 20) - n,
                              "%s{\"src\": \"/s%d\", \"dest\": \"/d%d\"}", i ? ", " : "", i, i);
    snprintf (text + n, (1 << 20) - n, "]}");
    s_expect_error (text, "roBinds");

    n = (size_t)snprintf (text, 1 << 20, "{\"id\": \"a\", \"argv\": [\"/x\", \"");
    memset (text + n, 'y', LSS_SANDBOX_STRING_MAX + 1);
    n += LSS_SANDBOX_STRING_MAX + 1;
    snprintf (text + n, (1 << 20) - n, "\"]}");
    s_expect_error (text, "argv[1]");
    free (text);

    /* setters refuse past the bounds too, and bad names */
    lss_sandbox_spec_t *spec = lss_sandbox_spec_new ("a");
    assert_int_equal (lss_sandbox_spec_add_env (spec, "A=B", "x"), -1);
    assert_int_equal (lss_sandbox_spec_add_env (spec, "", "x"), -1);
    assert_int_equal (lss_sandbox_spec_add_env (spec, "OK_1", "x=y"), 0);
    for (int i = 0; i < LSS_SANDBOX_WRITABLE_MAX; i++)
        assert_int_equal (lss_sandbox_spec_add_writable (spec, "/w"), 0);
    assert_int_equal (lss_sandbox_spec_add_writable (spec, "/w"), -1);
    for (int i = 0; i < LSS_SANDBOX_BINDS_MAX; i++)
        assert_int_equal (lss_sandbox_spec_add_ro_bind (spec, "/s", "/d"), 0);
    assert_int_equal (lss_sandbox_spec_add_ro_bind (spec, "/s", "/d"), -1);
    lss_sandbox_spec_destroy (&spec);
}

static void test_levels (void **state)
{
    (void)state;
    lss_sandbox_level_t level;
    assert_int_equal (lss_sandbox_level_parse ("high", &level), 0);
    assert_int_equal (level, LSS_SANDBOX_LEVEL_HIGH);
    assert_int_equal (lss_sandbox_level_parse ("standard", &level), 0);
    assert_int_equal (level, LSS_SANDBOX_LEVEL_STANDARD);
    assert_int_equal (lss_sandbox_level_parse ("High", &level), -1);
    assert_int_equal (lss_sandbox_level_parse (NULL, &level), -1);
    assert_string_equal (lss_sandbox_level_name (LSS_SANDBOX_LEVEL_HIGH), "high");
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_defaults),   cmocka_unit_test (test_ids),
        cmocka_unit_test (test_parse_full), cmocka_unit_test (test_parse_errors),
        cmocka_unit_test (test_bounds),     cmocka_unit_test (test_levels),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
