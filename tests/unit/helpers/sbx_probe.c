/*  sbx_probe — one isolation attempt from inside a sandbox, reported by exit code.
 *
 *  Usage: sbx_probe NAME [ARGS...]. Prints one line "NAME: DENIED|ALLOWED detail" and
 *  exits 0 when the attempt was refused (isolation holds), 1 when it succeeded, 2 on a
 *  usage or setup error. A few probes are workloads instead (now, membomb, forkbomb,
 *  fill, spin, sleep, segv, writefile, ls); they document their own exit codes below.
 *  Plain libc only, so it runs under any root the sandbox gets.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* LeakSanitizer needs ptrace, which the sandbox denies, and the segv probe must die of
   the real signal: sanitizer builds of the probe keep out of both. */
const char *__asan_default_options (void);
const char *__asan_default_options (void)
{
    return "detect_leaks=0:handle_segv=0";
}

static int s_result (const char *name, int denied, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static int s_result (const char *name, int denied, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (detail, sizeof detail, fmt, ap);
    va_end (ap);
    printf ("%s: %s %s\n", name, denied ? "DENIED" : "ALLOWED", detail);
    fflush (stdout);
    return denied ? 0 : 1;
}

static void s_append (char *out, size_t size, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static void s_append (char *out, size_t size, const char *fmt, ...)
{
    size_t len = strlen (out);
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (out + len, size - len, fmt, ap);
    va_end (ap);
}

static int s_errno_result (const char *name, int rc, const char *what)
{
    if (rc < 0)
        return s_result (name, 1, "%s: %s (errno %d)", what, strerror (errno), errno);
    return s_result (name, 0, "%s succeeded", what);
}

static long s_arg_long (int argc, char **argv, int i, long def)
{
    return argc > i ? strtol (argv[i], NULL, 10) : def;
}

static int p_read (const char *path)
{
    DIR *dir = opendir (path);
    if (dir) {
        struct dirent *de;
        int n = 0;
        while ((de = readdir (dir)))
            n++;
        closedir (dir);
        return s_result ("read", 0, "%s listed (%d entries)", path, n);
    }
    int fd = open (path, O_RDONLY);
    if (fd < 0)
        return s_result ("read", 1, "%s: %s", path, strerror (errno));
    char c;
    ssize_t n = read (fd, &c, 1);
    int saved = errno;
    close (fd);
    if (n < 0)
        return s_result ("read", 1, "%s: read: %s", path, strerror (saved));
    return s_result ("read", 0, "%s readable", path);
}

static int p_write (const char *path)
{
    int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return s_result ("write", 1, "%s: %s", path, strerror (errno));
    close (fd);
    unlink (path);
    return s_result ("write", 0, "%s created", path);
}

static int p_proc (pid_t host_pid)
{
    DIR *dir = opendir ("/proc");
    if (!dir)
        return s_result ("proc", 1, "no /proc: %s", strerror (errno));
    int count = 0;
    char list[256] = "";
    struct dirent *de;
    while ((de = readdir (dir))) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        count++;
        s_append (list, sizeof list, " %s", de->d_name);
    }
    closedir (dir);
    char path[64];
    snprintf (path, sizeof path, "/proc/%d", (int)host_pid);
    struct stat st;
    int host_visible = stat (path, &st) == 0 && host_pid > 8;
    return s_result ("proc", count <= 4 && !host_visible, "%d processes:%s; host pid %d %s",
                     count, list, (int)host_pid, host_visible ? "VISIBLE" : "not visible");
}

static int p_connect (int port)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return s_result ("connect", 1, "socket: %s", strerror (errno));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons ((uint16_t)port)};
    sa.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    int rc = connect (fd, (struct sockaddr *)&sa, sizeof sa);
    int saved = errno;
    close (fd);
    errno = saved;
    return s_errno_result ("connect", rc, "connect 127.0.0.1");
}

static int s_status_field (const char *text, const char *key, char *out, size_t size)
{
    const char *p = strstr (text, key);
    if (!p)
        return -1;
    p += strlen (key);
    while (*p == ' ' || *p == '\t')
        p++;
    size_t n = strcspn (p, "\n");
    snprintf (out, size, "%.*s", (int)n, p);
    return 0;
}

static int p_setuid (void)
{
    int rc = setuid (0);
    int saved = errno;
    char text[4096] = "";
    int fd = open ("/proc/self/status", O_RDONLY);
    if (fd >= 0) {
        ssize_t n = read (fd, text, sizeof text - 1);
        text[n > 0 ? n : 0] = '\0';
        close (fd);
    }
    const char *keys[] = {"CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"};
    int caps_empty = 1;
    char v[64], detail[400] = "";
    for (size_t i = 0; i < 5; i++) {
        if (s_status_field (text, keys[i], v, sizeof v) || strspn (v, "0") != strlen (v))
            caps_empty = 0;
        s_append (detail, sizeof detail, "%s%s ", keys[i], v);
    }
    char nnp[16] = "?", sec[16] = "?", uid[64] = "?";
    s_status_field (text, "NoNewPrivs:", nnp, sizeof nnp);
    s_status_field (text, "Seccomp:", sec, sizeof sec);
    s_status_field (text, "Uid:", uid, sizeof uid);
    int denied = rc < 0 && caps_empty && strcmp (nnp, "1") == 0 && strcmp (sec, "2") == 0;
    return s_result ("setuid", denied, "setuid(0)=%d (%s) %sNoNewPrivs=%s Seccomp=%s Uid=%s",
                     rc, rc < 0 ? strerror (saved) : "ok", detail, nnp, sec, uid);
}

static int p_ptrace (void)
{
    pid_t child = fork ();
    if (child == 0) {
        pause ();
        _exit (0);
    }
    long rc = ptrace (PTRACE_ATTACH, child, NULL, NULL);
    int saved = errno;
    long rc2 = ptrace (PTRACE_TRACEME, 0, NULL, NULL);
    int saved2 = errno;
    kill (child, SIGKILL);
    waitpid (child, NULL, 0);
    return s_result ("ptrace", rc < 0 && rc2 < 0, "attach: %s, traceme: %s",
                     rc < 0 ? strerror (saved) : "ok", rc2 < 0 ? strerror (saved2) : "ok");
}

static int p_bpf (void)
{
    union bpf_attr attr;
    memset (&attr, 0, sizeof attr);
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = 1;
    long fd = syscall (SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr);
    if (fd >= 0)
        close ((int)fd);
    return s_errno_result ("bpf", fd < 0 ? -1 : 0, "bpf(BPF_MAP_CREATE)");
}

static int p_keyctl (void)
{
    /* KEYCTL_GET_KEYRING_ID (0) of KEY_SPEC_SESSION_KEYRING (-3), create (1) */
    long rc = syscall (SYS_keyctl, 0, -3, 1);
    return s_errno_result ("keyctl", rc < 0 ? -1 : 0, "keyctl(GET_KEYRING_ID)");
}

static int p_fds (void)
{
    DIR *dir = opendir ("/proc/self/fd");
    if (!dir)
        return s_result ("fds", 1, "no /proc/self/fd");
    int own = dirfd (dir), extra = 0;
    char list[256] = "";
    struct dirent *de;
    while ((de = readdir (dir))) {
        if (de->d_name[0] == '.')
            continue;
        int fd = (int)strtol (de->d_name, NULL, 10);
        if (fd <= 2 || fd == own)
            continue;
        extra++;
        char target[128] = "", path[64];
        snprintf (path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t n = readlink (path, target, sizeof target - 1);
        target[n > 0 ? n : 0] = '\0';
        s_append (list, sizeof list, " %d->%s", fd, target);
    }
    closedir (dir);
    return s_result ("fds", extra == 0, "%d inherited descriptor(s)%s", extra, list);
}

/*  Runs fn in a child and reports whether the kernel killed it with SIGSYS. */
static int s_killed_by_sigsys (const char *name, void (*fn) (void))
{
    pid_t child = fork ();
    if (child == 0) {
        fn ();
        _exit (0);
    }
    int status = 0;
    waitpid (child, &status, 0);
    int sig = WIFSIGNALED (status) ? WTERMSIG (status) : 0;
    /* SIGSYS: the filter's bad-arch action. SIGSEGV from int 0x80: the kernel has no
       32-bit emulation at all (the filter is then not even consulted). */
    int denied = sig == SIGSYS || (sig == SIGSEGV && !strcmp (name, "i386"));
    return s_result (name, denied, "child %s %d%s", sig ? "signal" : "exit",
                     sig ? sig : WEXITSTATUS (status),
                     sig == SIGSYS    ? " (SIGSYS: killed by seccomp)"
                     : sig == SIGSEGV ? " (SIGSEGV: no IA32 emulation in this kernel)"
                                      : "");
}

static void s_x32_getpid (void)
{
    syscall (0x40000000 | 39);
}

static void s_i386_getpid (void)
{
#if defined(__x86_64__)
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory");
    (void)ret;
#endif
}

static int p_tiocsti (void)
{
    char c = 'x';
    errno = 0;
    int rc = ioctl (0, TIOCSTI, &c);
    int e1 = errno;
    errno = 0;
    long rc2 = syscall (SYS_ioctl, 0, 0xffffffff00000000UL | TIOCSTI, &c);
    int e2 = errno;
    return s_result ("tiocsti", rc < 0 && e1 == EPERM && rc2 < 0 && e2 == EPERM,
                     "ioctl(TIOCSTI): %s; with high bits set: %s", strerror (e1),
                     strerror (e2));
}

static int p_personality (void)
{
    int rc = personality (ADDR_NO_RANDOMIZE);
    int saved = errno;
    /* the same with garbage in the upper half of the register (the kernel ignores it) */
    long rc2 = syscall (SYS_personality, 0xffffffff00000000UL | ADDR_NO_RANDOMIZE);
    int saved2 = errno;
    int query = personality (0xffffffff);
    return s_result (
        "personality", rc < 0 && rc2 < 0 && query >= 0 && (query & ADDR_NO_RANDOMIZE) == 0,
        "ADDR_NO_RANDOMIZE: %s, with high bits: %s, query: %#x",
        rc < 0 ? strerror (saved) : "ok", rc2 < 0 ? strerror (saved2) : "ok", (unsigned)query);
}

static int p_membomb (long max_mib)
{
    for (long i = 0; i < max_mib; i++) {
        char *p =
            mmap (NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return s_result ("membomb", 1, "mmap failed after %ld MiB: %s", i,
                             strerror (errno));
        memset (p, 0x5a, 1 << 20);
    }
    return s_result ("membomb", 0, "allocated %ld MiB without being stopped", max_mib);
}

static int p_forkbomb (long max)
{
    long forks = 0;
    int err = 0;
    for (; forks < max; forks++) {
        pid_t pid = fork ();
        if (pid < 0) {
            err = errno;
            break;
        }
        if (pid == 0) {
            for (;;)
                pause ();
        }
    }
    s_result ("forkbomb", err != 0, "forks=%ld errno=%d (%s)", forks, err,
              err ? strerror (err) : "none");
    for (;;)
        pause ();
    return 0;
}

static int p_fill (const char *dir, long cap)
{
    signal (SIGXFSZ, SIG_IGN);
    static char chunk[1 << 16];
    memset (chunk, 'f', sizeof chunk);
    long total = 0;
    int err = 0;
    for (int file = 0; !err && file < 100000; file++) {
        char path[512];
        path[0] = '\0';
        s_append (path, sizeof path, "%s/fill-%d", dir, file);
        int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0) {
            err = errno;
            break;
        }
        /* files of cap/4 each: the total cap matters, not only the per-file one */
        for (long in_file = 0; in_file < cap / 4 + 1; in_file += (long)sizeof chunk) {
            ssize_t n = write (fd, chunk, sizeof chunk);
            if (n < 0) {
                err = errno;
                break;
            }
            total += n;
        }
        close (fd);
    }
    int denied = (err == ENOSPC || err == EFBIG || err == EDQUOT) && total <= cap;
    return s_result ("fill", denied, "wrote %ld bytes into %s (cap %ld), then %s", total, dir,
                     cap, err ? strerror (err) : "no error");
}

/*  A real fault (sanitizers kept out, so the kernel's SIGSEGV is what kills us). */
__attribute__ ((no_sanitize ("address", "undefined"))) static int s_segv (void)
{
    volatile int *volatile p = NULL;
    // cppcheck-suppress nullPointer ; the point of this probe
    return *p;
}

static int p_ls (const char *path)
{
    DIR *dir = opendir (path);
    if (!dir) {
        printf ("ls %s: %s\n", path, strerror (errno));
        return 1;
    }
    printf ("ls %s:", path);
    struct dirent *de;
    while ((de = readdir (dir)))
        if (de->d_name[0] != '.')
            printf (" %s", de->d_name);
    printf ("\n");
    closedir (dir);
    fflush (stdout);
    return 0;
}

int main (int argc, char **argv)
{
    setvbuf (stdout, NULL, _IOLBF, 0);
    if (argc < 2) {
        fprintf (stderr, "usage: sbx_probe NAME [ARGS...]\n");
        return 2;
    }
    const char *name = argv[1];
    const char *arg = argc > 2 ? argv[2] : "";
    if (!strcmp (name, "now")) {
        /* monotonic time in ns: when the init started running */
        struct timespec ts;
        clock_gettime (CLOCK_MONOTONIC, &ts);
        printf ("now %lld\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
        return 0;
    }
    if (!strcmp (name, "read"))
        return p_read (arg);
    if (!strcmp (name, "write"))
        return p_write (arg);
    if (!strcmp (name, "kill"))
        return s_errno_result ("kill", kill ((pid_t)s_arg_long (argc, argv, 2, 1), 0),
                               "kill(host pid, 0)");
    if (!strcmp (name, "proc"))
        return p_proc ((pid_t)s_arg_long (argc, argv, 2, 0));
    if (!strcmp (name, "connect"))
        return p_connect ((int)s_arg_long (argc, argv, 2, 0));
    if (!strcmp (name, "mount"))
        return s_errno_result ("mount", mount ("none", "/tmp", "tmpfs", 0, NULL),
                               "mount tmpfs");
    if (!strcmp (name, "userns"))
        return s_errno_result ("userns", unshare (CLONE_NEWUSER), "unshare(CLONE_NEWUSER)");
    if (!strcmp (name, "netns"))
        return s_errno_result ("netns", unshare (CLONE_NEWNET), "unshare(CLONE_NEWNET)");
    if (!strcmp (name, "clone_ns")) {
        long pid = syscall (SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, 0);
        if (pid == 0)
            _exit (0);
        if (pid > 0)
            waitpid ((pid_t)pid, NULL, 0);
        return s_errno_result ("clone_ns", pid < 0 ? -1 : 0, "clone(CLONE_NEWUSER)");
    }
    if (!strcmp (name, "setuid"))
        return p_setuid ();
    if (!strcmp (name, "ptrace"))
        return p_ptrace ();
    if (!strcmp (name, "bpf"))
        return p_bpf ();
    if (!strcmp (name, "keyctl"))
        return p_keyctl ();
    if (!strcmp (name, "fds"))
        return p_fds ();
    if (!strcmp (name, "x32"))
        return s_killed_by_sigsys ("x32", s_x32_getpid);
    if (!strcmp (name, "i386"))
        return s_killed_by_sigsys ("i386", s_i386_getpid);
    if (!strcmp (name, "tiocsti"))
        return p_tiocsti ();
    if (!strcmp (name, "iouring")) {
        char params[120];
        memset (params, 0, sizeof params);
        long fd = syscall (SYS_io_uring_setup, 1, params);
        if (fd >= 0)
            close ((int)fd);
        int denied = fd < 0 && errno == EPERM;
        return s_result ("iouring", denied, "io_uring_setup: %s",
                         fd < 0 ? strerror (errno) : "ok");
    }
    if (!strcmp (name, "personality"))
        return p_personality ();
    /* workloads */
    if (!strcmp (name, "membomb")) /* 0 if stopped by ENOMEM; killed by OOM */
        return p_membomb (s_arg_long (argc, argv, 2, 512));
    if (!strcmp (name, "forkbomb")) /* prints forks=N, then sleeps forever */
        return p_forkbomb (s_arg_long (argc, argv, 2, 1000));
    if (!strcmp (name, "fill")) /* 0 if the writes stopped at the cap */
        return p_fill (arg, s_arg_long (argc, argv, 3, 0));
    if (!strcmp (name, "spin")) {
        printf ("spinning\n");
        for (volatile unsigned long i = 0;; i++)
            ;
    }
    if (!strcmp (name, "sleep")) { /* reports readiness, then waits forever */
        printf ("ready\n");
        for (;;)
            pause ();
    }
    if (!strcmp (name, "segv"))
        return s_segv ();
    if (!strcmp (name, "exit"))
        return (int)s_arg_long (argc, argv, 2, 0);
    if (!strcmp (name, "writefile")) { /* writefile PATH TEXT: 0 on success */
        FILE *f = fopen (arg, "w");
        if (!f || fputs (argc > 3 ? argv[3] : "", f) < 0 || fclose (f)) {
            printf ("writefile %s: %s\n", arg, strerror (errno));
            return 1;
        }
        return 0;
    }
    if (!strcmp (name, "ls"))
        return p_ls (arg);
    fprintf (stderr, "sbx_probe: unknown probe %s\n", name);
    return 2;
}
