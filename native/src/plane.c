/*
 * The plane's event loop side: the epoll set, accepting, connecting, the timers and the end of
 * a connection. Moving the bytes is copy.c's.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "copy.h"

/* epoll_data of the listening socket; a connection's is its address, plus 1 for the backend. */
#define LISTENER_TAG 0
/* Connections accepted per wake-up of the listener, so that relaying goes on under a flood. */
#define ACCEPT_BATCH 64
#define EVENT_BATCH 256
/* The longest preamble (a PROXY protocol v2 header with TLVs stays far below it). */
#define MAX_PREAMBLE 4096

struct plane P;

/* -- small helpers ------------------------------------------------------------------------ */

/* Closes `fd` with a reset (SO_LINGER 0): its peer sees ECONNRESET, not an end of stream. */
static void close_reset(int fd) {
  struct linger linger = {.l_onoff = 1, .l_linger = 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, sizeof linger);
  close(fd);
}

static void set_keepalive(int fd, int seconds) {
  int on = 1;
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &seconds, sizeof seconds);
}

static void set_nodelay(int fd) {
  int on = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

uint64_t plane_now(void) { return uv_now(P.loop); }

/* Milliseconds since `c` was dialled, by the clock itself (the loop's time is that of its turn). */
static double since_dial(const struct conn *c) { return (double)(uv_hrtime() - c->dialled) / 1e6; }

/* The poll handle keeps the loop alive only while there is something to watch. */
static void update_ref(void) {
  if (P.listen_fd >= 0 || P.open > 0)
    uv_ref((uv_handle_t *)&P.poll);
  else
    uv_unref((uv_handle_t *)&P.poll);
}

/* -- the connection table ----------------------------------------------------------------- */

static struct conn *conn_new(int fd) {
  uint32_t id;
  if (P.free_len > 0) {
    id = P.free_ids[--P.free_len];
  } else {
    if (P.next_id == P.conns_cap) {
      uint32_t cap = P.conns_cap == 0 ? 256 : P.conns_cap * 2;
      struct conn **conns = realloc(P.conns, cap * sizeof *conns);
      uint32_t *free_ids = realloc(P.free_ids, cap * sizeof *free_ids);
      if (conns != NULL) P.conns = conns;
      if (free_ids != NULL) P.free_ids = free_ids;
      if (conns == NULL || free_ids == NULL) return NULL;
      P.conns_cap = cap;
    }
    id = P.next_id++;
  }
  struct conn *c = calloc(1, sizeof *c);
  if (c == NULL) {
    P.free_ids[P.free_len++] = id;
    return NULL;
  }
  c->id = id;
  c->fd[CLIENT] = fd;
  c->fd[BACKEND] = -1;
  c->heap = NO_HEAP;
  c->dir[0].pipe[0] = c->dir[0].pipe[1] = c->dir[1].pipe[0] = c->dir[1].pipe[1] = -1;
  c->state = ST_ACCEPTED;
  P.conns[id] = c;
  return c;
}

/* Gives back the id, and the memory once nothing can refer to it any more. */
static void conn_release(struct conn *c) {
  P.conns[c->id] = NULL;
  P.free_ids[P.free_len++] = c->id;
  if (c->queued) return; /* the work queue frees it when it comes to it */
  if (P.depth > 0) {
    /* Events of this batch may still name it: freed at the end of the batch. */
    if (P.garbage_len == P.garbage_cap) {
      uint32_t cap = P.garbage_cap == 0 ? 64 : P.garbage_cap * 2;
      struct conn **garbage = realloc(P.garbage, cap * sizeof *garbage);
      if (garbage == NULL) {
        /* Should memory run out here, the struct is leaked rather than freed too early. */
        return;
      }
      P.garbage = garbage;
      P.garbage_cap = cap;
    }
    P.garbage[P.garbage_len++] = c;
    return;
  }
  free(c);
}

static void collect_garbage(void) {
  for (uint32_t i = 0; i < P.garbage_len; i++) free(P.garbage[i]);
  P.garbage_len = 0;
}

/* -- timers ------------------------------------------------------------------------------- */

static void on_timer(uv_timer_t *timer);

/* Sets the one uv timer for the earliest deadline in the heap. */
static void rearm(void) {
  struct conn *top = heap_top(&P.heap);
  if (top == NULL) {
    if (P.armed != UINT64_MAX) uv_timer_stop(&P.timer);
    P.armed = UINT64_MAX;
    return;
  }
  if (top->key == P.armed) return;
  uint64_t now = plane_now();
  uv_timer_start(&P.timer, on_timer, top->key > now ? top->key - now : 0, 0);
  P.armed = top->key;
}

void conn_timer(struct conn *c, uint32_t timeout) {
  c->since = plane_now();
  c->timeout = timeout;
  c->key = c->since + timeout;
  if (c->heap == NO_HEAP)
    heap_push(&P.heap, c);
  else
    heap_update(&P.heap, c);
}

static void begin(void) { P.depth += 1; }

static void end(void) {
  P.depth -= 1;
  if (P.depth > 0) return;
  collect_garbage();
  rearm();
  update_ref();
}

static void on_timer(uv_timer_t *timer) {
  (void)timer;
  P.events.enter();
  begin();
  P.armed = UINT64_MAX;
  uint64_t now = plane_now();
  struct conn *c;
  while ((c = heap_top(&P.heap)) != NULL && c->key <= now) {
    /* Bytes moved since it was put in the heap push the deadline on. */
    uint64_t due = c->since + c->timeout;
    if (due > now) {
      c->key = due;
      heap_update(&P.heap, c);
      continue;
    }
    enum end_code code = END_CONNECT_TIMEOUT;
    if (c->state == ST_RELAYING) code = c->halves > 0 ? END_HALF_CLOSED_TIMEOUT : END_IDLE_TIMEOUT;
    conn_finish(c, code, 0);
  }
  end();
  P.events.leave();
}

/* -- the end of a connection ---------------------------------------------------------------- */

void conn_finish(struct conn *c, enum end_code code, int err) {
  if (c->state == ST_GONE) return;
  bool reset = code != END_FIN;
  for (int side = 0; side < 2; side++) {
    if (c->fd[side] < 0) continue;
    if (reset)
      close_reset(c->fd[side]);
    else
      close(c->fd[side]);
    c->fd[side] = -1;
  }
  heap_remove(&P.heap, c);
  copy_release(c);
  free(c->preamble);
  c->preamble = NULL;
  c->state = ST_GONE;
  P.open -= 1;
  P.up -= c->bytes[CLIENT];
  P.down -= c->bytes[BACKEND];
  P.events.closed(c->id, code, err, c->bytes[CLIENT], c->bytes[BACKEND], since_dial(c));
  conn_release(c);
}

/* -- the work queue: connections that stopped short of EAGAIN to let others run ------------- */

static void on_idle(uv_idle_t *idle);

void conn_queue(struct conn *c) {
  if (c->queued) return;
  c->queued = true;
  c->next_queued = NULL;
  if (P.queue_tail == NULL)
    P.queue_head = c;
  else
    P.queue_tail->next_queued = c;
  P.queue_tail = c;
  if (!uv_is_active((uv_handle_t *)&P.idle)) uv_idle_start(&P.idle, on_idle);
}

static void drive(struct conn *c);

static void on_idle(uv_idle_t *idle) {
  P.events.enter();
  begin();
  /* What is queued while this runs waits for the next turn of the loop. */
  struct conn *c = P.queue_head;
  P.queue_head = P.queue_tail = NULL;
  while (c != NULL) {
    struct conn *next = c->next_queued;
    c->queued = false;
    if (c->state == ST_GONE)
      free(c);
    else
      drive(c);
    c = next;
  }
  if (P.queue_head == NULL) uv_idle_stop(idle);
  end();
  P.events.leave();
}

/* -- connecting and relaying ---------------------------------------------------------------- */

static void established(struct conn *c) {
  c->state = ST_RELAYING;
  conn_timer(c, c->idle_ms);
  /* Always within a turn (drive()): the event reaches JavaScript at the turn's end, so nothing
     it does can reset `c` before the copy starts. */
  P.events.established(c->id, since_dial(c));
  copy_start(c);
}

static void drive(struct conn *c) {
  if (c->state == ST_CONNECTING) {
    if (c->err != 0) {
      conn_finish(c, END_CONNECT_ERROR, c->err);
      return;
    }
    if (!(c->writable & BIT(BACKEND))) return;
    /* Writable and nothing wrong: connected. Otherwise the socket says what went wrong. */
    int err = 0;
    socklen_t len = sizeof err;
    if ((c->ended & BIT(BACKEND)) && getsockopt(c->fd[BACKEND], SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) {
      conn_finish(c, END_CONNECT_ERROR, err);
      return;
    }
    established(c);
  }
  if (c->state == ST_RELAYING) copy_relay(c);
}

static int watch(struct conn *c, int side) {
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.u64 = (uint64_t)(uintptr_t)c | (uint64_t)side};
  return epoll_ctl(P.epfd, EPOLL_CTL_ADD, c->fd[side], &ev) == 0 ? 0 : errno;
}

/* Opens the backend's socket and starts connecting; an errno when that failed at once. */
static int connect_backend(struct conn *c, const struct dial_options *o) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  c->fd[BACKEND] = fd;
  set_nodelay(fd);
  set_keepalive(fd, P.keepalive_s);
  if (o->source != 0) {
    /* As node:net does: bound to the source first, the kernel picking the port at bind(). */
    struct sockaddr_in from = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(o->source)};
    if (bind(fd, (struct sockaddr *)&from, sizeof from) != 0) return errno;
  }
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(o->port), .sin_addr.s_addr = htonl(o->ipv4)};
  if (connect(fd, (struct sockaddr *)&to, sizeof to) != 0 && errno != EINPROGRESS) return errno;
  int err = watch(c, BACKEND);
  if (err == 0) err = watch(c, CLIENT);
  return err;
}

void plane_dial(uint32_t id, const struct dial_options *o) {
  struct conn *c = id < P.next_id ? P.conns[id] : NULL;
  if (c == NULL || c->state != ST_ACCEPTED) return;
  c->state = ST_CONNECTING;
  c->dialled = uv_hrtime();
  P.open += 1;
  c->idle_ms = o->idle_ms;
  c->half_closed_ms = o->half_closed_ms;
  /* A PROXY protocol header is at most a few hundred bytes; it goes out in the first read's buffer. */
  if (o->preamble_len > MAX_PREAMBLE) {
    c->err = EINVAL;
    conn_queue(c);
    return;
  }
  if (o->preamble_len > 0) {
    c->preamble = malloc(o->preamble_len);
    if (c->preamble != NULL) {
      memcpy(c->preamble, o->preamble, o->preamble_len);
      c->preamble_len = (uint32_t)o->preamble_len;
    }
  }
  conn_timer(c, o->connect_ms);
  int err = connect_backend(c, o);
  if (err == 0 && o->preamble_len > 0 && c->preamble == NULL) err = ENOMEM;
  if (err != 0) {
    /* Reported on the next turn, as a connect error that the kernel found later would be. */
    c->err = err;
    conn_queue(c);
  }
}

void plane_reset(uint32_t id) {
  struct conn *c = id < P.next_id ? P.conns[id] : NULL;
  if (c == NULL || c->state == ST_ACCEPTED || c->state == ST_GONE) return;
  begin();
  conn_finish(c, END_STOPPED, 0);
  end();
}

/* -- accepting ------------------------------------------------------------------------------- */

/*
 * Out of descriptors: the waiting connections are accepted with a spare descriptor and closed
 * at once (they see a reset), so that a level-triggered listener does not wake the loop
 * forever; libuv does the same for node:net's servers.
 */
static void shed(void) {
  if (P.reserve_fd < 0) return;
  close(P.reserve_fd);
  P.reserve_fd = -1;
  for (int i = 0; i < ACCEPT_BATCH; i++) {
    int fd = accept4(P.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) break;
    close_reset(fd);
  }
  P.reserve_fd = open("/", O_RDONLY | O_CLOEXEC);
}

static void format(const struct sockaddr_in6 *a, char *out, int *port) {
  if (inet_ntop(AF_INET6, &a->sin6_addr, out, INET6_ADDRSTRLEN) == NULL) out[0] = '\0';
  *port = ntohs(a->sin6_port);
}

static void accept_some(void) {
  for (int i = 0; i < ACCEPT_BATCH && P.listen_fd >= 0; i++) {
    struct sockaddr_in6 remote, local;
    socklen_t remote_len = sizeof remote, local_len = sizeof local;
    int fd = accept4(P.listen_fd, (struct sockaddr *)&remote, &remote_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE) {
        shed();
        return;
      }
      P.events.accept_failed(errno);
      return;
    }
    if (getsockname(fd, (struct sockaddr *)&local, &local_len) != 0 || local.sin6_family != AF_INET6 || remote.sin6_family != AF_INET6) {
      close_reset(fd);
      continue;
    }
    struct conn *c = conn_new(fd);
    if (c == NULL) {
      close_reset(fd);
      P.events.accept_failed(ENOMEM);
      continue;
    }
    char local_text[INET6_ADDRSTRLEN], remote_text[INET6_ADDRSTRLEN];
    int local_port, remote_port;
    format(&local, local_text, &local_port);
    format(&remote, remote_text, &remote_port);
    P.events.accepted(c->id, &local.sin6_addr, local_text, local_port, &remote.sin6_addr, remote_text, remote_port);
    if (c->state == ST_ACCEPTED) {
      /* Refused: its owner did not dial. */
      close_reset(fd);
      conn_release(c);
    }
  }
}

/* -- the epoll set ---------------------------------------------------------------------------- */

static void on_poll(uv_poll_t *poll, int status, int events) {
  (void)poll;
  (void)status;
  (void)events;
  struct epoll_event ev[EVENT_BATCH];
  begin();
  P.events.enter();
  int n = epoll_wait(P.epfd, ev, EVENT_BATCH, 0);
  for (int i = 0; i < n; i++) {
    uint64_t tag = ev[i].data.u64;
    if (tag == LISTENER_TAG) {
      accept_some();
      continue;
    }
    struct conn *c = (struct conn *)(uintptr_t)(tag & ~(uint64_t)1);
    int side = (int)(tag & 1);
    if (c->state == ST_GONE) continue;
    uint32_t e = ev[i].events;
    if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) c->readable |= BIT(side);
    if (e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) c->ended |= BIT(side);
    if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR)) c->writable |= BIT(side);
    drive(c);
  }
  end();
  P.events.leave();
}

/*
 * The loop's handles and the epoll set are made at the first open and kept: libuv closes a
 * handle only on a later turn of the loop, and a plane opened again at once (tests do) must
 * not reuse memory libuv still holds.
 */
static bool handles_made;

int plane_open(void *loop, const struct plane_events *events, enum copy_mode mode) {
  if (P.opened) return EALREADY;
  if (handles_made && P.loop != loop) return EINVAL;
  P.listen_fd = -1;
  P.armed = UINT64_MAX;
  P.events = *events;
  P.mode = mode;
  P.keepalive_s = 60;
  P.open = 0;
  P.up = P.down = 0;
  P.held_buffers = 0;
  P.held_bytes = 0;
  int err = copy_open();
  if (err != 0) return err;
  if (!handles_made) {
    P.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (P.epfd < 0) {
      err = errno;
      copy_close();
      return err;
    }
    P.loop = loop;
    uv_poll_init(P.loop, &P.poll, P.epfd);
    uv_timer_init(P.loop, &P.timer);
    uv_unref((uv_handle_t *)&P.timer);
    uv_idle_init(P.loop, &P.idle);
    handles_made = true;
  }
  P.reserve_fd = open("/", O_RDONLY | O_CLOEXEC);
  uv_poll_start(&P.poll, UV_READABLE, on_poll);
  P.opened = true;
  update_ref();
  return 0;
}

int plane_listen(int fd, int backlog, int keepalive_s) {
  if (!P.opened) return EBADF;
  if (P.listen_fd >= 0) return EALREADY;
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) return errno;
  /* Set on the listening socket, they are inherited by every accepted one. */
  set_nodelay(fd);
  set_keepalive(fd, keepalive_s);
  P.keepalive_s = keepalive_s;
  if (listen(fd, backlog) != 0) return errno;
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = LISTENER_TAG};
  if (epoll_ctl(P.epfd, EPOLL_CTL_ADD, fd, &ev) != 0) return errno;
  P.listen_fd = fd;
  update_ref();
  return 0;
}

void plane_unlisten(void) {
  if (P.listen_fd < 0) return;
  epoll_ctl(P.epfd, EPOLL_CTL_DEL, P.listen_fd, NULL);
  P.listen_fd = -1;
  update_ref();
}

void plane_stats(struct plane_stats *out) {
  out->conns = P.open;
  out->held_buffers = P.held_buffers;
  out->held_bytes = P.held_bytes;
  out->pipes = P.pipes_total;
  out->pipe_bytes = P.pipe_bytes;
  out->bulk_buffers = (P.bulk != NULL ? 1 : 0) + P.bulk_held + P.bulk_free_len;
  out->up = P.up;
  out->down = P.down;
  out->conn_size = sizeof(struct conn);
}

void plane_close(void) {
  if (!P.opened) return;
  plane_unlisten();
  begin();
  for (uint32_t id = 0; id < P.next_id; id++) {
    struct conn *c = P.conns[id];
    if (c != NULL && c->state != ST_ACCEPTED) conn_finish(c, END_STOPPED, 0);
  }
  end();
  /* Whatever is still queued is gone by now. */
  for (struct conn *c = P.queue_head; c != NULL;) {
    struct conn *next = c->next_queued;
    free(c);
    c = next;
  }
  P.queue_head = P.queue_tail = NULL;
  uv_poll_stop(&P.poll);
  uv_timer_stop(&P.timer);
  uv_idle_stop(&P.idle);
  copy_close();
  if (P.reserve_fd >= 0) close(P.reserve_fd);
  free(P.conns);
  free(P.free_ids);
  free(P.garbage);
  free(P.heap.items);
  P.conns = NULL;
  P.free_ids = NULL;
  P.garbage = NULL;
  P.conns_cap = P.next_id = P.free_len = 0;
  P.garbage_len = P.garbage_cap = 0;
  memset(&P.heap, 0, sizeof P.heap);
  P.opened = false;
  update_ref();
}
