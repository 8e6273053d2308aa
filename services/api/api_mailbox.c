/*  api_mailbox — bounded FIFO between threads. See api_mailbox.h.
 *
 *  A mutex-protected singly linked list with a tail pointer. The eventfd (when used) is
 *  written once when the list turns non-empty and drained by take_all, so a poll loop
 *  wakes once per batch, not once per message.
 */
#include "api_mailbox.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

struct _api_mailbox_t {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    api_msg_t *head, *tail;
    size_t count, max;
    bool closed;
    api_mailbox_wake_fn *wake;
    void *wake_arg;
    int efd;
};

api_mailbox_t *api_mailbox_new (size_t max, api_mailbox_wake_fn *wake, void *wake_arg)
{
    api_mailbox_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->max = max;
    self->wake = wake;
    self->wake_arg = wake_arg;
    self->efd = -1;
    if (!wake && (self->efd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        free (self);
        return NULL;
    }
    pthread_mutex_init (&self->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init (&attr);
    pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
    pthread_cond_init (&self->cond, &attr);
    pthread_condattr_destroy (&attr);
    return self;
}

void api_msg_destroy (api_msg_t *msg)
{
    if (!msg)
        return;
    if (msg->destroy)
        msg->destroy (msg);
    else
        free (msg);
}

void api_mailbox_destroy (api_mailbox_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    api_mailbox_t *self = *self_p;
    for (api_msg_t *m = self->head, *next; m; m = next) {
        next = m->next;
        api_msg_destroy (m);
    }
    if (self->efd >= 0)
        close (self->efd);
    pthread_cond_destroy (&self->cond);
    pthread_mutex_destroy (&self->lock);
    free (self);
    *self_p = NULL;
}

static int s_post (api_mailbox_t *self, api_msg_t *msg, bool always)
{
    pthread_mutex_lock (&self->lock);
    if (self->closed || (!always && self->count >= self->max)) {
        pthread_mutex_unlock (&self->lock);
        return -1;
    }
    msg->next = NULL;
    bool was_empty = self->head == NULL;
    if (self->tail)
        self->tail->next = msg;
    else
        self->head = msg;
    self->tail = msg;
    self->count++;
    pthread_cond_signal (&self->cond);
    if (was_empty && self->efd >= 0) {
        uint64_t one = 1;
        ssize_t n = write (self->efd, &one, sizeof one);
        (void)n; /* EAGAIN: the counter is already non-zero, which is all we need */
    }
    pthread_mutex_unlock (&self->lock);
    if (was_empty && self->wake)
        self->wake (self->wake_arg);
    return 0;
}

int api_mailbox_post (api_mailbox_t *self, api_msg_t *msg)
{
    return s_post (self, msg, false);
}

int api_mailbox_post_always (api_mailbox_t *self, api_msg_t *msg)
{
    return s_post (self, msg, true);
}

api_msg_t *api_mailbox_take_all (api_mailbox_t *self)
{
    pthread_mutex_lock (&self->lock);
    api_msg_t *list = self->head;
    self->head = self->tail = NULL;
    self->count = 0;
    if (self->efd >= 0) {
        uint64_t v;
        ssize_t n = read (self->efd, &v, sizeof v);
        (void)n;
    }
    pthread_mutex_unlock (&self->lock);
    return list;
}

api_msg_t *api_mailbox_wait (api_mailbox_t *self, int64_t timeout_ms)
{
    struct timespec until;
    if (timeout_ms >= 0) {
        clock_gettime (CLOCK_MONOTONIC, &until);
        until.tv_sec += timeout_ms / 1000;
        until.tv_nsec += (timeout_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock (&self->lock);
    while (!self->head && !self->closed) {
        int rc = timeout_ms < 0 ? pthread_cond_wait (&self->cond, &self->lock)
                                : pthread_cond_timedwait (&self->cond, &self->lock, &until);
        if (rc == ETIMEDOUT)
            break;
    }
    api_msg_t *m = self->head;
    if (m) {
        self->head = m->next;
        if (!self->head)
            self->tail = NULL;
        self->count--;
        m->next = NULL;
    }
    pthread_mutex_unlock (&self->lock);
    return m;
}

void api_mailbox_close (api_mailbox_t *self)
{
    pthread_mutex_lock (&self->lock);
    self->closed = true;
    pthread_cond_broadcast (&self->cond);
    pthread_mutex_unlock (&self->lock);
    if (self->wake)
        self->wake (self->wake_arg);
    else if (self->efd >= 0) {
        uint64_t one = 1;
        ssize_t n = write (self->efd, &one, sizeof one);
        (void)n;
    }
}

int api_mailbox_fd (const api_mailbox_t *self)
{
    return self->efd;
}

size_t api_mailbox_size (api_mailbox_t *self)
{
    pthread_mutex_lock (&self->lock);
    size_t n = self->count;
    pthread_mutex_unlock (&self->lock);
    return n;
}
