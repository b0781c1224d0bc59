/* The plane's own types, shared by its C files (not by binding.c). */
#ifndef FAITHD6_CONN_H
#define FAITHD6_CONN_H

#include "plane.h"

#define CLIENT 0
#define BACKEND 1
#define NO_HEAP UINT32_MAX

enum conn_state { ST_ACCEPTED, ST_CONNECTING, ST_RELAYING, ST_GONE };

/* One direction: bytes read from side `d` are written to side `1 - d` (up: d = CLIENT). */
struct dir {
  char *held;        /* what the destination has not taken yet (malloc'ed, or a bulk buffer), or NULL */
  uint32_t held_off, held_len;
  int pipe[2];       /* a pipe pair of the pool while splicing (read end, write end), or -1 */
  uint32_t in_pipe;  /* bytes in that pipe */
  bool eof;          /* the source sent its FIN */
  bool shut;         /* and it was passed on (shutdown(SHUT_WR) of the destination) */
  bool bulk;         /* a read filled the 64 KiB buffer: from now on it reads 1 MiB, or splices */
  bool held_bulk;    /* `held` is a bulk buffer (back to the pool when written), not malloc'ed */
};

struct conn {
  int fd[2];
  uint32_t id;
  uint32_t heap;          /* index in the timer heap, or NO_HEAP */
  uint64_t key;           /* the deadline the heap holds it by (may be earlier than the real one) */
  uint64_t since;         /* loop time of the last byte, or of the start of the current timer */
  uint32_t timeout;       /* ms after `since` that the current timer fires */
  uint32_t idle_ms, half_closed_ms;
  int err;                /* a connect error found at once, reported on the next turn */
  uint64_t dialled;       /* uv_hrtime() at plane_dial(): the connect time and the duration count from it */
  uint64_t bytes[2];      /* read from the client (up) and from the backend (down) */
  uint8_t state;
  uint8_t readable;       /* bit per side: epoll said readable and no read has said EAGAIN since */
  uint8_t writable;       /* bit per side, likewise for writes */
  uint8_t ended;          /* bit per side: epoll said hang-up, error or the peer's FIN (sticky) */
  uint8_t halves;         /* FINs passed on */
  bool queued;            /* on the list of connections with work left (fairness) */
  struct conn *next_queued;
  struct dir dir[2];
  char *preamble;
  uint32_t preamble_len;
};

/* The timer heap (heap.c): connections by `key`, the earliest first. */
struct heap {
  struct conn **items;
  uint32_t len, cap;
};

int heap_push(struct heap *h, struct conn *c);
void heap_remove(struct heap *h, struct conn *c);
/* `c`'s key changed: restores the order. */
void heap_update(struct heap *h, struct conn *c);
static inline struct conn *heap_top(const struct heap *h) { return h->len > 0 ? h->items[0] : NULL; }

#endif
