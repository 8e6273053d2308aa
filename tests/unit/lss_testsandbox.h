/*  lss_testsandbox — the runtime test fixture shared by test_sandbox_isolation and
 *  test_sandbox_runtime (header-only: each test binary is one translation unit).
 *  Define before including: UID_BASE, UID_COUNT (the binary's host uid range, root only),
 *  RUN_TIMEOUT_MS and FX_DIR_TEMPLATE (mkdtemp template of its state dirs).
 */
#ifndef LSS_TESTSANDBOX_H
#define LSS_TESTSANDBOX_H

typedef struct {
    char root[PATH_MAX];
    char state[PATH_MAX];
    char bin[PATH_MAX];
    lss_sandbox_runtime_t *rt;
    char log[65536];
} fx_t;

static int fx_copy (const char *from, const char *to)
{
    int in = open (from, O_RDONLY | O_CLOEXEC);
    int out = open (to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    int rc = in >= 0 && out >= 0 ? 0 : -1;
    char buf[65536];
    ssize_t n;
    while (rc == 0 && (n = read (in, buf, sizeof buf)) > 0)
        if (write (out, buf, (size_t)n) != n)
            rc = -1;
    if (in >= 0)
        close (in);
    if (out >= 0 && (fchmod (out, 0755) || close (out)))
        rc = -1;
    return rc;
}

static int fx_setup (void **state)
{
    fx_t *f = calloc (1, sizeof *f);
    assert_non_null (f);
    lss_fmt (f->root, sizeof f->root, FX_DIR_TEMPLATE);
    assert_non_null (mkdtemp (f->root));
    assert_int_equal (chmod (f->root, 0711), 0);
    lss_fmt (f->state, sizeof f->state, "%s/state", f->root);
    lss_fmt (f->bin, sizeof f->bin, "%s/bin", f->root);
    assert_int_equal (mkdir (f->bin, 0755), 0);
    char exe[PATH_MAX], probe[PATH_MAX + 32], dest[PATH_MAX + 32];
    ssize_t n = readlink ("/proc/self/exe", exe, sizeof exe - 1);
    assert_true (n > 0);
    exe[n] = '\0';
    *strrchr (exe, '/') = '\0';
    lss_fmt (probe, sizeof probe, "%s/helpers/sbx_probe", exe);
    lss_fmt (dest, sizeof dest, "%s/sbx_probe", f->bin);
    assert_int_equal (fx_copy (probe, dest), 0);
    f->rt = lss_sandbox_runtime_new (f->state, NULL, NULL);
    if (!f->rt || lss_sandbox_runtime_set_uid_range (f->rt, UID_BASE, UID_COUNT)) {
        lss_sandbox_runtime_destroy (&f->rt);
        lss_sandbox_fs_rmtree (f->root);
        free (f);
        fail_msg ("%s", "no sandbox runtime (see the log above)");
    }
    *state = f;
    return 0;
}

/*  Number of processes whose real uid is in this binary's host uid range. */
static int fx_procs_in_range (void)
{
    if (geteuid () != 0)
        return 0;
    DIR *dir = opendir ("/proc");
    int count = 0;
    struct dirent *de;
    while (dir && (de = readdir (dir))) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        char path[300], text[4096];
        lss_fmt (path, sizeof path, "/proc/%s/status", de->d_name);
        if (lss_sandbox_fs_read (path, text, sizeof text) < 0)
            continue;
        const char *uid = strstr (text, "\nUid:");
        unsigned long v = uid ? strtoul (uid + 5, NULL, 10) : 0;
        if (v >= UID_BASE && v < UID_BASE + UID_COUNT)
            count++;
    }
    if (dir)
        closedir (dir);
    return count;
}

static int fx_teardown (void **state)
{
    fx_t *f = *state;
    json_t *list = lss_sandbox_runtime_list (f->rt);
    size_t i;
    json_t *item;
    json_array_foreach (list, i, item)
    {
        const char *id = json_string_value (json_object_get (item, "id"));
        assert_int_equal (lss_sandbox_runtime_stop (f->rt, id, 5000, NULL), 0);
    }
    json_decref (list);
    assert_int_equal (lss_sandbox_runtime_count (f->rt), 0);
    lss_sandbox_runtime_destroy (&f->rt);
    /* nothing left: no sandbox processes, no sandbox directories */
    int64_t deadline = lss_time_mono_ms () + 5000;
    while (fx_procs_in_range () > 0 && lss_time_mono_ms () < deadline) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep (&ts, NULL);
    }
    assert_int_equal (fx_procs_in_range (), 0);
    DIR *dir = opendir (f->state);
    struct dirent *de;
    while (dir && (de = readdir (dir)))
        assert_true (de->d_name[0] == '.');
    if (dir)
        closedir (dir);
    assert_int_equal (lss_sandbox_fs_rmtree (f->root), 0);
    free (f);
    return 0;
}

/*  A spec running argv with the probe bound read-only at /opt/probe. */
static lss_sandbox_spec_t *fx_spec (fx_t *f, const char *id, lss_sandbox_level_t level,
                                    const char *const *argv, size_t argc)
{
    lss_sandbox_spec_t *spec = lss_sandbox_spec_new (id);
    assert_non_null (spec);
    assert_int_equal (lss_sandbox_spec_set_argv (spec, argv, argc), 0);
    assert_int_equal (lss_sandbox_spec_add_ro_bind (spec, f->bin, "/opt/probe"), 0);
    spec->level = level;
    spec->memory_bytes = 256LL << 20;
    spec->pids_max = 64;
    spec->ephemeral_bytes = 16LL << 20;
    return spec;
}

static void fx_read_log (fx_t *f, const char *id)
{
    char path[PATH_MAX];
    f->log[0] = '\0';
    if (lss_sandbox_runtime_path (f->rt, id, "init.log", path, sizeof path) == 0 &&
        lss_sandbox_fs_read (path, f->log, sizeof f->log) < 0)
        f->log[0] = '\0';
}

/*  Waits until the sandbox's output contains needle (its init got that far). */
static int fx_wait_log (fx_t *f, const char *id, const char *needle, int timeout_ms)
{
    int64_t deadline = lss_time_mono_ms () + timeout_ms;
    for (;;) {
        fx_read_log (f, id);
        if (strstr (f->log, needle))
            return 0;
        if (lss_time_mono_ms () >= deadline)
            return -1;
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep (&ts, NULL);
    }
}

/*  Starts spec, waits for it to end, keeps its output in f->log, stops it. Returns the
 *  init's exit code. */
static int fx_run (fx_t *f, lss_sandbox_spec_t **spec_p, lss_sandbox_status_t *out)
{
    lss_sandbox_spec_t *spec = *spec_p;
    char err[256] = "";
    lss_sandbox_status_t st;
    int rc = lss_sandbox_runtime_start (f->rt, spec, &st, err, sizeof err);
    if (rc)
        print_error ("start %s: %s\n", spec->id, err);
    assert_int_equal (rc, 0);
    assert_int_equal (lss_sandbox_runtime_wait (f->rt, spec->id, RUN_TIMEOUT_MS, &st), 0);
    fx_read_log (f, spec->id);
    lss_sandbox_status_t final;
    assert_int_equal (lss_sandbox_runtime_stop (f->rt, spec->id, 5000, &final), 0);
    if (out)
        *out = st;
    lss_sandbox_spec_destroy (spec_p);
    return st.exit_code;
}

#endif
