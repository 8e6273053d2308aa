/*  lss_settings — the system-wide table of every configuration key LLMSafeSpace knows.
 *
 *  One table for all services, so one YAML file can configure a whole local-mode machine
 *  and every LSS_* variable is known to every process (an unknown one is an error
 *  everywhere, never silently ignored by the service that does not use it). Defaults are
 *  loopback addresses so that every service runs with no config file. Sorted by section,
 *  one line per key: {key, type, default, min, max, flags, doc}. For STR, max > 0 bounds
 *  the length in bytes; for numbers min == max == 0 would mean unbounded (none is).
 *  Port plan: 74x1 bus PUB, 74x2 other bus sockets, 94x1 admin HTTP, x = service digit.
 */
#include "lss_config.h"

#define S_ADDR_MAX   256  /* host:port or ZeroMQ endpoint */
#define S_SECRET_MAX 4096 /* DSNs, URLs, keys */

/* clang-format off */
const lss_config_spec_t lss_settings[] = {
    {"api.admin_key_file",      LSS_CFG_STR,      "",                          0, 1024,         0, "api: at start, if no admin user exists, create one and write its API key to this file (0600; empty: do not)"},
    {"api.admin_listen",        LSS_CFG_STR,      "127.0.0.1:9441",            0, S_ADDR_MAX,   0, "api: admin HTTP (health, metrics) listen address"},
    {"api.create_wait",         LSS_CFG_DURATION, "10s",                       0, 120000,       0, "api: how long POST /sandboxes waits for Running before answering 202"},
    {"api.db_dsn",              LSS_CFG_STR,      "",                          0, S_SECRET_MAX, LSS_CFG_SECRET, "api: PostgreSQL for users, keys, ownership, audit (empty: store.dsn)"},
    {"api.exec_default_timeout", LSS_CFG_DURATION, "30s",                      100, 3600000,      0, "api: execution deadline when a request gives none"},
    {"api.exec_max_output",     LSS_CFG_SIZE,     "1Mi",                     1024, 16777216,     0, "api: output kept per stream of a REST execution (more is cut and flagged)"},
    {"api.executor_endpoint",   LSS_CFG_STR,      "tcp://127.0.0.1:7432",      1, S_ADDR_MAX,   0, "api: the executor ROUTER (a list reaches every replica)"},
    {"api.jwt_secret",          LSS_CFG_STR,      "",                          0, S_SECRET_MAX, LSS_CFG_SECRET, "api: HMAC secret for HS256 JWTs (at least 32 bytes; empty: JWTs are refused)"},
    {"api.jwt_ttl",             LSS_CFG_DURATION, "1h",                     1000, 86400000,     0, "api: lifetime of tokens issued by POST /auth/token"},
    {"api.key_cache_ttl",       LSS_CFG_DURATION, "30s",                       0, 3600000,      0, "api: how long an API key's lookup is cached in Redis (revocation drops it at once)"},
    {"api.listen",              LSS_CFG_STR,      "127.0.0.1:8080",            0, S_ADDR_MAX,   0, "api: public REST/WebSocket listen address"},
    {"api.max_body",            LSS_CFG_SIZE,     "1Mi",                     1024, 67108864,     0, "api: largest JSON request body (413 past it)"},
    {"api.max_connections",     LSS_CFG_INT,      "4096",                     16, 65536,        0, "api: client connections at once"},
    {"api.max_file",            LSS_CFG_SIZE,     "64Mi",                    1024, 1073741824,   0, "api: largest file uploaded or downloaded through /files (413 past it)"},
    {"api.max_sandboxes_per_user", LSS_CFG_INT,   "50",                        1, 100000,       0, "api: active sandboxes a non-admin user may have"},
    {"api.namespace",           LSS_CFG_STR,      "default",                   1, 63,           0, "api: namespace of the sandboxes and warm pools it creates"},
    {"api.origins",             LSS_CFG_STR,      "",                          0, 4096,         0, "api: comma-separated Origin allow-list for WebSocket upgrades (empty: requests carrying an Origin are refused)"},
    {"api.pub_endpoint",        LSS_CFG_STR,      "tcp://127.0.0.1:7441",      0, S_ADDR_MAX,   0, "api: bus PUB bind endpoint (audit events)"},
    {"api.queue_max",           LSS_CFG_INT,      "1024",                     16, 1000000,      0, "api: requests waiting for a worker (503 past it)"},
    {"api.rate_create_sandbox", LSS_CFG_INT,      "60",                        1, 100000000,    0, "api: create_sandbox requests per key per rate window"},
    {"api.rate_default",        LSS_CFG_INT,      "6000",                      1, 100000000,    0, "api: requests of the default class per key per rate window"},
    {"api.rate_execute_code",   LSS_CFG_INT,      "1200",                      1, 100000000,    0, "api: execute_code requests per key per rate window"},
    {"api.rate_window",         LSS_CFG_DURATION, "60s",                    1000, 86400000,     0, "api: rate-limit window"},
    {"api.redis_timeout",       LSS_CFG_DURATION, "1s",                       10, 60000,        0, "api: connect and command timeout towards Redis"},
    {"api.warmpool_endpoint",   LSS_CFG_STR,      "tcp://127.0.0.1:7422",      1, S_ADDR_MAX,   0, "api: the warm-pool allocation ROUTER"},
    {"api.watcher_endpoint",    LSS_CFG_STR,      "tcp://127.0.0.1:7401",      1, S_ADDR_MAX,   0, "api: the watcher's PUB (sandbox changes, to wait for Running)"},
    {"api.workers",             LSS_CFG_INT,      "8",                         1, 256,          0, "api: worker threads for requests that touch PostgreSQL, Redis or the store"},
    {"api.ws_max_executions",   LSS_CFG_INT,      "16",                        1, 1024,         0, "api: executions at once per WebSocket connection"},
    {"api.ws_max_frame",        LSS_CFG_SIZE,     "1Mi",                      256, 16777216,     0, "api: largest WebSocket message from a client"},
    {"api.ws_max_output",       LSS_CFG_SIZE,     "1Gi",                     1024, 1073741824,   0, "api: output per stream of a WebSocket execution (flow-controlled, so not held in memory; more is cut and flagged)"},
    {"api.ws_ping",             LSS_CFG_DURATION, "30s",                    1000, 3600000,      0, "api: WebSocket protocol ping interval (a peer that misses two is dropped)"},
    {"api.ws_send_queue",       LSS_CFG_SIZE,     "4Mi",                    65536, 268435456,    0, "api: bytes queued towards one WebSocket client at most"},
    {"api.ws_send_timeout",     LSS_CFG_DURATION, "30s",                    1000, 3600000,      0, "api: a WebSocket client that reads nothing this long while output waits is disconnected"},

    {"bus.heartbeat_ivl",       LSS_CFG_DURATION, "2000",                    100, 600000,       0, "bus: ZMTP heartbeat interval"},
    {"bus.heartbeat_timeout",   LSS_CFG_DURATION, "6000",                    100, 3600000,      0, "bus: peer declared dead after this long without traffic"},
    {"bus.linger",              LSS_CFG_DURATION, "1000",                      0, 60000,        0, "bus: how long close waits to flush pending messages"},
    {"bus.max_message",         LSS_CFG_SIZE,     "4Mi",                    1024, 268435456,    0, "bus: largest message accepted (ZMQ_MAXMSGSIZE)"},
    {"bus.rcvhwm",              LSS_CFG_INT,      "10000",                     1, 10000000,     0, "bus: receive high-water mark, messages per socket"},
    {"bus.reconnect_ivl",       LSS_CFG_DURATION, "100",                      10, 60000,        0, "bus: first reconnect delay"},
    {"bus.reconnect_ivl_max",   LSS_CFG_DURATION, "5000",                     10, 600000,       0, "bus: reconnect delay cap (exponential backoff)"},
    {"bus.resolve_interval",    LSS_CFG_DURATION, "10000",                   500, 600000,       0, "bus: how often dns+tcp:// endpoints are resolved again (new replicas get work within this long; a failed lookup is retried after 1 s)"},
    {"bus.sndhwm",              LSS_CFG_INT,      "10000",                     1, 10000000,     0, "bus: send high-water mark, messages per socket"},
    {"bus.trace",               LSS_CFG_BOOL,     "false",                     0, 0,            0, "bus: also publish request/reply traffic as trace.* events"},

    {"executor.admin_listen",   LSS_CFG_STR,      "127.0.0.1:9431",            0, S_ADDR_MAX,   0, "executor: admin HTTP (health, metrics) listen address"},
    {"executor.agent_timeout",   LSS_CFG_DURATION, "5s",                        100, 600000,       0, "executor: an agent that does not answer (connect, ping) this long fails its executions"},
    {"executor.curve_secret",   LSS_CFG_STR,      "",                          0, 40,           LSS_CFG_SECRET, "executor: CURVE secret key (Z85) for agents that publish status.agentPublicKey (cluster mode); its public key must be in the reconciler's reconciler.executor_public_keys"},
    {"executor.default_timeout", LSS_CFG_DURATION, "60s",                       100, 86400000,     0, "executor: execution deadline when the request gives none"},
    {"executor.max_streams",     LSS_CFG_INT,      "1024",                        1, 100000,       0, "executor: executions and file requests in flight at once"},
    {"executor.max_timeout",     LSS_CFG_DURATION, "1h",                        100, 86400000,     0, "executor: longest execution deadline a request may ask for"},
    {"executor.pub_endpoint",   LSS_CFG_STR,      "tcp://127.0.0.1:7431",      0, S_ADDR_MAX,   0, "executor: bus PUB bind endpoint (exec lifecycle)"},
    {"executor.router_endpoint", LSS_CFG_STR,     "tcp://127.0.0.1:7432",      0, S_ADDR_MAX,   0, "executor: ROUTER bind endpoint for exec/file requests from api"},
    {"executor.requester_timeout", LSS_CFG_DURATION, "15s",                       100, 600000,       0, "executor: a requester silent this long (no message, no ping) loses its executions"},
    {"executor.window",          LSS_CFG_SIZE,     "256Ki",                     4096, 67108864,     0, "executor: output bytes in flight per execution (credit granted to the agent ahead of the requester)"},

    {"k8s.context",             LSS_CFG_STR,      "",                          0, 253,          0, "k8s: kubeconfig context to use (empty: current-context)"},
    {"k8s.kubeconfig",          LSS_CFG_STR,      "",                          0, 1024,         0, "k8s: kubeconfig file (empty: in-cluster when KUBERNETES_SERVICE_HOST is set, else $KUBECONFIG, else ~/.kube/config)"},
    {"k8s.lease_duration",      LSS_CFG_DURATION, "15s",                    1000, 3600000,      0, "k8s: leader election Lease duration (whole seconds; a standby takes over this long after the last renewal it saw)"},
    {"k8s.max_response",        LSS_CFG_SIZE,     "64Mi",                1048576, 1073741824,   0, "k8s: largest response body read from the API server"},
    {"k8s.max_retries",         LSS_CFG_INT,      "3",                         0, 10,           0, "k8s: retries of a request answered 429 or 5xx (backoff, honouring Retry-After)"},
    {"k8s.namespace",           LSS_CFG_STR,      "",                          0, 63,           0, "k8s: namespace for Leases and resourceVersion probes (empty: the context's, the service account's, else default)"},
    {"k8s.renew_deadline",      LSS_CFG_DURATION, "10s",                     100, 3600000,      0, "k8s: a leader that has not renewed its Lease this long stops leading"},
    {"k8s.request_timeout",     LSS_CFG_DURATION, "10s",                     100, 600000,       0, "k8s: longest time one request may take (connect, send, answer)"},
    {"k8s.retry_max_wait",      LSS_CFG_DURATION, "10s",                       0, 600000,       0, "k8s: longest wait before a retry, whatever Retry-After asks"},
    {"k8s.retry_period",        LSS_CFG_DURATION, "2s",                       10, 600000,       0, "k8s: how often a leader renews and a standby tries for the Lease (standbys add up to 20% jitter)"},
    {"k8s.serviceaccount_dir",  LSS_CFG_STR,      "/var/run/secrets/kubernetes.io/serviceaccount", 1, 1024, 0, "k8s: in-cluster token, ca.crt and namespace files (the token is re-read when it changes)"},
    {"k8s.watch_timeout",       LSS_CFG_DURATION, "5m",                     1000, 3600000,      0, "k8s: timeoutSeconds asked of each watch request (plus up to 20% jitter); the stream is then reopened from its last resourceVersion"},

    {"log.level",               LSS_CFG_STR,      "info",                      1, 16,           0, "log: minimum level (debug, info, warn, error)"},

    {"node.admin_listen",       LSS_CFG_STR,      "127.0.0.1:9451",            0, S_ADDR_MAX,   0, "node: admin HTTP (health, metrics) listen address"},
    {"node.agent_path",         LSS_CFG_STR,      "",                          0, 1024,         0, "node: lss-agent binary bound into sandboxes (empty: next to the running program)"},
    {"node.max_sandboxes",       LSS_CFG_INT,      "256",                         1, 1024,         0, "node: sandboxes run at once; Pods past it stay Pending"},
    {"node.name",                LSS_CFG_STR,      "local",                       1, 63,           0, "node: this node's name (Pods with spec.nodeName empty or equal to it run here)"},
    {"node.state_dir",          LSS_CFG_STR,      "/var/lib/lss/sandboxes",    1, 60,           0, "node: sandbox state directory (short: agent ipc paths must stay under 108 bytes)"},
    {"node.uid_base",            LSS_CFG_INT,      "200000",                    1000, 2000000000,   0, "node: first host uid for sandboxes when run as root (one per sandbox)"},
    {"node.pub_endpoint",       LSS_CFG_STR,      "tcp://127.0.0.1:7451",      0, S_ADDR_MAX,   0, "node: bus PUB bind endpoint (pod status)"},

    {"reconciler.admin_listen", LSS_CFG_STR,      "127.0.0.1:9411",            0, S_ADDR_MAX,   0, "reconciler: admin HTTP (health, metrics) listen address"},
    {"reconciler.executor_public_keys", LSS_CFG_STR, "",                          0, 420,          0, "reconciler: the executors' CURVE public keys (Z85, comma-separated); set on Kubernetes, each sandbox agent then speaks CURVE and answers only these"},
    {"reconciler.executor_namespace", LSS_CFG_STR, "",                          0, 63,           0, "reconciler: namespace of the lss-executor Pods, for the sandboxes' NetworkPolicies (empty: the sandbox's own)"},
    {"reconciler.pub_endpoint", LSS_CFG_STR,      "tcp://127.0.0.1:7411",      0, S_ADDR_MAX,   0, "reconciler: bus PUB bind endpoint (reconcile outcomes)"},
    {"reconciler.queue_endpoint", LSS_CFG_STR,      "tcp://127.0.0.1:7402",        1, S_ADDR_MAX,   0, "reconciler: the watcher's work-queue ROUTER (a list reaches every replica)"},
    {"reconciler.workers",       LSS_CFG_INT,      "4",                           1, 256,          0, "reconciler: sync workers in this process"},

    {"redis.url",               LSS_CFG_STR,      "redis://127.0.0.1:6380",    1, S_SECRET_MAX, LSS_CFG_SECRET, "redis: URL (may carry a password)"},

    {"service.stall_limit",     LSS_CFG_DURATION, "10s",                   100, 3600000,      0, "service: /healthz fails when the main loop is silent this long"},
    {"service.shutdown_timeout", LSS_CFG_DURATION, "5s",                     100, 60000,        0, "service: longest graceful shutdown before exit"},

    {"store.backend",           LSS_CFG_STR,      "postgres",                  1, 32,           0, "store: object store backend (postgres | kubernetes)"},
    {"store.dsn",               LSS_CFG_STR,      "host=127.0.0.1 port=5433 dbname=lss user=lss", 0, S_SECRET_MAX, LSS_CFG_SECRET, "store: PostgreSQL connection string (may carry a password)"},

    {"warmpool.admin_listen",   LSS_CFG_STR,      "127.0.0.1:9421",            0, S_ADDR_MAX,   0, "warmpool: admin HTTP (health, metrics) listen address"},
    {"warmpool.alloc_endpoint", LSS_CFG_STR,      "tcp://127.0.0.1:7422",      0, S_ADDR_MAX,   0, "warmpool: ROUTER bind endpoint for allocation requests"},
    {"warmpool.executor_endpoint", LSS_CFG_STR,      "tcp://127.0.0.1:7432",        1, S_ADDR_MAX,   0, "warmpool: the executor ROUTER, for preload scripts"},
    {"warmpool.leader_check",    LSS_CFG_DURATION, "1s",                        100, 60000,        0, "warmpool: how often the scaler tries for / confirms leadership"},
    {"warmpool.pub_endpoint",   LSS_CFG_STR,      "tcp://127.0.0.1:7421",      0, S_ADDR_MAX,   0, "warmpool: bus PUB bind endpoint (scaling, allocations)"},
    {"warmpool.queue_endpoint",  LSS_CFG_STR,      "tcp://127.0.0.1:7402",        1, S_ADDR_MAX,   0, "warmpool: the watcher's work-queue ROUTER"},

    {"watcher.admin_listen",    LSS_CFG_STR,      "127.0.0.1:9401",            0, S_ADDR_MAX,   0, "watcher: admin HTTP (health, metrics) listen address"},
    {"watcher.backoff_max",      LSS_CFG_DURATION, "60s",                        10, 3600000,      0, "watcher: cap of a failing key's retry delay (5 ms doubling)"},
    {"watcher.leader_check",     LSS_CFG_DURATION, "1s",                        100, 60000,        0, "watcher: how often it tries for / confirms leadership"},
    {"watcher.max_keys",         LSS_CFG_INT,      "100000",                     16, 10000000,     0, "watcher: keys a queue holds at once"},
    {"watcher.pub_endpoint",    LSS_CFG_STR,      "tcp://127.0.0.1:7401",      0, S_ADDR_MAX,   0, "watcher: bus PUB bind endpoint (object changes)"},
    {"watcher.queue_endpoint",  LSS_CFG_STR,      "tcp://127.0.0.1:7402",      0, S_ADDR_MAX,   0, "watcher: ROUTER bind endpoint of the work queue"},
    {"watcher.queue_lease",      LSS_CFG_DURATION, "30s",                       100, 3600000,      0, "watcher: a worker silent this long loses its keys (queued again)"},
    {"watcher.resync",           LSS_CFG_DURATION, "30s",                       100, 3600000,      0, "watcher: every key is queued again this often"},
};
/* clang-format on */

const size_t lss_settings_count = sizeof lss_settings / sizeof lss_settings[0];
