/*
 * faithd6's native data plane: the per-connection mechanics of a relay (accept, connect with
 * its timeout, moving bytes, half-close, resets, the idle and half-closed timers, the byte
 * counters) in C, on the worker's own libuv loop. Every decision stays in TypeScript
 * (src/relay/native.ts), called at accept, when the backend answers, and at close.
 *
 * One plane per process. Its sockets live in an epoll set of its own, edge-triggered, which
 * libuv watches as a single descriptor (one uv_poll_t); one uv_timer_t serves every
 * connection's deadline through a heap. A connection costs its two descriptors and one
 * struct conn; bytes are held in user space only while a destination is full.
 */
#ifndef FAITHD6_PLANE_H
#define FAITHD6_PLANE_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How a connection ended, as the plane saw it; src/relay/native.ts names them. */
enum end_code {
  END_FIN = 0,             /* both directions finished with a FIN */
  END_CLIENT_ERROR = 1,    /* an error (reset) on the client's socket */
  END_BACKEND_ERROR = 2,   /* an error (reset) on the backend's socket, once connected */
  END_CONNECT_ERROR = 3,   /* the backend was never reached: errno says why */
  END_CONNECT_TIMEOUT = 4,
  END_IDLE_TIMEOUT = 5,
  END_HALF_CLOSED_TIMEOUT = 6,
  END_STOPPED = 7,         /* reset on request (the drain deadline) */
};

/* How bulk is moved (FAITHD6_NATIVE_COPY): read/write through 1 MiB buffers, or splice(2). */
enum copy_mode { COPY_RW = 0, COPY_SPLICE = 1 };

/* What the plane tells its owner (binding.c turns these into calls of JavaScript functions). */
struct plane_events {
  /* A connection was accepted as `id`: the owner calls plane_dial() for it, or nothing (refused).
     The addresses come as text and as their 16 bytes (network order). */
  void (*accepted)(uint32_t id, const struct in6_addr *local, const char *local_text, int local_port, const struct in6_addr *remote,
                   const char *remote_text, int remote_port);
  /* The backend of `id` answered, `connect_ms` after plane_dial(). */
  void (*established)(uint32_t id, double connect_ms);
  /* `id` is gone (both sockets closed), `ms` after plane_dial(); its id may be reused from the
     next accepted() on. */
  void (*closed)(uint32_t id, enum end_code end, int err, uint64_t up, uint64_t down, double ms);
  /* accept(2) failed with `err` (not EAGAIN, not a descriptor shortage: those are handled). */
  void (*accept_failed)(int err);
  /* Around the plane's own turns of the loop (not around calls its owner makes). */
  void (*enter)(void);
  void (*leave)(void);
};

struct dial_options {
  uint32_t ipv4;    /* the backend, host order */
  uint16_t port;
  uint32_t source;  /* the address to bind first, host order; 0: the kernel's choice */
  uint32_t connect_ms, idle_ms, half_closed_ms;
  const char *preamble;  /* bytes for the backend before any of the client's; copied */
  size_t preamble_len;
};

struct plane_stats {
  uint32_t conns;           /* open connections */
  uint32_t held_buffers;    /* directions holding bytes their destination has not taken */
  uint64_t held_bytes;      /* and how many bytes */
  uint32_t pipes;           /* splice pipe pairs, in use and pooled */
  uint64_t pipe_bytes;      /* their capacity, in all */
  uint32_t bulk_buffers;    /* 1 MiB buffers of bulk reads: the next read's, held ones, pooled ones */
  uint64_t up, down;        /* bytes read from clients and backends of open connections */
  uint32_t conn_size;       /* bytes of one connection's struct */
};

/* Starts the plane on `loop` (a uv_loop_t *); 0 or an errno. */
int plane_open(void *loop, const struct plane_events *events, enum copy_mode mode);
/* Listens on the bound socket `fd` (TCP_NODELAY and keepalive after `keepalive_s` are set on
   it, for every accepted socket to inherit) and accepts from it; 0 or an errno. */
int plane_listen(int fd, int backlog, int keepalive_s);
/* Stops accepting (the descriptor stays open: its owner closes it). */
void plane_unlisten(void);
/* Connects accepted connection `id` to its backend and relays; only from accepted(). */
void plane_dial(uint32_t id, const struct dial_options *options);
/* Resets both sockets of `id` now (END_STOPPED); nothing when it is not open. */
void plane_reset(uint32_t id);
void plane_stats(struct plane_stats *out);
/* How many splice pipe pairs (two descriptors each) the plane may hold open; 256 at most. */
void plane_pipe_limit(uint32_t pairs);
/* Resets every connection and releases everything (tests; a process exiting needs none of it). */
void plane_close(void);

#endif
