/*  executor_flow — credit-based flow control of one execution's output, from the agent
 *  through the executor to the requester (plain logic, no I/O).
 *
 *  The executor hands the agent `window` bytes of credit at the start and afterwards
 *  only what it has forwarded to the requester, so at every moment
 *      agent_credit + buffered + ungranted == window
 *  and the executor never holds more than `window` output bytes of an execution. The
 *  requester's own credit (initial + exec.credit grants) bounds what is forwarded.
 *  Output is kept as records [stream:1][len:4][data]; a chunk of the same stream as the
 *  last record extends it, so the record overhead is at most 5 bytes per stream switch
 *  (the buffer's hard cap is 6 × window, reached only by a program alternating 1-byte
 *  writes to stdout and stderr).
 */
#ifndef EXECUTOR_FLOW_H
#define EXECUTOR_FLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lss_util.h"

#define EXEC_FLOW_STDOUT     0
#define EXEC_FLOW_STDERR     1
#define EXEC_FLOW_MAX_CREDIT (64ll << 20) /* requester credit balance cap, bytes */

typedef struct {
    lss_buf_t buf;        /* records from offset head on (what is before was forwarded) */
    size_t head;          /* offset of the first record's header */
    size_t last_rec;      /* offset of the last record's header */
    bool has_last;        /* buf holds at least one record */
    int64_t window;       /* bytes in flight from the agent at most */
    int64_t buffered;     /* data bytes in buf not yet forwarded */
    int64_t agent_credit; /* granted to the agent, not yet used by it */
    int64_t ungranted;    /* forwarded (or discarded), not yet granted back to the agent */
    int64_t req_credit;   /* what the requester still accepts */
    bool discard;         /* requester gone: drop output, keep the agent flowing */
} exec_flow_t;

/*  Sets up a flow: the agent starts with window credit, the requester with
 *  requester_credit (> 0). */
void exec_flow_init (exec_flow_t *self, int64_t window, int64_t requester_credit);
/*  Frees the buffer. */
void exec_flow_release (exec_flow_t *self);

/*  The agent sent len bytes of stream. Returns 0, or -1 (nothing kept) when that is more
 *  than the credit the agent had: a protocol violation. */
int exec_flow_put (exec_flow_t *self, int stream, const uint8_t *data, size_t len);

/*  The next piece the requester may take now, at most max bytes and its credit: returns
 *  its length (0 if nothing can go) with *stream and *data (borrowed, valid until the next
 *  call) set. After sending it call exec_flow_consume with the same length. */
size_t exec_flow_peek (exec_flow_t *self, int *stream, const uint8_t **data, size_t max);
void exec_flow_consume (exec_flow_t *self, size_t n);

/*  The requester granted bytes more. Returns 0, or -1 (ignored) when bytes <= 0 or the
 *  balance would pass EXEC_FLOW_MAX_CREDIT. */
int exec_flow_credit (exec_flow_t *self, int64_t bytes);

/*  Bytes to grant the agent now (once a quarter window has been forwarded), or 0. After a
 *  successful exec.credit call exec_flow_granted. */
int64_t exec_flow_grant_due (const exec_flow_t *self);
void exec_flow_granted (exec_flow_t *self, int64_t bytes);

/*  Drops everything buffered and whatever arrives later (the requester is gone), still
 *  granting the agent credit so the execution can end. */
void exec_flow_discard (exec_flow_t *self);

#endif
