/*  warmpool_preload — preloadScripts through lss-executor. See warmpool_preload.h. */
#include "warmpool_preload.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "executor_resolve.h"
#include "lss_discovery.h"
#include "lss_exec_client.h"
#include "lss_log.h"
#include "lss_store.h"
#include "lss_util.h"

#define S_SLOTS           (WARMPOOL_PRELOAD_PARALLEL * 4) /* running plus outcomes not polled yet */
#define S_KEY_MAX         (LSS_STORE_NAMESPACE_MAX + LSS_STORE_NAME_MAX + 2)
#define S_RESOLVE_WAIT_MS 2000

typedef struct {
    bool used;
    char key[S_KEY_MAX + 1]; /* ns/name */
    warmpool_preload_state_t state;
    char msg[256];
} s_slot_t;

typedef struct {
    int slot;
    char ref[S_KEY_MAX + 16]; /* warmpod:ns/name */
    size_t n;
    char *names[WARMPOOL_PRELOAD_SCRIPTS];
    char *contents[WARMPOOL_PRELOAD_SCRIPTS];
} s_job_t;

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static s_slot_t s_slots[S_SLOTS];
static char s_endpoint[512];

void warmpool_preload_configure (const char *executor_endpoint)
{
    snprintf (s_endpoint, sizeof s_endpoint, "%s", executor_endpoint ? executor_endpoint : "");
}

bool warmpool_preload_available (void)
{
    return s_endpoint[0] != '\0';
}

static int s_find (const char *key)
{
    for (int i = 0; i < S_SLOTS; i++)
        if (s_slots[i].used && strcmp (s_slots[i].key, key) == 0)
            return i;
    return -1;
}

warmpool_preload_state_t warmpool_preload_poll (const char *ns, const char *name, char *msg,
                                                size_t msg_size)
{
    char key[S_KEY_MAX + 1];
    snprintf (key, sizeof key, "%s/%s", ns, name);
    pthread_mutex_lock (&s_lock);
    int i = s_find (key);
    warmpool_preload_state_t st = i < 0 ? WARMPOOL_PRELOAD_NONE : s_slots[i].state;
    if (i >= 0 && st != WARMPOOL_PRELOAD_RUNNING) {
        lss_errf (msg, msg_size, "%s", s_slots[i].msg);
        s_slots[i].used = false;
    }
    pthread_mutex_unlock (&s_lock);
    return st;
}

static void s_job_free (s_job_t *j)
{
    for (size_t i = 0; i < j->n; i++) {
        free (j->names[i]);
        free (j->contents[i]);
    }
    free (j);
}

static void s_finish (int slot, warmpool_preload_state_t st, const char *msg)
{
    pthread_mutex_lock (&s_lock);
    s_slots[slot].state = st;
    snprintf (s_slots[slot].msg, sizeof s_slots[slot].msg, "%s", msg);
    pthread_mutex_unlock (&s_lock);
}

/*  The executor endpoint of one job: the configured list, or, when it names dns+ entries,
 *  one address picked at random among those they resolve to now (an execution's messages
 *  must all reach the executor it started on, so a job talks to one). Fills ep; returns
 *  0, -1 with msg set if nothing was found. This thread may block on the lookup. */
static int s_job_endpoint (char *ep, size_t ep_size, char *msg, size_t msg_size)
{
    if (!lss_discovery_is_dynamic (s_endpoint))
        return lss_fmt (ep, ep_size, "%s", s_endpoint); /* fits: ep is as large */
    char err[256];
    lss_discovery_t *d =
        lss_discovery_new (s_endpoint, 10000, "warmpool.executor_endpoint", err, sizeof err);
    if (!d) {
        lss_errf (msg, msg_size, "%s", err);
        return -1;
    }
    lss_discovery_resolve_now (d, S_RESOLVE_WAIT_MS);
    const lss_epset_t *set = lss_discovery_set (d);
    size_t n = lss_epset_size (set);
    int rc = -1;
    if (n == 0)
        lss_errf (msg, msg_size, "no executor found at %.200s", s_endpoint);
    else {
        uint32_t r = 0;
        lss_random_bytes (&r, sizeof r); /* on failure r stays 0: the first one */
        rc = lss_fmt (ep, ep_size, "%s", lss_epset_at (set, r % n));
        if (rc)
            lss_errf (msg, msg_size, "executor endpoint too long");
    }
    lss_discovery_destroy (&d);
    return rc;
}

static void *s_run (void *arg)
{
    s_job_t *j = arg;
    char msg[256] = "";
    warmpool_preload_state_t st = WARMPOOL_PRELOAD_OK;
    char ep[sizeof s_endpoint];
    lss_exec_client_t *c = NULL;
    if (s_job_endpoint (ep, sizeof ep, msg, sizeof msg) == 0)
        c = lss_exec_client_new (ep, NULL);
    else
        st = WARMPOOL_PRELOAD_FAILED;
    if (!c && st == WARMPOOL_PRELOAD_OK) {
        st = WARMPOOL_PRELOAD_FAILED;
        lss_errf (msg, sizeof msg, "cannot reach the executor at %.200s", ep);
    }
    for (size_t i = 0; c && i < j->n && st == WARMPOOL_PRELOAD_OK; i++) {
        lss_exec_start_t req = {.sandbox = j->ref,
                                .shell = j->contents[i],
                                .timeout_ms = WARMPOOL_PRELOAD_TIMEOUT_MS};
        lss_exec_result_t res;
        int rc = lss_exec_client_run (c, &req, NULL, &res);
        if (rc != 0)
            lss_errf (msg, sizeof msg, "preload script %s: %s %s", j->names[i], res.error_code,
                      res.error);
        else if (res.end->error)
            lss_errf (msg, sizeof msg, "preload script %s: %s", j->names[i], res.end->error);
        else if (res.end->exit_code != 0 || res.end->timed_out)
            lss_errf (msg, sizeof msg, "preload script %s: exit %lld%s: %.*s", j->names[i],
                      (long long)res.end->exit_code, res.end->timed_out ? " (timed out)" : "",
                      (int)(res.err.len < 120 ? res.err.len : 120),
                      res.err.len ? (const char *)res.err.data : "");
        if (msg[0])
            st = WARMPOOL_PRELOAD_FAILED;
        lss_exec_result_clear (&res);
    }
    lss_exec_client_destroy (&c);
    if (st == WARMPOOL_PRELOAD_FAILED)
        lss_log_warn ("preload failed", "{s:s, s:s}", "warmpod", j->ref, "error", msg);
    else
        lss_log_info ("preload done", "{s:s, s:i}", "warmpod", j->ref, "scripts", (int)j->n);
    s_finish (j->slot, st, msg);
    s_job_free (j);
    return NULL;
}

int warmpool_preload_start (const char *ns, const char *name, const json_t *scripts, char *msg,
                            size_t msg_size)
{
    if (!json_is_array (scripts) || json_array_size (scripts) == 0 ||
        json_array_size (scripts) > WARMPOOL_PRELOAD_SCRIPTS) {
        lss_errf (msg, msg_size, "spec.preloadScripts: 1..%d scripts",
                  WARMPOOL_PRELOAD_SCRIPTS);
        return -1;
    }
    s_job_t *j = calloc (1, sizeof *j);
    if (!j || lss_fmt (j->ref, sizeof j->ref, "%s%s/%s", EXEC_WARMPOD_REF_PREFIX, ns, name)) {
        free (j);
        lss_errf (msg, msg_size, "preload: out of memory or name too long");
        return -1;
    }
    size_t i;
    json_t *sc;
    json_array_foreach (scripts, i, sc)
    {
        const char *n = json_string_value (json_object_get (sc, "name"));
        const char *body = json_string_value (json_object_get (sc, "content"));
        if (!n || !body || strlen (n) > 253 || strlen (body) > WARMPOOL_PRELOAD_SCRIPT_MAX ||
            memchr (body, '\0', json_string_length (json_object_get (sc, "content")))) {
            lss_errf (msg, msg_size,
                      "spec.preloadScripts[%zu]: name and content (at most %d bytes) wanted", i,
                      WARMPOOL_PRELOAD_SCRIPT_MAX);
            s_job_free (j);
            return -1;
        }
        j->names[j->n] = strdup (n);
        j->contents[j->n] = strdup (body);
        j->n++;
        if (!j->names[j->n - 1] || !j->contents[j->n - 1]) {
            s_job_free (j);
            lss_errf (msg, msg_size, "preload: out of memory");
            return -1;
        }
    }
    char key[S_KEY_MAX + 1];
    snprintf (key, sizeof key, "%s/%s", ns, name);
    pthread_mutex_lock (&s_lock);
    int running = 0, free_slot = -1;
    for (int k = 0; k < S_SLOTS; k++) {
        if (s_slots[k].used && s_slots[k].state == WARMPOOL_PRELOAD_RUNNING)
            running++;
        if (!s_slots[k].used && free_slot < 0)
            free_slot = k;
    }
    if (s_find (key) >= 0 || running >= WARMPOOL_PRELOAD_PARALLEL || free_slot < 0) {
        pthread_mutex_unlock (&s_lock);
        s_job_free (j);
        return 1;
    }
    s_slots[free_slot] = (s_slot_t){.used = true, .state = WARMPOOL_PRELOAD_RUNNING};
    snprintf (s_slots[free_slot].key, sizeof s_slots[free_slot].key, "%s", key);
    j->slot = free_slot;
    pthread_attr_t attr;
    pthread_attr_init (&attr);
    pthread_attr_setdetachstate (&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int rc = pthread_create (&t, &attr, s_run, j);
    pthread_attr_destroy (&attr);
    if (rc) {
        s_slots[free_slot].used = false;
        pthread_mutex_unlock (&s_lock);
        s_job_free (j);
        lss_errf (msg, msg_size, "preload: cannot start a thread");
        return -1;
    }
    pthread_mutex_unlock (&s_lock);
    return 0;
}
