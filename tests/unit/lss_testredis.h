/*  lss_testredis — a throw-away Redis for tests (header-only): s_redis_setup starts a
 *  private redis-server with scripts/redis-tmp in a mkdtemp directory and fills
 *  s_redis_url (TCP) and s_redis_unix_url; s_redis_teardown stops it and removes
 *  everything; s_redis_down/s_redis_up stop and restart the server in between (same
 *  port and socket). Names differ from lss_testpg.h so one test can use both. Call the
 *  setup and teardown from the cmocka group setup and teardown. Needs lss_testproc.h.
 */
#ifndef LSS_TESTREDIS_H
#define LSS_TESTREDIS_H

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

static char s_redis_dir[256];
static char s_redis_url[512];
static char s_redis_unix_url[512];

static inline int s_redis_tmp (const char *verb, char *line, size_t size)
{
    char script[PATH_MAX];
    const char *root = getenv ("LSS_ROOT");
    snprintf (script, sizeof script, "%s/scripts/redis-tmp", root && *root ? root : ".");
    char *argv[] = {script, (char *)verb, s_redis_dir, NULL};
    tp_proc_t p;
    if (tp_spawn (&p, argv, NULL, line != NULL) != 0)
        return -1;
    int rc = line ? tp_read_line (&p, line, size, 30000) : 0;
    int status = tp_wait (&p, 30000);
    return rc == 0 && status == 0 ? 0 : -1;
}

static inline int s_redis_setup (void)
{
    snprintf (s_redis_dir, sizeof s_redis_dir, "/tmp/lss-redis-XXXXXX");
    if (!mkdtemp (s_redis_dir))
        return -1;
    if (s_redis_tmp ("start", s_redis_url, sizeof s_redis_url) != 0) {
        fprintf (stderr, "redis-tmp start failed: %s\n", s_redis_url);
        s_redis_tmp ("stop", NULL, 0);
        return -1;
    }
    snprintf (s_redis_unix_url, sizeof s_redis_unix_url, "unix://%s/redis.sock", s_redis_dir);
    return 0;
}

static inline int s_redis_teardown (void)
{
    return s_redis_tmp ("stop", NULL, 0);
}

static inline int s_redis_down (void)
{
    return s_redis_tmp ("down", NULL, 0);
}

static inline int s_redis_up (void)
{
    return s_redis_tmp ("up", NULL, 0);
}

#endif
