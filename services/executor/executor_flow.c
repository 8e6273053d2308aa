/*  executor_flow — credit accounting and the bounded output buffer of one execution.
 *  See executor_flow.h.
 */
#include "executor_flow.h"

#include <string.h>

#define S_HDR 5 /* record header: stream byte + 32-bit length */

static uint32_t s_get32 (const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void s_put32 (uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

void exec_flow_init (exec_flow_t *self, int64_t window, int64_t requester_credit)
{
    memset (self, 0, sizeof *self);
    self->window = window;
    self->agent_credit = window;
    self->req_credit = requester_credit;
    lss_buf_init (&self->buf, (size_t)window * 6 + 64);
}

void exec_flow_release (exec_flow_t *self)
{
    lss_buf_free (&self->buf);
    self->buffered = 0;
    self->head = 0;
    self->has_last = false;
}

/* Moves the records to the front of the buffer (forwarded bytes leave it). Done only
 * when the forwarded part is large or room is needed, so forwarding a piece costs no
 * copy of everything behind it. */
static void s_compact (exec_flow_t *self)
{
    if (self->head == 0)
        return;
    lss_buf_consume (&self->buf, self->head);
    if (self->has_last)
        self->last_rec -= self->head;
    self->head = 0;
}

int exec_flow_put (exec_flow_t *self, int stream, const uint8_t *data, size_t len)
{
    if (len == 0)
        return 0;
    if ((int64_t)len > self->agent_credit)
        return -1;
    self->agent_credit -= (int64_t)len;
    if (self->discard) {
        self->ungranted += (int64_t)len;
        return 0;
    }
    if (self->head > 0 && self->buf.len + S_HDR + len > self->buf.max)
        s_compact (self);
    uint8_t *last = self->has_last ? self->buf.data + self->last_rec : NULL;
    if (last && last[0] == (uint8_t)stream) {
        if (lss_buf_append (&self->buf, data, len))
            goto fail;
        last = self->buf.data + self->last_rec; /* the buffer may have moved */
        s_put32 (last + 1, s_get32 (last + 1) + (uint32_t)len);
    } else {
        uint8_t hdr[S_HDR] = {(uint8_t)stream};
        s_put32 (hdr + 1, (uint32_t)len);
        size_t at = self->buf.len;
        if (self->buf.len + S_HDR + len > self->buf.max ||
            lss_buf_append (&self->buf, hdr, S_HDR))
            goto fail;
        if (lss_buf_append (&self->buf, data, len)) {
            self->buf.len = at;
            goto fail;
        }
        self->last_rec = at;
        self->has_last = true;
    }
    self->buffered += (int64_t)len;
    return 0;
fail:
    /* Only reachable when allocation fails: give the credit back as if forwarded, so the
     * stream goes on with a gap rather than stalling. */
    self->ungranted += (int64_t)len;
    return 0;
}

size_t exec_flow_peek (exec_flow_t *self, int *stream, const uint8_t **data, size_t max)
{
    if (self->buffered == 0 || self->req_credit <= 0 || max == 0)
        return 0;
    uint8_t *rec = self->buf.data + self->head;
    size_t left = s_get32 (rec + 1);
    size_t n = left < max ? left : max;
    if ((int64_t)n > self->req_credit)
        n = (size_t)self->req_credit;
    *stream = rec[0];
    *data = rec + S_HDR;
    return n;
}

void exec_flow_consume (exec_flow_t *self, size_t n)
{
    if (n == 0 || self->buffered == 0)
        return;
    uint8_t *rec = self->buf.data + self->head;
    size_t len = s_get32 (rec + 1);
    if (n > len)
        n = len;
    self->buffered -= (int64_t)n;
    self->req_credit -= (int64_t)n;
    self->ungranted += (int64_t)n;
    size_t drop = n;
    if (n == len) {
        drop = S_HDR + len; /* the whole record */
        if (self->last_rec == self->head)
            self->has_last = false;
    } else {
        /* Move the header up over the forwarded bytes, so what was forwarded leaves the
         * buffer (a record that keeps growing while it is drained stays bounded). */
        uint8_t hdr[S_HDR] = {rec[0]};
        s_put32 (hdr + 1, (uint32_t)(len - n));
        memcpy (rec + n, hdr, S_HDR);
        if (self->last_rec == self->head)
            self->last_rec += n;
    }
    self->head += drop;
    if (self->head >= self->buf.len) { /* all forwarded */
        self->buf.len = 0;
        self->head = 0;
        self->has_last = false;
    } else if (self->head >= self->buf.len / 2)
        s_compact (self); /* moves at most as much as was forwarded */
}

int exec_flow_credit (exec_flow_t *self, int64_t bytes)
{
    if (bytes <= 0 || bytes > EXEC_FLOW_MAX_CREDIT ||
        self->req_credit > EXEC_FLOW_MAX_CREDIT - bytes)
        return -1;
    self->req_credit += bytes;
    return 0;
}

int64_t exec_flow_grant_due (const exec_flow_t *self)
{
    int64_t quarter = self->window / 4 > 0 ? self->window / 4 : 1;
    return self->ungranted >= quarter || (self->ungranted > 0 && self->agent_credit == 0)
               ? self->ungranted
               : 0;
}

void exec_flow_granted (exec_flow_t *self, int64_t bytes)
{
    self->ungranted -= bytes;
    self->agent_credit += bytes;
}

void exec_flow_discard (exec_flow_t *self)
{
    self->ungranted += self->buffered;
    self->buffered = 0;
    self->has_last = false;
    self->head = 0;
    lss_buf_reset (&self->buf);
    self->discard = true;
}
