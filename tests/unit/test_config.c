/*  Unit tests for lss_config: defaults, YAML files, LSS_* overrides, every kind of error
 *  (each must name the key or variable and where it came from), value conversions,
 *  masking, spec checks, and the real lss_settings table.
 *
 *  Most tests use a small local spec table. YAML files are written with mkstemp under
 *  /tmp and removed by the test's teardown; LSS_* variables set by a test are unset there
 *  too, and the group setup clears any stray LSS_* variable the shell may have left.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lss_config.h"
#include "lss_log.h"

extern char **environ;

static const lss_config_spec_t s_spec[] = {
    {"name", LSS_CFG_STR, "svc", 0, 16, 0, "a short name"},
    {"count", LSS_CFG_INT, "5", -10, 100, 0, "a bounded integer"},
    {"big", LSS_CFG_INT, "0", 0, 0, 0, "an unbounded integer"},
    {"enabled", LSS_CFG_BOOL, "false", 0, 0, 0, "a flag"},
    {"bus.max", LSS_CFG_SIZE, "4Mi", 1024, 268435456, 0, "a bounded size"},
    {"bus.timeout", LSS_CFG_DURATION, "2s", 10, 3600000, 0, "a bounded duration"},
    {"bus.deep.endpoint", LSS_CFG_STR, "tcp://127.0.0.1:1", 0, 0, 0, "a nested string"},
    {"any.size", LSS_CFG_SIZE, "0", 0, 0, 0, "an unbounded size"},
    {"any.duration", LSS_CFG_DURATION, "0", 0, 0, 0, "an unbounded duration"},
    {"db.password", LSS_CFG_STR, "", 0, 0, LSS_CFG_SECRET, "a secret"},
    {"db.dsn-url", LSS_CFG_STR, "postgres://x", 0, 0, LSS_CFG_SECRET, "a secret with a dash"},
    {"db.pin", LSS_CFG_INT, "0", 0, 9999, LSS_CFG_SECRET, "a secret number"},
};
#define SPEC_COUNT (sizeof s_spec / sizeof s_spec[0])

static const char *const s_test_env[] = {
    "LSS_NAME",       "LSS_COUNT",   "LSS_COUNTT",  "LSS_BUS_DEEP_ENDPOINT",
    "LSS_DB_DSN_URL", "LSS_ENABLED", "LSS_BUS_MAX", "LSS_TEST_EXTRA",
    "LSS_CONFIG",
};

/*  Per-test state: one config and at most one temporary file. */
typedef struct {
    lss_config_t *cfg;
    char path[64];
    char err[512];
} fixture_t;

static int group_setup (void **state)
{
    (void)state;
    lss_log_init ("test_config", LSS_LOG_WARN);
    /* Collect first, then unset: unsetenv while walking environ would skip entries. */
    char *names[256];
    size_t n = 0;
    for (char **e = environ; *e && n < 256; e++) {
        const char *eq = strchr (*e, '=');
        if (strncmp (*e, "LSS_", 4) == 0 && eq && strncmp (*e, "LSS_BUILD_DIR=", 14) != 0 &&
            strncmp (*e, "LSS_ROOT=", 9) != 0)
            names[n++] = strndup (*e, (size_t)(eq - *e));
    }
    for (size_t i = 0; i < n; i++) {
        unsetenv (names[i]);
        free (names[i]);
    }
    return 0;
}

static int setup (void **state)
{
    fixture_t *f = calloc (1, sizeof *f);
    assert_non_null (f);
    f->cfg = lss_config_new (s_spec, SPEC_COUNT);
    assert_non_null (f->cfg);
    *state = f;
    return 0;
}

static int teardown (void **state)
{
    fixture_t *f = *state;
    for (size_t i = 0; i < sizeof s_test_env / sizeof s_test_env[0]; i++)
        unsetenv (s_test_env[i]);
    if (f->path[0])
        unlink (f->path);
    lss_config_destroy (&f->cfg);
    assert_null (f->cfg);
    free (f);
    return 0;
}

/*  Writes text (len bytes) to a fresh file under /tmp; the path lands in f->path. */
static void write_file_n (fixture_t *f, const char *text, size_t len)
{
    if (f->path[0])
        unlink (f->path);
    snprintf (f->path, sizeof f->path, "/tmp/lss-config-test-XXXXXX");
    int fd = mkstemp (f->path);
    assert_true (fd >= 0);
    assert_int_equal (write (fd, text, len), (ssize_t)len);
    close (fd);
}

static void write_file (fixture_t *f, const char *text)
{
    write_file_n (f, text, strlen (text));
}

/*  Loads YAML text into a fresh config (the fixture's is replaced) expecting failure;
 *  checks err names every needle given. The config must keep its defaults. */
static void expect_file_error (fixture_t *f, const char *yaml, const char *needle1,
                               const char *needle2)
{
    write_file (f, yaml);
    lss_config_destroy (&f->cfg);
    f->cfg = lss_config_new (s_spec, SPEC_COUNT);
    assert_non_null (f->cfg);
    if (lss_config_load (f->cfg, f->path, f->err, sizeof f->err) != -1)
        fail_msg ("accepted:\n%s", yaml);
    if (!strstr (f->err, needle1) || (needle2 && !strstr (f->err, needle2)))
        fail_msg ("error '%s' lacks '%s' / '%s' for:\n%s", f->err, needle1,
                  needle2 ? needle2 : "", yaml);
    if (!strstr (f->err, f->path))
        fail_msg ("error '%s' does not name the file", f->err);
    assert_int_equal (lss_config_int (f->cfg, "count"), 5);
    assert_string_equal (lss_config_str (f->cfg, "name"), "svc");
}

/*  lss_config_set expecting failure with err naming the key. */
static void expect_set_error (fixture_t *f, const char *key, const char *value,
                              const char *needle)
{
    if (lss_config_set (f->cfg, key, value, f->err, sizeof f->err) != -1)
        fail_msg ("%s = '%s' accepted", key, value);
    if (!strstr (f->err, key) || !strstr (f->err, needle))
        fail_msg ("error '%s' lacks key '%s' or '%s'", f->err, key, needle);
}

static int64_t set_int (fixture_t *f, const char *key, const char *value)
{
    if (lss_config_set (f->cfg, key, value, f->err, sizeof f->err))
        fail_msg ("%s = '%s' refused: %s", key, value, f->err);
    return lss_config_int (f->cfg, key);
}

/* ------------------------------------------------------------------ loading */

static void test_defaults (void **state)
{
    fixture_t *f = *state;
    snprintf (f->err, sizeof f->err, "junk"); /* overwritten with "" on success */
    assert_int_equal (lss_config_load (f->cfg, NULL, f->err, sizeof f->err), 0);
    assert_string_equal (f->err, "");
    assert_string_equal (lss_config_str (f->cfg, "name"), "svc");
    assert_int_equal (lss_config_int (f->cfg, "count"), 5);
    assert_false (lss_config_bool (f->cfg, "enabled"));
    assert_int_equal (lss_config_int (f->cfg, "bus.max"), 4194304);
    assert_int_equal (lss_config_int (f->cfg, "bus.timeout"), 2000);
    assert_string_equal (lss_config_str (f->cfg, "bus.deep.endpoint"), "tcp://127.0.0.1:1");
    assert_string_equal (lss_config_str (f->cfg, "db.password"), "");
    /* A NULL err is allowed. */
    assert_int_equal (lss_config_load (f->cfg, NULL, NULL, 0), 0);
}

static void test_yaml_good (void **state)
{
    fixture_t *f = *state;
    write_file (f, "# LLMSafeSpace test config\n"
                   "name: \"api-1\"\n"
                   "count: -3\n"
                   "enabled: yes\n"
                   "bus:\n"
                   "  max: 64Ki\n"
                   "  timeout: 2m\n"
                   "  deep:\n"
                   "    endpoint: tcp://10.0.0.1:7000\n"
                   "db.password: hunter2   # the flat dotted form works too\n"
                   "any: {size: 3G, duration: 1h}\n");
    assert_int_equal (lss_config_load (f->cfg, f->path, f->err, sizeof f->err), 0);
    assert_string_equal (lss_config_str (f->cfg, "name"), "api-1");
    assert_int_equal (lss_config_int (f->cfg, "count"), -3);
    assert_true (lss_config_bool (f->cfg, "enabled"));
    assert_int_equal (lss_config_int (f->cfg, "bus.max"), 65536);
    assert_int_equal (lss_config_int (f->cfg, "bus.timeout"), 120000);
    assert_string_equal (lss_config_str (f->cfg, "bus.deep.endpoint"), "tcp://10.0.0.1:7000");
    assert_string_equal (lss_config_str (f->cfg, "db.password"), "hunter2");
    assert_int_equal (lss_config_int (f->cfg, "any.size"), 3000000000LL);
    assert_int_equal (lss_config_int (f->cfg, "any.duration"), 3600000);
    /* Untouched keys keep their defaults. */
    assert_int_equal (lss_config_int (f->cfg, "big"), 0);
    assert_string_equal (lss_config_str (f->cfg, "db.dsn-url"), "postgres://x");
}

static void test_yaml_empty_and_null (void **state)
{
    fixture_t *f = *state;
    const char *empty[] = {"", "# only a comment\n", "---\n", "~\n", "{}\n"};
    for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++) {
        write_file (f, empty[i]);
        if (lss_config_load (f->cfg, f->path, f->err, sizeof f->err))
            fail_msg ("'%s' refused: %s", empty[i], f->err);
        assert_int_equal (lss_config_int (f->cfg, "count"), 5);
    }
    /* A null value is "" for a string ... */
    write_file (f, "name:\n");
    assert_int_equal (lss_config_load (f->cfg, f->path, f->err, sizeof f->err), 0);
    assert_string_equal (lss_config_str (f->cfg, "name"), "");
    /* ... and an error for anything else. */
    expect_file_error (f, "count: ~\n", "count", "no value");
}

static void test_env_wins (void **state)
{
    fixture_t *f = *state;
    write_file (f, "count: 7\nname: from-file\nbus: {deep: {endpoint: file}}\n");
    assert_int_equal (setenv ("LSS_COUNT", "9", 1), 0);
    assert_int_equal (setenv ("LSS_BUS_DEEP_ENDPOINT", "ipc:///run/x", 1), 0);
    assert_int_equal (setenv ("LSS_DB_DSN_URL", "postgres://env", 1), 0);
    assert_int_equal (setenv ("LSS_ENABLED", "ON", 1), 0);
    /* Allow-listed LSS_ variables that are not config keys. */
    assert_int_equal (setenv ("LSS_TEST_EXTRA", "whatever", 1), 0);
    assert_int_equal (setenv ("LSS_CONFIG", "/nonexistent.yaml", 1), 0);
    if (lss_config_load (f->cfg, f->path, f->err, sizeof f->err))
        fail_msg ("refused: %s", f->err);
    assert_int_equal (lss_config_int (f->cfg, "count"), 9);
    assert_string_equal (lss_config_str (f->cfg, "name"), "from-file");
    assert_string_equal (lss_config_str (f->cfg, "bus.deep.endpoint"), "ipc:///run/x");
    assert_string_equal (lss_config_str (f->cfg, "db.dsn-url"), "postgres://env");
    assert_true (lss_config_bool (f->cfg, "enabled"));

    /* Without the variable the file's value holds. */
    unsetenv ("LSS_COUNT");
    lss_config_destroy (&f->cfg);
    f->cfg = lss_config_new (s_spec, SPEC_COUNT);
    assert_int_equal (lss_config_load (f->cfg, f->path, f->err, sizeof f->err), 0);
    assert_int_equal (lss_config_int (f->cfg, "count"), 7);
}

/* ------------------------------------------------------------------ errors */

static void test_unknown_key (void **state)
{
    fixture_t *f = *state;
    expect_file_error (f, "count: 50\nbus:\n  maxx: 1\n", "unknown key 'bus.maxx'", ":3)");
    assert_non_null (strstr (f->err, "did you mean 'bus.max'"));
    expect_file_error (f, "zzzzzz: 1\n", "unknown key 'zzzzzz'", ":1)");
    assert_null (strstr (f->err, "did you mean"));
    expect_file_error (f, "bus: 5\n", "'bus' is a section", ":1)");
    expect_file_error (f, "count:\n  x: 1\n", "count: takes a value of type integer", ":2)");
    expect_file_error (f, "count: 1\ncount: 2\n", "duplicate key 'count'", ":2)");
    expect_set_error (f, "bus.maxx", "1", "unknown key");
    assert_non_null (strstr (f->err, "did you mean 'bus.max'"));
}

static void test_unknown_env (void **state)
{
    fixture_t *f = *state;
    assert_int_equal (setenv ("LSS_COUNTT", "1", 1), 0);
    assert_int_equal (lss_config_load (f->cfg, NULL, f->err, sizeof f->err), -1);
    assert_non_null (strstr (f->err, "unknown environment variable LSS_COUNTT"));
    assert_non_null (strstr (f->err, "did you mean 'LSS_COUNT'"));
    unsetenv ("LSS_COUNTT");
    assert_int_equal (lss_config_load (f->cfg, NULL, f->err, sizeof f->err), 0);
}

static void test_wrong_type (void **state)
{
    fixture_t *f = *state;
    expect_file_error (f, "name: x\ncount: abc\n", "count: 'abc' is not an integer", ":2)");
    expect_file_error (f, "enabled: maybe\n", "enabled: 'maybe' is not a boolean", ":1)");
    expect_file_error (f, "count: 1e3\n", "count", "not an integer");
    expect_file_error (f, "count: 0x10\n", "count", "not an integer");
    expect_file_error (f, "big: 9223372036854775808\n", "big", "out of the integer range");

    /* From the environment the source is the variable, and nothing is applied. */
    assert_int_equal (setenv ("LSS_NAME", "from-env", 1), 0);
    assert_int_equal (setenv ("LSS_COUNT", "12x", 1), 0);
    assert_int_equal (lss_config_load (f->cfg, NULL, f->err, sizeof f->err), -1);
    assert_non_null (strstr (f->err, "count: '12x' is not an integer (LSS_COUNT)"));
    assert_string_equal (lss_config_str (f->cfg, "name"), "svc");
    expect_set_error (f, "count", " 5", "not an integer");
    expect_set_error (f, "count", "", "not an integer");
    expect_set_error (f, "enabled", "2", "not a boolean");

    /* A secret's value is never quoted back. */
    expect_set_error (f, "db.pin", "12345x", "'***' is not an integer");
    assert_null (strstr (f->err, "12345"));
    expect_set_error (f, "db.pin", "12345", "value is out of range (must be 0 to 9999)");
    assert_null (strstr (f->err, "12345"));
}

static void test_out_of_range (void **state)
{
    fixture_t *f = *state;
    expect_file_error (f, "count: -11\n", "count: -11 is out of range (must be -10 to 100)",
                       ":1)");
    expect_file_error (f, "count: 101\n", "count: 101 is out of range", NULL);
    expect_file_error (f, "bus:\n  max: 1023\n", "bus.max: 1023 bytes is out of range", ":2)");
    expect_file_error (f, "bus: {max: 257Mi}\n", "bus.max", "out of range");
    expect_set_error (f, "bus.timeout", "9", "out of range");
    expect_set_error (f, "bus.timeout", "2h", "out of range");
    expect_set_error (f, "name", "seventeen-chars!!", "length must be 0 to 16");
    /* Bounds are inclusive. */
    assert_int_equal (set_int (f, "count", "-10"), -10);
    assert_int_equal (set_int (f, "count", "100"), 100);
    assert_int_equal (set_int (f, "bus.max", "1Ki"), 1024);
    assert_int_equal (set_int (f, "bus.max", "256Mi"), 268435456);
    assert_int_equal (
        lss_config_set (f->cfg, "name", "sixteen-chars!!!", f->err, sizeof f->err), 0);
}

static void test_conversions (void **state)
{
    fixture_t *f = *state;
    assert_int_equal (set_int (f, "any.size", "4Mi"), 4194304);
    assert_int_equal (set_int (f, "any.size", "4MiB"), 4194304);
    assert_int_equal (set_int (f, "any.size", "4M"), 4000000);
    assert_int_equal (set_int (f, "any.size", "1K"), 1000);
    assert_int_equal (set_int (f, "any.size", "1Ki"), 1024);
    assert_int_equal (set_int (f, "any.size", "2Gi"), 2147483648LL);
    assert_int_equal (set_int (f, "any.size", "3G"), 3000000000LL);
    assert_int_equal (set_int (f, "any.size", "512B"), 512);
    assert_int_equal (set_int (f, "any.size", "77"), 77);
    assert_int_equal (set_int (f, "any.duration", "2m"), 120000);
    assert_int_equal (set_int (f, "any.duration", "1h"), 3600000);
    assert_int_equal (set_int (f, "any.duration", "3s"), 3000);
    assert_int_equal (set_int (f, "any.duration", "250ms"), 250);
    assert_int_equal (set_int (f, "any.duration", "250"), 250);
    assert_int_equal (set_int (f, "big", "9223372036854775807"), INT64_MAX);
    assert_int_equal (set_int (f, "big", "-9223372036854775808"), INT64_MIN);
    assert_int_equal (set_int (f, "big", "+12"), 12);

    expect_set_error (f, "any.size", "4Xi", "unknown suffix 'Xi'");
    expect_set_error (f, "any.size", "4mi", "unknown suffix");
    expect_set_error (f, "any.size", "4 Mi", "unknown suffix");
    expect_set_error (f, "any.size", "-1", "not a size");
    expect_set_error (f, "any.size", "Mi", "not a size");
    expect_set_error (f, "any.size", "1.5Mi", "fractions are not accepted");
    expect_set_error (f, "any.size", "99999999999Gi", "too large");
    expect_set_error (f, "any.size", "99999999999999999999", "too large");
    expect_set_error (f, "any.duration", "1.5s", "fractions are not accepted");
    expect_set_error (f, "any.duration", "10d", "unknown suffix 'd'");
    expect_set_error (f, "any.duration", "s", "not a duration");
    expect_set_error (f, "any.duration", "5sec", "unknown suffix");
    /* A failed set leaves the value alone. */
    assert_int_equal (lss_config_int (f->cfg, "any.duration"), 250);

    static const char *const yes[] = {"true", "yes", "on", "1", "TRUE", "Yes"};
    static const char *const no[] = {"false", "no", "off", "0", "OFF"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        assert_int_equal (lss_config_set (f->cfg, "enabled", yes[i], f->err, sizeof f->err), 0);
        assert_true (lss_config_bool (f->cfg, "enabled"));
    }
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        assert_int_equal (lss_config_set (f->cfg, "enabled", no[i], f->err, sizeof f->err), 0);
        assert_false (lss_config_bool (f->cfg, "enabled"));
    }
}

static void test_yaml_shapes (void **state)
{
    fixture_t *f = *state;
    expect_file_error (f, "bus:\n  max:\n    - 1\n    - 2\n", "'bus.max' is a sequence", ":3)");
    expect_file_error (f, "name: [a, b]\n", "'name' is a sequence", ":1)");
    expect_file_error (f, "- a\n- b\n", "top level must be a mapping", ":1)");
    expect_file_error (f, "just a string\n", "top level must be a mapping", ":1)");
    expect_file_error (f, "count: &n 1\n", "anchors", "'count'");
    expect_file_error (f, "bus: &b {max: 2Ki}\n", "anchors", "'bus'");
    expect_file_error (f, "count: !!int 1\n", "tags", "'count'");
    expect_file_error (f, "name: a\n---\nname: b\n", "only one YAML document", ":2)");
    expect_file_error (f, "? [a]\n: 1\n", "keys must be scalars", NULL);
    /* 17 nested mappings. */
    char deep[512] = "";
    for (int i = 0; i < 17; i++) {
        char level[64];
        snprintf (level, sizeof level, "%*sk%d:\n", 2 * i, "", i);
        strncat (deep, level, sizeof deep - strlen (deep) - 1);
    }
    expect_file_error (f, deep, "nests deeper than 16", "k0.k1.k2");
}

static void test_yaml_malformed (void **state)
{
    fixture_t *f = *state;
    expect_file_error (f, "name: \"unterminated\n", "malformed YAML", NULL);
    expect_file_error (f, "bus:\n  max: 2Ki\n timeout: 2\n", "malformed YAML", ":3)");
    expect_file_error (f, "name: a: b\n", "malformed YAML", ":1)");
    write_file_n (f, "name: \xff\xfe\n", 9);
    lss_config_destroy (&f->cfg);
    f->cfg = lss_config_new (s_spec, SPEC_COUNT);
    assert_int_equal (lss_config_load (f->cfg, f->path, f->err, sizeof f->err), -1);
    assert_non_null (strstr (f->err, "malformed YAML"));
    assert_non_null (strstr (f->err, f->path));
}

static void test_file_errors (void **state)
{
    fixture_t *f = *state;
    const char *missing = "/tmp/lss-config-test-does-not-exist.yaml";
    assert_int_equal (lss_config_load (f->cfg, missing, f->err, sizeof f->err), -1);
    assert_non_null (strstr (f->err, "cannot open config file"));
    assert_non_null (strstr (f->err, missing));

    /* 1 MiB of comment is fine; one byte more is not. */
    size_t size = 1024 * 1024;
    char *text = malloc (size + 1);
    assert_non_null (text);
    memset (text, ' ', size);
    text[0] = '#';
    text[size - 1] = '\n';
    write_file_n (f, text, size);
    assert_int_equal (lss_config_load (f->cfg, f->path, f->err, sizeof f->err), 0);
    text[size] = '\n';
    write_file_n (f, text, size + 1);
    free (text);
    assert_int_equal (lss_config_load (f->cfg, f->path, f->err, sizeof f->err), -1);
    assert_non_null (strstr (f->err, "larger than 1048576 bytes"));
    assert_non_null (strstr (f->err, f->path));

    /* A small err buffer is cut, not overrun. */
    char small[8];
    assert_int_equal (lss_config_load (f->cfg, missing, small, sizeof small), -1);
    assert_int_equal (strlen (small), 7);
}

/* ------------------------------------------------------------------ output */

static void test_to_json_masking (void **state)
{
    fixture_t *f = *state;
    assert_int_equal (lss_config_set (f->cfg, "db.password", "hunter2", f->err, sizeof f->err),
                      0);
    json_t *masked = lss_config_to_json (f->cfg, true);
    json_t *plain = lss_config_to_json (f->cfg, false);
    assert_int_equal (json_object_size (masked), SPEC_COUNT);
    assert_string_equal (json_string_value (json_object_get (masked, "db.password")), "***");
    assert_string_equal (json_string_value (json_object_get (masked, "db.dsn-url")), "***");
    assert_string_equal (json_string_value (json_object_get (plain, "db.password")), "hunter2");
    assert_string_equal (json_string_value (json_object_get (plain, "db.dsn-url")),
                         "postgres://x");
    assert_string_equal (json_string_value (json_object_get (masked, "name")), "svc");
    assert_true (json_is_integer (json_object_get (masked, "count")));
    assert_int_equal (json_integer_value (json_object_get (masked, "count")), 5);
    assert_int_equal (json_integer_value (json_object_get (masked, "bus.max")), 4194304);
    assert_int_equal (json_integer_value (json_object_get (masked, "bus.timeout")), 2000);
    assert_true (json_is_false (json_object_get (masked, "enabled")));
    json_decref (masked);
    json_decref (plain);

    /* The log line carries the masked object and never the secret. */
    char *text = NULL;
    size_t len = 0;
    FILE *stream = open_memstream (&text, &len);
    assert_non_null (stream);
    lss_log_set_stream (stream);
    lss_log_set_level (LSS_LOG_INFO);
    lss_config_log (f->cfg);
    lss_log_set_level (LSS_LOG_WARN);
    lss_log_set_stream (NULL);
    fclose (stream);
    assert_null (strstr (text, "hunter2"));
    json_t *line = json_loads (text, 0, NULL);
    free (text);
    assert_non_null (line);
    assert_string_equal (json_string_value (json_object_get (line, "msg")), "effective config");
    assert_string_equal (json_string_value (json_object_get (line, "level")), "info");
    json_t *config = json_object_get (json_object_get (line, "fields"), "config");
    assert_string_equal (json_string_value (json_object_get (config, "db.password")), "***");
    assert_int_equal (json_integer_value (json_object_get (config, "count")), 5);
    json_decref (line);
}

/* ------------------------------------------------------------------ spec and getters */

static lss_config_t *new_quietly (const lss_config_spec_t *spec, size_t count)
{
    FILE *devnull = fopen ("/dev/null", "w");
    lss_log_set_stream (devnull);
    lss_config_t *cfg = lss_config_new (spec, count);
    lss_log_set_stream (NULL);
    if (devnull)
        fclose (devnull);
    return cfg;
}

static void test_spec_checks (void **state)
{
    (void)state;
    static const lss_config_spec_t bad_default[] = {
        {"a", LSS_CFG_INT, "12", 0, 10, 0, "default above max"}};
    static const lss_config_spec_t bad_syntax[] = {
        {"a", LSS_CFG_DURATION, "5 s", 0, 0, 0, "default with a space"}};
    static const lss_config_spec_t twice[] = {{"a.b", LSS_CFG_STR, "", 0, 0, 0, "one"},
                                              {"a.b", LSS_CFG_STR, "", 0, 0, 0, "two"}};
    static const lss_config_spec_t same_env[] = {{"a.b", LSS_CFG_STR, "", 0, 0, 0, "one"},
                                                 {"a-b", LSS_CFG_STR, "", 0, 0, 0, "two"}};
    static const lss_config_spec_t section[] = {{"a", LSS_CFG_STR, "", 0, 0, 0, "leaf"},
                                                {"a.b", LSS_CFG_STR, "", 0, 0, 0, "under"}};
    static const lss_config_spec_t bad_key[] = {{"Bad.Key", LSS_CFG_STR, "", 0, 0, 0, "caps"}};
    static const lss_config_spec_t no_default[] = {{"n", LSS_CFG_INT, NULL, 0, 0, 0, "none"}};
    assert_null (new_quietly (bad_default, 1));
    assert_null (new_quietly (bad_syntax, 1));
    assert_null (new_quietly (twice, 2));
    assert_null (new_quietly (same_env, 2));
    assert_null (new_quietly (section, 2));
    assert_null (new_quietly (bad_key, 1));
    assert_null (new_quietly (no_default, 1));
    lss_config_t *ok = new_quietly (section, 1);
    assert_non_null (ok);
    lss_config_destroy (&ok);
    lss_config_destroy (&ok); /* idempotent */
}

/*  Runs getter in a child; returns true if the child died of SIGABRT. */
static bool aborts (const lss_config_t *cfg, int which)
{
    fflush (NULL);
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0) {
        FILE *devnull = fopen ("/dev/null", "w");
        lss_log_set_stream (devnull);
        if (which == 0)
            (void)lss_config_int (cfg, "no.such.key");
        else if (which == 1)
            (void)lss_config_bool (cfg, "count");
        else if (which == 2)
            (void)lss_config_str (cfg, "enabled");
        else
            (void)lss_config_int (cfg, "bus.timeout"); /* fine: durations are int64 */
        _exit (0);
    }
    int status;
    assert_int_equal (waitpid (pid, &status, 0), pid);
    return WIFSIGNALED (status) && WTERMSIG (status) == SIGABRT;
}

static void test_getter_misuse (void **state)
{
    fixture_t *f = *state;
    assert_true (aborts (f->cfg, 0));
    assert_true (aborts (f->cfg, 1));
    assert_true (aborts (f->cfg, 2));
    assert_false (aborts (f->cfg, 3));
}

/* ------------------------------------------------------------------ system table */

static void test_settings_table (void **state)
{
    (void)state;
    lss_config_t *cfg = new_quietly (lss_settings, lss_settings_count);
    assert_non_null (cfg); /* every default parses within its bounds */
    char err[256];
    if (lss_config_load (cfg, NULL, err, sizeof err))
        fail_msg ("defaults refused: %s", err);
    assert_string_equal (lss_config_str (cfg, "log.level"), "info");
    assert_string_equal (lss_config_str (cfg, "watcher.admin_listen"), "127.0.0.1:9401");
    assert_string_equal (lss_config_str (cfg, "api.admin_listen"), "127.0.0.1:9441");
    assert_string_equal (lss_config_str (cfg, "node.admin_listen"), "127.0.0.1:9451");
    assert_string_equal (lss_config_str (cfg, "watcher.pub_endpoint"), "tcp://127.0.0.1:7401");
    assert_string_equal (lss_config_str (cfg, "api.pub_endpoint"), "tcp://127.0.0.1:7441");
    assert_string_equal (lss_config_str (cfg, "watcher.queue_endpoint"),
                         "tcp://127.0.0.1:7402");
    assert_string_equal (lss_config_str (cfg, "warmpool.alloc_endpoint"),
                         "tcp://127.0.0.1:7422");
    assert_string_equal (lss_config_str (cfg, "executor.router_endpoint"),
                         "tcp://127.0.0.1:7432");
    assert_int_equal (lss_config_int (cfg, "bus.sndhwm"), 10000);
    assert_int_equal (lss_config_int (cfg, "bus.linger"), 1000);
    assert_int_equal (lss_config_int (cfg, "bus.max_message"), 4194304);
    assert_false (lss_config_bool (cfg, "bus.trace"));
    assert_int_equal (lss_config_int (cfg, "service.shutdown_timeout"), 5000);
    assert_string_equal (lss_config_str (cfg, "store.backend"), "postgres");
    assert_string_equal (lss_config_str (cfg, "api.listen"), "127.0.0.1:8080");
    assert_string_equal (lss_config_str (cfg, "redis.url"), "redis://127.0.0.1:6380");
    lss_log_level_t level;
    assert_int_equal (lss_log_parse_level (lss_config_str (cfg, "log.level"), &level), 0);

    json_t *masked = lss_config_to_json (cfg, true);
    assert_int_equal (json_object_size (masked), lss_settings_count);
    const char *secrets[] = {"store.dsn", "api.jwt_secret", "redis.url"};
    for (size_t i = 0; i < 3; i++)
        assert_string_equal (json_string_value (json_object_get (masked, secrets[i])), "***");
    json_decref (masked);

    /* Every key is documented, and the table is sorted by section. */
    for (size_t i = 0; i < lss_settings_count; i++) {
        assert_true (lss_settings[i].doc && lss_settings[i].doc[0]);
        if (i > 0) {
            const char *a = lss_settings[i - 1].key, *b = lss_settings[i].key;
            size_t la = strcspn (a, "."), lb = strcspn (b, ".");
            int cmp = strncmp (a, b, la < lb ? la : lb);
            if (cmp > 0 || (cmp == 0 && la > lb))
                fail_msg ("lss_settings: section of '%s' sorts before '%s'", b, a);
        }
    }

    /* The environment reaches the real table by its derived name. */
    assert_int_equal (setenv ("LSS_BUS_MAX_MESSAGE", "8Mi", 1), 0);
    int rc = lss_config_load (cfg, NULL, err, sizeof err);
    unsetenv ("LSS_BUS_MAX_MESSAGE");
    assert_int_equal (rc, 0);
    assert_int_equal (lss_config_int (cfg, "bus.max_message"), 8388608);
    lss_config_destroy (&cfg);
}

int main (void)
{
#define T(name) cmocka_unit_test_setup_teardown (name, setup, teardown)
    /* test_getter_misuse runs first: its forked children abort, and under valgrind each
     * reports what glibc's setenv keeps as "possibly lost" once other tests have run. */
    const struct CMUnitTest tests[] = {
        T (test_getter_misuse),       T (test_defaults),        T (test_yaml_good),
        T (test_yaml_empty_and_null), T (test_env_wins),        T (test_unknown_key),
        T (test_unknown_env),         T (test_wrong_type),      T (test_out_of_range),
        T (test_conversions),         T (test_yaml_shapes),     T (test_yaml_malformed),
        T (test_file_errors),         T (test_to_json_masking), T (test_spec_checks),
        T (test_settings_table),
    };
#undef T
    return cmocka_run_group_tests (tests, group_setup, NULL);
}
