/*  agent_files: confinement (.., absolute escapes, symlinks out), list/stat/read/write/
 *  delete/mkdir semantics and errors, binary chunked round trip. In-process, temp dirs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent_files.h"

typedef struct {
    char ws[256], tmp[256], outside[256];
    agent_files_t *files;
} ctx_t;

static int s_setup (void **state)
{
    ctx_t *c = calloc (1, sizeof *c);
    snprintf (c->ws, sizeof c->ws, "/tmp/lss-af-ws-XXXXXX");
    snprintf (c->tmp, sizeof c->tmp, "/tmp/lss-af-tmp-XXXXXX");
    snprintf (c->outside, sizeof c->outside, "/tmp/lss-af-out-XXXXXX");
    assert_non_null (mkdtemp (c->ws));
    assert_non_null (mkdtemp (c->tmp));
    assert_non_null (mkdtemp (c->outside));
    char r1[300], r2[300];
    snprintf (r1, sizeof r1, "/workspace=%s", c->ws);
    snprintf (r2, sizeof r2, "/tmp=%s", c->tmp);
    const char *roots[] = {r1, r2};
    agent_err_t err = {0};
    c->files = agent_files_new (roots, 2, &err);
    assert_non_null (c->files);
    /* A secret outside every root, and symlinks inside pointing at it. */
    char path[600];
    snprintf (path, sizeof path, "%s/secret", c->outside);
    FILE *f = fopen (path, "w");
    fputs ("top secret", f);
    fclose (f);
    snprintf (path, sizeof path, "%s/abs-link", c->ws);
    char target[600];
    snprintf (target, sizeof target, "%s/secret", c->outside);
    assert_int_equal (symlink (target, path), 0);
    snprintf (path, sizeof path, "%s/dir-link", c->ws);
    assert_int_equal (symlink (c->outside, path), 0);
    snprintf (path, sizeof path, "%s/rel-link", c->ws);
    assert_int_equal (symlink ("../../../../../../../etc/passwd", path), 0);
    *state = c;
    return 0;
}

static int s_teardown (void **state)
{
    ctx_t *c = *state;
    agent_files_destroy (&c->files);
    char cmd[1024];
    snprintf (cmd, sizeof cmd, "%s %s %s", c->ws, c->tmp, c->outside);
    pid_t pid = fork ();
    if (pid == 0) {
        execl ("/bin/rm", "rm", "-rf", c->ws, c->tmp, c->outside, (char *)NULL);
        _exit (127);
    }
    int st;
    waitpid (pid, &st, 0);
    free (c);
    return 0;
}

/* Runs a request; returns 0 and the reply, or -1 and err. */
static int s_do (ctx_t *c, lss_msg_kind_t kind, const void *req, void **rep, lss_msg_kind_t *rk,
                 agent_err_t *err)
{
    memset (err, 0, sizeof *err);
    return agent_files_handle (c->files, "r1", kind, req, rk, rep, err);
}

static void s_expect_error (ctx_t *c, lss_msg_kind_t kind, const void *req, const char *code)
{
    void *rep = NULL;
    lss_msg_kind_t rk;
    agent_err_t err;
    if (s_do (c, kind, req, &rep, &rk, &err) == 0)
        fail_msg ("expected %s, got success", code);
    if (strcmp (err.code, code) != 0)
        fail_msg ("expected %s, got %s: %s", code, err.code, err.message);
    assert_null (rep);
}

static void test_escapes_refused (void **state)
{
    ctx_t *c = *state;
    const char *bad[] = {"../secret",
                         "/workspace/../etc/passwd",
                         "a/../../etc",
                         "/etc/passwd",
                         "/",
                         "/root",
                         "/workspacex/file",
                         "abs-link",
                         "/workspace/dir-link/secret",
                         "rel-link",
                         "dir-link"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lss_file_read_t rd = {.path = (char *)bad[i]};
        s_expect_error (c, LSS_MSG_file_read, &rd, "forbidden_path");
        lss_file_write_t wr = {.path = (char *)bad[i], .data = {(uint8_t *)"x", 1}};
        if (strcmp (bad[i], "dir-link") !=
            0) /* that one is a symlink to a dir: is refused too */
            s_expect_error (c, LSS_MSG_file_write, &wr, "forbidden_path");
    }
    lss_file_list_t ls = {.path = "dir-link"};
    s_expect_error (c, LSS_MSG_file_list, &ls, "forbidden_path");
    lss_file_write_t wr = {.path = "dir-link/new", .data = {(uint8_t *)"x", 1}};
    s_expect_error (c, LSS_MSG_file_write, &wr, "forbidden_path");
    lss_file_mkdir_t mk = {.path = "dir-link/sub", .parents = true};
    s_expect_error (c, LSS_MSG_file_mkdir, &mk, "forbidden_path");
    /* Nothing was created outside. */
    char path[600];
    snprintf (path, sizeof path, "%s/new", c->outside);
    assert_int_equal (access (path, F_OK), -1);
    snprintf (path, sizeof path, "%s/sub", c->outside);
    assert_int_equal (access (path, F_OK), -1);
    /* Deleting a root or escaping through delete is refused. */
    lss_file_delete_t del = {.path = "/workspace", .recursive = true};
    s_expect_error (c, LSS_MSG_file_delete, &del, "forbidden_path");
    del.path = "dir-link/secret";
    s_expect_error (c, LSS_MSG_file_delete, &del, "forbidden_path");
    snprintf (path, sizeof path, "%s/secret", c->outside);
    assert_int_equal (access (path, F_OK), 0);
}

static void test_write_read_list_delete (void **state)
{
    ctx_t *c = *state;
    void *rep;
    lss_msg_kind_t rk;
    agent_err_t err;
    /* write without parents fails, with parents succeeds; leading slash or not is the same */
    lss_file_write_t wr = {
        .path = "a/b/c.txt", .data = {(uint8_t *)"hello", 5}, .truncate = true};
    s_expect_error (c, LSS_MSG_file_write, &wr, "not_found");
    wr.parents = true;
    assert_int_equal (s_do (c, LSS_MSG_file_write, &wr, &rep, &rk, &err), 0);
    assert_int_equal (rk, LSS_MSG_file_written);
    assert_string_equal (((lss_file_written_t *)rep)->path, "/workspace/a/b/c.txt");
    assert_int_equal (((lss_file_written_t *)rep)->size, 5);
    lss_proto_body_free (rk, &rep);
    lss_file_read_t rd = {.path = "/workspace/a/b/c.txt"};
    assert_int_equal (s_do (c, LSS_MSG_file_read, &rd, &rep, &rk, &err), 0);
    lss_file_data_t *d = rep;
    assert_int_equal (d->data.len, 5);
    assert_memory_equal (d->data.data, "hello", 5);
    assert_true (d->eof);
    assert_int_equal (d->size, 5);
    lss_proto_body_free (rk, &rep);
    /* list */
    lss_file_list_t ls = {.path = "/workspace/a/b"};
    assert_int_equal (s_do (c, LSS_MSG_file_list, &ls, &rep, &rk, &err), 0);
    json_t *entries = ((lss_file_entries_t *)rep)->entries;
    assert_int_equal (json_array_size (entries), 1);
    json_t *e0 = json_array_get (entries, 0);
    assert_string_equal (json_string_value (json_object_get (e0, "name")), "c.txt");
    assert_string_equal (json_string_value (json_object_get (e0, "path")),
                         "/workspace/a/b/c.txt");
    assert_int_equal (json_integer_value (json_object_get (e0, "size")), 5);
    assert_false (json_is_true (json_object_get (e0, "isDir")));
    lss_proto_body_free (rk, &rep);
    /* stat of a directory; /tmp root works too */
    lss_file_stat_t st = {.path = "a"};
    assert_int_equal (s_do (c, LSS_MSG_file_stat, &st, &rep, &rk, &err), 0);
    assert_true (((lss_file_info_t *)rep)->is_dir);
    lss_proto_body_free (rk, &rep);
    lss_file_write_t wt = {.path = "/tmp/x", .data = {(uint8_t *)"1", 1}};
    assert_int_equal (s_do (c, LSS_MSG_file_write, &wt, &rep, &rk, &err), 0);
    lss_proto_body_free (rk, &rep);
    char path[600];
    snprintf (path, sizeof path, "%s/x", c->tmp);
    assert_int_equal (access (path, F_OK), 0);
    /* errors */
    lss_file_read_t dir = {.path = "a"};
    s_expect_error (c, LSS_MSG_file_read, &dir, "is_a_directory");
    lss_file_read_t missing = {.path = "nope"};
    s_expect_error (c, LSS_MSG_file_read, &missing, "not_found");
    lss_file_mkdir_t mk = {.path = "a"};
    s_expect_error (c, LSS_MSG_file_mkdir, &mk, "exists");
    mk.parents = true; /* mkdir -p of an existing dir is fine */
    assert_int_equal (s_do (c, LSS_MSG_file_mkdir, &mk, &rep, &rk, &err), 0);
    lss_proto_body_free (rk, &rep);
    lss_file_delete_t del = {.path = "a"};
    s_expect_error (c, LSS_MSG_file_delete, &del, "not_empty");
    del.recursive = true;
    assert_int_equal (s_do (c, LSS_MSG_file_delete, &del, &rep, &rk, &err), 0);
    lss_proto_body_free (rk, &rep);
    snprintf (path, sizeof path, "%s/a", c->ws);
    assert_int_equal (access (path, F_OK), -1);
    s_expect_error (c, LSS_MSG_file_delete, &del, "not_found");
}

static void test_binary_chunks (void **state)
{
    ctx_t *c = *state;
    size_t size = 3 * 1024 * 1024 + 12345;
    uint8_t *data = malloc (size);
    for (size_t i = 0; i < size; i++)
        data[i] = (uint8_t)(i * 131 + (i >> 8));
    void *rep;
    lss_msg_kind_t rk;
    agent_err_t err;
    size_t chunk = 1 << 20;
    for (size_t off = 0; off < size; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        lss_file_write_t wr = {.path = "bin/blob",
                               .offset = (int64_t)off,
                               .data = {data + off, n},
                               .truncate = off == 0,
                               .parents = true};
        assert_int_equal (s_do (c, LSS_MSG_file_write, &wr, &rep, &rk, &err), 0);
        assert_int_equal (((lss_file_written_t *)rep)->size, (int64_t)(off + n));
        lss_proto_body_free (rk, &rep);
    }
    uint8_t *back = malloc (size);
    size_t got = 0;
    bool eof = false;
    while (!eof) {
        lss_file_read_t rd = {.path = "bin/blob", .offset = (int64_t)got};
        assert_int_equal (s_do (c, LSS_MSG_file_read, &rd, &rep, &rk, &err), 0);
        lss_file_data_t *d = rep;
        assert_true (d->data.len <= AGENT_FILES_CHUNK);
        memcpy (back + got, d->data.data, d->data.len);
        got += d->data.len;
        eof = d->eof;
        lss_proto_body_free (rk, &rep);
    }
    assert_int_equal (got, size);
    assert_memory_equal (back, data, size);
    /* truncate=true replaces the file */
    lss_file_write_t wr = {.path = "bin/blob", .data = {(uint8_t *)"z", 1}, .truncate = true};
    assert_int_equal (s_do (c, LSS_MSG_file_write, &wr, &rep, &rk, &err), 0);
    assert_int_equal (((lss_file_written_t *)rep)->size, 1);
    lss_proto_body_free (rk, &rep);
    assert_true (agent_files_disk_usage (c->files, 0, 1000) > 0);
    free (data);
    free (back);
}

static void test_bad_roots (void **state)
{
    (void)state;
    agent_err_t err = {0};
    const char *r1[] = {"workspace=/tmp"};
    assert_null (agent_files_new (r1, 1, &err));
    const char *r2[] = {"/workspace=/no/such/dir"};
    assert_null (agent_files_new (r2, 1, &err));
    assert_string_equal (err.code, "io_error");
    assert_null (agent_files_new (r2, 0, &err));
}

int main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_escapes_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_write_read_list_delete, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_binary_chunks, s_setup, s_teardown),
        cmocka_unit_test (test_bad_roots),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
