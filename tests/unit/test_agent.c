/*  lss-agent as a real process (outside a sandbox; as a subreaper instead of PID 1),
 *  driven over its ROUTER: exec modes, streams, exit codes and signals, stdin, cancel,
 *  deadline killing the whole group, output cap, concurrency limit, requester silence,
 *  credit flow control, bad requests, files through the socket, health, orphan reaping,
 *  and SIGTERM with an execution running. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <czmq.h>
#include <dirent.h>

#include "lss_bus.h"
#include "lss_curve.h"
#include "lss_log.h"
#include "lss_testproc.h"
#include "lss_util.h"

typedef struct {
    tp_proc_t proc;
    char dir[128];
    char endpoint[256];
    zsock_t *dealer;
} agent_t;

/* The live agent's process and socket, stopped by the teardown when an assertion jumps
 * out of a test (the test's own agent_t is gone with its stack frame by then). */
static tp_proc_t s_live_proc;
static zsock_t *s_live_dealer;

/*  Starts lss-agent on endpoint (NULL: ipc in its directory) with extra flags and envp
 *  (NULL: ours), and a DEALER to it — a CURVE client with key pair sec to server key
 *  server_pub when sec is set. */
static void s_agent_start_ex (agent_t *a, const char *endpoint, const char *const *extra,
                              char *const *envp, const char *sec, const char *server_pub)
{
    memset (a, 0, sizeof *a);
    snprintf (a->dir, sizeof a->dir, "/tmp/lss-agent-XXXXXX");
    assert_non_null (mkdtemp (a->dir));
    char ws[200], root[256], path[PATH_MAX];
    snprintf (ws, sizeof ws, "%s/ws", a->dir);
    mkdir (ws, 0700);
    snprintf (root, sizeof root, "/workspace=%s", ws);
    if (endpoint)
        snprintf (a->endpoint, sizeof a->endpoint, "%s", endpoint);
    else
        snprintf (a->endpoint, sizeof a->endpoint, "ipc://%s/agent.sock", a->dir);
    char *argv[32] = {(char *)tp_build_path (path, sizeof path, "bin/lss-agent"), "--endpoint",
                      a->endpoint, "--root", root};
    int n = 5;
    for (int i = 0; extra && extra[i] && n < 30; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    assert_int_equal (tp_spawn (&a->proc, argv, envp, true), 0);
    char line[512];
    if (tp_read_line (&a->proc, line, sizeof line, 10000))
        fail_msg ("agent did not become ready: '%s'", line);
    assert_non_null (strstr (line, "ready "));
    a->dealer = lss_bus_socket_new (ZMQ_DEALER, NULL, NULL);
    assert_non_null (a->dealer);
    char err[128];
    if (sec)
        assert_int_equal (lss_curve_client_apply (a->dealer, sec, server_pub, err, sizeof err),
                          0);
    assert_int_equal (zsock_connect (a->dealer, "%s", a->endpoint), 0);
    s_live_proc = a->proc;
    s_live_dealer = a->dealer;
}

static void s_agent_start (agent_t *a, const char *const *extra)
{
    s_agent_start_ex (a, NULL, extra, NULL, NULL, NULL);
}

static void s_agent_stop (agent_t *a)
{
    s_live_dealer = NULL;
    s_live_proc.pid = 0;
    s_live_proc.out_fd = -1;
    zsock_destroy (&a->dealer);
    if (a->proc.pid > 0) {
        kill (a->proc.pid, SIGTERM);
        int st = tp_wait (&a->proc, 5000);
        assert_true (WIFEXITED (st) && WEXITSTATUS (st) == 0);
    }
    pid_t pid = fork ();
    if (pid == 0) {
        execl ("/bin/rm", "rm", "-rf", a->dir, (char *)NULL);
        _exit (127);
    }
    waitpid (pid, NULL, 0);
}

static int s_teardown (void **state)
{
    (void)state;
    zsock_destroy (&s_live_dealer);
    if (s_live_proc.pid > 0)
        tp_kill (&s_live_proc);
    s_live_proc.pid = 0;
    return 0;
}

static void s_send (agent_t *a, lss_msg_kind_t kind, const void *body, lss_envelope_t *env_out)
{
    lss_envelope_t env;
    assert_int_equal (lss_bus_envelope_init (&env, kind, NULL, "test", 1, NULL), 0);
    assert_int_equal (lss_bus_send (a->dealer, NULL, 0, NULL, &env, kind, body), 0);
    if (env_out)
        *env_out = env;
}

/* Receives one message within timeout_ms; returns its kind (LSS_MSG_NONE on timeout). */
static lss_msg_kind_t s_recv (agent_t *a, int timeout_ms, void **body)
{
    zpoller_t *p = zpoller_new (a->dealer, NULL);
    void *ready = zpoller_wait (p, timeout_ms);
    zpoller_destroy (&p);
    *body = NULL;
    if (!ready)
        return LSS_MSG_NONE;
    lss_envelope_t env;
    lss_msg_kind_t kind;
    char err[256];
    if (lss_bus_recv (a->dealer, NULL, NULL, 0, &env, &kind, body, err, sizeof err))
        fail_msg ("bad message from agent: %s", err);
    return kind;
}

typedef struct {
    bool started;
    int64_t pid;
    lss_buf_t out, err;
    lss_exec_end_t *end;
    lss_error_t *error;
    int64_t last_seq;
} result_t;

/* Collects messages of one execution until exec.end or an error reply; output seq must
 * continue from s_seq_base (chunks the test read itself before). */
static int64_t s_seq_base;
static void s_collect (agent_t *a, result_t *r, int timeout_ms)
{
    memset (r, 0, sizeof *r);
    r->last_seq = s_seq_base;
    s_seq_base = 0;
    lss_buf_init (&r->out, 64 << 20);
    lss_buf_init (&r->err, 64 << 20);
    long long deadline = tp_now_ms () + timeout_ms;
    while (!r->end && !r->error) {
        long long left = deadline - tp_now_ms ();
        if (left <= 0)
            fail_msg ("execution did not end in %d ms", timeout_ms);
        void *body;
        lss_msg_kind_t k = s_recv (a, (int)left, &body);
        if (k == LSS_MSG_exec_started) {
            r->started = true;
            r->pid = ((lss_exec_started_t *)body)->pid;
        } else if (k == LSS_MSG_exec_output) {
            lss_exec_output_t *o = body;
            assert_int_equal (o->seq, r->last_seq + 1);
            r->last_seq = o->seq;
            lss_buf_append (strcmp (o->stream, "stdout") == 0 ? &r->out : &r->err, o->data.data,
                            o->data.len);
        } else if (k == LSS_MSG_exec_end) {
            r->end = body;
            continue;
        } else if (k == LSS_MSG_error) {
            r->error = body;
            continue;
        }
        lss_proto_body_free (k, &body);
    }
}

static void s_result_free (result_t *r)
{
    lss_buf_free (&r->out);
    lss_buf_free (&r->err);
    void *e = r->end, *x = r->error;
    lss_proto_body_free (LSS_MSG_exec_end, &e);
    lss_proto_body_free (LSS_MSG_error, &x);
}

static void s_shell (agent_t *a, const char *id, const char *cmd, int64_t timeout_ms)
{
    lss_exec_start_t req = {
        .exec_id = (char *)id, .shell = (char *)cmd, .timeout_ms = timeout_ms};
    s_send (a, LSS_MSG_exec_start, &req, NULL);
}

static void test_exec_basics (void **state)
{
    (void)state;
    agent_t a;
    s_agent_start (&a, NULL);
    result_t r;
    char *argv[] = {"echo", "hello", "world"};
    lss_exec_start_t req = {.exec_id = "e1", .argv = {argv, 3}};
    s_send (&a, LSS_MSG_exec_start, &req, NULL);
    s_collect (&a, &r, 5000);
    if (r.end && r.end->error)
        fail_msg ("exec failed: %s", r.end->error);
    if (r.error)
        fail_msg ("exec refused: %s %s", r.error->code, r.error->message);
    assert_true (r.started && r.pid > 0);
    assert_non_null (r.end);
    assert_int_equal (r.end->exit_code, 0);
    assert_int_equal (r.out.len, 12);
    assert_memory_equal (r.out.data, "hello world\n", 12);
    assert_int_equal (r.end->stdout_bytes, 12);
    s_result_free (&r);

    s_shell (&a, "e2", "echo out; echo err >&2; exit 7", 0);
    s_collect (&a, &r, 5000);
    assert_int_equal (r.end->exit_code, 7);
    assert_int_equal (r.end->signal, 0);
    assert_int_equal (r.out.len, 4);
    assert_memory_equal (r.out.data, "out\n", 4);
    assert_int_equal (r.err.len, 4);
    assert_memory_equal (r.err.data, "err\n", 4);
    assert_int_equal (r.end->stderr_bytes, 4);
    assert_true (r.end->wall_ms >= 0);
    s_result_free (&r);

    s_shell (&a, "e3", "kill -9 $$", 0);
    s_collect (&a, &r, 5000);
    assert_int_equal (r.end->exit_code, -1);
    assert_int_equal (r.end->signal, 9);
    s_result_free (&r);

    /* env and cwd */
    char *keys[] = {"GREETING"}, *vals[] = {"bonjour"};
    lss_exec_start_t envreq = {
        .exec_id = "e4", .shell = "echo $GREETING; pwd", .cwd = "/tmp", .env = {keys, vals, 1}};
    s_send (&a, LSS_MSG_exec_start, &envreq, NULL);
    s_collect (&a, &r, 5000);
    assert_int_equal (r.out.len, strlen ("bonjour\n/tmp\n"));
    assert_memory_equal (r.out.data, "bonjour\n/tmp\n", r.out.len);
    s_result_free (&r);

    /* a program that does not exist ends with an error, not a hang */
    char *nope[] = {"/no/such/program"};
    lss_exec_start_t bad = {.exec_id = "e5", .argv = {nope, 1}};
    s_send (&a, LSS_MSG_exec_start, &bad, NULL);
    s_collect (&a, &r, 5000);
    assert_non_null (r.end);
    assert_int_equal (r.end->exit_code, -1);
    assert_non_null (r.end->error);
    assert_non_null (strstr (r.end->error, "/no/such/program"));
    s_result_free (&r);
    s_agent_stop (&a);
}

static void test_code_languages (void **state)
{
    (void)state;
    agent_t a;
    s_agent_start (&a, NULL);
    result_t r;
    const char *code =
        "import sys\nprint(6 * 7)\nprint('oops', file=sys.stderr)\nsys.exit(3)\n";
    lss_exec_start_t req = {
        .exec_id = "py", .language = "python", .code = {(uint8_t *)code, strlen (code)}};
    if (access ("/usr/bin/python3", X_OK) == 0) {
        s_send (&a, LSS_MSG_exec_start, &req, NULL);
        s_collect (&a, &r, 10000);
        assert_int_equal (r.end->exit_code, 3);
        assert_memory_equal (r.out.data, "42\n", 3);
        assert_memory_equal (r.err.data, "oops\n", 5);
        s_result_free (&r);
    }
    const char *sh = "for i in 1 2 3; do printf $i; done";
    lss_exec_start_t bash = {
        .exec_id = "sh", .language = "bash", .code = {(uint8_t *)sh, strlen (sh)}};
    s_send (&a, LSS_MSG_exec_start, &bash, NULL);
    s_collect (&a, &r, 5000);
    assert_int_equal (r.out.len, 3);
    assert_memory_equal (r.out.data, "123", 3);
    s_result_free (&r);
    /* the code file is gone afterwards */
    lss_exec_start_t cobol = {
        .exec_id = "cb", .language = "cobol", .code = {(uint8_t *)"x", 1}};
    s_send (&a, LSS_MSG_exec_start, &cobol, NULL);
    s_collect (&a, &r, 5000);
    assert_non_null (r.error);
    assert_string_equal (r.error->code, "invalid_request");
    assert_non_null (strstr (r.error->message, "unsupported language"));
    assert_string_equal (r.error->exec_id, "cb");
    s_result_free (&r);
    s_agent_stop (&a);
}

static void test_stdin_stream (void **state)
{
    (void)state;
    agent_t a;
    s_agent_start (&a, NULL);
    char *cat[] = {"cat"};
    lss_exec_start_t req = {
        .exec_id = "in", .argv = {cat, 1}, .stdin = {(uint8_t *)"abc", 3}, .stdin_open = true};
    s_send (&a, LSS_MSG_exec_start, &req, NULL);
    lss_exec_stdin_t more = {.exec_id = "in", .data = {(uint8_t *)"def", 3}};
    s_send (&a, LSS_MSG_exec_stdin, &more, NULL);
    lss_exec_stdin_t eof = {.exec_id = "in", .data = {(uint8_t *)"ghi", 3}, .eof = true};
    s_send (&a, LSS_MSG_exec_stdin, &eof, NULL);
    result_t r;
    s_collect (&a, &r, 5000);
    assert_int_equal (r.end->exit_code, 0);
    assert_int_equal (r.out.len, 9);
    assert_memory_equal (r.out.data, "abcdefghi", 9);
    s_result_free (&r);
    /* stdin to an unknown execution */
    s_send (&a, LSS_MSG_exec_stdin, &more, NULL);
    void *b;
    assert_int_equal (s_recv (&a, 5000, &b), LSS_MSG_error);
    assert_string_equal (((lss_error_t *)b)->code, "not_found");
    lss_proto_body_free (LSS_MSG_error, &b);
    s_agent_stop (&a);
}

static bool s_process_with_arg (const char *needle)
{
    DIR *d = opendir ("/proc");
    struct dirent *de;
    bool found = false;
    while (d && !found && (de = readdir (d))) {
        char path[300], buf[512];
        snprintf (path, sizeof path, "/proc/%s/cmdline", de->d_name);
        FILE *f = fopen (path, "r");
        if (!f)
            continue;
        size_t n = fread (buf, 1, sizeof buf - 1, f);
        fclose (f);
        for (size_t i = 0; i < n; i++)
            if (buf[i] == '\0')
                buf[i] = ' ';
        buf[n] = '\0';
        found = strstr (buf, needle) != NULL;
    }
    if (d)
        closedir (d);
    return found;
}

static void test_cancel_and_deadline_kill_group (void **state)
{
    (void)state;
    agent_t a;
    s_agent_start (&a, NULL);
    result_t r;
    s_shell (&a, "c1", "sleep 31.4159 & sleep 31.4159; echo never", 0);
    void *b;
    assert_int_equal (s_recv (&a, 5000, &b), LSS_MSG_exec_started);
    lss_proto_body_free (LSS_MSG_exec_started, &b);
    long long t0 = tp_now_ms ();
    lss_exec_cancel_t cancel = {.exec_id = "c1"};
    s_send (&a, LSS_MSG_exec_cancel, &cancel, NULL);
    s_collect (&a, &r, 5000);
    assert_true (r.end->cancelled);
    assert_false (r.end->timed_out);
    assert_int_equal (r.end->signal, 9);
    assert_true (tp_now_ms () - t0 < 3000);
    s_result_free (&r);

    s_shell (&a, "d1", "sleep 27.1828 & sleep 27.1828", 300);
    t0 = tp_now_ms ();
    s_collect (&a, &r, 5000);
    assert_true (r.end->timed_out);
    assert_int_equal (r.end->signal, 9);
    assert_true (tp_now_ms () - t0 >= 250);
    s_result_free (&r);
    /* The backgrounded members of both groups are gone too. */
    long long deadline = tp_now_ms () + 3000;
    while ((s_process_with_arg ("sleep 31.4159") || s_process_with_arg ("sleep 27.1828")) &&
           tp_now_ms () < deadline)
        usleep (10000);
    assert_false (s_process_with_arg ("sleep 31.4159"));
    assert_false (s_process_with_arg ("sleep 27.1828"));
    s_agent_stop (&a);
}

static void test_output_cap (void **state)
{
    (void)state;
    agent_t a;
    s_agent_start (&a, NULL);
    lss_exec_start_t req = {.exec_id = "flood",
                            .shell = "head -c 3000000 /dev/zero; echo tail >&2",
                            .max_output = 1000};
    s_send (&a, LSS_MSG_exec_start, &req, NULL);
    result_t r;
    s_collect (&a, &r, 10000);
    assert_int_equal (r.end->exit_code, 0);
    assert_int_equal (r.out.len, 1000);
    assert_true (r.end->stdout_truncated);
    assert_int_equal (r.end->stdout_bytes, 3000000);
    assert_false (r.end->stderr_truncated);
    assert_int_equal (r.err.len, 5);
    s_result_free (&r);
    s_agent_stop (&a);
}

static void test_concurrency_limit (void **state)
{
    (void)state;
    const char *extra[] = {"--max-execs", "2", NULL};
    agent_t a;
    s_agent_start (&a, extra);
    s_shell (&a, "s1", "sleep 30", 0);
    s_shell (&a, "s2", "sleep 30", 0);
    s_shell (&a, "s3", "sleep 30", 0);
    int started = 0;
    bool limited = false;
    while (started < 2 || !limited) {
        void *b;
        lss_msg_kind_t k = s_recv (&a, 5000, &b);
        assert_true (k != LSS_MSG_NONE);
        if (k == LSS_MSG_exec_started)
            started++;
        if (k == LSS_MSG_error) {
            assert_string_equal (((lss_error_t *)b)->code, "limit_exceeded");
            assert_string_equal (((lss_error_t *)b)->exec_id, "s3");
            limited = true;
        }
        lss_proto_body_free (k, &b);
    }
    /* a duplicate id is refused while running */
    s_shell (&a, "s1", "true", 0);
    void *b;
    assert_int_equal (s_recv (&a, 5000, &b), LSS_MSG_error);
    assert_string_equal (((lss_error_t *)b)->code, "exists");
    lss_proto_body_free (LSS_MSG_error, &b);
    s_agent_stop (&a); /* SIGTERM with executions running: ends them, exits 0 */
}

static void test_requester_silence (void **state)
{
    (void)state;
    const char *extra[] = {"--requester-timeout", "300", NULL};
    agent_t a;
    s_agent_start (&a, extra);
    s_shell (&a, "lost", "sleep 30", 0);
    long long t0 = tp_now_ms ();
    result_t r;
    s_collect (&a, &r, 5000); /* we stay silent; the agent gives up on us */
    assert_true (r.end->cancelled);
    assert_true (tp_now_ms () - t0 >= 250);
    s_result_free (&r);
    /* pings keep a requester alive */
    s_shell (&a, "kept", "sleep 0.8; echo done", 0);
    long long end = tp_now_ms () + 5000;
    bool done = false;
    while (!done && tp_now_ms () < end) {
        lss_agent_ping_t ping = {.nonce = 7};
        s_send (&a, LSS_MSG_agent_ping, &ping, NULL);
        void *b;
        lss_msg_kind_t k = s_recv (&a, 100, &b);
        if (k == LSS_MSG_agent_pong)
            assert_int_equal (((lss_agent_pong_t *)b)->nonce, 7);
        if (k == LSS_MSG_exec_end) {
            assert_false (((lss_exec_end_t *)b)->cancelled);
            assert_int_equal (((lss_exec_end_t *)b)->exit_code, 0);
            done = true;
        }
        lss_proto_body_free (k, &b);
    }
    assert_true (done);
    s_agent_stop (&a);
}

static void test_credit_flow_control (void **state)
{
    (void)state;
    agent_t a;
    s_agent_start (&a, NULL);
    lss_exec_start_t req = {.exec_id = "fc", .shell = "head -c 100 /dev/zero", .credit = 10};
    s_send (&a, LSS_MSG_exec_start, &req, NULL);
    size_t got = 0;
    void *b;
    lss_msg_kind_t k;
    /* Within the credit, then silence: nothing more arrives while no credit is granted. */
    while ((k = s_recv (&a, 300, &b)) != LSS_MSG_NONE) {
        assert_true (k != LSS_MSG_exec_end);
        if (k == LSS_MSG_exec_output) {
            got += ((lss_exec_output_t *)b)->data.len;
            s_seq_base = ((lss_exec_output_t *)b)->seq;
        }
        lss_proto_body_free (k, &b);
    }
    assert_int_equal (got, 10);
    lss_exec_credit_t credit = {.exec_id = "fc", .bytes = 1000};
    s_send (&a, LSS_MSG_exec_credit, &credit, NULL);
    result_t r;
    s_collect (&a, &r, 5000);
    assert_int_equal (got + r.out.len, 100);
    assert_int_equal (r.end->exit_code, 0);
    s_result_free (&r);
    s_agent_stop (&a);
}

/* Output written fast goes out in few messages (the agent reads a stream still running
 * again only 1 ms after a read that did not fill a chunk), all of it, in order; output
 * after a quiet spell is not merged into what came before. */
static void test_output_coalesced (void **state)
{
    (void)state;
    agent_t a;
    s_agent_start (&a, NULL);
    s_shell (&a, "burst", "i=0; while [ $i -lt 3000 ]; do echo line$i; i=$((i+1)); done", 0);
    result_t r;
    s_collect (&a, &r, 20000);
    assert_int_equal (r.end->exit_code, 0);
    lss_buf_t want;
    lss_buf_init (&want, 1 << 20);
    for (int i = 0; i < 3000; i++) {
        char line[32];
        int n = snprintf (line, sizeof line, "line%d\n", i);
        lss_buf_append (&want, line, (size_t)n);
    }
    assert_int_equal (r.out.len, want.len);
    assert_memory_equal (r.out.data, want.data, want.len);
    /* 3000 writes: 276-458 messages without the hold-off on an idle machine (one per
     * wake-up of the agent), 6 with it (about one per millisecond of the loop) */
    if (r.last_seq > 100)
        fail_msg ("3000 small writes went out in %lld messages", (long long)r.last_seq);
    lss_buf_free (&want);
    s_result_free (&r);

    s_shell (&a, "quiet", "printf a; sleep 0.3; printf b", 0);
    s_collect (&a, &r, 20000);
    assert_int_equal (r.end->exit_code, 0);
    assert_int_equal (r.out.len, 2);
    assert_int_equal (r.last_seq, 2);
    s_result_free (&r);
    s_agent_stop (&a);
}

static void test_bad_requests (void **state)
{
    (void)state;
    agent_t a;
    s_agent_start (&a, NULL);
    void *b;
    const uint8_t junk[] = {0x93, 0x01};
    zmq_send (zsock_resolve (a.dealer), junk, sizeof junk, 0);
    assert_int_equal (s_recv (&a, 5000, &b), LSS_MSG_error);
    assert_string_equal (((lss_error_t *)b)->code, "invalid_message");
    lss_proto_body_free (LSS_MSG_error, &b);
    /* a reply type sent as a request */
    lss_exec_end_t end = {.exec_id = "x"};
    lss_envelope_t env;
    s_send (&a, LSS_MSG_exec_end, &end, &env);
    assert_int_equal (s_recv (&a, 5000, &b), LSS_MSG_error);
    assert_string_equal (((lss_error_t *)b)->code, "invalid_request");
    assert_string_equal (((lss_error_t *)b)->ref, env.id);
    lss_proto_body_free (LSS_MSG_error, &b);
    /* argv and shell together */
    char *argv[] = {"true"};
    lss_exec_start_t two = {.exec_id = "two", .argv = {argv, 1}, .shell = "true"};
    s_send (&a, LSS_MSG_exec_start, &two, NULL);
    assert_int_equal (s_recv (&a, 5000, &b), LSS_MSG_error);
    assert_string_equal (((lss_error_t *)b)->code, "invalid_request");
    lss_proto_body_free (LSS_MSG_error, &b);
    /* bad env name, timeout out of range */
    char *keys[] = {"A=B"}, *vals[] = {"c"};
    lss_exec_start_t badenv = {.exec_id = "env", .shell = "true", .env = {keys, vals, 1}};
    s_send (&a, LSS_MSG_exec_start, &badenv, NULL);
    assert_int_equal (s_recv (&a, 5000, &b), LSS_MSG_error);
    lss_proto_body_free (LSS_MSG_error, &b);
    lss_exec_start_t slow = {.exec_id = "slow", .shell = "true", .timeout_ms = 999999999};
    s_send (&a, LSS_MSG_exec_start, &slow, NULL);
    assert_int_equal (s_recv (&a, 5000, &b), LSS_MSG_error);
    lss_proto_body_free (LSS_MSG_error, &b);
    /* still alive and serving */
    lss_agent_ping_t ping = {.nonce = 1};
    s_send (&a, LSS_MSG_agent_ping, &ping, NULL);
    assert_int_equal (s_recv (&a, 5000, &b), LSS_MSG_agent_pong);
    lss_proto_body_free (LSS_MSG_agent_pong, &b);
    s_agent_stop (&a);
}

static void test_files_and_health_over_socket (void **state)
{
    (void)state;
    agent_t a;
    s_agent_start (&a, NULL);
    void *b;
    lss_file_write_t wr = {.path = "/workspace/hello.txt", .data = {(uint8_t *)"hi there", 8}};
    lss_envelope_t env;
    s_send (&a, LSS_MSG_file_write, &wr, &env);
    assert_int_equal (s_recv (&a, 5000, &b), LSS_MSG_file_written);
    assert_string_equal (((lss_file_written_t *)b)->ref, env.id);
    assert_int_equal (((lss_file_written_t *)b)->size, 8);
    lss_proto_body_free (LSS_MSG_file_written, &b);
    /* a program sees the file the file API wrote */
    s_shell (&a, "cat", "cat hello.txt", 0);
    result_t r;
    s_collect (&a, &r, 5000);
    assert_int_equal (r.out.len, 8);
    assert_memory_equal (r.out.data, "hi there", 8);
    s_result_free (&r);
    lss_file_read_t rd = {.path = "../../etc/passwd"};
    s_send (&a, LSS_MSG_file_read, &rd, NULL);
    assert_int_equal (s_recv (&a, 5000, &b), LSS_MSG_error);
    assert_string_equal (((lss_error_t *)b)->code, "forbidden_path");
    lss_proto_body_free (LSS_MSG_error, &b);
    lss_agent_health_t h = {.disk = true};
    s_send (&a, LSS_MSG_agent_health, &h, NULL);
    assert_int_equal (s_recv (&a, 5000, &b), LSS_MSG_agent_usage);
    lss_agent_usage_t *u = b;
    assert_true (u->processes >= 1);
    assert_true (u->memory_bytes > 0);
    assert_true (u->disk_bytes > 0);
    assert_int_equal (u->executions, 0);
    lss_proto_body_free (LSS_MSG_agent_usage, &b);
    s_agent_stop (&a);
}

/*  CURVE on TCP: the allowed executor key is served; the agent's secret never reaches
 *  an execution (environment, /proc/<agent>/environ); a plain client and a client with
 *  another key get nothing; bad CURVE settings are refused at start. */
static void test_curve (void **state)
{
    (void)state;
    char apub[41], asec[41], xpub[41], xsec[41], opub[41], osec[41];
    assert_int_equal (lss_curve_keypair (apub, asec), 0);
    assert_int_equal (lss_curve_keypair (xpub, xsec), 0);
    assert_int_equal (lss_curve_keypair (opub, osec), 0);
    zsock_t *probe = zsock_new (ZMQ_ROUTER); /* a free port */
    int port = zsock_bind (probe, "tcp://127.0.0.1:*");
    assert_true (port > 0);
    zsock_destroy (&probe);
    char ep[64], env_secret[80];
    snprintf (ep, sizeof ep, "tcp://127.0.0.1:%d", port);
    snprintf (env_secret, sizeof env_secret, "LSS_AGENT_CURVE_SECRET=%s", asec);
    char *envp[] = {env_secret, "PATH=/usr/bin:/bin", NULL};
    const char *extra[] = {"--curve-client", xpub, NULL};
    agent_t a;
    s_agent_start_ex (&a, ep, extra, envp, xsec, apub);
    result_t r;
    s_shell (&a, "c1", "env; cat /proc/$PPID/environ 2>/dev/null | tr '\\0' '\\n'", 0);
    s_collect (&a, &r, 5000);
    assert_non_null (r.end);
    assert_int_equal (r.end->exit_code, 0);
    lss_buf_append (&r.out, "", 1);
    assert_non_null (strstr ((char *)r.out.data, "PATH=/usr/bin:/bin")); /* env was read */
    assert_null (strstr ((char *)r.out.data, "LSS_AGENT_CURVE_SECRET"));
    assert_null (strstr ((char *)r.out.data, asec));
    s_result_free (&r);

    /* others are not heard: a plain DEALER and one with a key the agent does not allow */
    const char *secs[] = {NULL, osec};
    for (int i = 0; i < 2; i++) {
        zsock_t *d = zsock_new (ZMQ_DEALER);
        char err[128];
        zsock_set_linger (d, 0);
        if (secs[i])
            assert_int_equal (lss_curve_client_apply (d, secs[i], apub, err, sizeof err), 0);
        assert_int_equal (zsock_connect (d, "%s", ep), 0);
        agent_t other = {.dealer = d};
        /* the send itself may be refused (EAGAIN) once the agent has dropped the failed
         * handshake and the DEALER has no pipe left: either way nothing may come back */
        lss_exec_start_t req = {.exec_id = "c2", .shell = "echo hi"};
        lss_envelope_t env;
        assert_int_equal (
            lss_bus_envelope_init (&env, LSS_MSG_exec_start, NULL, "test", 1, NULL), 0);
        int sent = lss_bus_send (d, NULL, 0, NULL, &env, LSS_MSG_exec_start, &req);
        assert_true (sent == 0 || errno == EAGAIN);
        void *body;
        assert_int_equal (s_recv (&other, 1000, &body), LSS_MSG_NONE);
        zsock_destroy (&d);
    }
    s_agent_stop (&a);

    /* refused at start: a client key without a secret, a malformed secret or client */
    char path[PATH_MAX];
    char *argv1[] = {(char *)tp_build_path (path, sizeof path, "bin/lss-agent"),
                     "--endpoint",
                     ep,
                     "--curve-client",
                     xpub,
                     NULL};
    char *plain_env[] = {"PATH=/usr/bin:/bin", NULL};
    char *bad_env[] = {"LSS_AGENT_CURVE_SECRET=short", NULL};
    char *argv2[] = {argv1[0], "--endpoint", ep, "--curve-client", "nope", NULL};
    char *const *cases[][2] = {{argv1, plain_env}, {argv1, bad_env}, {argv2, envp}};
    for (int i = 0; i < 3; i++) {
        tp_proc_t p;
        assert_int_equal (tp_spawn (&p, cases[i][0], cases[i][1], true), 0);
        int st = tp_wait (&p, 5000);
        assert_true (WIFEXITED (st) && WEXITSTATUS (st) == 2);
    }
}

static int s_zombie_children (pid_t parent)
{
    int zombies = 0;
    DIR *d = opendir ("/proc");
    struct dirent *de;
    while (d && (de = readdir (d))) {
        char path[300], buf[512];
        snprintf (path, sizeof path, "/proc/%s/stat", de->d_name);
        FILE *f = fopen (path, "r");
        if (!f)
            continue;
        size_t n = fread (buf, 1, sizeof buf - 1, f);
        fclose (f);
        buf[n] = '\0';
        char *p = strrchr (buf, ')');
        char st;
        int ppid;
        if (p && sscanf (p + 2, "%c %d", &st, &ppid) == 2 && ppid == parent && st == 'Z')
            zombies++;
    }
    if (d)
        closedir (d);
    return zombies;
}

static void test_orphans_reaped (void **state)
{
    (void)state;
    agent_t a;
    s_agent_start (&a, NULL);
    result_t r;
    /* Double-forked children become the agent's (subreaper) and must be reaped. */
    s_shell (&a, "orph", "for i in 1 2 3 4 5; do (sleep 0.2 &) ; done; exit 0", 0);
    s_collect (&a, &r, 5000);
    assert_int_equal (r.end->exit_code, 0);
    s_result_free (&r);
    long long deadline = tp_now_ms () + 3000;
    while (s_process_with_arg ("sleep 0.2") && tp_now_ms () < deadline)
        usleep (20000);
    assert_false (s_process_with_arg ("sleep 0.2"));
    assert_int_equal (s_zombie_children (a.proc.pid), 0);
    s_agent_stop (&a);
}

int main (void)
{
    lss_log_init ("test_agent", LSS_LOG_WARN);
    zsys_init ();
    if (getenv ("TEST_FILTER"))
        cmocka_set_test_filter (getenv ("TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown (test_exec_basics, s_teardown),
        cmocka_unit_test_teardown (test_code_languages, s_teardown),
        cmocka_unit_test_teardown (test_stdin_stream, s_teardown),
        cmocka_unit_test_teardown (test_cancel_and_deadline_kill_group, s_teardown),
        cmocka_unit_test_teardown (test_output_cap, s_teardown),
        cmocka_unit_test_teardown (test_concurrency_limit, s_teardown),
        cmocka_unit_test_teardown (test_requester_silence, s_teardown),
        cmocka_unit_test_teardown (test_credit_flow_control, s_teardown),
        cmocka_unit_test_teardown (test_output_coalesced, s_teardown),
        cmocka_unit_test_teardown (test_bad_requests, s_teardown),
        cmocka_unit_test_teardown (test_files_and_health_over_socket, s_teardown),
        cmocka_unit_test_teardown (test_orphans_reaped, s_teardown),
        cmocka_unit_test_teardown (test_curve, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
