/* The plane's state and what its C files ask of each other. */
#ifndef FAITHD6_COPY_H
#define FAITHD6_COPY_H

#include <uv.h>

#include "conn.h"

#define BIT(side) ((uint8_t)(1u << (side)))

struct plane {
  uv_loop_t *loop;
  uv_poll_t poll;   /* watches epfd */
  uv_timer_t timer; /* the earliest deadline of the heap */
  uv_idle_t idle;   /* runs the work queue */
  int epfd;
  int listen_fd;
  int reserve_fd; /* spare descriptor, for shedding connections when none is left */
  int keepalive_s;
  struct plane_events events;
  enum copy_mode mode;
  /* connections by id */
  struct conn **conns;
  uint32_t conns_cap, next_id;
  uint32_t *free_ids;
  uint32_t free_len;
  uint32_t open;
  struct heap heap;
  uint64_t armed; /* the deadline the uv timer is set for, or UINT64_MAX */
  struct conn *queue_head, *queue_tail;
  struct conn **garbage; /* closed during this batch: freed at its end */
  uint32_t garbage_len, garbage_cap;
  bool opened;
  int depth; /* > 0 while the plane is handling events (or its owner's call) */
  /* copy.c's */
  char *buffer; /* every read lands here, until its direction moves bulk */
  char *bulk;   /* where the next bulk read lands (taken at the first, kept), or NULL */
  char *bulk_free[2];
  uint32_t bulk_free_len;
  uint32_t bulk_held; /* bulk buffers holding bytes for their direction */
  int (*pipes)[2];
  uint32_t pipes_free, pipes_total, pipe_limit;
  uint64_t pipe_bytes; /* the capacity of those pipes, in all */
  uint32_t held_buffers;
  uint64_t held_bytes;
  uint64_t up, down;
};

extern struct plane P;

uint64_t plane_now(void);
/* Starts the current timer of `c`: `timeout` ms from now. */
void conn_timer(struct conn *c, uint32_t timeout);
/* Closes both sockets (resets them unless END_FIN), tells the owner, frees. */
void conn_finish(struct conn *c, enum end_code code, int err);
/* `c` has work left: it runs again on the next turn of the loop. */
void conn_queue(struct conn *c);

int copy_open(void);
void copy_close(void);
/* The backend answered: the preamble, then both directions. */
void copy_start(struct conn *c);
/* Moves what can be moved now in both directions; finishes `c` when both are done. */
void copy_relay(struct conn *c);
/* Gives back what `c` holds (its sockets are closed). */
void copy_release(struct conn *c);

#endif
