/*  api_db_migrations — the api's schema, one entry per version, never edited once shipped.
 *
 *  Design note: every table and function carries the prefix api_ so the api shares a
 *  database with the object store (store_*) without a schema or search_path of its own.
 *  Times are timestamptz; api_ts/api_ms convert to and from the epoch milliseconds of
 *  api_db.h (0 and NULL mean "not set"). CHECK constraints repeat the closed sets the C
 *  code validates (roles, statuses, actions), so a row that breaks them cannot exist
 *  whoever writes it. Indexes follow the queries: key hash (unique), lists newest first
 *  per user with id as the tie-break, active sandboxes per user, executions per sandbox,
 *  permissions per resource, revoked tokens by expiry. To change the schema append a
 *  version; api_db_migrate applies each missing one in its own transaction.
 */
#include "api_db_internal.h"

const char *const api_dbi_migrations[] = {
    /* 1: users, keys, sandboxes, executions, warm pools, permissions, revoked tokens */
    "CREATE FUNCTION api_ts (ms bigint) RETURNS timestamptz LANGUAGE sql STABLE AS"
    "  $$ SELECT CASE WHEN ms > 0 THEN timestamptz 'epoch' + ms * interval '1 millisecond'"
    "  END $$;"
    "CREATE FUNCTION api_ms (t timestamptz) RETURNS bigint LANGUAGE sql STABLE AS"
    "  $$ SELECT COALESCE(floor(extract(epoch FROM t) * 1000)::bigint, 0) $$;"

    "CREATE TABLE api_users ("
    "  id text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 39),"
    "  username text NOT NULL UNIQUE CHECK (username ~ '^[A-Za-z0-9._-]{1,64}$'),"
    "  email text CHECK (email IS NULL OR (length(email) BETWEEN 3 AND 254"
    "    AND email LIKE '%_@_%')),"
    "  role text NOT NULL CHECK (role IN ('admin', 'user')),"
    "  created_at timestamptz NOT NULL DEFAULT now(),"
    "  disabled boolean NOT NULL DEFAULT false);"
    "CREATE INDEX api_users_admins ON api_users (role) WHERE role = 'admin' AND NOT disabled;"

    "CREATE TABLE api_keys ("
    "  id text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 39),"
    "  user_id text NOT NULL REFERENCES api_users (id) ON DELETE CASCADE,"
    "  name text NOT NULL CHECK (octet_length(name) BETWEEN 1 AND 128),"
    "  key_hash text NOT NULL UNIQUE CHECK (key_hash ~ '^[0-9a-f]{64}$'),"
    "  prefix text NOT NULL CHECK (length(prefix) <= 15),"
    "  created_at timestamptz NOT NULL DEFAULT now(),"
    "  expires_at timestamptz,"
    "  revoked_at timestamptz,"
    "  last_used_at timestamptz,"
    "  rate_default bigint NOT NULL DEFAULT 0 CHECK (rate_default >= 0),"
    "  rate_create_sandbox bigint NOT NULL DEFAULT 0 CHECK (rate_create_sandbox >= 0),"
    "  rate_execute_code bigint NOT NULL DEFAULT 0 CHECK (rate_execute_code >= 0));"
    "CREATE INDEX api_keys_user ON api_keys (user_id, created_at DESC, id DESC);"

    "CREATE TABLE api_sandboxes ("
    "  id text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 63),"
    "  user_id text NOT NULL REFERENCES api_users (id),"
    "  namespace text NOT NULL CHECK (length(namespace) BETWEEN 1 AND 63),"
    "  runtime text NOT NULL CHECK (octet_length(runtime) BETWEEN 1 AND 128),"
    "  security_level text NOT NULL"
    "    CHECK (security_level IN ('standard', 'high', 'custom')),"
    "  warm boolean NOT NULL DEFAULT false,"
    "  warm_pod text CHECK (warm_pod IS NULL OR length(warm_pod) BETWEEN 1 AND 253),"
    "  status text NOT NULL CHECK (status IN ('pending', 'creating', 'running',"
    "    'terminating', 'terminated', 'failed')),"
    "  created_at timestamptz NOT NULL DEFAULT now(),"
    "  started_at timestamptz,"
    "  terminated_at timestamptz);"
    "CREATE INDEX api_sandboxes_user ON api_sandboxes (user_id, created_at DESC, id DESC);"
    "CREATE INDEX api_sandboxes_created ON api_sandboxes (created_at DESC, id DESC);"
    "CREATE INDEX api_sandboxes_active ON api_sandboxes (user_id)"
    "  WHERE terminated_at IS NULL AND status <> 'terminated';"

    "CREATE TABLE api_executions ("
    "  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    "  id text NOT NULL CHECK (length(id) BETWEEN 1 AND 39),"
    "  sandbox_id text NOT NULL REFERENCES api_sandboxes (id) ON DELETE CASCADE,"
    "  user_id text NOT NULL REFERENCES api_users (id),"
    "  kind text NOT NULL CHECK (kind IN ('code', 'command', 'packages')),"
    "  language text CHECK (language IS NULL OR length(language) BETWEEN 1 AND 32),"
    "  summary text NOT NULL CHECK (octet_length(summary) <= 1024),"
    "  status text NOT NULL CHECK (status IN ('completed', 'failed', 'timeout',"
    "    'cancelled', 'error')),"
    "  exit_code bigint NOT NULL DEFAULT 0,"
    "  started_at timestamptz,"
    "  completed_at timestamptz,"
    "  duration_ms bigint NOT NULL DEFAULT 0 CHECK (duration_ms >= 0),"
    "  stdout_bytes bigint NOT NULL DEFAULT 0 CHECK (stdout_bytes >= 0),"
    "  stderr_bytes bigint NOT NULL DEFAULT 0 CHECK (stderr_bytes >= 0),"
    "  transport text NOT NULL CHECK (transport IN ('rest', 'ws')),"
    "  recorded_at timestamptz NOT NULL DEFAULT now());"
    "CREATE INDEX api_executions_sandbox ON api_executions"
    "  (sandbox_id, started_at DESC NULLS LAST, seq DESC);"
    "CREATE INDEX api_executions_user ON api_executions (user_id, recorded_at DESC);"

    "CREATE TABLE api_warm_pools ("
    "  namespace text NOT NULL CHECK (length(namespace) BETWEEN 1 AND 63),"
    "  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 253),"
    "  user_id text NOT NULL REFERENCES api_users (id),"
    "  created_at timestamptz NOT NULL DEFAULT now(),"
    "  PRIMARY KEY (namespace, name));"
    "CREATE INDEX api_warm_pools_user ON api_warm_pools (user_id);"

    "CREATE TABLE api_permissions ("
    "  user_id text NOT NULL REFERENCES api_users (id) ON DELETE CASCADE,"
    "  resource_type text NOT NULL CHECK (resource_type IN ('sandbox', 'warmpool')),"
    "  resource_id text NOT NULL CHECK (length(resource_id) BETWEEN 1 AND 253),"
    "  action text NOT NULL CHECK (action IN ('read', 'write', 'execute', 'connect',"
    "    'delete', 'update')),"
    "  granted_by text NOT NULL,"
    "  granted_at timestamptz NOT NULL DEFAULT now(),"
    "  PRIMARY KEY (user_id, resource_type, resource_id, action));"
    "CREATE INDEX api_permissions_resource ON api_permissions (resource_type, resource_id);"

    "CREATE TABLE api_revoked_tokens ("
    "  jti text PRIMARY KEY CHECK (length(jti) BETWEEN 1 AND 128),"
    "  expires_at timestamptz NOT NULL,"
    "  revoked_at timestamptz NOT NULL DEFAULT now());"
    "CREATE INDEX api_revoked_tokens_expires ON api_revoked_tokens (expires_at);",
};

const int api_dbi_migrations_count =
    (int)(sizeof api_dbi_migrations / sizeof api_dbi_migrations[0]);
