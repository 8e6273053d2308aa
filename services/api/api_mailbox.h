/*  api_mailbox — a bounded FIFO of messages between the api's threads.
 *
 *  The api has four kinds of threads (docs/api.md): the libwebsockets thread, the
 *  workers, the exec bridge and the events thread. Each has one mailbox; any thread may
 *  post to it. A consumer learns of new mail in the way that suits its loop: workers
 *  block in api_mailbox_wait (condition variable), zmq_poll loops poll api_mailbox_fd
 *  (an eventfd), and the libwebsockets thread is woken by a callback
 *  (lws_cancel_service). Messages are caller-defined structs whose first member is an
 *  api_msg_t; ownership passes with a successful post.
 *
 *  Bounds: post refuses past `max` messages (the caller answers 503 or drops, as it
 *  sees fit); api_mailbox_post_always is for replies whose number is already bounded
 *  by what produced them (one per request in flight, output under credit) and must
 *  never be lost.
 */
#ifndef API_MAILBOX_H
#define API_MAILBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct api_msg {
    struct api_msg *next;
    int type;
    void (*destroy) (struct api_msg *self); /* frees the whole message; NULL = free() */
} api_msg_t;

typedef struct _api_mailbox_t api_mailbox_t;

typedef void (api_mailbox_wake_fn) (void *arg);

/*  A mailbox holding at most max messages. wake (may be NULL) is called after every
 *  post that found the box empty, from the posting thread; with wake NULL an eventfd
 *  is created for api_mailbox_fd. NULL on failure. */
api_mailbox_t *api_mailbox_new (size_t max, api_mailbox_wake_fn *wake, void *wake_arg);
/*  Destroys every message still queued (their destroy) and the mailbox; NULLs *self_p. */
void api_mailbox_destroy (api_mailbox_t **self_p);

/*  Appends msg. Returns 0 (ownership taken) or -1 if the box is full or closed (the
 *  caller still owns msg). */
int api_mailbox_post (api_mailbox_t *self, api_msg_t *msg);
/*  Appends msg whatever the count; -1 only once the box is closed. */
int api_mailbox_post_always (api_mailbox_t *self, api_msg_t *msg);

/*  Takes every queued message, oldest first, as a list linked by next (NULL if none).
 *  Resets the eventfd. */
api_msg_t *api_mailbox_take_all (api_mailbox_t *self);
/*  Takes the oldest message, waiting up to timeout_ms (< 0: forever) for one. NULL on
 *  timeout or once the box is closed and empty. */
api_msg_t *api_mailbox_wait (api_mailbox_t *self, int64_t timeout_ms);

/*  Refuses further posts and wakes every waiter (shutdown). */
void api_mailbox_close (api_mailbox_t *self);

/*  The eventfd (readable while mail is queued), or -1 when a wake callback is used. */
int api_mailbox_fd (const api_mailbox_t *self);
size_t api_mailbox_size (api_mailbox_t *self);

/*  Frees a message with its destroy (or free). Safe on NULL. */
void api_msg_destroy (api_msg_t *msg);

#endif
