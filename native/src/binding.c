/*
 * The plane's Node-API face (src/relay/native.ts is its only caller):
 *
 *   open({ accepted, events, acceptFailed }, mode, window)
 *   listen(fd, backlog, keepaliveSeconds) -> 0 or an errno
 *   unlisten()
 *   dial(id, ipv4, port, source, connectMs, idleMs, halfClosedMs, preamble?)
 *   reset(id)
 *   stats() -> { conns, heldBuffers, heldBytes, pipes, pipeBytes, bulkBuffers, up, down, connSize }
 *   pipeLimit(pairs)
 *   close()
 *
 * accepted() is called for each connection as it is accepted: its answer (dial() or nothing)
 * is needed at once. A backend answering and a connection closing need none: they are written
 * to `window` (a Float64Array of EVENT_FIELDS numbers per event, which JavaScript made and reads)
 * and handed over together by one call of events(start, end), at the end of the plane's turn of
 * the loop and before the next accepted(), so that JavaScript sees every event in order and a
 * closed id before its reuse. A call JavaScript makes (reset, close) hands over what it caused
 * before it returns.
 *
 * The calls run in one callback scope per turn of the plane, opened at the first call and
 * closed at the end of the turn, so that promises they settle run then, as after any I/O.
 */
#define NAPI_VERSION 8
#include <errno.h>
#include <node_api.h>
#include <stdio.h>
#include <string.h>

#include "plane.h"

#define CHECK(call)                                         \
  do {                                                      \
    if ((call) != napi_ok) {                                \
      napi_throw_error(env, "ERR_NATIVE", "napi: " #call);  \
      return NULL;                                          \
    }                                                       \
  } while (0)

enum { ON_ACCEPTED, ON_EVENTS, ON_ACCEPT_FAILED, CALLBACKS };
static const char *const CALLBACK_NAMES[CALLBACKS] = {"accepted", "events", "acceptFailed"};

/* One event in the window: [kind, id, ...]; src/relay/native.ts reads them. */
#define EVENT_FIELDS 8
enum { EV_ESTABLISHED = 0, EV_CLOSED = 1 };

static struct {
  napi_env env;
  napi_ref callbacks[CALLBACKS];
  napi_ref resource;
  napi_async_context context;
  bool in_turn;   /* between the plane's enter() and leave() */
  bool scoped;    /* the scopes below are open */
  napi_handle_scope handles;
  napi_callback_scope scope;
  napi_ref window_ref; /* the Float64Array of events */
  double *window;
  size_t window_cap;   /* events it holds */
  size_t pending;      /* events written and not handed over */
  bool flushing;       /* in events() */
} B;

static void flush(void);

static void enter(void) { B.in_turn = true; }

static void leave(void) {
  flush();
  if (B.scoped) {
    napi_close_callback_scope(B.env, B.scope);
    napi_close_handle_scope(B.env, B.handles);
    B.scoped = false;
  }
  B.in_turn = false;
}

/* Calls callback `which`; an exception it throws is the process's uncaught exception. */
static void call(int which, size_t argc, napi_value *argv) {
  napi_env env = B.env;
  napi_value fn, recv, result;
  napi_get_reference_value(env, B.callbacks[which], &fn);
  napi_get_undefined(env, &recv);
  if (napi_call_function(env, recv, fn, argc, argv, &result) == napi_pending_exception) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
  }
}

/* Opens the scopes a call from the plane's own turn needs (a call from JavaScript has them). */
static void scope(void) {
  if (!B.in_turn || B.scoped) return;
  napi_value resource;
  napi_open_handle_scope(B.env, &B.handles);
  napi_get_reference_value(B.env, B.resource, &resource);
  napi_open_callback_scope(B.env, resource, B.context, &B.scope);
  B.scoped = true;
}

/* An IPv6 address as the BigInt the decision works on (src/net/address.ts), without parsing
   its text: the words of a BigInt go least significant first. */
static void address_bigint(const struct in6_addr *a, napi_value *out) {
  uint64_t words[2] = {0, 0};
  for (int i = 0; i < 8; i++) {
    words[1] = words[1] << 8 | a->s6_addr[i];
    words[0] = words[0] << 8 | a->s6_addr[8 + i];
  }
  napi_create_bigint_words(B.env, 0, 2, words, out);
}

static void on_accepted(uint32_t id, const struct in6_addr *local, const char *local_text, int local_port, const struct in6_addr *remote,
                        const char *remote_text, int remote_port) {
  flush();
  scope();
  napi_value argv[7];
  napi_create_uint32(B.env, id, &argv[0]);
  napi_create_string_latin1(B.env, local_text, NAPI_AUTO_LENGTH, &argv[1]);
  napi_create_int32(B.env, local_port, &argv[2]);
  napi_create_string_latin1(B.env, remote_text, NAPI_AUTO_LENGTH, &argv[3]);
  napi_create_int32(B.env, remote_port, &argv[4]);
  address_bigint(local, &argv[5]);
  address_bigint(remote, &argv[6]);
  call(ON_ACCEPTED, 7, argv);
}

/* Hands the pending events to JavaScript: those written while it reads them (a call of its own
   that closed a connection) come in a call of their own, after. */
static void flush(void) {
  if (B.flushing) return;
  B.flushing = true;
  size_t from = 0;
  while (from < B.pending) {
    size_t to = B.pending;
    scope();
    napi_value argv[2];
    napi_create_uint32(B.env, (uint32_t)from, &argv[0]);
    napi_create_uint32(B.env, (uint32_t)to, &argv[1]);
    call(ON_EVENTS, 2, argv);
    from = to;
  }
  B.pending = 0;
  B.flushing = false;
}

/* The next event's fields; handed over at the end of the turn, or now when JavaScript made the
   call that caused it. */
static double *event(int kind, uint32_t id) {
  if (B.pending == B.window_cap) {
    if (B.flushing) napi_fatal_error("faithd6.native", NAPI_AUTO_LENGTH, "the event window overflowed while JavaScript read it", NAPI_AUTO_LENGTH);
    flush();
  }
  double *f = B.window + B.pending++ * EVENT_FIELDS;
  f[0] = kind;
  f[1] = id;
  return f;
}

static void on_established(uint32_t id, double connect_ms) {
  double *f = event(EV_ESTABLISHED, id);
  f[2] = connect_ms;
  if (!B.in_turn) flush();
}

static void on_closed(uint32_t id, enum end_code end, int err, uint64_t up, uint64_t down, double ms) {
  double *f = event(EV_CLOSED, id);
  f[2] = end;
  f[3] = err;
  f[4] = (double)up;
  f[5] = (double)down;
  f[6] = ms;
  if (!B.in_turn) flush();
}

static void on_accept_failed(int err) {
  scope();
  napi_value argv[1];
  napi_create_int32(B.env, err, &argv[0]);
  call(ON_ACCEPT_FAILED, 1, argv);
}

static napi_value args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  for (size_t i = argc; i < want; i++) napi_get_undefined(env, &argv[i]);
  napi_value ok;
  napi_get_boolean(env, true, &ok);
  return ok;
}

static uint32_t uint_arg(napi_env env, napi_value value) {
  uint32_t out = 0;
  napi_get_value_uint32(env, value, &out);
  return out;
}

static napi_value undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char message[128];
  snprintf(message, sizeof message, "%s: %s", what, strerror(err));
  napi_throw_error(env, "ERR_NATIVE", message);
  return NULL;
}

static napi_value js_open(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (args(env, info, 3, argv) == NULL) return NULL;
  if (B.env != NULL) return throw_errno(env, "open", EALREADY);
  napi_typedarray_type array_type = napi_int8_array;
  size_t length = 0;
  void *data = NULL;
  bool is_typedarray = false;
  CHECK(napi_is_typedarray(env, argv[2], &is_typedarray));
  if (is_typedarray) CHECK(napi_get_typedarray_info(env, argv[2], &array_type, &length, &data, NULL, NULL));
  if (!is_typedarray || array_type != napi_float64_array || length < EVENT_FIELDS) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "window: a Float64Array of at least one event");
    return NULL;
  }
  for (int i = 0; i < CALLBACKS; i++) {
    napi_value fn;
    napi_valuetype type;
    CHECK(napi_get_named_property(env, argv[0], CALLBACK_NAMES[i], &fn));
    CHECK(napi_typeof(env, fn, &type));
    if (type != napi_function) {
      napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", CALLBACK_NAMES[i]);
      return NULL;
    }
    CHECK(napi_create_reference(env, fn, 1, &B.callbacks[i]));
  }
  napi_value resource, name;
  CHECK(napi_create_object(env, &resource));
  CHECK(napi_create_reference(env, resource, 1, &B.resource));
  CHECK(napi_create_string_latin1(env, "faithd6.native", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_async_init(env, resource, name, &B.context));
  struct uv_loop_s *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  /* Held, so that the memory stays: an ArrayBuffer's store does not move. */
  CHECK(napi_create_reference(env, argv[2], 1, &B.window_ref));
  B.window = data;
  B.window_cap = length / EVENT_FIELDS;
  B.pending = 0;
  B.env = env;
  static const struct plane_events events = {
      .accepted = on_accepted,
      .established = on_established,
      .closed = on_closed,
      .accept_failed = on_accept_failed,
      .enter = enter,
      .leave = leave,
  };
  int err = plane_open(loop, &events, uint_arg(env, argv[1]) == 1 ? COPY_SPLICE : COPY_RW);
  if (err != 0) {
    B.env = NULL;
    napi_delete_reference(env, B.window_ref);
    return throw_errno(env, "open", err);
  }
  return undefined(env);
}

static napi_value js_listen(napi_env env, napi_callback_info info) {
  napi_value argv[3], out;
  if (args(env, info, 3, argv) == NULL) return NULL;
  int fd = 0, backlog = 0, keepalive = 0;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  CHECK(napi_get_value_int32(env, argv[1], &backlog));
  CHECK(napi_get_value_int32(env, argv[2], &keepalive));
  CHECK(napi_create_int32(env, plane_listen(fd, backlog, keepalive), &out));
  return out;
}

static napi_value js_unlisten(napi_env env, napi_callback_info info) {
  (void)info;
  plane_unlisten();
  return undefined(env);
}

static napi_value js_dial(napi_env env, napi_callback_info info) {
  napi_value argv[8];
  if (args(env, info, 8, argv) == NULL) return NULL;
  struct dial_options o = {
      .ipv4 = uint_arg(env, argv[1]),
      .port = (uint16_t)uint_arg(env, argv[2]),
      .source = uint_arg(env, argv[3]),
      .connect_ms = uint_arg(env, argv[4]),
      .idle_ms = uint_arg(env, argv[5]),
      .half_closed_ms = uint_arg(env, argv[6]),
  };
  bool is_buffer = false;
  napi_is_buffer(env, argv[7], &is_buffer);
  if (is_buffer) {
    void *data;
    CHECK(napi_get_buffer_info(env, argv[7], &data, &o.preamble_len));
    o.preamble = data;
  }
  plane_dial(uint_arg(env, argv[0]), &o);
  return undefined(env);
}

static napi_value js_reset(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (args(env, info, 1, argv) == NULL) return NULL;
  plane_reset(uint_arg(env, argv[0]));
  return undefined(env);
}

static napi_value js_pipe_limit(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (args(env, info, 1, argv) == NULL) return NULL;
  plane_pipe_limit(uint_arg(env, argv[0]));
  return undefined(env);
}

static void set_number(napi_env env, napi_value object, const char *key, double value) {
  napi_value v;
  napi_create_double(env, value, &v);
  napi_set_named_property(env, object, key, v);
}

static napi_value js_stats(napi_env env, napi_callback_info info) {
  (void)info;
  struct plane_stats s;
  plane_stats(&s);
  napi_value out;
  CHECK(napi_create_object(env, &out));
  set_number(env, out, "conns", s.conns);
  set_number(env, out, "heldBuffers", s.held_buffers);
  set_number(env, out, "heldBytes", (double)s.held_bytes);
  set_number(env, out, "pipes", s.pipes);
  set_number(env, out, "pipeBytes", (double)s.pipe_bytes);
  set_number(env, out, "bulkBuffers", s.bulk_buffers);
  set_number(env, out, "up", (double)s.up);
  set_number(env, out, "down", (double)s.down);
  set_number(env, out, "connSize", s.conn_size);
  return out;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  (void)info;
  if (B.env == NULL) return undefined(env);
  plane_close();
  flush();
  for (int i = 0; i < CALLBACKS; i++) napi_delete_reference(env, B.callbacks[i]);
  napi_delete_reference(env, B.window_ref);
  B.window = NULL;
  napi_async_destroy(env, B.context);
  napi_delete_reference(env, B.resource);
  B.env = NULL;
  return undefined(env);
}

static napi_value init(napi_env env, napi_value exports) {
  static const struct {
    const char *name;
    napi_callback fn;
  } methods[] = {
      {"open", js_open}, {"listen", js_listen}, {"unlisten", js_unlisten}, {"dial", js_dial},
      {"reset", js_reset}, {"stats", js_stats}, {"pipeLimit", js_pipe_limit}, {"close", js_close},
  };
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
    napi_value fn;
    CHECK(napi_create_function(env, methods[i].name, NAPI_AUTO_LENGTH, methods[i].fn, NULL, &fn));
    CHECK(napi_set_named_property(env, exports, methods[i].name, fn));
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
