/*  lss_testpg — a throw-away PostgreSQL for tests (header-only): the cmocka group setup
 *  starts a private cluster with scripts/pg-tmp in a mkdtemp directory and fills s_dsn;
 *  the group teardown stops it and removes everything; s_pg_down/s_pg_up stop and restart
 *  the server in between (same port). Needs lss_testproc.h first.
 */
#ifndef LSS_TESTPG_H
#define LSS_TESTPG_H

#include <libpq-fe.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

static char s_dir[256];
static char s_dsn[512];

static inline int s_pg_tmp (const char *verb, char *line, size_t size)
{
    char script[PATH_MAX];
    const char *root = getenv ("LSS_ROOT");
    snprintf (script, sizeof script, "%s/scripts/pg-tmp", root && *root ? root : ".");
    char *argv[] = {script, (char *)verb, s_dir, NULL};
    tp_proc_t p;
    if (tp_spawn (&p, argv, NULL, line != NULL) != 0)
        return -1;
    int rc = line ? tp_read_line (&p, line, size, 60000) : 0;
    int status = tp_wait (&p, 60000);
    return rc == 0 && status == 0 ? 0 : -1;
}

/* Outage tests: stops the server keeping its data and port, and starts it again. */
static inline int s_pg_down (void)
{
    return s_pg_tmp ("down", NULL, 0);
}

static inline int s_pg_up (void)
{
    return s_pg_tmp ("up", NULL, 0);
}

/*  Runs one statement on a connection of its own to s_dsn: the rows it answered (0 for a
 *  command), or -1 when it could not connect or the statement failed. */
static inline int s_pg_rows (const char *sql)
{
    PGconn *c = PQconnectdb (s_dsn);
    int n = -1;
    if (PQstatus (c) == CONNECTION_OK) {
        PGresult *r = PQexec (c, sql);
        ExecStatusType st = PQresultStatus (r);
        n = st == PGRES_TUPLES_OK ? PQntuples (r) : st == PGRES_COMMAND_OK ? 0 : -1;
        if (n < 0)
            fprintf (stderr, "%s: %s", sql, PQerrorMessage (c));
        PQclear (r);
    }
    PQfinish (c);
    return n;
}

static inline int s_group_setup (void **state)
{
    (void)state;
    snprintf (s_dir, sizeof s_dir, "/tmp/lss-store-XXXXXX");
    if (!mkdtemp (s_dir))
        return -1;
    if (s_pg_tmp ("start", s_dsn, sizeof s_dsn) != 0) {
        fprintf (stderr, "pg-tmp start failed: %s\n", s_dsn);
        s_pg_tmp ("stop", NULL, 0);
        return -1;
    }
    return 0;
}

static inline int s_group_teardown (void **state)
{
    (void)state;
    return s_pg_tmp ("stop", NULL, 0);
}

#endif
