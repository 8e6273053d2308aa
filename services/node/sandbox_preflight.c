/*  sandbox_preflight — host capability checks, run once. See sandbox_preflight.h.
 *
 *  Children are waited for through a pidfd with a deadline (a wedged check is killed,
 *  reported as failed, and never hangs the service). Checks that need the sandbox's
 *  unprivileged identity drop to probe_uid in the child first, because that is what
 *  bwrap will run as: root can always create a user namespace, the sandbox uid maybe not.
 */
#include "sandbox_preflight.h"
#include "sandbox_fs.h"
#include "sandbox_seccomp.h"

#include "lss_log.h"
#include "lss_util.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_CHECK_TIMEOUT_MS 5000
#define S_SANDBOX_UID      "1000"

/*  snprintf for messages (truncation is acceptable). */
static void s_text (char *out, size_t size, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static void s_text (char *out, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (out, size, fmt, ap);
    va_end (ap);
}

/*  Waits for a direct child with a deadline; kills it on expiry. Returns the wait status,
 *  or -1 if it had to be killed or could not be waited for. */
static int s_wait_child (pid_t pid, int timeout_ms)
{
    int status = 0;
    int pidfd = (int)syscall (SYS_pidfd_open, pid, 0);
    if (pidfd >= 0) {
        struct pollfd pfd = {pidfd, POLLIN, 0};
        int rc;
        do
            rc = poll (&pfd, 1, timeout_ms);
        while (rc < 0 && errno == EINTR);
        close (pidfd);
        if (rc == 0) {
            kill (pid, SIGKILL);
            waitpid (pid, &status, 0);
            return -1;
        }
    }
    while (waitpid (pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    return status;
}

/*  In a child: become probe_uid when root (the identity bwrap will run as). */
static int s_drop (uid_t uid)
{
    if (geteuid () != 0)
        return 0;
    if (setgroups (0, NULL) || setresgid (uid, uid, uid) || setresuid (uid, uid, uid))
        return -1;
    return 0;
}

static void s_check_userns (lss_sandbox_preflight_t *self)
{
    int64_t v;
    self->max_user_namespaces =
        lss_sandbox_fs_read_int64 ("/proc/sys/user/max_user_namespaces", &v) == 0 ? v : -1;
    pid_t pid = fork ();
    if (pid < 0) {
        s_text (self->userns_error, sizeof self->userns_error, "fork: %s", strerror (errno));
        return;
    }
    if (pid == 0) {
        if (s_drop (self->probe_uid))
            _exit (100);
        _exit (unshare (CLONE_NEWUSER) == 0 ? 0 : (errno & 0x7f));
    }
    int status = s_wait_child (pid, S_CHECK_TIMEOUT_MS);
    if (status >= 0 && WIFEXITED (status) && WEXITSTATUS (status) == 0) {
        self->userns = true;
        return;
    }
    int code = status >= 0 && WIFEXITED (status) ? WEXITSTATUS (status) : -1;
    s_text (self->userns_error, sizeof self->userns_error, "%s",
            code == 100 ? "cannot drop to the probe uid"
            : code > 0  ? strerror (code)
                        : "check did not finish");
}

static int s_seccomp_child (lss_sandbox_level_t level)
{
    if (lss_sandbox_seccomp_load (level))
        return 10;
    if (getpid () <= 0)
        return 11;
    errno = 0;
    if (syscall (SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0) != -1 || errno != EPERM)
        return 12;
    errno = 0;
    if (personality (ADDR_NO_RANDOMIZE) != -1 || errno != EPERM)
        return 13;
    if (personality (0xffffffff) == -1)
        return 14;
    return 0;
}

static void s_check_seccomp (lss_sandbox_preflight_t *self)
{
    char status_text[4096];
    if (lss_sandbox_fs_read ("/proc/self/status", status_text, sizeof status_text) > 0) {
        const char *p = strstr (status_text, "\nSeccomp:");
        if (p)
            self->self_seccomp_mode = (int)strtol (p + 9, NULL, 10);
        p = strstr (status_text, "\nNoNewPrivs:");
        if (p)
            self->self_no_new_privs = strtol (p + 12, NULL, 10) != 0;
    }
    for (int level = LSS_SANDBOX_LEVEL_STANDARD; level <= LSS_SANDBOX_LEVEL_HIGH; level++) {
        pid_t pid = fork ();
        if (pid < 0) {
            s_text (self->seccomp_error, sizeof self->seccomp_error, "fork: %s",
                    strerror (errno));
            return;
        }
        if (pid == 0)
            _exit (s_seccomp_child ((lss_sandbox_level_t)level));
        int status = s_wait_child (pid, S_CHECK_TIMEOUT_MS);
        if (status < 0 || !WIFEXITED (status) || WEXITSTATUS (status) != 0) {
            int code = status >= 0 && WIFEXITED (status) ? WEXITSTATUS (status) : -1;
            s_text (self->seccomp_error, sizeof self->seccomp_error, "%s filter: %s",
                    lss_sandbox_level_name ((lss_sandbox_level_t)level),
                    code == 10  ? "cannot be loaded"
                    : code > 10 ? "loaded but does not deny as expected"
                                : "check crashed or timed out");
            return;
        }
    }
    self->seccomp = true;
}

/*  Runs argv (bwrap) as probe_uid with stderr captured into err. Returns the wait status
 *  or -1. */
static int s_run_bwrap (const lss_sandbox_preflight_t *self, char *const argv[], bool drop,
                        char *out, size_t out_size, bool want_stdout)
{
    int fds[2];
    if (pipe2 (fds, O_CLOEXEC))
        return -1;
    pid_t pid = fork ();
    if (pid < 0) {
        close (fds[0]);
        close (fds[1]);
        return -1;
    }
    if (pid == 0) {
        int devnull = open ("/dev/null", O_RDWR | O_CLOEXEC);
        if (devnull < 0 || (drop && s_drop (self->probe_uid)))
            _exit (126);
        dup2 (devnull, 0);
        dup2 (want_stdout ? fds[1] : devnull, 1);
        dup2 (fds[1], 2);
        syscall (SYS_close_range, 3, ~0U, 0);
        char *envp[] = {NULL};
        execve (argv[0], argv, envp);
        _exit (127);
    }
    close (fds[1]);
    size_t len = 0;
    int64_t deadline = lss_time_mono_ms () + S_CHECK_TIMEOUT_MS;
    for (;;) {
        int64_t left = deadline - lss_time_mono_ms ();
        struct pollfd pfd = {fds[0], POLLIN, 0};
        if (left <= 0 || poll (&pfd, 1, (int)left) <= 0)
            break;
        char buf[256];
        ssize_t n = read (fds[0], buf, sizeof buf);
        if (n <= 0)
            break;
        size_t copy = (size_t)n < out_size - 1 - len ? (size_t)n : out_size - 1 - len;
        memcpy (out + len, buf, copy);
        len += copy;
    }
    out[len] = '\0';
    close (fds[0]);
    int64_t left = deadline - lss_time_mono_ms ();
    return s_wait_child (pid, left > 0 ? (int)left : 1);
}

static void s_check_bwrap (lss_sandbox_preflight_t *self)
{
    struct stat st;
    if (stat (self->bwrap_path, &st) || !S_ISREG (st.st_mode) ||
        access (self->bwrap_path, X_OK)) {
        s_text (self->bwrap_error, sizeof self->bwrap_error, "%s: not an executable file",
                self->bwrap_path);
        return;
    }
    self->bwrap_found = true;
    self->bwrap_setuid = (st.st_mode & S_ISUID) != 0;
    char out[256];
    char *version_argv[] = {self->bwrap_path, "--version", NULL};
    int status = s_run_bwrap (self, version_argv, false, out, sizeof out, true);
    if (status >= 0 && WIFEXITED (status) && WEXITSTATUS (status) == 0) {
        const char *v = strrchr (out, ' ');
        s_text (self->bwrap_version, sizeof self->bwrap_version, "%s", v ? v + 1 : out);
        self->bwrap_version[strcspn (self->bwrap_version, "\n")] = '\0';
    }
    const char *true_path = access ("/usr/bin/true", X_OK) == 0 ? "/usr/bin/true" : "/bin/true";
    char *smoke_argv[] = {self->bwrap_path,
                          "--unshare-user",
                          "--unshare-pid",
                          "--unshare-ipc",
                          "--unshare-uts",
                          "--unshare-net",
                          "--unshare-cgroup-try",
                          "--disable-userns",
                          "--uid",
                          S_SANDBOX_UID,
                          "--gid",
                          S_SANDBOX_UID,
                          "--as-pid-1",
                          "--new-session",
                          "--cap-drop",
                          "ALL",
                          "--ro-bind",
                          "/",
                          "/",
                          "--proc",
                          "/proc",
                          "--dev",
                          "/dev",
                          "--tmpfs",
                          "/tmp",
                          "--remount-ro",
                          "/",
                          "--",
                          (char *)true_path,
                          NULL};
    status = s_run_bwrap (self, smoke_argv, true, out, sizeof out, false);
    if (status >= 0 && WIFEXITED (status) && WEXITSTATUS (status) == 0) {
        self->bwrap_works = true;
        return;
    }
    out[strcspn (out, "\n")] = '\0';
    s_text (self->bwrap_error, sizeof self->bwrap_error, "sandbox as uid %u failed: %s",
            (unsigned)self->probe_uid, out[0] ? out : "no message");
}

lss_sandbox_preflight_t *lss_sandbox_preflight_new (const lss_sandbox_preflight_opts_t *opts)
{
    lss_sandbox_preflight_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    int64_t t0 = lss_time_mono_ms ();
    const char *bwrap = opts && opts->bwrap_path ? opts->bwrap_path : LSS_SANDBOX_DEFAULT_BWRAP;
    s_text (self->bwrap_path, sizeof self->bwrap_path, "%s", bwrap);
    self->is_root = geteuid () == 0;
    self->probe_uid = self->is_root ? (opts && opts->probe_uid ? opts->probe_uid
                                                               : LSS_SANDBOX_DEFAULT_UID_BASE)
                                    : geteuid ();
    s_check_userns (self);
    s_check_seccomp (self);
    s_check_bwrap (self);
    lss_sandbox_cgroup_detect (&self->cgroup, opts ? opts->cgroup_parent : NULL);
    self->took_ms = lss_time_mono_ms () - t0;
    return self;
}

void lss_sandbox_preflight_destroy (lss_sandbox_preflight_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free (*self_p);
    *self_p = NULL;
}

static void s_append (char *out, size_t size, const char *text)
{
    size_t len = strlen (out);
    if (len + 1 < size)
        snprintf (out + len, size - len, "%s%s", len ? ", " : "", text);
}

int lss_sandbox_preflight_check_level (const lss_sandbox_preflight_t *self,
                                       lss_sandbox_level_t level, char *err, size_t err_size,
                                       char *warn, size_t warn_size)
{
    char missing[512] = "";
    char warnings[512] = "";
    if (!self->bwrap_works)
        s_append (missing, sizeof missing, "bwrap");
    if (!self->userns)
        s_append (missing, sizeof missing, "user namespaces");
    if (!self->seccomp)
        s_append (missing, sizeof missing, "seccomp");
    static const lss_sandbox_cg_ctrl_t limited[] = {LSS_SANDBOX_CG_MEMORY, LSS_SANDBOX_CG_PIDS,
                                                    LSS_SANDBOX_CG_CPU};
    for (size_t i = 0; i < sizeof limited / sizeof limited[0]; i++) {
        lss_sandbox_cg_ctrl_t c = limited[i];
        if (self->cgroup.ctrl[c].usable)
            continue;
        char text[96];
        snprintf (text, sizeof text, "%s cgroup", lss_sandbox_cgroup_ctrl_name (c));
        if (level == LSS_SANDBOX_LEVEL_HIGH && c != LSS_SANDBOX_CG_CPU)
            s_append (missing, sizeof missing, text);
        else {
            snprintf (text, sizeof text, "%s limit not enforced (no usable %s cgroup)",
                      lss_sandbox_cgroup_ctrl_name (c), lss_sandbox_cgroup_ctrl_name (c));
            s_append (warnings, sizeof warnings, text);
        }
    }
    if (warn && warn_size)
        s_text (warn, warn_size, "%s", warnings);
    if (missing[0]) {
        if (err && err_size)
            s_text (err, err_size, "%s sandboxes cannot start on this host: missing %s",
                    lss_sandbox_level_name (level), missing);
        return -1;
    }
    return 0;
}

void lss_sandbox_preflight_summary (const lss_sandbox_preflight_t *self, char *out, size_t size)
{
    const lss_sandbox_cg_host_t *cg = &self->cgroup;
    char cgtext[256] = "";
    for (int c = 0; c < LSS_SANDBOX_CG_COUNT; c++) {
        size_t len = strlen (cgtext);
        snprintf (cgtext + len, sizeof cgtext - len, "%s%s=%s", len ? " " : "",
                  lss_sandbox_cgroup_ctrl_name ((lss_sandbox_cg_ctrl_t)c),
                  !cg->ctrl[c].version ? "absent"
                  : cg->ctrl[c].usable ? (cg->ctrl[c].version == 2 ? "v2" : "v1")
                                       : "unusable");
    }
    bool std_ok = lss_sandbox_preflight_check_level (self, LSS_SANDBOX_LEVEL_STANDARD, NULL, 0,
                                                     NULL, 0) == 0;
    bool high_ok =
        lss_sandbox_preflight_check_level (self, LSS_SANDBOX_LEVEL_HIGH, NULL, 0, NULL, 0) == 0;
    s_text (out, size,
            "bwrap %s %s; %s; userns %s; seccomp %s; cgroup %s; rlimits always; "
            "standard=%s high=%s",
            self->bwrap_version[0] ? self->bwrap_version : "?",
            self->bwrap_works ? "works" : "FAILS",
            self->is_root ? "root: per-sandbox host uids" : "not root: sandboxes share our uid",
            self->userns ? "yes" : "NO", self->seccomp ? "yes" : "NO", cgtext,
            std_ok ? "allowed" : "refused", high_ok ? "allowed" : "refused");
}

static json_t *s_rlimit_json (int resource)
{
    struct rlimit rl;
    if (getrlimit (resource, &rl))
        return json_null ();
    return json_pack ("{s:I, s:I}", "soft",
                      rl.rlim_cur == RLIM_INFINITY ? (json_int_t)-1 : (json_int_t)rl.rlim_cur,
                      "hard",
                      rl.rlim_max == RLIM_INFINITY ? (json_int_t)-1 : (json_int_t)rl.rlim_max);
}

static json_t *s_level_json (const lss_sandbox_preflight_t *self, lss_sandbox_level_t level)
{
    char err[512] = "", warn[512] = "";
    int rc =
        lss_sandbox_preflight_check_level (self, level, err, sizeof err, warn, sizeof warn);
    return json_pack ("{s:b, s:s, s:s}", "allowed", rc == 0, "refusal", err, "warnings", warn);
}

json_t *lss_sandbox_preflight_report (const lss_sandbox_preflight_t *self)
{
    char summary[1024];
    lss_sandbox_preflight_summary (self, summary, sizeof summary);
    json_t *report = json_pack (
        "{s:{s:s, s:b, s:b, s:s, s:b, s:s}, s:b, s:I, s:{s:b, s:s, s:I},"
        " s:{s:b, s:s, s:i, s:b}, s:o, s:{s:o, s:o, s:o, s:o, s:o, s:o, s:s},"
        " s:{s:o, s:o}, s:o, s:o, s:s, s:I}",
        "bwrap", "path", self->bwrap_path, "found", self->bwrap_found, "setuid",
        self->bwrap_setuid, "version", self->bwrap_version, "works", self->bwrap_works, "error",
        self->bwrap_error, "root", self->is_root, "probeUid", (json_int_t)self->probe_uid,
        "userns", "available", self->userns, "error", self->userns_error, "maxUserNamespaces",
        (json_int_t)self->max_user_namespaces, "seccomp", "available", self->seccomp, "error",
        self->seccomp_error, "selfMode", self->self_seccomp_mode, "selfNoNewPrivs",
        self->self_no_new_privs, "cgroup", lss_sandbox_cgroup_host_json (&self->cgroup),
        "rlimits", "nofile", s_rlimit_json (RLIMIT_NOFILE), "nproc",
        s_rlimit_json (RLIMIT_NPROC), "fsize", s_rlimit_json (RLIMIT_FSIZE), "core",
        s_rlimit_json (RLIMIT_CORE), "data", s_rlimit_json (RLIMIT_DATA), "as",
        s_rlimit_json (RLIMIT_AS), "applied",
        "per sandbox: NOFILE 1024, CORE 0, FSIZE = storage cap, NPROC = pids + 1 (root "
        "only: per-sandbox uid), DATA = memory when no memory cgroup",
        "levels", "standard", s_level_json (self, LSS_SANDBOX_LEVEL_STANDARD), "high",
        s_level_json (self, LSS_SANDBOX_LEVEL_HIGH), "seccompStandard",
        lss_sandbox_seccomp_describe (LSS_SANDBOX_LEVEL_STANDARD), "seccompHigh",
        lss_sandbox_seccomp_describe (LSS_SANDBOX_LEVEL_HIGH), "summary", summary, "tookMs",
        (json_int_t)self->took_ms);
    return report;
}

void lss_sandbox_preflight_log (const lss_sandbox_preflight_t *self)
{
    char summary[1024];
    lss_sandbox_preflight_summary (self, summary, sizeof summary);
    json_t *report = lss_sandbox_preflight_report (self);
    bool all =
        lss_sandbox_preflight_check_level (self, LSS_SANDBOX_LEVEL_HIGH, NULL, 0, NULL, 0) == 0;
    lss_log (all ? LSS_LOG_INFO : LSS_LOG_WARN, "sandbox preflight", "{s:s, s:O}", "summary",
             summary, "report", report ? report : json_null ());
    json_decref (report);
}
