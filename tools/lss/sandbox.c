/*  lss sandbox — drive the local sandbox runtime by hand (no control plane needed).
 *
 *    lss sandbox run [OPTIONS] [-- INIT ARGV...]   start one (default init: lss-agent)
 *    lss sandbox exec ID [--timeout S] [--stdin] (--shell CMD | --code FILE --language L
 *                     | -- ARGV...)               run in it; exit with the program's code
 *    lss sandbox ls [--json]                       list
 *    lss sandbox rm ID...                          stop and remove
 *    lss sandbox preflight                         what this host can enforce
 *  run/ls/rm open the runtime on node.state_dir, which one process owns at a time: they
 *  refuse (and say so) while lss-node runs on the same directory. exec only talks to the
 *  sandbox's agent.
 */
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lss_bus.h"
#include "lss_cli.h"
#include "lss_log.h"
#include "lss_util.h"
#include "sandbox_agent.h"
#include "sandbox_runtime.h"

#define EXIT_PLATFORM 125 /* like docker/podman: the platform failed, not the program */

static int s_parse_size (const char *flag, const char *text, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll (text, &end, 10);
    long long mult = 1;
    if (strcmp (end, "Ki") == 0 || strcmp (end, "K") == 0)
        mult = 1024;
    else if (strcmp (end, "Mi") == 0 || strcmp (end, "M") == 0)
        mult = 1024 * 1024;
    else if (strcmp (end, "Gi") == 0 || strcmp (end, "G") == 0)
        mult = 1024 * 1024 * 1024;
    else if (*end)
        mult = 0;
    if (errno || end == text || v < 0 || mult == 0 || v > INT64_MAX / mult) {
        fprintf (stderr, "lss sandbox: %s wants a size like 512Mi, not '%s'\n", flag, text);
        return -1;
    }
    *out = v * mult;
    return 0;
}

static lss_sandbox_runtime_t *s_runtime (const lss_config_t *cfg)
{
    const char *dir = lss_config_str (cfg, "node.state_dir");
    lss_sandbox_runtime_t *rt = lss_sandbox_runtime_new (dir, NULL, NULL);
    if (!rt) {
        fprintf (stderr,
                 "lss sandbox: cannot open the sandbox state directory %s (is lss-node "
                 "running on it? see the log line above)\n",
                 dir);
        return NULL;
    }
    lss_sandbox_runtime_adopt (rt);
    return rt;
}

static void s_print_json (json_t *j)
{
    char *text = json_dumps (j, JSON_COMPACT);
    if (text)
        puts (text);
    free (text);
}

static int s_run (int argc, char **argv, const lss_config_t *cfg)
{
    static const struct option opts[] = {{"id", required_argument, NULL, 'i'},
                                         {"memory", required_argument, NULL, 'm'},
                                         {"cpu", required_argument, NULL, 'c'},
                                         {"pids", required_argument, NULL, 'p'},
                                         {"storage", required_argument, NULL, 's'},
                                         {"network", no_argument, NULL, 'n'},
                                         {"level", required_argument, NULL, 'l'},
                                         {"rootfs", required_argument, NULL, 'r'},
                                         {"env", required_argument, NULL, 'e'},
                                         {"wait-ms", required_argument, NULL, 'w'},
                                         {NULL, 0, NULL, 0}};
    char id[LSS_SANDBOX_ID_MAX + 1] = "";
    int64_t memory = 0, cpu = 0, pids = 0, storage = 0, wait_ms = 10000;
    bool network = false;
    lss_sandbox_level_t level = LSS_SANDBOX_LEVEL_STANDARD;
    const char *rootfs = NULL, *envs[64];
    size_t nenv = 0;
    int c;
    optind = 0;
    while ((c = getopt_long (argc + 1, argv - 1, "+", opts, NULL)) != -1) {
        switch (c) {
        case 'i':
            if (!lss_sandbox_id_valid (optarg)) {
                fprintf (stderr, "lss sandbox: --id must be [a-z0-9-], 1..63 characters\n");
                return 2;
            }
            snprintf (id, sizeof id, "%s", optarg);
            break;
        case 'm':
            if (s_parse_size ("--memory", optarg, &memory))
                return 2;
            break;
        case 's':
            if (s_parse_size ("--storage", optarg, &storage))
                return 2;
            break;
        case 'c':
            if (lss_parse_int64 (optarg, 1, LSS_SANDBOX_MAX_CPU_MILLICORES, &cpu)) {
                fprintf (stderr, "lss sandbox: --cpu wants millicores, e.g. 500\n");
                return 2;
            }
            break;
        case 'p':
            if (lss_parse_int64 (optarg, LSS_SANDBOX_MIN_PIDS, LSS_SANDBOX_MAX_PIDS, &pids)) {
                fprintf (stderr, "lss sandbox: --pids wants %d..%d\n", LSS_SANDBOX_MIN_PIDS,
                         LSS_SANDBOX_MAX_PIDS);
                return 2;
            }
            break;
        case 'w':
            if (lss_parse_int64 (optarg, 1, 600000, &wait_ms)) {
                fprintf (stderr, "lss sandbox: --wait-ms wants 1..600000\n");
                return 2;
            }
            break;
        case 'n':
            network = true;
            break;
        case 'l':
            if (lss_sandbox_level_parse (optarg, &level)) {
                fprintf (stderr, "lss sandbox: --level is standard or high\n");
                return 2;
            }
            break;
        case 'r':
            rootfs = optarg;
            break;
        case 'e':
            if (nenv == 64 || !strchr (optarg, '=')) {
                fprintf (stderr, "lss sandbox: --env wants NAME=VALUE (at most 64)\n");
                return 2;
            }
            envs[nenv++] = optarg;
            break;
        default:
            return 2;
        }
    }
    int first = optind - 1; /* index into argv of the init argv, if any */
    if (!id[0] && lss_id_new ("sb-", 12, id, sizeof id))
        return 1;
    char err[512] = "";
    lss_sandbox_spec_t *spec = NULL;
    bool agent = first >= argc;
    if (agent) {
        char agent_path[1024];
        const char *configured = lss_config_str (cfg, "node.agent_path");
        if (*configured)
            snprintf (agent_path, sizeof agent_path, "%s", configured);
        else if (lss_sandbox_agent_find (agent_path, sizeof agent_path)) {
            fprintf (stderr,
                     "lss sandbox: lss-agent not found next to lss; set node.agent_path\n");
            return 1;
        }
        spec = lss_sandbox_agent_spec (id, agent_path, NULL, err, sizeof err);
    } else {
        spec = lss_sandbox_spec_new (id);
        if (spec && lss_sandbox_spec_set_argv (spec, (const char *const *)argv + first,
                                               (size_t)(argc - first))) {
            snprintf (err, sizeof err, "argv exceeds its bounds");
            lss_sandbox_spec_destroy (&spec);
        }
    }
    if (!spec) {
        fprintf (stderr, "lss sandbox: %s\n", err);
        return 2;
    }
    spec->memory_bytes = memory;
    spec->cpu_millicores = cpu;
    spec->pids_max = pids;
    if (storage)
        spec->ephemeral_bytes = storage;
    spec->network = network;
    spec->level = level;
    for (size_t i = 0; i < nenv; i++) {
        char name[256];
        size_t n = (size_t)(strchr (envs[i], '=') - envs[i]);
        snprintf (name, sizeof name, "%.*s", (int)n, envs[i]);
        if (lss_sandbox_spec_add_env (spec, name, envs[i] + n + 1)) {
            fprintf (stderr, "lss sandbox: bad --env %s\n", envs[i]);
            lss_sandbox_spec_destroy (&spec);
            return 2;
        }
    }
    if (rootfs && lss_sandbox_spec_set_rootfs (spec, rootfs)) {
        lss_sandbox_spec_destroy (&spec);
        return 2;
    }
    lss_sandbox_runtime_t *rt = s_runtime (cfg);
    if (!rt) {
        lss_sandbox_spec_destroy (&spec);
        return 1;
    }
    lss_sandbox_status_t st;
    int rc = lss_sandbox_runtime_start (rt, spec, &st, err, sizeof err);
    lss_sandbox_spec_destroy (&spec);
    if (rc) {
        fprintf (stderr, "lss sandbox: cannot start %s: %s\n", id, err);
        lss_sandbox_runtime_destroy (&rt);
        return 1;
    }
    json_t *out = lss_sandbox_status_to_json (&st);
    if (agent) {
        char endpoint[256];
        lss_sandbox_agent_endpoint (lss_config_str (cfg, "node.state_dir"), id, endpoint,
                                    sizeof endpoint);
        zsock_t *sock = lss_sandbox_agent_connect (endpoint, (int)wait_ms);
        if (!sock) {
            char log[1024] = "";
            lss_sandbox_runtime_path (rt, id, "init.log", log, sizeof log);
            fprintf (stderr,
                     "lss sandbox: %s started but its agent did not answer within %lld ms "
                     "(see %s)\n",
                     id, (long long)wait_ms, log);
            json_decref (out);
            lss_sandbox_runtime_destroy (&rt);
            return 1;
        }
        zsock_destroy (&sock);
        json_object_set_new (out, "endpoint", json_string (endpoint));
    }
    s_print_json (out);
    json_decref (out);
    lss_sandbox_runtime_destroy (&rt); /* the sandbox keeps running, detached */
    return 0;
}

/* exec: streams stdout/stderr to ours; stdin from ours with --stdin. */
static int s_exec (int argc, char **argv, const lss_config_t *cfg)
{
    static const struct option opts[] = {
        {"timeout", required_argument, NULL, 't'},  {"stdin", no_argument, NULL, 'i'},
        {"shell", required_argument, NULL, 's'},    {"code", required_argument, NULL, 'c'},
        {"language", required_argument, NULL, 'l'}, {NULL, 0, NULL, 0}};
    int64_t timeout_s = 0;
    bool use_stdin = false;
    const char *shell = NULL, *code_file = NULL, *language = NULL;
    if (argc < 1 || argv[0][0] == '-') {
        fprintf (stderr, "usage: lss sandbox exec ID [--timeout S] [--stdin] (--shell CMD | "
                         "--code FILE --language L | -- ARGV...)\n");
        return 2;
    }
    const char *id = argv[0];
    argc--;
    argv++;
    int c;
    optind = 0;
    while ((c = getopt_long (argc + 1, argv - 1, "+", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            if (lss_parse_int64 (optarg, 1, 3600, &timeout_s)) {
                fprintf (stderr, "lss sandbox exec: --timeout wants 1..3600 seconds\n");
                return 2;
            }
            break;
        case 'i':
            use_stdin = true;
            break;
        case 's':
            shell = optarg;
            break;
        case 'c':
            code_file = optarg;
            break;
        case 'l':
            language = optarg;
            break;
        default:
            return 2;
        }
    }
    int first = optind - 1;
    if (!lss_sandbox_id_valid (id)) {
        fprintf (stderr, "lss sandbox exec: '%s' is not a sandbox id\n", id);
        return 2;
    }
    lss_exec_start_t req = {.exec_id = "cli",
                            .timeout_ms = timeout_s * 1000,
                            .stdin_open = use_stdin,
                            .max_output = 1ll << 30}; /* a terminal wants it all (agent cap) */
    lss_buf_t code;
    lss_buf_init (&code, 4u << 20);
    if (code_file) {
        if (!language) {
            fprintf (stderr, "lss sandbox exec: --code needs --language\n");
            return 2;
        }
        FILE *f = fopen (code_file, "rb");
        char chunk[65536];
        size_t n;
        while (f && (n = fread (chunk, 1, sizeof chunk, f)) > 0)
            if (lss_buf_append (&code, chunk, n)) {
                fprintf (stderr, "lss sandbox exec: %s is larger than 4 MiB\n", code_file);
                fclose (f);
                lss_buf_free (&code);
                return 2;
            }
        if (!f) {
            fprintf (stderr, "lss sandbox exec: cannot read %s: %s\n", code_file,
                     strerror (errno));
            return 2;
        }
        fclose (f);
        req.code = (lss_bytes_t){code.data ? code.data : (uint8_t *)"", code.len};
        req.language = (char *)language;
    } else if (shell)
        req.shell = (char *)shell;
    else if (first < argc)
        req.argv = (lss_strlist_t){argv + first, (size_t)(argc - first)};
    else {
        fprintf (stderr, "lss sandbox exec: nothing to run\n");
        return 2;
    }
    char endpoint[256];
    if (lss_sandbox_agent_endpoint (lss_config_str (cfg, "node.state_dir"), id, endpoint,
                                    sizeof endpoint)) {
        fprintf (stderr, "lss sandbox exec: state directory path too long\n");
        lss_buf_free (&code);
        return 2;
    }
    zsock_t *sock = lss_sandbox_agent_connect (endpoint, 3000);
    if (!sock) {
        fprintf (
            stderr,
            "lss sandbox exec: no agent answers for %s (is it running? `lss sandbox ls`)\n",
            id);
        lss_buf_free (&code);
        return EXIT_PLATFORM;
    }
    lss_envelope_t env;
    lss_bus_envelope_init (&env, LSS_MSG_exec_start, NULL, "lss-cli", 1, NULL);
    int rc = EXIT_PLATFORM;
    if (lss_bus_send (sock, NULL, 0, NULL, &env, LSS_MSG_exec_start, &req)) {
        fprintf (stderr, "lss sandbox exec: request refused: %s\n", zmq_strerror (errno));
        goto done;
    }
    int64_t last_ping = lss_time_mono_ms ();
    bool stdin_open = use_stdin;
    zmq_pollitem_t items[2] = {{zsock_resolve (sock), 0, ZMQ_POLLIN, 0},
                               {NULL, 0, ZMQ_POLLIN, 0}};
    for (;;) {
        int n = zmq_poll (items, stdin_open ? 2 : 1, 1000);
        if (n < 0 && errno != EINTR)
            break;
        if (zsys_interrupted) {
            lss_exec_cancel_t cancel = {.exec_id = "cli"};
            lss_bus_envelope_init (&env, LSS_MSG_exec_cancel, NULL, "lss-cli", 2, NULL);
            lss_bus_send (sock, NULL, 0, NULL, &env, LSS_MSG_exec_cancel, &cancel);
            zsys_interrupted = 0;
        }
        if (lss_time_mono_ms () - last_ping >
            5000) { /* keep the agent's requester timer happy */
            lss_agent_ping_t ping = {0};
            lss_bus_envelope_init (&env, LSS_MSG_agent_ping, NULL, "lss-cli", 3, NULL);
            lss_bus_send (sock, NULL, 0, NULL, &env, LSS_MSG_agent_ping, &ping);
            last_ping = lss_time_mono_ms ();
        }
        if (stdin_open && items[1].revents) {
            uint8_t buf[65536];
            ssize_t r = read (0, buf, sizeof buf);
            lss_exec_stdin_t in = {
                .exec_id = "cli", .data = {buf, r > 0 ? (size_t)r : 0}, .eof = r <= 0};
            lss_bus_envelope_init (&env, LSS_MSG_exec_stdin, NULL, "lss-cli", 4, NULL);
            lss_bus_send (sock, NULL, 0, NULL, &env, LSS_MSG_exec_stdin, &in);
            if (r <= 0)
                stdin_open = false;
        }
        if (!(items[0].revents & ZMQ_POLLIN))
            continue;
        lss_msg_kind_t kind;
        void *body;
        char err[256];
        if (lss_bus_recv (sock, NULL, NULL, 0, &env, &kind, &body, err, sizeof err)) {
            fprintf (stderr, "lss sandbox exec: bad message from the agent: %s\n", err);
            continue;
        }
        bool done = false;
        if (kind == LSS_MSG_exec_output) {
            lss_exec_output_t *o = body;
            FILE *to = strcmp (o->stream, "stderr") == 0 ? stderr : stdout;
            fwrite (o->data.data, 1, o->data.len, to);
            fflush (to);
        } else if (kind == LSS_MSG_exec_end) {
            lss_exec_end_t *e = body;
            if (e->error)
                fprintf (stderr, "lss sandbox exec: %s\n", e->error);
            else if (e->timed_out)
                fprintf (stderr, "lss sandbox exec: killed at the deadline\n");
            if (e->stdout_truncated || e->stderr_truncated)
                fprintf (stderr, "lss sandbox exec: output was truncated\n");
            rc = e->error    ? EXIT_PLATFORM
                 : e->signal ? 128 + (int)e->signal
                             : (int)e->exit_code;
            done = true;
        } else if (kind == LSS_MSG_error) {
            lss_error_t *e = body;
            fprintf (stderr, "lss sandbox exec: %s: %s\n", e->code, e->message);
            done = e->exec_id != NULL; /* an error about this execution ends it */
        }
        lss_proto_body_free (kind, &body);
        if (done)
            break;
    }
done:
    zsock_destroy (&sock);
    lss_buf_free (&code);
    return rc;
}

static int s_ls (int argc, char **argv, const lss_config_t *cfg)
{
    bool as_json = argc == 1 && strcmp (argv[0], "--json") == 0;
    if (argc > 1 || (argc == 1 && !as_json)) {
        fprintf (stderr, "usage: lss sandbox ls [--json]\n");
        return 2;
    }
    lss_sandbox_runtime_t *rt = s_runtime (cfg);
    if (!rt)
        return 1;
    json_t *list = lss_sandbox_runtime_list (rt);
    size_t i;
    json_t *item;
    if (!as_json)
        printf ("%-20s %-8s %-12s %-8s %s\n", "ID", "PHASE", "REASON", "PID", "LEVEL");
    json_array_foreach (list, i, item)
    {
        if (as_json)
            s_print_json (item);
        else
            printf ("%-20s %-8s %-12s %-8lld %s\n",
                    json_string_value (json_object_get (item, "id")),
                    json_string_value (json_object_get (item, "phase")),
                    json_string_value (json_object_get (item, "reason")),
                    (long long)json_integer_value (json_object_get (item, "pid")),
                    json_string_value (json_object_get (item, "level")));
    }
    json_decref (list);
    lss_sandbox_runtime_destroy (&rt);
    return 0;
}

static int s_rm (int argc, char **argv, const lss_config_t *cfg)
{
    if (argc < 1) {
        fprintf (stderr, "usage: lss sandbox rm ID...\n");
        return 2;
    }
    lss_sandbox_runtime_t *rt = s_runtime (cfg);
    if (!rt)
        return 1;
    int rc = 0;
    for (int i = 0; i < argc; i++) {
        lss_sandbox_status_t st;
        if (lss_sandbox_runtime_stop (rt, argv[i], 0, &st)) {
            fprintf (stderr, "lss sandbox rm: %s: unknown, or processes survived\n", argv[i]);
            rc = 1;
        } else
            printf ("%s removed (%s)\n", argv[i], st.reason);
    }
    lss_sandbox_runtime_destroy (&rt);
    return rc;
}

static int s_preflight (void)
{
    lss_sandbox_preflight_t *pf = lss_sandbox_preflight_new (NULL);
    if (!pf)
        return 1;
    json_t *report = lss_sandbox_preflight_report (pf);
    char *text = json_dumps (report, JSON_INDENT (2));
    if (text)
        puts (text);
    free (text);
    json_decref (report);
    lss_sandbox_preflight_destroy (&pf);
    return 0;
}

int lss_cli_sandbox (int argc, char **argv, const lss_config_t *cfg)
{
    static const char usage[] =
        "usage: lss sandbox run [--id ID] [--memory SIZE] [--cpu MILLICORES] [--pids N]\n"
        "                       [--storage SIZE] [--network] [--level standard|high]\n"
        "                       [--rootfs DIR] [--env K=V]... [--wait-ms MS] [-- INIT "
        "ARGV...]\n"
        "       lss sandbox exec ID [--timeout S] [--stdin] (--shell CMD | --code FILE\n"
        "                       --language L | -- ARGV...)\n"
        "       lss sandbox ls [--json]\n"
        "       lss sandbox rm ID...\n"
        "       lss sandbox preflight\n"
        "State directory: node.state_dir (LSS_NODE_STATE_DIR).\n";
    if (argc < 1 || strcmp (argv[0], "--help") == 0) {
        fputs (usage, argc < 1 ? stderr : stdout);
        return argc < 1 ? 2 : 0;
    }
    zsys_init ();
    if (strcmp (argv[0], "run") == 0)
        return s_run (argc - 1, argv + 1, cfg);
    if (strcmp (argv[0], "exec") == 0)
        return s_exec (argc - 1, argv + 1, cfg);
    if (strcmp (argv[0], "ls") == 0)
        return s_ls (argc - 1, argv + 1, cfg);
    if (strcmp (argv[0], "rm") == 0)
        return s_rm (argc - 1, argv + 1, cfg);
    if (strcmp (argv[0], "preflight") == 0)
        return s_preflight ();
    fputs (usage, stderr);
    return 2;
}
