/*  api_bridge — the api's one thread that talks to lss-executor: executions (REST and
 *  WebSocket) and file operations, many at once, none blocking another.
 *
 *  One DEALER per executor endpoint of api.executor_endpoint (a list): an execution and
 *  all its messages (stdin, credit, cancel) stick to the executor it started on, new
 *  work goes to the executor with the fewest in flight. Each executor is pinged every
 *  second; one silent for API_BRIDGE_SILENCE_MS, or whose replies come from a new
 *  process (its envelope src changed: it restarted), fails the work it had with an
 *  explicit error — an execution never hangs. Every execution also ends at its
 *  deadline plus API_BRIDGE_GRACE_MS whatever the executor does.
 *
 *  Discovery: a `dns+tcp://NAME:PORT` entry (lss_discovery) stands for every address NAME
 *  resolves to, looked up again every bus.resolve_interval from the bridge's tick (never
 *  blocking it). A new address gets its own DEALER; one that disappears gets no new work,
 *  keeps its executions until they end (or its silence fails them) and is then closed.
 *  With no dns+ entry the table is fixed at start, as before.
 *
 *  Flow control: an execution starts with API_BRIDGE_WINDOW bytes of credit. REST
 *  output is gathered (capped by api.exec_max_output per stream; the agent cuts and
 *  flags beyond it) and credit is granted back as it arrives. WebSocket output becomes
 *  frames for the lws thread, and credit is granted back only when the lws thread
 *  reports them written (API_MSG_EXEC_CONSUMED), so a client that reads slowly slows
 *  the program and never grows anyone's memory past one window per execution.
 */
#ifndef API_BRIDGE_H
#define API_BRIDGE_H

#include "api_ctx.h"

#define API_BRIDGE_WINDOW          (1024 * 1024) /* output credit per execution at most */
#define API_BRIDGE_WINDOW_MIN      (16 * 1024)
#define API_BRIDGE_MAX_EXECUTORS   16
#define API_BRIDGE_MAX_WORK        4096 /* executions + file operations in flight */
#define API_BRIDGE_PING_MS         1000
#define API_BRIDGE_SILENCE_MS      5000
#define API_BRIDGE_GRACE_MS        5000
#define API_BRIDGE_FILE_CHUNK      (1024 * 1024)
#define API_BRIDGE_FILE_STEP_MS    30000 /* one file request's answer */
#define API_BRIDGE_SUMMARY_MAX     1024
#define API_BRIDGE_RESOLVE_WAIT_MS 2000 /* first lookup of dns+ endpoints, at start */

typedef struct _api_bridge_t api_bridge_t;

/*  Creates ctx->bridge_inbox and starts the thread. NULL on failure (logged). */
api_bridge_t *api_bridge_new (api_ctx_t *ctx);
/*  Stops the thread: in-flight REST work is answered 503, executions are cancelled. */
void api_bridge_destroy (api_bridge_t **self_p);

#endif
