/*  Unit tests for the api's pure logic: the route table (api_route), request validation
 *  (api_valid), WebSocket frames (api_wsproto), views (api_view) and the error envelope
 *  (api_http). No I/O: every function is called directly with hostile inputs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api_http.h"
#include "api_msgs.h"
#include "api_route.h"
#include "api_valid.h"
#include "api_view.h"
#include "api_wsproto.h"

/* ---------------------------------------------------------------- routes */
static void test_route_every_pattern (void **state)
{
    (void)state;
    static const struct {
        api_method_t m;
        const char *path;
        api_route_id_t want;
        const char *id, *rest;
    } cases[] = {
        {API_M_GET, "/health", API_R_HEALTH, "", ""},
        {API_M_GET, "/ready", API_R_READY, "", ""},
        {API_M_GET, "/metrics", API_R_METRICS, "", ""},
        {API_M_POST, "/api/v1/auth/token", API_R_AUTH_TOKEN_CREATE, "", ""},
        {API_M_DELETE, "/api/v1/auth/token", API_R_AUTH_TOKEN_REVOKE, "", ""},
        {API_M_GET, "/api/v1/sandboxes", API_R_SANDBOX_LIST, "", ""},
        {API_M_GET, "/api/v1/sandboxes/", API_R_SANDBOX_LIST, "", ""},
        {API_M_POST, "/api/v1/sandboxes", API_R_SANDBOX_CREATE, "", ""},
        {API_M_GET, "/api/v1/sandboxes/sb-1", API_R_SANDBOX_GET, "sb-1", ""},
        {API_M_HEAD, "/api/v1/sandboxes/sb-1", API_R_SANDBOX_GET, "sb-1", ""},
        {API_M_DELETE, "/api/v1/sandboxes/sb-1", API_R_SANDBOX_DELETE, "sb-1", ""},
        {API_M_GET, "/api/v1/sandboxes/sb-1/status", API_R_SANDBOX_STATUS, "sb-1", ""},
        {API_M_POST, "/api/v1/sandboxes/sb-1/execute", API_R_SANDBOX_EXECUTE, "sb-1", ""},
        {API_M_GET, "/api/v1/sandboxes/sb-1/executions", API_R_SANDBOX_EXECUTIONS, "sb-1", ""},
        {API_M_GET, "/api/v1/sandboxes/sb-1/files", API_R_FILES_LIST, "sb-1", ""},
        {API_M_GET, "/api/v1/sandboxes/sb-1/files/a/b.txt", API_R_FILE_GET, "sb-1", "a/b.txt"},
        {API_M_PUT, "/api/v1/sandboxes/sb-1/files/x", API_R_FILE_PUT, "sb-1", "x"},
        {API_M_DELETE, "/api/v1/sandboxes/sb-1/files/../../e", API_R_FILE_DELETE, "sb-1",
         "../../e"},
        {API_M_POST, "/api/v1/sandboxes/sb-1/packages", API_R_PACKAGES, "sb-1", ""},
        {API_M_GET, "/api/v1/sandboxes/sb-1/stream", API_R_STREAM, "sb-1", ""},
        {API_M_GET, "/api/v1/warmpools", API_R_WARMPOOL_LIST, "", ""},
        {API_M_POST, "/api/v1/warmpools", API_R_WARMPOOL_CREATE, "", ""},
        {API_M_GET, "/api/v1/warmpools/status", API_R_WARMPOOLS_STATUS, "", ""},
        {API_M_GET, "/api/v1/warmpools/p", API_R_WARMPOOL_GET, "p", ""},
        {API_M_PATCH, "/api/v1/warmpools/p", API_R_WARMPOOL_PATCH, "p", ""},
        {API_M_DELETE, "/api/v1/warmpools/p", API_R_WARMPOOL_DELETE, "p", ""},
        {API_M_GET, "/api/v1/warmpools/p/status", API_R_WARMPOOL_STATUS, "p", ""},
        {API_M_GET, "/api/v1/runtimes", API_R_RUNTIME_LIST, "", ""},
        {API_M_GET, "/api/v1/runtimes/python-3.11", API_R_RUNTIME_GET, "python-3.11", ""},
        {API_M_GET, "/api/v1/profiles", API_R_PROFILE_LIST, "", ""},
        {API_M_GET, "/api/v1/profiles/x", API_R_PROFILE_GET, "x", ""},
        {API_M_GET, "/api/v1/user", API_R_USER_GET, "", ""},
        {API_M_GET, "/api/v1/user/apikeys", API_R_APIKEY_LIST, "", ""},
        {API_M_POST, "/api/v1/user/apikeys", API_R_APIKEY_CREATE, "", ""},
        {API_M_DELETE, "/api/v1/user/apikeys/k1", API_R_APIKEY_DELETE, "k1", ""},
        {API_M_POST, "/api/v1/users", API_R_USER_CREATE, "", ""},
    };
    bool seen[API_R_COUNT] = {false};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        api_match_t m;
        api_route_id_t r = api_route_match (cases[i].m, cases[i].path, &m);
        if (r != cases[i].want)
            fail_msg ("%s %s: route %d, want %d", api_method_name (cases[i].m), cases[i].path,
                      r, cases[i].want);
        assert_int_equal (m.route, r);
        assert_string_equal (m.id, cases[i].id);
        assert_string_equal (m.path, cases[i].rest);
        seen[r] = true;
        assert_non_null (api_route_pattern (r));
    }
    for (int r = 0; r < API_R_COUNT; r++)
        if (!seen[r])
            fail_msg ("route %d (%s) has no case here", r, api_route_pattern (r));
}

static void test_route_not_found_and_bad_method (void **state)
{
    (void)state;
    api_match_t m;
    const char *missing[] = {"/",
                             "",
                             "/api",
                             "/api/v1",
                             "/api/v2/sandboxes",
                             "/api/v1/sandboxes/sb-1/nope",
                             "/api/v1/sandboxes//status",
                             "/api/v1/sandboxes/../status",
                             "/api/v1/sandboxes/./status",
                             "/API/V1/SANDBOXES",
                             "relative/path"};
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++)
        if (api_route_match (API_M_GET, missing[i], &m) != API_ROUTE_NOT_FOUND)
            fail_msg ("%s matched route %d", missing[i], m.route);
    assert_int_equal (api_route_match (API_M_PATCH, "/api/v1/sandboxes", &m),
                      API_ROUTE_BAD_METHOD);
    assert_string_equal (m.allow, "GET, POST");
    assert_int_equal (api_route_match (API_M_POST, "/api/v1/sandboxes/sb-1", &m),
                      API_ROUTE_BAD_METHOD);
    assert_non_null (strstr (m.allow, "GET"));
    assert_non_null (strstr (m.allow, "DELETE"));
    assert_int_equal (api_route_match (API_M_OTHER, "/health", &m), API_ROUTE_BAD_METHOD);

    /* an id segment longer than the capture, and a path past the maximum */
    char longid[400];
    memset (longid, 'a', sizeof longid);
    memcpy (longid, "/api/v1/sandboxes/", 18);
    longid[sizeof longid - 1] = '\0';
    assert_int_equal (api_route_match (API_M_GET, longid, &m), API_ROUTE_NOT_FOUND);
    char *huge = malloc (API_ROUTE_PATH_MAX + 64);
    assert_non_null (huge);
    snprintf (huge, 64, "/api/v1/sandboxes/sb-1/files/");
    size_t n = strlen (huge);
    memset (huge + n, 'x', API_ROUTE_PATH_MAX + 63 - n);
    huge[API_ROUTE_PATH_MAX + 63] = '\0';
    assert_int_equal (api_route_match (API_M_GET, huge, &m), API_ROUTE_NOT_FOUND);
    free (huge);
}

static void test_route_classes_and_methods (void **state)
{
    (void)state;
    assert_true (api_route_public (API_R_HEALTH));
    assert_true (api_route_public (API_R_METRICS));
    assert_false (api_route_public (API_R_SANDBOX_GET));
    assert_null (api_route_rate_class (API_R_READY));
    assert_string_equal (api_route_rate_class (API_R_SANDBOX_CREATE), "create_sandbox");
    assert_string_equal (api_route_rate_class (API_R_SANDBOX_EXECUTE), "execute_code");
    assert_string_equal (api_route_rate_class (API_R_PACKAGES), "execute_code");
    assert_string_equal (api_route_rate_class (API_R_SANDBOX_LIST), "default");
    assert_string_equal (api_route_pattern (API_ROUTE_NOT_FOUND), "other");
    assert_int_equal (api_method_parse ("GET"), API_M_GET);
    assert_int_equal (api_method_parse ("DELETE"), API_M_DELETE);
    assert_int_equal (api_method_parse ("get"), API_M_OTHER);
    assert_int_equal (api_method_parse ("TRACE"), API_M_OTHER);
    assert_int_equal (api_method_parse (""), API_M_OTHER);
}

/* ---------------------------------------------------------------- validation */
static json_t *s_json (const char *text)
{
    json_error_t e;
    json_t *v = json_loads (text, 0, &e);
    if (!v)
        fail_msg ("bad test JSON %s: %s", text, e.text);
    return v;
}

/*  Validates a create body; returns the fields object (caller decrefs). */
static json_t *s_create (const char *text, int want_rc, api_create_req_t *out)
{
    json_t *body = s_json (text);
    json_t *fields = json_object ();
    api_create_req_t local = {0};
    api_create_req_t *req = out ? out : &local;
    memset (req, 0, sizeof *req);
    int rc = api_valid_create (body, req, fields);
    if (rc != want_rc) {
        char *f = json_dumps (fields, 0);
        fail_msg ("%s: rc %d, want %d, fields %s", text, rc, want_rc, f);
    }
    if (!out)
        api_create_req_clear (req);
    json_decref (body);
    return fields;
}

static void s_expect_field (json_t *fields, const char *name)
{
    if (!json_is_string (json_object_get (fields, name))) {
        char *f = json_dumps (fields, 0);
        fail_msg ("no message for %s in %s", name, f);
    }
}

static void test_valid_create (void **state)
{
    (void)state;
    api_create_req_t req;
    json_t *f = s_create ("{\"runtime\":\"python:3.11\"}", 0, &req);
    assert_int_equal (json_object_size (f), 0);
    assert_string_equal (req.runtime, "python:3.11");
    assert_string_equal (req.security_level, "standard");
    assert_int_equal (req.timeout_s, API_TIMEOUT_DEFAULT_S);
    assert_true (req.use_warm_pool);
    api_create_req_clear (&req);
    json_decref (f);

    f = s_create ("{\"runtime\":\"python:3.11\",\"timeout\":3600,\"securityLevel\":\"high\","
                  "\"useWarmPool\":false,\"labels\":{\"team\":\"a\"},"
                  "\"resources\":{\"cpu\":\"500m\",\"memory\":\"512Mi\"}}",
                  0, &req);
    assert_int_equal (req.timeout_s, 3600);
    assert_string_equal (req.security_level, "high");
    assert_false (req.use_warm_pool);
    assert_non_null (req.labels);
    assert_non_null (req.resources);
    api_create_req_clear (&req);
    json_decref (f);

    static const struct {
        const char *body, *field;
    } bad[] = {
        {"{}", "runtime"},
        {"{\"runtime\":7}", "runtime"},
        {"{\"runtime\":\"\"}", "runtime"},
        {"{\"runtime\":\"python:3.11\",\"timeout\":0}", "timeout"},
        {"{\"runtime\":\"python:3.11\",\"timeout\":3601}", "timeout"},
        {"{\"runtime\":\"python:3.11\",\"timeout\":\"60\"}", "timeout"},
        {"{\"runtime\":\"python:3.11\",\"timeout\":1.5}", "timeout"},
        {"{\"runtime\":\"python:3.11\",\"securityLevel\":\"max\"}", "securityLevel"},
        {"{\"runtime\":\"python:3.11\",\"securityLevel\":\"custom\"}", "profile"},
        {"{\"runtime\":\"python:3.11\",\"useWarmPool\":1}", "useWarmPool"},
        {"{\"runtime\":\"python:3.11\",\"profile\":\"Bad_Name\"}", "profile"},
        {"{\"runtime\":\"python:3.11\",\"resources\":{\"memory\":\"lots\"}}",
         "resources.memory"},
        {"{\"runtime\":\"python:3.11\",\"timout\":5}", "timout"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        f = s_create (bad[i].body, -1, NULL);
        s_expect_field (f, bad[i].field);
        json_decref (f);
    }
    /* not an object at all */
    json_t *fields = json_object ();
    json_t *arr = json_array ();
    memset (&req, 0, sizeof req);
    assert_int_equal (api_valid_create (arr, &req, fields), -1);
    assert_true (json_object_size (fields) > 0);
    api_create_req_clear (&req);
    json_decref (arr);
    json_decref (fields);
}

static const api_exec_limits_t s_lim = {30000, 3600000, 1 << 20};

static int s_execute (const char *text, bool ws, api_exec_spec_t *spec, json_t **fields_out)
{
    json_t *body = s_json (text);
    json_t *fields = json_object ();
    memset (spec, 0, sizeof *spec);
    int rc = api_valid_execute (body, ws, "python:3.11", &s_lim, spec, fields);
    json_decref (body);
    if (fields_out)
        *fields_out = fields;
    else
        json_decref (fields);
    return rc;
}

static void test_valid_execute (void **state)
{
    (void)state;
    api_exec_spec_t spec;
    assert_int_equal (
        s_execute ("{\"type\":\"code\",\"content\":\"print(1)\"}", false, &spec, NULL), 0);
    assert_string_equal (spec.kind, "code");
    assert_string_equal (spec.language, "python"); /* from the runtime */
    assert_int_equal (spec.code.len, 8);
    assert_memory_equal (spec.code.data, "print(1)", 8);
    assert_int_equal (spec.timeout_ms, 30000);
    api_exec_spec_clear (&spec);

    assert_int_equal (s_execute ("{\"type\":\"command\",\"content\":\"ls -l\",\"timeout\":5,"
                                 "\"env\":{\"A\":\"b\"},\"workingDir\":\"/tmp\"}",
                                 false, &spec, NULL),
                      0);
    assert_string_equal (spec.kind, "command");
    assert_string_equal (spec.shell, "ls -l");
    assert_int_equal (spec.timeout_ms, 5000);
    assert_string_equal (json_string_value (json_object_get (spec.env, "A")), "b");
    api_exec_spec_clear (&spec);

    assert_int_equal (s_execute ("{\"type\":\"code\",\"language\":\"javascript\","
                                 "\"content\":\"1\"}",
                                 false, &spec, NULL),
                      0);
    assert_string_equal (spec.language, "node");
    api_exec_spec_clear (&spec);

    static const struct {
        const char *body, *field;
    } bad[] = {
        {"{\"content\":\"x\"}", "type"},
        {"{\"type\":\"shell\",\"content\":\"x\"}", "type"},
        {"{\"type\":\"code\"}", "content"},
        {"{\"type\":\"code\",\"content\":5}", "content"},
        {"{\"type\":\"code\",\"content\":\"x\",\"language\":\"cobol\"}", "language"},
        {"{\"type\":\"code\",\"content\":\"x\",\"timeout\":0}", "timeout"},
        {"{\"type\":\"code\",\"content\":\"x\",\"timeout\":3601}", "timeout"},
        {"{\"type\":\"code\",\"content\":\"x\",\"env\":[]}", "env"},
        {"{\"type\":\"code\",\"content\":\"x\",\"env\":{\"A\":1}}", "env.A"},
        {"{\"type\":\"code\",\"content\":\"x\",\"extra\":1}", "extra"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *f = NULL;
        if (s_execute (bad[i].body, false, &spec, &f) != -1)
            fail_msg ("%s accepted", bad[i].body);
        api_exec_spec_clear (&spec);
        s_expect_field (f, bad[i].field);
        json_decref (f);
    }
    /* a WebSocket execute frame's own keys are accepted (its executionId is checked by
     * api_wsproto_parse, test_wsproto_parse) */
    assert_int_equal (s_execute ("{\"type\":\"execute\",\"executionId\":\"e1\","
                                 "\"mode\":\"code\",\"content\":\"1\"}",
                                 true, &spec, NULL),
                      0);
    api_exec_spec_clear (&spec);
}

static void test_valid_packages (void **state)
{
    (void)state;
    api_exec_spec_t spec;
    json_t *fields = json_object ();
    json_t *body = s_json ("{\"packages\":[\"requests\",\"numpy==1.26.0\"]}");
    memset (&spec, 0, sizeof spec);
    assert_int_equal (api_valid_packages (body, "pip", &s_lim, &spec, fields), 0);
    assert_string_equal (spec.kind, "packages");
    assert_non_null (strstr (spec.shell, "pip"));
    assert_non_null (strstr (spec.shell, "'numpy==1.26.0'"));
    api_exec_spec_clear (&spec);
    json_decref (body);

    const char *bad[] = {"{\"packages\":[]}",
                         "{\"packages\":\"requests\"}",
                         "{\"packages\":[\"a; rm -rf /\"]}",
                         "{\"packages\":[\"$(id)\"]}",
                         "{\"packages\":[\"`id`\"]}",
                         "{\"packages\":[\"x'y\"]}",
                         "{\"packages\":[\"-e\"]}",
                         "{\"packages\":[\"ok\"],\"manager\":\"apt\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *b = s_json (bad[i]);
        json_object_clear (fields);
        memset (&spec, 0, sizeof spec);
        if (api_valid_packages (b, "pip", &s_lim, &spec, fields) != -1)
            fail_msg ("%s accepted: %s", bad[i], spec.shell ? spec.shell : "");
        assert_true (json_object_size (fields) > 0);
        api_exec_spec_clear (&spec);
        json_decref (b);
    }
    /* no package manager for the runtime and none given */
    body = s_json ("{\"packages\":[\"x\"]}");
    json_object_clear (fields);
    memset (&spec, 0, sizeof spec);
    assert_int_equal (api_valid_packages (body, NULL, &s_lim, &spec, fields), -1);
    api_exec_spec_clear (&spec);
    json_decref (body);
    json_decref (fields);
}

static void test_valid_file_path (void **state)
{
    (void)state;
    char out[API_FILE_PATH_MAX];
    static const struct {
        const char *in, *out;
    } good[] = {
        {"a.txt", "/workspace/a.txt"},
        {"/workspace/a.txt", "/workspace/a.txt"},
        {"workspace/a.txt", "/workspace/a.txt"},
        {"/tmp/x", "/tmp/x"},
        {"tmp/x", "/tmp/x"},
        {"dir/sub/f", "/workspace/dir/sub/f"},
        {"/workspace", "/workspace"},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        if (api_valid_file_path (good[i].in, out, sizeof out) != 0)
            fail_msg ("%s refused", good[i].in);
        assert_string_equal (out, good[i].out);
    }
    const char *bad[] = {"",          "..",      "../etc/passwd", "/workspace/../etc",
                         "a/../../b", "a/..",    "/etc/passwd",   "a\nb",
                         "a\x01z",    "/../../x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (api_valid_file_path (bad[i], out, sizeof out) == 0)
            fail_msg ("%s accepted as %s", bad[i], out);
    char tiny[8];
    assert_int_equal (api_valid_file_path ("a-long-name.txt", tiny, sizeof tiny), -1);
}

static void test_valid_small_things (void **state)
{
    (void)state;
    int limit, offset;
    json_t *fields = json_object ();
    assert_int_equal (api_valid_page (NULL, NULL, &limit, &offset, fields), 0);
    assert_int_equal (limit, 10);
    assert_int_equal (offset, 0);
    assert_int_equal (api_valid_page ("100", "5", &limit, &offset, fields), 0);
    assert_int_equal (limit, 100);
    assert_int_equal (offset, 5);
    const char *bad[][2] = {
        {"0", "0"},  {"101", "0"}, {"x", "0"},   {"10", "-1"},
        {"10", "y"}, {"", "0"},    {"1e3", "0"}, {"99999999999999999999", "0"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_object_clear (fields);
        if (api_valid_page (bad[i][0], bad[i][1], &limit, &offset, fields) != -1)
            fail_msg ("limit %s offset %s accepted", bad[i][0], bad[i][1]);
        assert_true (json_object_size (fields) > 0);
    }
    json_decref (fields);

    assert_true (api_valid_client_id ("exec-1.a:b_c"));
    assert_false (api_valid_client_id (""));
    assert_false (api_valid_client_id ("a b"));
    assert_false (api_valid_client_id ("a/b"));
    char id65[66];
    memset (id65, 'a', 65);
    id65[65] = '\0';
    assert_false (api_valid_client_id (id65));
    assert_true (api_valid_dns_label ("a-b-1"));
    assert_false (api_valid_dns_label ("-a"));
    assert_false (api_valid_dns_label ("A"));
    assert_false (api_valid_dns_label ("a_b"));
    assert_false (api_valid_dns_label (""));
    assert_string_equal (api_agent_language ("python3"), "python");
    assert_string_equal (api_agent_language ("js"), "node");
    assert_null (api_agent_language ("perl6"));
    assert_string_equal (api_runtime_language ("nodejs:20"), "node");
    assert_string_equal (api_runtime_language ("python:3.11"), "python");
    assert_null (api_runtime_language ("nope"));
}

static void test_valid_warmpool (void **state)
{
    (void)state;
    char name[64];
    json_t *spec = NULL, *fields = json_object ();
    json_t *body = s_json ("{\"name\":\"py\",\"runtime\":\"python:3.11\",\"minSize\":2,"
                           "\"maxSize\":5}");
    assert_int_equal (api_valid_warmpool (body, false, name, &spec, fields), 0);
    assert_string_equal (name, "py");
    assert_int_equal (json_integer_value (json_object_get (spec, "minSize")), 2);
    json_decref (spec);
    json_decref (body);
    const char *bad[] = {"{\"runtime\":\"python:3.11\",\"minSize\":1}",
                         "{\"name\":\"Bad\",\"runtime\":\"python:3.11\",\"minSize\":1}",
                         "{\"name\":\"p\",\"runtime\":\"python:3.11\",\"minSize\":-1}",
                         "{\"name\":\"p\",\"runtime\":\"python:3.11\",\"minSize\":5,"
                         "\"maxSize\":2}",
                         "{\"name\":\"p\",\"runtime\":\"python:3.11\",\"minSize\":1,"
                         "\"bogus\":1}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *b = s_json (bad[i]);
        json_object_clear (fields);
        spec = NULL;
        if (api_valid_warmpool (b, false, name, &spec, fields) != -1)
            fail_msg ("%s accepted", bad[i]);
        json_decref (spec);
        json_decref (b);
    }
    /* a patch may leave out the name and the runtime */
    body = s_json ("{\"minSize\":3}");
    json_object_clear (fields);
    assert_int_equal (api_valid_warmpool (body, true, name, &spec, fields), 0);
    json_decref (spec);
    json_decref (body);
    json_decref (fields);
}

/* ---------------------------------------------------------------- WebSocket frames */
static int s_parse (const char *text, api_wsf_t *f, char code[32])
{
    char msg[256];
    memset (f, 0, sizeof *f);
    return api_wsproto_parse (text, strlen (text), f, code, msg, sizeof msg);
}

static void test_wsproto_parse (void **state)
{
    (void)state;
    api_wsf_t f;
    char code[32];
    assert_int_equal (s_parse ("{\"type\":\"ping\",\"timestamp\":42}", &f, code), 0);
    assert_int_equal (f.type, API_WSF_PING);
    assert_int_equal (f.timestamp, 42);
    api_wsf_clear (&f);
    assert_int_equal (s_parse ("{\"type\":\"stdin\",\"executionId\":\"e1\",\"data\":\"hi\","
                               "\"eof\":true}",
                               &f, code),
                      0);
    assert_int_equal (f.type, API_WSF_STDIN);
    assert_string_equal (f.execution_id, "e1");
    assert_int_equal (f.data.len, 2);
    assert_true (f.eof);
    api_wsf_clear (&f);
    assert_int_equal (s_parse ("{\"type\":\"cancel\",\"executionId\":\"e1\"}", &f, code), 0);
    assert_int_equal (f.type, API_WSF_CANCEL);
    api_wsf_clear (&f);
    assert_int_equal (s_parse ("{\"type\":\"execute\",\"executionId\":\"e2\",\"mode\":\"code\","
                               "\"content\":\"1\"}",
                               &f, code),
                      0);
    assert_int_equal (f.type, API_WSF_EXECUTE);
    assert_non_null (f.body);
    api_wsf_clear (&f);

    static const struct {
        const char *text, *code;
    } bad[] = {
        {"", "invalid_message"},
        {"not json", "invalid_message"},
        {"[1,2]", "invalid_message"},
        {"{\"type\":5}", "invalid_message"},
        {"{\"no\":\"type\"}", "invalid_message"},
        {"{\"type\":\"ping\",\"type\":\"cancel\"}", "invalid_message"},
        {"{\"type\":\"dance\"}", "unknown_message_type"},
        {"{\"type\":\"cancel\"}", "invalid_request"},
        {"{\"type\":\"execute\",\"mode\":\"code\",\"content\":\"1\"}", "invalid_request"},
        {"{\"type\":\"cancel\",\"executionId\":\"bad id\"}", "invalid_request"},
        {"{\"type\":\"stdin\",\"executionId\":\"e\",\"data\":5}", "invalid_request"},
        {"{\"type\":\"stdin\",\"executionId\":\"e\",\"data\":\"x\",\"eof\":\"yes\"}",
         "invalid_request"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (s_parse (bad[i].text, &f, code) != -1)
            fail_msg ("%s accepted", bad[i].text);
        if (strcmp (code, bad[i].code) != 0)
            fail_msg ("%s: code %s, want %s", bad[i].text, code, bad[i].code);
        api_wsf_clear (&f);
    }
    /* the error names the execution when the frame had a valid id */
    assert_int_equal (
        s_parse ("{\"type\":\"stdin\",\"executionId\":\"e9\",\"data\":1}", &f, code), -1);
    assert_string_equal (f.execution_id, "e9");
    api_wsf_clear (&f);
    /* binary garbage with NUL bytes inside */
    char garbage[64];
    for (size_t i = 0; i < sizeof garbage; i++)
        garbage[i] = (char)(i * 37);
    char msg[128];
    memset (&f, 0, sizeof f);
    assert_int_equal (api_wsproto_parse (garbage, sizeof garbage, &f, code, msg, sizeof msg),
                      -1);
    api_wsf_clear (&f);
}

static void test_wsproto_build (void **state)
{
    (void)state;
    json_t *e = api_wsproto_error ("invalid_request", "bad", "e1");
    assert_string_equal (json_string_value (json_object_get (e, "type")), "error");
    assert_string_equal (json_string_value (json_object_get (e, "code")), "invalid_request");
    assert_string_equal (json_string_value (json_object_get (e, "executionId")), "e1");
    assert_true (json_is_integer (json_object_get (e, "timestamp")));
    json_decref (e);
    e = api_wsproto_error ("x", "y", NULL);
    assert_null (json_object_get (e, "executionId"));
    json_decref (e);
    json_t *p = api_wsproto_pong (7);
    assert_string_equal (json_string_value (json_object_get (p, "type")), "pong");
    json_decref (p);
    json_t *c = api_wsproto_cancelled ("e3");
    assert_string_equal (json_string_value (json_object_get (c, "type")),
                         "execution_cancelled");
    json_decref (c);
    json_t *s = api_wsproto_start ("e4");
    assert_string_equal (json_string_value (json_object_get (s, "executionId")), "e4");
    json_decref (s);
}

/*  The directly written output frame parses to the fields it was given, whatever the
 *  bytes: quotes, backslashes, every control character, NUL, multi-byte UTF-8. */
static void test_wsproto_output_frame (void **state)
{
    (void)state;
    uint8_t data[64 + 9];
    size_t n = 0;
    for (int c = 0; c < 0x20; c++)
        data[n++] = (uint8_t)c;
    const uint8_t rest[] = {'"',  '\\', '/',  'a',  0x7F, 0xE2,
                            0x82, 0xAC, 0xF0, 0x9F, 0x98, 0x80};
    memcpy (data + n, rest, sizeof rest);
    n += sizeof rest;
    assert_true (api_view_utf8_valid (data, n));
    api_ws_frame_t *f =
        api_wsproto_output_frame (7, "ex\"1", "stderr", 42, 1700000000123, data, n);
    assert_non_null (f);
    assert_int_equal (f->conn_id, 7);
    assert_int_equal (strlen (f->text), f->len);
    json_error_t je;
    json_t *o = json_loadb (f->text, f->len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!o)
        fail_msg ("frame is not JSON: %s in %s", je.text, f->text);
    assert_string_equal (json_string_value (json_object_get (o, "type")), "output");
    assert_string_equal (json_string_value (json_object_get (o, "executionId")), "ex\"1");
    assert_string_equal (json_string_value (json_object_get (o, "stream")), "stderr");
    assert_int_equal (json_integer_value (json_object_get (o, "seq")), 42);
    assert_int_equal (json_integer_value (json_object_get (o, "timestamp")), 1700000000123);
    json_t *content = json_object_get (o, "content");
    assert_int_equal (json_string_length (content), n);
    assert_memory_equal (json_string_value (content), data, n);
    assert_int_equal (json_object_size (o), 6);
    json_decref (o);
    f->msg.destroy (&f->msg);
    /* empty output is a valid frame too */
    f = api_wsproto_output_frame (1, "e", "stdout", 1, 1, (const uint8_t *)"", 0);
    o = json_loadb (f->text, f->len, 0, &je);
    assert_non_null (o);
    assert_string_equal (json_string_value (json_object_get (o, "content")), "");
    json_decref (o);
    f->msg.destroy (&f->msg);
    /* the validity check the bridge relies on */
    const uint8_t bad[] = {'x', 0xC0, 0x80};  /* overlong NUL */
    const uint8_t sur[] = {0xED, 0xA0, 0x80}; /* a surrogate */
    assert_false (api_view_utf8_valid (bad, sizeof bad));
    assert_false (api_view_utf8_valid (sur, sizeof sur));
}

/* ---------------------------------------------------------------- views and envelope */
static void test_view_text_and_utf8 (void **state)
{
    (void)state;
    /* a sequence cut at the end is held back, whole ones are not */
    const uint8_t euro[] = {'a', 0xE2, 0x82, 0xAC};
    assert_int_equal (api_view_utf8_complete (euro, 4), 4);
    assert_int_equal (api_view_utf8_complete (euro, 3), 1);
    assert_int_equal (api_view_utf8_complete (euro, 2), 1);
    assert_int_equal (api_view_utf8_complete ((const uint8_t *)"abc", 3), 3);
    const uint8_t bad[] = {'x', 0xFF};
    assert_int_equal (api_view_utf8_complete (bad, 2), 2); /* invalid: not held back */

    json_t *o = json_object ();
    assert_int_equal (
        api_view_set_text (o, "stdout", "stdoutEncoding", (const uint8_t *)"hi", 2), 0);
    assert_string_equal (json_string_value (json_object_get (o, "stdout")), "hi");
    assert_null (json_object_get (o, "stdoutEncoding"));
    const uint8_t bin[] = {0x00, 0xFF, 0x10};
    api_view_set_text (o, "stderr", "stderrEncoding", bin, sizeof bin);
    assert_string_equal (json_string_value (json_object_get (o, "stderrEncoding")), "base64");
    assert_string_equal (json_string_value (json_object_get (o, "stderr")), "AP8Q");
    json_decref (o);
}

static void test_view_sandbox (void **state)
{
    (void)state;
    json_t *obj = s_json ("{\"metadata\":{\"name\":\"sb-1\",\"resourceVersion\":\"5\","
                          "\"creationTimestamp\":\"2026-01-01T00:00:00Z\"},"
                          "\"spec\":{\"runtime\":\"python:3.11\",\"timeout\":60},"
                          "\"status\":{\"phase\":\"Running\"}}");
    api_sandbox_row_t row = {.warm = true};
    snprintf (row.id, sizeof row.id, "sb-1");
    snprintf (row.runtime, sizeof row.runtime, "python:3.11");
    json_t *v = api_view_sandbox (obj, &row);
    assert_string_equal (json_string_value (json_object_get (v, "id")), "sb-1");
    assert_string_equal (json_string_value (json_object_get (v, "status")), "running");
    assert_true (json_is_true (json_object_get (v, "warmPool")));
    assert_int_equal (json_integer_value (json_object_get (v, "timeout")), 60);
    json_t *ep = json_object_get (v, "endpoints");
    assert_string_equal (json_string_value (json_object_get (ep, "execute")),
                         "/api/v1/sandboxes/sb-1/execute");
    json_decref (v);
    /* being deleted: Terminating whatever the phase says; gone: terminated */
    json_object_set_new (json_object_get (obj, "metadata"), "deletionTimestamp",
                         json_string ("2026-01-01T00:01:00Z"));
    assert_string_equal (api_view_phase (obj), "Terminating");
    assert_string_equal (api_view_phase (NULL), "Terminated");
    v = api_view_sandbox (NULL, &row);
    assert_string_equal (json_string_value (json_object_get (v, "status")), "terminated");
    json_decref (v);
    json_decref (obj);
    /* a hostile object: wrong types everywhere, no crash, defaults */
    obj = s_json ("{\"metadata\":5,\"spec\":[],\"status\":{\"phase\":7,\"conditions\":{}}}");
    v = api_view_sandbox (obj, &row);
    assert_non_null (v);
    assert_string_equal (json_string_value (json_object_get (v, "status")), "pending");
    json_decref (v);
    json_decref (obj);
    assert_string_equal (api_view_status_of_phase ("Failed"), "failed");
    assert_string_equal (api_view_status_of_phase ("Weird"), "pending");
    assert_string_equal (api_view_status_of_phase (NULL), "pending");
}

static void test_http_envelope (void **state)
{
    (void)state;
    api_reply_to_t to = {0};
    snprintf (to.request_id, sizeof to.request_id, "req-1");
    api_resp_t *r = api_resp_error (&to, 404, NULL, "no such sandbox", NULL);
    assert_int_equal (r->status, 404);
    json_t *body = json_loadb (r->body, r->len, 0, NULL);
    json_t *err = json_object_get (body, "error");
    assert_string_equal (json_string_value (json_object_get (err, "code")), "not_found");
    assert_string_equal (json_string_value (json_object_get (err, "message")),
                         "no such sandbox");
    json_decref (body);
    api_resp_destroy (&r->msg);

    /* a 500 says nothing of the cause */
    r = api_resp_internal (&to, "PQexec: password authentication failed for user lss");
    assert_int_equal (r->status, 500);
    assert_null (strstr (r->body, "password"));
    assert_null (strstr (r->body, "PQexec"));
    api_resp_destroy (&r->msg);

    json_t *fields = json_pack ("{s:s}", "runtime", "is required");
    r = api_resp_invalid (&to, "invalid request", fields);
    assert_int_equal (r->status, 400);
    body = json_loadb (r->body, r->len, 0, NULL);
    assert_string_equal (
        json_string_value (json_object_get (
            json_object_get (json_object_get (json_object_get (body, "error"), "details"),
                             "fields"),
            "runtime")),
        "is required");
    json_decref (body);
    api_resp_destroy (&r->msg);

    assert_string_equal (api_http_error_code (401), "unauthorized");
    assert_string_equal (api_http_error_code (429), "rate_limited");
    assert_string_equal (api_http_error_code (413), "payload_too_large");
    assert_true (api_request_id_valid ("abc-123_x.y"));
    assert_false (api_request_id_valid (""));
    assert_false (api_request_id_valid ("a b"));
    assert_false (api_request_id_valid ("a\r\nSet-Cookie: x"));
    char longid[API_REQUEST_ID_MAX + 2];
    memset (longid, 'a', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    assert_false (api_request_id_valid (longid));
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_route_every_pattern),
        cmocka_unit_test (test_route_not_found_and_bad_method),
        cmocka_unit_test (test_route_classes_and_methods),
        cmocka_unit_test (test_valid_create),
        cmocka_unit_test (test_valid_execute),
        cmocka_unit_test (test_valid_packages),
        cmocka_unit_test (test_valid_file_path),
        cmocka_unit_test (test_valid_small_things),
        cmocka_unit_test (test_valid_warmpool),
        cmocka_unit_test (test_wsproto_parse),
        cmocka_unit_test (test_wsproto_build),
        cmocka_unit_test (test_wsproto_output_frame),
        cmocka_unit_test (test_view_text_and_utf8),
        cmocka_unit_test (test_view_sandbox),
        cmocka_unit_test (test_http_envelope),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
