/*  lss-agent — runs inside every sandbox (as its PID 1 in local mode): executes code and
 *  commands, streams their output, serves files, reports usage. See agent_server.h.
 *
 *  It takes flags rather than the YAML config: it is the sandbox's init, started by the
 *  runtime with an argv it builds, and must not read host files.
 *    lss-agent [--endpoint EP] [--root /VIRT=DIR]... [--interpreter LANG=PATH]...
 *              [--max-execs N] [--max-output BYTES] [--default-timeout MS]
 *              [--requester-timeout MS] [--src NAME] [--log-level LEVEL]
 *              [--curve-client KEY]...
 *  CURVE (cluster mode): with --curve-client (the executors' public keys, Z85), the
 *  agent's secret key comes from the environment variable LSS_AGENT_CURVE_SECRET (a
 *  Kubernetes Secret), which is removed from the environment at once — executions
 *  inherit the agent's environment — and the process is made non-dumpable, so code in
 *  the sandbox cannot read it from /proc/1/environ or /proc/1/mem either.
 */
#include <czmq.h>
#include <getopt.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent_server.h"
#include "lss_log.h"
#include "lss_util.h"

static void s_usage (FILE *out)
{
    fprintf (
        out,
        "usage: lss-agent [--endpoint EP] [--root /VIRT=DIR]... [--interpreter LANG=PATH]...\n"
        "                 [--max-execs N] [--max-output BYTES] [--default-timeout MS]\n"
        "                 [--requester-timeout MS] [--src NAME] [--log-level LEVEL]\n"
        "                 [--curve-client KEY]...  (secret key in LSS_AGENT_CURVE_SECRET)\n"
        "defaults: ipc:///run/lss/agent.sock, roots /workspace=/workspace and /tmp=/tmp,\n"
        "python, node, bash and sh at their Debian paths, 32 executions, 16 MiB output\n"
        "kept per stream, 300000 ms default timeout, 30000 ms requester timeout.\n");
}

static int s_num (const char *flag, const char *text, int64_t min, int64_t max, int64_t *out)
{
    if (lss_parse_int64 (text, min, max, out) == 0)
        return 0;
    fprintf (stderr, "lss-agent: %s needs a whole number in %lld..%lld, not '%s'\n", flag,
             (long long)min, (long long)max, text);
    return -1;
}

int main (int argc, char **argv)
{
    /* Block the signals we read from a signalfd before any thread exists (libzmq starts
     * threads), so none of them can take a signal meant for the loop. */
    lss_malloc_for_streaming ();
    sigset_t mask;
    sigemptyset (&mask);
    sigaddset (&mask, SIGCHLD);
    sigaddset (&mask, SIGTERM);
    sigaddset (&mask, SIGINT);
    sigaddset (&mask, SIGHUP);
    sigprocmask (SIG_BLOCK, &mask, NULL);
    signal (SIGPIPE, SIG_IGN);
    zsys_handler_set (NULL);
    lss_log_init ("agent", LSS_LOG_WARN);

    agent_conf_t conf;
    agent_conf_default (&conf);
    static const struct option opts[] = {{"endpoint", required_argument, NULL, 'e'},
                                         {"root", required_argument, NULL, 'r'},
                                         {"interpreter", required_argument, NULL, 'i'},
                                         {"max-execs", required_argument, NULL, 'm'},
                                         {"max-output", required_argument, NULL, 'o'},
                                         {"default-timeout", required_argument, NULL, 't'},
                                         {"requester-timeout", required_argument, NULL, 'q'},
                                         {"src", required_argument, NULL, 's'},
                                         {"log-level", required_argument, NULL, 'l'},
                                         {"curve-client", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    int64_t v;
    while ((c = getopt_long (argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'e':
            if (strlen (optarg) >= sizeof conf.endpoint) {
                fprintf (stderr, "lss-agent: endpoint too long\n");
                return 2;
            }
            snprintf (conf.endpoint, sizeof conf.endpoint, "%s", optarg);
            break;
        case 'r':
            if (conf.root_count >= AGENT_FILES_MAX_ROOTS) {
                fprintf (stderr, "lss-agent: at most %d roots\n", AGENT_FILES_MAX_ROOTS);
                return 2;
            }
            conf.roots[conf.root_count++] = optarg;
            break;
        case 'i':
            if (agent_exec_conf_add_interp (&conf.exec, optarg)) {
                fprintf (stderr,
                         "lss-agent: --interpreter wants LANG=/absolute/path, not '%s'\n",
                         optarg);
                return 2;
            }
            break;
        case 'm':
            if (s_num ("--max-execs", optarg, 1, AGENT_MAX_EXECS_CAP, &v))
                return 2;
            conf.max_execs = (int)v;
            break;
        case 'o':
            if (s_num ("--max-output", optarg, 1024, 1ll << 40, &v))
                return 2;
            conf.exec.max_output_cap = v;
            if (conf.exec.default_max_output > v)
                conf.exec.default_max_output = v;
            break;
        case 't':
            if (s_num ("--default-timeout", optarg, 1, conf.exec.max_timeout_ms, &v))
                return 2;
            conf.exec.default_timeout_ms = v;
            break;
        case 'q':
            if (s_num ("--requester-timeout", optarg, 100, 86400000, &v))
                return 2;
            conf.requester_timeout_ms = v;
            break;
        case 's':
            snprintf (conf.src, sizeof conf.src, "%s", optarg);
            break;
        case 'l': {
            lss_log_level_t level;
            if (lss_log_parse_level (optarg, &level)) {
                fprintf (stderr, "lss-agent: bad log level '%s'\n", optarg);
                return 2;
            }
            lss_log_set_level (level);
            break;
        }
        case 'c':
            if (!lss_curve_key_valid (optarg) || conf.curve_client_count >= LSS_CURVE_CLIENTS) {
                fprintf (stderr,
                         "lss-agent: --curve-client wants a 40-character Z85 public key (at "
                         "most %d)\n",
                         LSS_CURVE_CLIENTS);
                return 2;
            }
            conf.curve_clients[conf.curve_client_count++] = optarg;
            break;
        case 'h':
            s_usage (stdout);
            return 0;
        default:
            s_usage (stderr);
            return 2;
        }
    }
    if (optind != argc) {
        s_usage (stderr);
        return 2;
    }
    const char *secret = getenv ("LSS_AGENT_CURVE_SECRET");
    if (secret && *secret) {
        if (!lss_curve_key_valid (secret) || conf.curve_client_count == 0) {
            fprintf (stderr, "lss-agent: LSS_AGENT_CURVE_SECRET needs a 40-character Z85 "
                             "secret key and at least one --curve-client\n");
            unsetenv ("LSS_AGENT_CURVE_SECRET");
            return 2;
        }
        snprintf (conf.curve_secret, sizeof conf.curve_secret, "%s", secret);
        /* wipe the whole NAME=value string in the original environment block (what
         * /proc/<pid>/environ shows), after taking it out of environ */
        char *entry = (char *)secret - strlen ("LSS_AGENT_CURVE_SECRET=");
        unsetenv ("LSS_AGENT_CURVE_SECRET");
        explicit_bzero (entry, strlen (entry));
        prctl (PR_SET_DUMPABLE, 0);
    } else if (conf.curve_client_count > 0) {
        fprintf (stderr, "lss-agent: --curve-client needs LSS_AGENT_CURVE_SECRET\n");
        return 2;
    }
    unsetenv ("LSS_AGENT_CURVE_SECRET"); /* executions inherit our environment */
    if (conf.root_count == 0) {
        conf.roots[conf.root_count++] = "/workspace=/workspace";
        conf.roots[conf.root_count++] = "/tmp=/tmp";
    }
    /* Programs start in the first root's directory (/workspace in a sandbox). */
    snprintf (conf.exec.default_cwd, sizeof conf.exec.default_cwd, "%s",
              strchr (conf.roots[0], '=') ? strchr (conf.roots[0], '=') + 1 : "/");
    /* A private directory for code files, unique even when agents share a /tmp. */
    const char *tmp = getenv ("TMPDIR");
    char code_dir[256];
    snprintf (code_dir, sizeof code_dir, "%s/.lss-exec-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp (code_dir)) {
        fprintf (stderr, "lss-agent: cannot create a directory for code in %s\n",
                 tmp ? tmp : "/tmp");
        return 1;
    }
    snprintf (conf.exec.code_dir, sizeof conf.exec.code_dir, "%s", code_dir);
    int rc = agent_server_run (&conf);
    rmdir (code_dir);
    zsys_shutdown ();
    return rc;
}
