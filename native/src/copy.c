/*
 * Moving bytes, one direction at a time: read(2) into a buffer and write(2) on, or splice(2)
 * through a pipe pair of a pool (FAITHD6_NATIVE_COPY=splice). Either way a direction starts
 * with the plane's one 64 KiB buffer, and moves bulk from its first read that fills it: by
 * default through 1 MiB reads into a bulk buffer, as the JavaScript plane does (one stream
 * 13.2 -> 17.1 Gbit/s up and 14.4 -> 16.3 down against splice, four streams 3-9 % behind it:
 * medians of 6-10 alternating runs, README "What limits bulk throughput"), with
 * FAITHD6_NATIVE_COPY=splice through a pipe instead. A small message costs a read
 * and a write, where splice costs two splices and a third to hear EAGAIN (a short splice proves
 * nothing, see pump). A direction reads only while its destination takes bytes; what the
 * destination did not take is held (at most one read's worth) until it does, and the direction
 * reads nothing meanwhile: that is the backpressure TCP relies on. Held bytes of a bulk read
 * stay in its bulk buffer, which the direction keeps until they are written; of a small read,
 * they are copied out (malloc'ed). Once epoll has said that a source hung up, failed or sent
 * its FIN, it is read until EAGAIN, its FIN (0) or its error, so that a reset arriving with the
 * last bytes is seen as the reset it is, never as an end; before that, a short read(2) means
 * that the source has nothing more now (whatever comes later raises a new edge), and no read is
 * made just to hear EAGAIN. A short splice(2) means no such thing (see pump).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "copy.h"

/* What one read(2) takes at most before a direction moves bulk. */
#define BUFFER_SIZE (64 * 1024)
/* What one read(2) of a direction moving bulk takes: as the JavaScript plane reads (1 MiB took a
   quarter less CPU per GB than 256 KiB there), and the most such a direction holds. */
#define BULK_SIZE (1024 * 1024)
/* Bulk buffers holding bytes at once, at most (16 MiB); past that a direction reads 64 KiB. */
#define MAX_BULK_HELD 16
/* Bulk buffers kept for the next bulk read rather than freed, at most. */
#define MAX_FREE_BULK 2
/* Reads per direction in one turn before other connections get theirs. */
#define ROUNDS 16
/* A pipe's default capacity (16 pages), and the unit of the pool's capacity budget: the pool's
   pipes hold at most pipe_limit × PIPE_DEFAULT bytes in all, however each is sized, which is
   also what the kernel counts against the user (fs.pipe-user-pages-soft). */
#define PIPE_DEFAULT (64 * 1024)
/* What a pipe is sized to while half the budget is free (F_SETPIPE_SZ; pipe-max-size allows it
   by default): a bulk direction moves 1 MiB per splice(2) instead of 64 KiB, and does not wait
   for a wake-up after every 64 KiB (one stream 12.0 → 14.4, four streams 15.8 → 19.3 Gbit/s
   in an A/B run of the bench). Also what one splice(2) from a socket asks for: as much as the
   largest pipe holds. */
#define PIPE_BIG (1024 * 1024)
/* Pipe pairs at most (two descriptors each), whatever the owner allows (plane_pipe_limit); past
   that, or when pipe2() fails, a direction copies through the buffer. */
#define MAX_PIPES 256
/* Pairs kept open for the next direction rather than closed, at most. */
#define MAX_FREE_PIPES 64

/* Whether the pool holds more pipes, or more capacity, than its limit now allows. */
static bool over_limit(void) {
  return P.pipes_total > P.pipe_limit || P.pipe_bytes > (uint64_t)P.pipe_limit * PIPE_DEFAULT;
}

/* A pipe's capacity as the kernel gave it (less than asked past pipe-max-size or the user's
   budget), the same when it opens and when it closes: what the budget counts. */
static uint64_t pipe_capacity(int write_end) {
  int size = fcntl(write_end, F_GETPIPE_SZ);
  return size > 0 ? (uint64_t)size : PIPE_DEFAULT;
}

/* Closes a pipe of the pool, and takes its capacity off the budget. */
static void close_pipe(const int pipe_fds[2]) {
  P.pipe_bytes -= pipe_capacity(pipe_fds[1]);
  close(pipe_fds[0]);
  close(pipe_fds[1]);
  P.pipes_total -= 1;
}

/* Opens a pipe for the pool: PIPE_BIG while that leaves half the budget free, else the kernel's
   default; none when even that would overrun the budget. */
static bool open_pipe(int pipe_fds[2]) {
  uint64_t budget = (uint64_t)P.pipe_limit * PIPE_DEFAULT;
  if (P.pipes_total >= P.pipe_limit || P.pipe_bytes + PIPE_DEFAULT > budget) return false;
  if (pipe2(pipe_fds, O_NONBLOCK | O_CLOEXEC) != 0) return false;
  if (P.pipe_bytes + PIPE_BIG <= budget / 2) (void)fcntl(pipe_fds[1], F_SETPIPE_SZ, PIPE_BIG);
  P.pipe_bytes += pipe_capacity(pipe_fds[1]);
  P.pipes_total += 1;
  return true;
}

void plane_pipe_limit(uint32_t pairs) {
  P.pipe_limit = pairs < MAX_PIPES ? pairs : MAX_PIPES;
  /* Pooled pairs beyond the new limit (in number or capacity) are closed at once; pairs in use,
     when they come back. */
  while (P.pipes_free > 0 && over_limit()) {
    P.pipes_free -= 1;
    close_pipe(P.pipes[P.pipes_free]);
  }
}

int copy_open(void) {
  P.pipe_limit = MAX_PIPES;
  P.buffer = malloc(BUFFER_SIZE);
  P.pipes = calloc(MAX_PIPES, sizeof *P.pipes);
  if (P.buffer == NULL || P.pipes == NULL) {
    copy_close();
    return ENOMEM;
  }
  return 0;
}

void copy_close(void) {
  for (uint32_t i = 0; i < P.bulk_free_len; i++) free(P.bulk_free[i]);
  free(P.bulk);
  P.bulk = NULL;
  P.bulk_free_len = 0;
  for (uint32_t i = 0; i < P.pipes_free; i++) close_pipe(P.pipes[i]);
  P.pipes_free = P.pipes_total = 0;
  P.pipe_bytes = 0;
  free(P.pipes);
  free(P.buffer);
  P.pipes = NULL;
  P.buffer = NULL;
}

static bool take_pipe(struct dir *r) {
  if (r->pipe[0] >= 0) return true;
  if (P.pipes_free > 0) {
    P.pipes_free -= 1;
    r->pipe[0] = P.pipes[P.pipes_free][0];
    r->pipe[1] = P.pipes[P.pipes_free][1];
    return true;
  }
  if (!open_pipe(r->pipe)) {
    r->pipe[0] = r->pipe[1] = -1;
    return false;
  }
  return true;
}

/* An empty pipe goes back to the pool; one with bytes in it (its connection gone) is closed. */
static void give_pipe(struct dir *r) {
  if (r->pipe[0] < 0) return;
  if (r->in_pipe == 0 && P.pipes_free < MAX_FREE_PIPES && !over_limit()) {
    P.pipes[P.pipes_free][0] = r->pipe[0];
    P.pipes[P.pipes_free][1] = r->pipe[1];
    P.pipes_free += 1;
  } else {
    close_pipe(r->pipe);
  }
  r->pipe[0] = r->pipe[1] = -1;
  r->in_pipe = 0;
}

/* The bulk buffer the next bulk read lands in, or NULL when MAX_BULK_HELD hold bytes already
   (or there is no memory): then the direction reads through the small one. */
static char *bulk_buffer(void) {
  if (P.bulk != NULL) return P.bulk;
  if (P.bulk_held >= MAX_BULK_HELD) return NULL;
  P.bulk = P.bulk_free_len > 0 ? P.bulk_free[--P.bulk_free_len] : malloc(BULK_SIZE);
  return P.bulk;
}

/* A bulk buffer whose bytes were all written goes back to the pool, or is freed. */
static void give_bulk(char *buffer) {
  P.bulk_held -= 1;
  if (P.bulk_free_len < MAX_FREE_BULK)
    P.bulk_free[P.bulk_free_len++] = buffer;
  else
    free(buffer);
}

static void drop_held(struct dir *r) {
  if (r->held == NULL) return;
  if (r->held_bulk)
    give_bulk(r->held);
  else
    free(r->held);
  r->held_bulk = false;
  P.held_buffers -= 1;
  P.held_bytes -= r->held_len;
  r->held = NULL;
  r->held_off = r->held_len = 0;
}

/* The socket's own error, which says more than the call that found it (ENOTCONN, EPIPE). */
static int socket_error(int fd, int fallback) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err == 0) return fallback;
  return err;
}

static void fail(struct conn *c, int side, int err) {
  conn_finish(c, side == CLIENT ? END_CLIENT_ERROR : END_BACKEND_ERROR, err);
}

/* Writes what side `dst` takes of `data`: how much, or -1 once `c` is finished by an error. */
static ssize_t put(struct conn *c, int dst, const char *data, size_t len) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = send(c->fd[dst], data + done, len - done, MSG_NOSIGNAL);
    if (n >= 0) {
      done += (size_t)n;
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      c->writable &= (uint8_t)~BIT(dst);
      break;
    }
    fail(c, dst, socket_error(c->fd[dst], errno));
    return -1;
  }
  return (ssize_t)done;
}

/* Keeps what the destination did not take; false once `c` is finished (no memory). */
static bool hold(struct conn *c, int d, const char *data, size_t len) {
  struct dir *r = &c->dir[d];
  r->held = malloc(len);
  if (r->held == NULL) {
    fail(c, 1 - d, ENOMEM);
    return false;
  }
  memcpy(r->held, data, len);
  r->held_off = 0;
  r->held_len = (uint32_t)len;
  P.held_buffers += 1;
  P.held_bytes += len;
  return true;
}

/* Keeps the bulk buffer, with what the destination did not take of the read in it: the
   direction's until it is written (no copy), and the next bulk read takes another. */
static void hold_bulk(struct dir *r, size_t off, size_t len) {
  r->held = P.bulk;
  r->held_off = (uint32_t)off;
  r->held_len = (uint32_t)len;
  r->held_bulk = true;
  P.bulk = NULL;
  P.bulk_held += 1;
  P.held_buffers += 1;
  P.held_bytes += len;
}

/* Writes what direction `d` holds; true once it holds nothing. */
static bool flush(struct conn *c, int d) {
  struct dir *r = &c->dir[d];
  int dst = 1 - d;
  if (r->held != NULL) {
    if (!(c->writable & BIT(dst))) return false;
    ssize_t n = put(c, dst, r->held + r->held_off, r->held_len);
    if (n < 0) return false;
    r->held_off += (uint32_t)n;
    r->held_len -= (uint32_t)n;
    P.held_bytes -= (uint64_t)n;
    if (r->held_len > 0) return false;
    drop_held(r);
  }
  while (r->in_pipe > 0) {
    if (!(c->writable & BIT(dst))) return false;
    ssize_t n = splice(r->pipe[0], NULL, c->fd[dst], NULL, r->in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
      r->in_pipe -= (uint32_t)n;
    } else if (n < 0 && errno == EAGAIN) {
      c->writable &= (uint8_t)~BIT(dst);
    } else if (n == 0 || errno != EINTR) {
      /* A pipe holding bytes never reads as empty; should it, the stream is cut, not trusted. */
      fail(c, dst, n == 0 ? EIO : socket_error(c->fd[dst], errno));
      return false;
    }
  }
  return true;
}

static void counted(struct conn *c, int src, size_t n) {
  c->bytes[src] += n;
  if (src == CLIENT)
    P.up += n;
  else
    P.down += n;
  c->since = plane_now();
}

/* Passes the FIN of direction `d` on: shutdown(SHUT_WR) of its destination. The second FIN of a
   connection is passed by close(), which sends it as well: the destination has no unread bytes
   (its own direction ended first), so the close is not a reset. */
static void pass_fin(struct conn *c, int d) {
  struct dir *r = &c->dir[d];
  int dst = 1 - d;
  give_pipe(r);
  if (c->dir[1 - d].shut) {
    r->shut = true;
    return;
  }
  if (shutdown(c->fd[dst], SHUT_WR) != 0) {
    fail(c, dst, socket_error(c->fd[dst], errno));
    return;
  }
  r->shut = true;
  c->halves += 1;
  /* Once one direction is done, the other must not idle for as long. */
  if (c->halves == 1) conn_timer(c, c->half_closed_ms < c->idle_ms ? c->half_closed_ms : c->idle_ms);
}

/* Moves the bytes of direction `d` until its source has none, its destination takes none, or
   ROUNDS reads were made (then `c` is queued for the next turn). */
static void pump(struct conn *c, int d) {
  struct dir *r = &c->dir[d];
  int src = d, dst = 1 - d;
  for (int round = 0; round < ROUNDS; round++) {
    if (!flush(c, d)) return;
    if (r->eof) {
      if (!r->shut) pass_fin(c, d);
      return;
    }
    if (!(c->readable & BIT(src)) || !(c->writable & BIT(dst))) {
      give_pipe(r);
      return;
    }
    bool spliced = false;
    char *buffer = P.buffer;
    size_t size = BUFFER_SIZE;
    if (r->bulk && P.mode == COPY_SPLICE) {
      spliced = take_pipe(r);
    } else if (r->bulk && bulk_buffer() != NULL) {
      buffer = P.bulk;
      size = BULK_SIZE;
    }
    ssize_t n = spliced ? splice(c->fd[src], NULL, r->pipe[1], NULL, PIPE_BIG, SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
                        : read(c->fd[src], buffer, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        c->readable &= (uint8_t)~BIT(src);
        give_pipe(r);
        return;
      }
      fail(c, src, socket_error(c->fd[src], errno));
      return;
    }
    if (n == 0) {
      r->eof = true;
      continue;
    }
    counted(c, src, (size_t)n);
    if (spliced) {
      /* Never taken for drained when short: a pipe holds 16 of the socket's buffers, however
         small, so a splice stops short while the socket still has bytes (on a network, with
         its 1500-byte segments), and a sender waiting for the window would never raise the
         edge that brings the relay back. Read again until EAGAIN. */
      r->in_pipe = (uint32_t)n;
      continue;
    }
    if ((size_t)n == BUFFER_SIZE) r->bulk = true;
    /* A short read(2) of a source that has not hung up took all it had: nothing more for now. */
    bool drained = (size_t)n < size && !(c->ended & BIT(src));
    if (drained) c->readable &= (uint8_t)~BIT(src);
    ssize_t w = put(c, dst, buffer, (size_t)n);
    if (w < 0) return;
    if (w < n) {
      if (buffer == P.bulk)
        hold_bulk(r, (size_t)w, (size_t)(n - w));
      else
        hold(c, d, buffer + w, (size_t)(n - w));
      return;
    }
    if (drained) return;
  }
  conn_queue(c);
}

void copy_relay(struct conn *c) {
  pump(c, 0);
  if (c->state == ST_GONE) return;
  pump(c, 1);
  if (c->state == ST_GONE) return;
  if (c->dir[0].shut && c->dir[1].shut) conn_finish(c, END_FIN, 0);
}

void copy_start(struct conn *c) {
  if (c->preamble != NULL) {
    /* In one write with the client's first bytes when they are already there. */
    size_t len = c->preamble_len;
    memcpy(P.buffer, c->preamble, len);
    free(c->preamble);
    c->preamble = NULL;
    ssize_t n = 0;
    if (c->readable & BIT(CLIENT)) {
      n = read(c->fd[CLIENT], P.buffer + len, BUFFER_SIZE - len);
      if (n < 0 && errno != EAGAIN && errno != EINTR) {
        fail(c, CLIENT, socket_error(c->fd[CLIENT], errno));
        return;
      }
      if (n < 0 && errno == EAGAIN) c->readable &= (uint8_t)~BIT(CLIENT);
      if (n == 0) c->dir[0].eof = true;
      if (n < 0) n = 0;
      if (n > 0) counted(c, CLIENT, (size_t)n);
    }
    ssize_t w = put(c, BACKEND, P.buffer, len + (size_t)n);
    if (w < 0) return;
    if ((size_t)w < len + (size_t)n && !hold(c, 0, P.buffer + w, len + (size_t)n - (size_t)w)) return;
  }
  copy_relay(c);
}

void copy_release(struct conn *c) {
  for (int d = 0; d < 2; d++) {
    drop_held(&c->dir[d]);
    give_pipe(&c->dir[d]);
  }
}
