/*  sandbox_seccomp — seccomp filters per security level. See sandbox_seccomp.h.
 *
 *  One table drives the filter, its description (docs, preflight report) and the tests.
 *  System calls the native architecture does not have (vm86 on x86_64, ...) are skipped.
 *  "personality" may only be called with PER_LINUX (0) or the query value 0xffffffff:
 *  libseccomp allows one comparison per argument in a rule, so "not 0 and not all-ones"
 *  is written as 32 rules "bit i set and bit i+1 (mod 32) clear" — every other value
 *  has such a 1→0 transition somewhere around the word. Arguments the kernel reads as
 *  32 bits (personality, the ioctl request) are compared with a 64-bit mask covering
 *  only the low half: libseccomp's 32-bit comparisons also require the high half to be
 *  zero, which a caller could set to slip past the rule.
 */
#include "sandbox_seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef enum {
    S_DENY,        /* EPERM */
    S_ENOSYS,      /* ENOSYS: the caller falls back */
    S_NS_FLAGS,    /* EPERM when the flags argument asks for a new namespace */
    S_PERSONALITY, /* EPERM unless PER_LINUX or the query */
    S_TTY_IOCTL,   /* ioctl TIOCSTI / TIOCLINUX: EPERM */
} s_kind_t;

typedef struct {
    const char *name;
    lss_sandbox_level_t level; /* lowest level the rule applies at */
    s_kind_t kind;
} s_rule_t;

#define STD  LSS_SANDBOX_LEVEL_STANDARD
#define HIGH LSS_SANDBOX_LEVEL_HIGH

static const s_rule_t s_rules[] = {
    /* mounts and the root */
    {"mount", STD, S_DENY},
    {"umount", STD, S_DENY},
    {"umount2", STD, S_DENY},
    {"pivot_root", STD, S_DENY},
    {"chroot", STD, S_DENY},
    {"mount_setattr", STD, S_DENY},
    {"move_mount", STD, S_DENY},
    {"open_tree", STD, S_DENY},
    {"fsopen", STD, S_DENY},
    {"fsconfig", STD, S_DENY},
    {"fsmount", STD, S_DENY},
    {"fspick", STD, S_DENY},
    /* other processes' memory */
    {"ptrace", STD, S_DENY},
    {"process_vm_readv", STD, S_DENY},
    {"process_vm_writev", STD, S_DENY},
    {"process_madvise", STD, S_DENY},
    {"pidfd_getfd", STD, S_DENY},
    /* the kernel itself */
    {"kexec_load", STD, S_DENY},
    {"kexec_file_load", STD, S_DENY},
    {"init_module", STD, S_DENY},
    {"finit_module", STD, S_DENY},
    {"delete_module", STD, S_DENY},
    {"create_module", STD, S_DENY},
    {"bpf", STD, S_DENY},
    {"perf_event_open", STD, S_DENY},
    {"lookup_dcookie", STD, S_DENY},
    {"fanotify_init", STD, S_DENY},
    {"userfaultfd", STD, S_DENY},
    {"iopl", STD, S_DENY},
    {"ioperm", STD, S_DENY},
    {"vm86", STD, S_DENY},
    {"vm86old", STD, S_DENY},
    {"uselib", STD, S_DENY},
    {"nfsservctl", STD, S_DENY},
    {"personality", STD, S_PERSONALITY},
    /* kernel keyrings (not namespaced) */
    {"keyctl", STD, S_DENY},
    {"add_key", STD, S_DENY},
    {"request_key", STD, S_DENY},
    /* file handles bypass path permissions */
    {"open_by_handle_at", STD, S_DENY},
    {"name_to_handle_at", STD, S_DENY},
    /* host administration */
    {"swapon", STD, S_DENY},
    {"swapoff", STD, S_DENY},
    {"reboot", STD, S_DENY},
    {"syslog", STD, S_DENY},
    {"acct", STD, S_DENY},
    {"quotactl", STD, S_DENY},
    {"quotactl_fd", STD, S_DENY},
    /* namespaces: joining is never allowed; creating is refused by seccomp at high */
    {"setns", STD, S_DENY},
    {"unshare", HIGH, S_NS_FLAGS},
    {"clone", HIGH, S_NS_FLAGS},
    {"clone3", HIGH, S_ENOSYS},
    /* high: less kernel surface, no terminal injection */
    {"io_uring_setup", HIGH, S_DENY},
    {"io_uring_enter", HIGH, S_DENY},
    {"io_uring_register", HIGH, S_DENY},
    {"ioctl", HIGH, S_TTY_IOCTL},
};

static const uint64_t s_ns_flags[] = {CLONE_NEWUSER, CLONE_NEWNS,  CLONE_NEWNET,   CLONE_NEWPID,
                                      CLONE_NEWIPC,  CLONE_NEWUTS, CLONE_NEWCGROUP};

static int s_add_rule (scmp_filter_ctx ctx, const s_rule_t *rule, int nr)
{
    switch (rule->kind) {
    case S_DENY:
        return seccomp_rule_add (ctx, SCMP_ACT_ERRNO (EPERM), nr, 0);
    case S_ENOSYS:
        return seccomp_rule_add (ctx, SCMP_ACT_ERRNO (ENOSYS), nr, 0);
    case S_NS_FLAGS:
        for (size_t i = 0; i < sizeof s_ns_flags / sizeof s_ns_flags[0]; i++) {
            int rc = seccomp_rule_add (
                ctx, SCMP_ACT_ERRNO (EPERM), nr, 1,
                SCMP_A0_64 (SCMP_CMP_MASKED_EQ, s_ns_flags[i], s_ns_flags[i]));
            if (rc)
                return rc;
        }
        return 0;
    case S_PERSONALITY:
        for (unsigned i = 0; i < 32; i++) {
            uint32_t set = 1u << i, clear = 1u << ((i + 1) % 32);
            int rc = seccomp_rule_add (ctx, SCMP_ACT_ERRNO (EPERM), nr, 1,
                                       SCMP_A0_64 (SCMP_CMP_MASKED_EQ, set | clear, set));
            if (rc)
                return rc;
        }
        return 0;
    case S_TTY_IOCTL: {
        /* the kernel reads the request as 32 bits: compare only those, whatever the
           upper half holds (libseccomp's SCMP_A1_32 still demands hi32 == 0) */
        int rc = seccomp_rule_add (ctx, SCMP_ACT_ERRNO (EPERM), nr, 1,
                                   SCMP_A1_64 (SCMP_CMP_MASKED_EQ, 0xffffffffULL, TIOCSTI));
        if (rc == 0)
            rc = seccomp_rule_add (ctx, SCMP_ACT_ERRNO (EPERM), nr, 1,
                                   SCMP_A1_64 (SCMP_CMP_MASKED_EQ, 0xffffffffULL, TIOCLINUX));
        return rc;
    }
    }
    return -EINVAL;
}

static scmp_filter_ctx s_build (lss_sandbox_level_t level)
{
    scmp_filter_ctx ctx = seccomp_init (SCMP_ACT_ALLOW);
    if (!ctx)
        return NULL;
    if (seccomp_attr_set (ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS))
        goto fail;
    for (size_t i = 0; i < sizeof s_rules / sizeof s_rules[0]; i++) {
        const s_rule_t *rule = &s_rules[i];
        if (rule->level > level)
            continue;
        int nr = seccomp_syscall_resolve_name (rule->name);
        if (nr == __NR_SCMP_ERROR || nr < 0)
            continue; /* not on this architecture */
        if (s_add_rule (ctx, rule, nr))
            goto fail;
    }
    return ctx;
fail:
    seccomp_release (ctx);
    return NULL;
}

int lss_sandbox_seccomp_export (lss_sandbox_level_t level, uint8_t **bpf, size_t *len)
{
    int rc = -1;
    int fd = -1;
    uint8_t *buf = NULL;
    scmp_filter_ctx ctx = s_build (level);
    if (!ctx)
        goto cleanup;
    fd = memfd_create ("lss-seccomp-export", MFD_CLOEXEC);
    if (fd < 0 || seccomp_export_bpf (ctx, fd))
        goto cleanup;
    off_t size = lseek (fd, 0, SEEK_END);
    if (size <= 0 || (size_t)size > LSS_SANDBOX_BPF_MAX || lseek (fd, 0, SEEK_SET) != 0)
        goto cleanup;
    buf = malloc ((size_t)size);
    if (!buf || pread (fd, buf, (size_t)size, 0) != size)
        goto cleanup;
    *bpf = buf;
    *len = (size_t)size;
    buf = NULL;
    rc = 0;
cleanup:
    free (buf);
    if (fd >= 0)
        close (fd);
    if (ctx)
        seccomp_release (ctx);
    return rc;
}

int lss_sandbox_seccomp_memfd (const uint8_t *bpf, size_t len)
{
    int fd = memfd_create ("lss-seccomp", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -1;
    size_t off = 0;
    while (off < len) {
        ssize_t n = write (fd, bpf + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto fail;
        off += (size_t)n;
    }
    if (fcntl (fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) ||
        lseek (fd, 0, SEEK_SET) != 0)
        goto fail;
    return fd;
fail:
    close (fd);
    return -1;
}

int lss_sandbox_seccomp_load (lss_sandbox_level_t level)
{
    scmp_filter_ctx ctx = s_build (level);
    if (!ctx)
        return -1;
    int rc = seccomp_load (ctx) == 0 ? 0 : -1;
    seccomp_release (ctx);
    return rc;
}

json_t *lss_sandbox_seccomp_describe (lss_sandbox_level_t level)
{
    json_t *deny = json_array ();
    json_t *obj = json_pack ("{s:s, s:s, s:s, s:s}", "level", lss_sandbox_level_name (level),
                             "default", "allow", "badArch", "kill-process", "action", "EPERM");
    if (!deny || !obj)
        goto fail;
    for (size_t i = 0; i < sizeof s_rules / sizeof s_rules[0]; i++) {
        const s_rule_t *rule = &s_rules[i];
        if (rule->level > level || seccomp_syscall_resolve_name (rule->name) < 0)
            continue;
        const char *when = rule->kind == S_NS_FLAGS      ? "namespace flags (EPERM)"
                           : rule->kind == S_ENOSYS      ? "always (ENOSYS)"
                           : rule->kind == S_PERSONALITY ? "persona other than 0 or query"
                           : rule->kind == S_TTY_IOCTL   ? "TIOCSTI, TIOCLINUX"
                                                         : "always";
        if (json_array_append_new (
                deny, json_pack ("{s:s, s:s}", "syscall", rule->name, "when", when)))
            goto fail;
    }
    json_object_set_new (obj, "deny", deny);
    return obj;
fail:
    json_decref (deny);
    json_decref (obj);
    return NULL;
}
