// The bench's load generator and its IPv4 server, in one small C program (built by bench/run.ts
// to dist/bench/gen). A thread per stream or client on the generator side and an epoll loop
// per CPU on the server side, so that neither is what limits the relays. One process per use;
// it reports on stdout, one JSON object a line, and takes commands ("go", "close") on stdin.
//
//   gen server  HOST PORT          the server behind every system: {msg:"ready",host,port}, then one
//                                  port with three behaviours, chosen by the first byte a client sends:
//                                    'S' sink: reads to EOF, answers the bytes after the 'S' ("N\n"), FIN
//                                    'R' source: "R<N>\n", then it writes N bytes and FINs
//                                    else echo: writes back every byte; FIN after the client's FIN
//   gen bulk    HOST PORT BYTES MAX_MS STREAMS up|down
//                                  {ready}, waits for "go", then STREAMS streams at once, BYTES in all,
//                                  client→server (up: the server counts and answers after the FIN) or
//                                  server→client (down), each cut at MAX_MS; {sent,received,ms}
//   gen latency HOST PORT COUNT MAX_MS
//                                  one kept connection, COUNT (or MAX_MS worth of) 64-byte request/
//                                  response round trips after 200 uncounted ones;
//                                  {count,p50,p90,p99,p999,max,mean} in µs
//   gen churn   HOST PORT CLIENTS MS
//                                  {ready}, waits for "go", then CLIENTS loops of connect / send 64 B /
//                                  read 64 B / close for MS; {connections,errors,ms,errorCodes}
//   gen idle    HOST PORT COUNT    opens COUNT connections, 50 at a time (one echo each, so the relay's
//                                  backend side is up), {open,errors}, waits for "close", closes them,
//                                  {closed}
//
// A failure prints {error: CODE} (an errno name such as ECONNRESET, TIMEOUT, EARLY_CLOSE, or a
// message) and exits 1.
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum {
  BUF = 1 << 20,        // each read and write moves up to 1 MiB: syscalls are not the cost
  REQUEST_SIZE = 64,
  WARM_UP = 200,        // uncounted round trips before the latency samples
  EXCHANGE_MS = 10000,  // an exchange that takes this long is broken, not slow
  IDLE_BATCH = 50,      // a burst of 1,000 SYNs would overflow the relay's accept backlog
  BACKLOG = 4096,
};
static const char TIMEOUT[] = "TIMEOUT";
static const char USAGE[] = "usage: gen server|bulk|latency|churn|idle HOST PORT ...";

static struct sockaddr_storage address;  // where clients connect, or what the server binds
static socklen_t address_len;
static char chunk[BUF];                  // the payload of bulk streams and of the source
static char request[REQUEST_SIZE];       // echoed by the server ('E' is not its sink marker)
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/** One JSON line, flushed at once: the orchestrator reads it while this process runs on. */
static void emit(const char *format, ...) {
  va_list args;
  va_start(args, format);
  vprintf(format, args);
  va_end(args);
  putchar('\n');
  fflush(stdout);
}

static _Noreturn void fail(const char *code) {
  emit("{\"error\":\"%s\"}", code);
  exit(1);
}

/** The errno names Node reports as err.code; others read ERRNO_<n>. */
static const char *error_name(int e) {
#define NAME(x) {x, #x}
  static const struct { int number; const char *name; } names[] = {
      NAME(ECONNREFUSED), NAME(ECONNRESET), NAME(ECONNABORTED), NAME(EPIPE), NAME(ETIMEDOUT),
      NAME(EHOSTUNREACH), NAME(ENETUNREACH), NAME(EADDRNOTAVAIL), NAME(EADDRINUSE), NAME(EMFILE),
      NAME(ENFILE), NAME(ENOBUFS), NAME(ENOMEM), NAME(EACCES), NAME(EPERM), NAME(EINVAL), NAME(EAGAIN),
  };
#undef NAME
  static _Thread_local char other[24];
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (names[i].number == e) return names[i].name;
  snprintf(other, sizeof other, "ERRNO_%d", e);
  return other;
}

static void no_delay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void start_thread(pthread_t *thread, void *(*run)(void *), void *arg) {
  int e = pthread_create(thread, NULL, run, arg);
  if (e != 0) fail(error_name(e));
}

/** Blocks until stdin says `name` (a line of its own). */
static void wait_command(const char *name) {
  char line[256];
  while (fgets(line, sizeof line, stdin)) {
    char *text = line + strspn(line, " \t");
    text[strcspn(text, " \t\r\n")] = '\0';
    if (strcmp(text, name) == 0) return;
  }
  fail("stdin closed before the command");
}

// Client side: blocking sockets; a finite deadline (ms, CLOCK_MONOTONIC) turns each call into a
// non-blocking one (MSG_DONTWAIT) and a poll() bounded by the time left.

static const char *wait_fd(int fd, short events, double deadline) {
  double left = deadline - now_ms();
  if (left <= 0) return TIMEOUT;
  struct pollfd p = {.fd = fd, .events = events};
  int n = poll(&p, 1, (int)left + 1);
  return n > 0 || (n < 0 && errno == EINTR) ? NULL : n == 0 ? TIMEOUT : error_name(errno);
}

/** One recv; *got is 0 at the peer's FIN. */
static const char *recv_some(int fd, void *buf, size_t len, double deadline, size_t *got) {
  for (;;) {
    ssize_t n = recv(fd, buf, len, isinf(deadline) ? 0 : MSG_DONTWAIT);
    if (n >= 0) {
      *got = (size_t)n;
      return NULL;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return error_name(errno);
    const char *e = wait_fd(fd, POLLIN, deadline);
    if (e) return e;
  }
}

static const char *send_all(int fd, const char *buf, size_t len, double deadline) {
  while (len > 0) {
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | (isinf(deadline) ? 0 : MSG_DONTWAIT));
    if (n >= 0) {
      buf += n;
      len -= (size_t)n;
    } else if (errno == EAGAIN) {
      const char *e = wait_fd(fd, POLLOUT, deadline);
      if (e) return e;
    } else if (errno != EINTR) {
      return error_name(errno);
    }
  }
  return NULL;
}

/** A connected TCP socket with TCP_NODELAY; a connect that takes `limit_ms` (0: no limit) is TIMEOUT. */
static const char *dial(int *fd, long limit_ms) {
  int s = socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return error_name(errno);
  no_delay(s);
  struct timeval limit = {.tv_sec = limit_ms / 1000, .tv_usec = limit_ms % 1000 * 1000};
  setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);  // a blocking connect gives up after it
  if (connect(s, (struct sockaddr *)&address, address_len) < 0) {
    int e = errno;
    close(s);
    return e == EINPROGRESS || e == EAGAIN ? TIMEOUT : error_name(e);
  }
  *fd = s;
  return NULL;
}

/**
 * Connect, send 64 bytes, read the 64-byte echo, all within EXCHANGE_MS; then keep the open
 * connection (*keep) or, without `keep`, close it: FIN, and wait for the peer's (the full close).
 */
static const char *exchange(int *keep) {
  double deadline = now_ms() + EXCHANGE_MS;
  char buf[REQUEST_SIZE];
  size_t received = 0, n = 0;
  int fd;
  const char *e = dial(&fd, EXCHANGE_MS);
  if (e) return e;
  e = send_all(fd, request, sizeof request, deadline);
  while (!e && received < sizeof request) {
    if ((e = recv_some(fd, buf, sizeof buf, deadline, &n))) break;
    if (n == 0) e = "EARLY_CLOSE";
    received += n;
  }
  if (!e && keep) {
    *keep = fd;
    return NULL;
  }
  if (!e) shutdown(fd, SHUT_WR);
  while (!e && !(e = recv_some(fd, buf, sizeof buf, deadline, &n)) && n > 0) continue;
  close(fd);
  return e;
}

// Bulk: a thread per stream.

struct stream {
  pthread_t thread;
  bool up;
  long long bytes, sent, received;
  double deadline, end;
  const char *error;
  char message[80];
};

/** Client→server: BYTES or until the deadline, then FIN; the server's count is the result. */
static const char *upload(struct stream *s, int fd) {
  const char *e = send_all(fd, "S", 1, INFINITY);
  while (!e && s->sent < s->bytes && now_ms() < s->deadline) {
    size_t n = s->bytes - s->sent < BUF ? (size_t)(s->bytes - s->sent) : BUF;
    e = send_all(fd, chunk, n, INFINITY);
    s->sent += n;
  }
  if (!e) shutdown(fd, SHUT_WR);
  // The count, then the server's FIN: every byte has arrived.
  char reply[64];
  size_t have = 0, n;
  while (!e && have < sizeof reply - 1) {
    if ((e = recv_some(fd, reply + have, sizeof reply - 1 - have, INFINITY, &n)) || n == 0) break;
    have += n;
  }
  reply[have] = '\0';
  s->received = atoll(reply);
  return e;
}

/** Server→client: asks for BYTES and counts them to the server's FIN, or until the deadline. */
static const char *download(struct stream *s, int fd) {
  char ask[32];
  int len = snprintf(ask, sizeof ask, "R%lld\n", s->bytes);
  const char *e = send_all(fd, ask, (size_t)len, INFINITY);
  char *buf = malloc(BUF);
  if (!buf) e = "ENOMEM";
  while (!e && now_ms() < s->deadline) {
    size_t n;
    if ((e = recv_some(fd, buf, BUF, s->deadline, &n))) break;
    if (n == 0) {
      if (s->received != s->bytes) {
        snprintf(s->message, sizeof s->message, "server sent %lld of %lld bytes", s->received, s->bytes);
        e = s->message;
      }
      break;
    }
    s->received += (long long)n;
  }
  free(buf);
  // Cut at the deadline, the server wrote no more than was read: count what arrived.
  s->sent = s->received;
  return e == TIMEOUT ? NULL : e;
}

static void *run_stream(void *arg) {
  struct stream *s = arg;
  int fd;
  s->error = dial(&fd, 0);
  if (!s->error) {
    s->error = s->up ? upload(s, fd) : download(s, fd);
    s->end = now_ms();
    close(fd);
  }
  return NULL;
}

static void bulk(long long bytes, double max_ms, int streams, const char *direction) {
  if (streams < 1) fail(USAGE);
  struct stream *all = calloc((size_t)streams, sizeof *all);
  if (!all) fail("ENOMEM");
  emit("{\"ready\":true}");
  wait_command("go");
  double start = now_ms();
  for (int i = 0; i < streams; i++) {
    all[i] = (struct stream){.up = strcmp(direction, "down") != 0, .bytes = bytes / streams, .deadline = start + max_ms};
    start_thread(&all[i].thread, run_stream, &all[i]);
  }
  long long sent = 0, received = 0;
  double end = start;
  for (int i = 0; i < streams; i++) {
    pthread_join(all[i].thread, NULL);
    if (all[i].error) fail(all[i].error);
    sent += all[i].sent;
    received += all[i].received;
    if (all[i].end > end) end = all[i].end;
  }
  emit("{\"sent\":%lld,\"received\":%lld,\"ms\":%.3f,\"streams\":%d,\"direction\":\"%s\"}", sent, received, end - start, streams, direction);
  free(all);
}

// Latency.

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/** The q-quantile of `n` sorted samples, picked as load.ts did: sorted[min(n - 1, floor(q * n))]. */
static double at(const double *sorted, long n, double q) {
  long i = (long)(q * n);
  return sorted[i < n - 1 ? i : n - 1];
}

/** Round trips of 64 bytes on one connection, one at a time; percentiles in µs. */
static void latency(long count, double max_ms) {
  double *samples = malloc(((size_t)(count > 0 ? count : 0) + 1) * sizeof *samples);
  char buf[4096];
  size_t received = 0, n;
  long taken = 0;
  int fd;
  const char *e = samples ? dial(&fd, 0) : "ENOMEM";
  if (e) fail(e);
  double deadline = INFINITY;
  for (long i = 0; i < WARM_UP + count && now_ms() < deadline; i++) {
    double t0 = now_ms();
    if ((e = send_all(fd, request, sizeof request, INFINITY))) fail(e);
    while (received < sizeof request) {
      if ((e = recv_some(fd, buf, sizeof buf, INFINITY, &n))) fail(e);
      if (n == 0) fail("closed during the latency run");
      received += n;
    }
    received -= sizeof request;
    if (i == WARM_UP - 1) deadline = now_ms() + max_ms;
    if (i >= WARM_UP) samples[taken++] = (now_ms() - t0) * 1000;
  }
  close(fd);
  qsort(samples, (size_t)taken, sizeof *samples, by_value);
  double sum = 0;
  for (long i = 0; i < taken; i++) sum += samples[i];
  if (taken == 0)  // JSON has no NaN: load.ts printed null
    emit("{\"count\":0,\"p50\":null,\"p90\":null,\"p99\":null,\"p999\":null,\"max\":null,\"mean\":null}");
  else
    emit("{\"count\":%ld,\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f,\"mean\":%.3f}", taken, at(samples, taken, 0.5),
         at(samples, taken, 0.9), at(samples, taken, 0.99), at(samples, taken, 0.999), samples[taken - 1], sum / taken);
  free(samples);
}

// Churn: a thread per client.

static struct {
  double deadline;
  atomic_long connections;
  long errors;
  size_t codes;
  struct { char code[32]; long count; } code[32];  // by error code, under `lock`
} churned;

static void *churn_client(void *arg) {
  (void)arg;
  while (now_ms() < churned.deadline) {
    const char *e = exchange(NULL);
    if (!e) {
      atomic_fetch_add(&churned.connections, 1);
      continue;
    }
    pthread_mutex_lock(&lock);
    churned.errors++;
    size_t i = 0;
    while (i < churned.codes && strcmp(churned.code[i].code, e) != 0) i++;
    if (i == churned.codes && i < sizeof churned.code / sizeof churned.code[0])
      snprintf(churned.code[churned.codes++].code, sizeof churned.code[0].code, "%s", e);
    if (i < churned.codes) churned.code[i].count++;
    pthread_mutex_unlock(&lock);
    nanosleep(&(struct timespec){.tv_nsec = 5000000}, NULL);  // a relay that refuses must not turn this into a busy loop
  }
  return NULL;
}

static void churn(int clients, double ms) {
  pthread_t *threads = calloc((size_t)(clients > 0 ? clients : 1), sizeof *threads);
  if (!threads) fail("ENOMEM");
  emit("{\"ready\":true}");
  wait_command("go");
  double start = now_ms();
  churned.deadline = start + ms;
  for (int i = 0; i < clients; i++) start_thread(&threads[i], churn_client, NULL);
  for (int i = 0; i < clients; i++) pthread_join(threads[i], NULL);
  char codes[32 * 48] = "";
  size_t used = 0;
  for (size_t i = 0; i < churned.codes; i++)
    used += (size_t)snprintf(codes + used, sizeof codes - used, "%s\"%s\":%ld", i ? "," : "", churned.code[i].code, churned.code[i].count);
  emit("{\"connections\":%ld,\"errors\":%ld,\"ms\":%.3f,\"errorCodes\":{%s}}", atomic_load(&churned.connections), churned.errors, now_ms() - start, codes);
  free(threads);
}

// Idle: 50 threads open the connections.

static struct {
  int *fds;
  long count, started, open, errors;  // under `lock`
} held;

static void *idle_opener(void *arg) {
  (void)arg;
  for (;;) {
    pthread_mutex_lock(&lock);
    bool more = held.started < held.count;
    held.started += more;
    pthread_mutex_unlock(&lock);
    if (!more) return NULL;
    int fd;
    const char *e = exchange(&fd);
    pthread_mutex_lock(&lock);
    if (e) held.errors++;
    else held.fds[held.open++] = fd;
    pthread_mutex_unlock(&lock);
  }
}

static void idle(long count) {
  pthread_t threads[IDLE_BATCH];
  held.count = count;
  held.fds = calloc((size_t)(count > 0 ? count : 1), sizeof *held.fds);
  if (!held.fds) fail("ENOMEM");
  for (int i = 0; i < IDLE_BATCH; i++) start_thread(&threads[i], idle_opener, NULL);
  for (int i = 0; i < IDLE_BATCH; i++) pthread_join(threads[i], NULL);
  emit("{\"open\":%ld,\"errors\":%ld}", held.open, held.errors);
  wait_command("close");
  // FIN on all of them first, then up to 5 s in all for the peers' FINs.
  for (long i = 0; i < held.open; i++) shutdown(held.fds[i], SHUT_WR);
  double deadline = now_ms() + 5000;
  char buf[REQUEST_SIZE];
  for (long i = 0; i < held.open; i++) {
    size_t n;
    while (!recv_some(held.fds[i], buf, sizeof buf, deadline, &n) && n > 0) continue;
    close(held.fds[i]);
  }
  emit("{\"closed\":true}");
  free(held.fds);
}

// Server side: one epoll loop per CPU, each with a listening socket of its own (SO_REUSEPORT);
// non-blocking sockets, level-triggered.

enum mode { NEW, SINK, HEADER, SOURCE, ECHO, DRAIN };

struct conn {
  int fd;
  enum mode mode;
  uint32_t events;   // what epoll waits for: EPOLLIN, or EPOLLOUT while there is something to write
  long long count;   // SINK: bytes after the 'S'; SOURCE: bytes left to write
  char header[64];   // HEADER: "R<N>\n" so far
  size_t header_len;
  char *out;         // what the socket did not take yet (an echo, the sink's answer)
  size_t out_len, out_off;
  bool close_after;  // close once `out` is written
};

struct loop {
  int epoll, listener;
  char *buf;
};

static void drop(struct conn *c) {
  close(c->fd);  // also leaves the epoll set
  free(c->out);
  free(c);
}

static void want(struct loop *l, struct conn *c, uint32_t events) {
  struct epoll_event event = {.events = events, .data.ptr = c};
  if (c->events != events) epoll_ctl(l->epoll, EPOLL_CTL_MOD, c->fd, &event);
  c->events = events;
}

/** Writes c->out; reads no more until it is all written (an echo keeps its order). */
static void flush(struct loop *l, struct conn *c) {
  ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
  if (n < 0 && errno != EAGAIN && errno != EINTR) { drop(c); return; }
  if (n > 0) c->out_off += (size_t)n;
  if (c->out_off < c->out_len) { want(l, c, EPOLLOUT); return; }
  free(c->out);
  c->out = NULL;
  if (c->close_after) { drop(c); return; }
  want(l, c, EPOLLIN);
}

static void reply(struct loop *l, struct conn *c, const char *data, size_t len, bool then_close) {
  if (!(c->out = malloc(len))) { drop(c); return; }
  memcpy(c->out, data, len);
  c->out_len = len;
  c->out_off = 0;
  c->close_after = then_close;
  flush(l, c);
}

/** The source: writes until the socket is full (EPOLLOUT calls again) or all is written, then FIN. */
static void pump(struct loop *l, struct conn *c) {
  while (c->count > 0) {
    size_t len = c->count < BUF ? (size_t)c->count : BUF;
    ssize_t n = send(c->fd, chunk, len, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EINTR) { drop(c); return; }
    if (n > 0) c->count -= n;
    if (n < (ssize_t)len) { want(l, c, EPOLLOUT); return; }
  }
  shutdown(c->fd, SHUT_WR);
  c->mode = DRAIN;  // closing before the client's FIN could reset what it has not read yet
  want(l, c, EPOLLIN);
}

static void on_header(struct loop *l, struct conn *c, const char *data, size_t len) {
  size_t room = sizeof c->header - 1 - c->header_len, take = len < room ? len : room;
  memcpy(c->header + c->header_len, data, take);
  c->header_len += take;
  c->header[c->header_len] = '\0';
  if (!memchr(c->header, '\n', c->header_len)) return;  // more to come (or a bad header: ignored)
  c->count = atoll(c->header + 1);
  c->mode = SOURCE;
  pump(l, c);
}

/**
 * The length of a PROXY protocol header (haproxy's doc/proxy-protocol.txt) at the start of a
 * connection's first read: a v1 line up to its CRLF, or v2's 16 bytes and the length they give;
 * 0 when there is none (or it is not whole in this read, which a bench client never causes).
 */
static size_t proxy_header_length(const char *data, size_t n) {
  static const char v2[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
  if (n >= 16 && memcmp(data, v2, sizeof v2) == 0) {
    size_t length = 16 + (((size_t)(unsigned char)data[14] << 8) | (unsigned char)data[15]);
    return length <= n ? length : 0;
  }
  if (n >= 8 && memcmp(data, "PROXY ", 6) == 0) {
    const char *end = memmem(data, n < 108 ? n : 108, "\r\n", 2);
    return end ? (size_t)(end - data) + 2 : 0;
  }
  return 0;
}

static void on_ready(struct loop *l, struct conn *c) {
  if (c->out) { flush(l, c); return; }
  if (c->mode == SOURCE) { pump(l, c); return; }
  ssize_t n = recv(c->fd, l->buf, BUF, 0);
  if (n < 0 && errno != EAGAIN && errno != EINTR) { drop(c); return; }  // clients and relays reset at the end of a run
  if (n == 0 && c->mode != SINK) { drop(c); return; }  // the client's FIN: echo (FIN after it), source done
  if (n == 0) {
    char count[24];
    reply(l, c, count, (size_t)snprintf(count, sizeof count, "%lld\n", c->count), true);
    return;
  }
  if (n < 0) return;
  char *data = l->buf;
  if (c->mode == NEW) {
    // A PROXY protocol header (faithd6's proxyProtocol rows) is consumed, as a real backend
    // does: the behaviour is chosen by the first byte after it.
    size_t skip = proxy_header_length(data, (size_t)n);
    data += skip;
    n -= (ssize_t)skip;
    if (n == 0) return;
    c->mode = data[0] == 'S' ? SINK : data[0] == 'R' ? HEADER : ECHO;
    if (c->mode == SINK) c->count = -1;  // the marker is not payload
  }
  if (c->mode == SINK) c->count += n;
  else if (c->mode == ECHO) reply(l, c, data, (size_t)n, false);
  else if (c->mode == HEADER) on_header(l, c, data, (size_t)n);
}

static void on_accept(struct loop *l) {
  for (;;) {
    // EAGAIN: all taken. Out of descriptors or memory: the next epoll_wait tries again.
    int fd = accept4(l->listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    struct conn *c = calloc(1, sizeof *c);
    if (!c) { close(fd); return; }
    no_delay(fd);
    *c = (struct conn){.fd = fd, .events = EPOLLIN};
    struct epoll_event event = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(l->epoll, EPOLL_CTL_ADD, fd, &event) < 0) drop(c);
  }
}

static void *serve(void *arg) {
  struct loop *l = arg;
  struct epoll_event events[256];
  for (;;) {
    int n = epoll_wait(l->epoll, events, sizeof events / sizeof events[0], -1);
    for (int i = 0; i < n; i++) {
      if (events[i].data.ptr) on_ready(l, events[i].data.ptr);
      else on_accept(l);
    }
  }
  return NULL;
}

static void server(const char *host, const char *port) {
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  int loops = cpus < 1 ? 1 : cpus > 64 ? 64 : (int)cpus;
  struct loop *all = calloc((size_t)loops, sizeof *all);
  if (!all) fail("ENOMEM");
  for (int i = 0; i < loops; i++) {
    struct loop *l = &all[i];
    int one = 1;
    l->listener = socket(address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (l->listener < 0) fail(error_name(errno));
    setsockopt(l->listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(l->listener, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(l->listener, (struct sockaddr *)&address, address_len) < 0 || listen(l->listener, BACKLOG) < 0) fail(error_name(errno));
    struct epoll_event event = {.events = EPOLLIN, .data.ptr = NULL};
    if ((l->epoll = epoll_create1(EPOLL_CLOEXEC)) < 0 || epoll_ctl(l->epoll, EPOLL_CTL_ADD, l->listener, &event) < 0) fail(error_name(errno));
    if (!(l->buf = malloc(BUF))) fail("ENOMEM");
  }
  emit("{\"msg\":\"ready\",\"host\":\"%s\",\"port\":%s}", host, port);
  for (int i = 1; i < loops; i++) {
    pthread_t thread;
    start_thread(&thread, serve, &all[i]);
  }
  serve(&all[0]);
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);  // a peer gone mid-write is an error code, not the end of the process
  const char *mode = argc > 1 ? argv[1] : "", *host = argc > 2 ? argv[2] : "", *port = argc > 3 ? argv[3] : "";
  const char *a = argc > 4 ? argv[4] : "", *b = argc > 5 ? argv[5] : "", *c = argc > 6 ? argv[6] : "1", *d = argc > 7 ? argv[7] : "up";
  bool serving = strcmp(mode, "server") == 0;
  if (!*host || !*port || port[strspn(port, "0123456789")] != '\0') fail(USAGE);
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV | (serving ? AI_PASSIVE : 0)}, *found;
  if (getaddrinfo(host, port, &hints, &found) != 0) fail("ENOTFOUND");
  memcpy(&address, found->ai_addr, found->ai_addrlen);
  address_len = found->ai_addrlen;
  freeaddrinfo(found);
  memset(chunk, serving ? 'y' : 'x', sizeof chunk);
  memset(request, 'e', sizeof request);
  request[0] = 'E';

  if (serving) server(host, port);
  else if (strcmp(mode, "bulk") == 0) bulk(atoll(a), atof(b), atoi(c), d);
  else if (strcmp(mode, "latency") == 0) latency(atol(a), atof(b));
  else if (strcmp(mode, "churn") == 0) churn(atoi(a), atof(b));
  else if (strcmp(mode, "idle") == 0) idle(atol(a));
  else fail(USAGE);
  return 0;
}
