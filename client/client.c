/* client.c — libaoq: connection, requests and replies, generation, admin calls (aoq.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "aoq/aoq.h"
#include "base/error.h"
#include "client/client_internal.h"
#include "proto/wire.h"

aoq_status aoqc_fail(aoq_client *c, aoq_status s, const char *fmt, ...) {
  char msg[sizeof c->err];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (c) memcpy(c->err, msg, sizeof msg);
  return aoq_err(s, "%s", msg);
}

static int env_int(const char *name, int def) {
  const char *v = getenv(name);
  if (!v || !v[0]) return def;
  long x = strtol(v, NULL, 10);
  return x > 0 && x < (1 << 30) ? (int)x : def;
}

static aoq_status send_request(aoq_client *c, Aoq__Request *r) {
  uint8_t *buf;
  size_t n;
  aoq_status s = aoq_wire_pack_request(r, &buf, &n);
  if (s != AOQ_OK) return aoqc_fail(c, s, "%s", aoq_last_error());
  int rc = zmq_send(c->sock, buf, n, 0);
  free(buf);
  if (rc < 0) return aoqc_fail(c, AOQ_ECONN, "send: %s", zmq_strerror(zmq_errno()));
  return AOQ_OK;
}

aoq_status aoqc_recv(aoq_client *c, uint64_t id, int timeout_ms, Aoq__Reply **out) {
  for (;;) {
    zmq_pollitem_t it = {c->sock, 0, ZMQ_POLLIN, 0};
    int r = zmq_poll(&it, 1, timeout_ms);
    if (r < 0 && zmq_errno() == EINTR) continue;
    if (r < 0) return aoqc_fail(c, AOQ_ECONN, "poll: %s", zmq_strerror(zmq_errno()));
    if (r == 0)
      return aoqc_fail(c, AOQ_ETIMEOUT, "no reply from aoqd at %s within %d ms", c->endpoint,
                       timeout_ms);
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, c->sock, 0) < 0) {
      zmq_msg_close(&m);
      return aoqc_fail(c, AOQ_ECONN, "recv: %s", zmq_strerror(zmq_errno()));
    }
    Aoq__Reply *rep = aoq__reply__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
    size_t sz = zmq_msg_size(&m);
    zmq_msg_close(&m);
    if (!rep) return aoqc_fail(c, AOQ_EPROTO, "malformed reply of %zu bytes from aoqd", sz);
    if (rep->id != id && id != 0) { /* a late reply to an abandoned request */
      aoq__reply__free_unpacked(rep, NULL);
      continue;
    }
    *out = rep;
    return AOQ_OK;
  }
}

/* A reply that is an Error becomes the call's status, with the daemon's message. */
static aoq_status reply_status(aoq_client *c, Aoq__Reply *rep) {
  if (rep->body_case != AOQ__REPLY__BODY_ERROR) return AOQ_OK;
  aoq_status s = rep->error->status > 0 && rep->error->status < AOQ_STATUS_COUNT
                     ? (aoq_status)rep->error->status
                     : AOQ_EPROTO;
  return aoqc_fail(c, s, "aoqd: %s", rep->error->message);
}

aoq_status aoqc_call(aoq_client *c, Aoq__Request *req, Aoq__Reply__BodyCase want,
                     Aoq__Reply **out) {
  req->id = c->next_id++;
  AOQ_TRY(send_request(c, req));
  Aoq__Reply *rep;
  AOQ_TRY(aoqc_recv(c, req->id, c->timeout_ms, &rep));
  aoq_status s = reply_status(c, rep);
  if (s == AOQ_OK && rep->body_case != want)
    s = aoqc_fail(c, AOQ_EPROTO, "unexpected reply (case %d, expected %d)", (int)rep->body_case,
                  (int)want);
  if (s != AOQ_OK) {
    aoq__reply__free_unpacked(rep, NULL);
    return s;
  }
  if (out)
    *out = rep;
  else
    aoq__reply__free_unpacked(rep, NULL);
  c->err[0] = 0;
  return AOQ_OK;
}

aoq_status aoq_connect(const char *endpoint, aoq_client **out) {
  aoq_connect_opts o = {0};
  o.endpoint = endpoint;
  return aoq_connect_with(&o, out);
}

static aoq_status curve_setup(aoq_client *c) {
  const char *sk = getenv("AOQ_CURVE_SERVERKEY"), *pk = getenv("AOQ_CURVE_PUBLICKEY"),
             *sec = getenv("AOQ_CURVE_SECRETKEY");
  if (!sk || !pk || !sec || strlen(sk) != 40 || strlen(pk) != 40 || strlen(sec) != 40)
    return aoqc_fail(c, AOQ_EINVAL,
                     "tcp endpoints need $AOQ_CURVE_SERVERKEY, $AOQ_CURVE_PUBLICKEY "
                     "and $AOQ_CURVE_SECRETKEY (40 Z85 characters each)");
  if (zmq_setsockopt(c->sock, ZMQ_CURVE_SERVERKEY, sk, 40) ||
      zmq_setsockopt(c->sock, ZMQ_CURVE_PUBLICKEY, pk, 40) ||
      zmq_setsockopt(c->sock, ZMQ_CURVE_SECRETKEY, sec, 40))
    return aoqc_fail(c, AOQ_EINVAL, "CURVE keys: %s", zmq_strerror(zmq_errno()));
  return AOQ_OK;
}

aoq_status aoq_connect_with(const aoq_connect_opts *opts, aoq_client **out) {
  aoq_connect_opts o = {0};
  if (opts) o = *opts;
  *out = NULL;
  aoq_client *c = calloc(1, sizeof *c);
  if (!c) return aoq_err(AOQ_ENOMEM, "client handle");
  c->next_id = 1;
  c->admin = o.admin;
  c->timeout_ms = env_int("AOQ_TIMEOUT_MS", 60000);
  aoq_status s = AOQ_OK;
  if (o.endpoint) {
    if (strlen(o.endpoint) >= sizeof c->endpoint)
      s = aoqc_fail(c, AOQ_EINVAL, "endpoint too long");
    else
      strcpy(c->endpoint, o.endpoint);
  } else {
    s = aoq_wire_default_endpoint(o.admin, c->endpoint, sizeof c->endpoint);
    if (s != AOQ_OK) aoqc_fail(c, s, "%s", aoq_last_error());
  }
  if (s == AOQ_OK) {
    c->ctx = zmq_ctx_new();
    c->sock = c->ctx ? zmq_socket(c->ctx, ZMQ_DEALER) : NULL;
    /* The TTL travels in our PINGs: the daemon drops the connection when nothing at all has
     * come from us for that long. Its own PING timeout cannot do that when its send queue to us
     * is full (a stopped process): libzmq arms that timeout only once the PING is written. The
     * daemon arms the TTL at our first PING, so PINGs go often (100 ms: a client stopped 0.1 s
     * after connecting on a GPU daemon had sent none); the timeouts stay at 4 s or more. */
    int zero = 0, hb = env_int("AOQ_HEARTBEAT_MS", 100), hbt = 4 * hb > 4000 ? 4 * hb : 4000;
    if (!c->sock || zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof zero) ||
        zmq_setsockopt(c->sock, ZMQ_HEARTBEAT_IVL, &hb, sizeof hb) ||
        zmq_setsockopt(c->sock, ZMQ_HEARTBEAT_TIMEOUT, &hbt, sizeof hbt) ||
        zmq_setsockopt(c->sock, ZMQ_HEARTBEAT_TTL, &hbt, sizeof hbt))
      s = aoqc_fail(c, AOQ_ENOMEM, "socket: %s", zmq_strerror(zmq_errno()));
  }
  if (s == AOQ_OK && !strncmp(c->endpoint, "tcp://", 6)) s = curve_setup(c);
  if (s == AOQ_OK && zmq_connect(c->sock, c->endpoint))
    s = aoqc_fail(c, AOQ_ECONN, "connect %s: %s", c->endpoint, zmq_strerror(zmq_errno()));
  /* the first message: Hello on the client socket, Ping on the admin socket (no session) */
  Aoq__Request req = AOQ__REQUEST__INIT;
  Aoq__Ping ping = AOQ__PING__INIT;
  Aoq__Hello h = AOQ__HELLO__INIT;
  char tenant[64] = "";
  if (o.admin) {
    req.body_case = AOQ__REQUEST__BODY_PING;
    req.ping = &ping;
  } else {
    const char *t = o.tenant ? o.tenant : getenv("AOQ_TENANT");
    if (t) snprintf(tenant, sizeof tenant, "%s", t);
    h.protocol_version = o.protocol_version ? o.protocol_version : AOQ_PROTOCOL_VERSION;
    h.client_name = (char *)(o.name ? o.name : "libaoq");
    h.tenant = tenant;
    h.api_key = (char *)"";
    h.pid = (uint32_t)getpid();
    req.body_case = AOQ__REQUEST__BODY_HELLO;
    req.hello = &h;
  }
  req.id = c->next_id++;
  if (s == AOQ_OK) s = send_request(c, &req);
  if (s == AOQ_OK) {
    int timeout = env_int("AOQ_CONNECT_TIMEOUT_MS", 5000);
    Aoq__Reply *rep;
    s = aoqc_recv(c, req.id, timeout, &rep);
    if (s == AOQ_ETIMEOUT)
      s = aoqc_fail(c, AOQ_ECONN,
                    "no aoqd answered at %s within %d ms (not running, no "
                    "permission, or key refused)",
                    c->endpoint, timeout);
    if (s == AOQ_OK) {
      s = reply_status(c, rep);
      if (s == AOQ_OK && rep->body_case == AOQ__REPLY__BODY_HELLO) {
        c->session = rep->hello->session_id;
        snprintf(c->tenant, sizeof c->tenant, "%s", rep->hello->tenant);
      } else if (s == AOQ_OK && !(o.admin && rep->body_case == AOQ__REPLY__BODY_EMPTY)) {
        s = aoqc_fail(c, AOQ_EPROTO, "unexpected reply to hello");
      }
      aoq__reply__free_unpacked(rep, NULL);
    }
  }
  if (s != AOQ_OK) {
    char detail[sizeof c->err];
    memcpy(detail, c->err, sizeof detail);
    aoq_disconnect(c);
    return aoq_err(s, "%s", detail);
  }
  c->err[0] = 0;
  *out = c;
  return AOQ_OK;
}

void aoq_disconnect(aoq_client *c) {
  if (!c) return;
  while (c->buffers) {
    aoq_buffer *b = c->buffers;
    c->buffers = b->next;
    aoqc_buffer_release(b);
  }
  if (c->sock) zmq_close(c->sock);
  if (c->ctx) zmq_ctx_term(c->ctx);
  free(c);
}

const char *aoq_client_last_error(const aoq_client *c) {
  return c ? c->err : "no client";
}
uint64_t aoq_client_session(const aoq_client *c) {
  return c->session;
}
const char *aoq_client_tenant(const aoq_client *c) {
  return c->tenant;
}
void aoq_free(void *p) {
  free(p);
}

aoq_status aoq_ping(aoq_client *c) {
  Aoq__Request req = AOQ__REQUEST__INIT;
  Aoq__Ping p = AOQ__PING__INIT;
  req.body_case = AOQ__REQUEST__BODY_PING;
  req.ping = &p;
  return aoqc_call(c, &req, AOQ__REPLY__BODY_EMPTY, NULL);
}

aoq_status aoq_admin(aoq_client *c, aoq_admin_cmd cmd, const aoq_admin_args *args, char **json) {
  if (json) *json = NULL;
  if ((unsigned)cmd > AOQ_ADMIN_SHUTDOWN)
    return aoqc_fail(c, AOQ_EINVAL, "unknown admin command %d", (int)cmd);
  aoq_admin_args a = {0};
  if (args) a = *args;
  Aoq__Request req = AOQ__REQUEST__INIT;
  Aoq__Admin ad = AOQ__ADMIN__INIT;
  Aoq__Quota q = AOQ__QUOTA__INIT;
  ad.cmd = (Aoq__Admin__Cmd)cmd;
  ad.model = (char *)(a.model ? a.model : "");
  ad.config = (char *)(a.config ? a.config : "");
  ad.synthetic = a.synthetic != 0;
  if (cmd == AOQ_ADMIN_QUOTA) {
    q.tenant = (char *)(a.tenant ? a.tenant : "");
    q.kv_pages = a.kv_pages;
    q.max_seqs = a.max_seqs;
    q.priority = a.priority;
    ad.quota = &q;
  }
  req.body_case = AOQ__REQUEST__BODY_ADMIN;
  req.admin = &ad;
  int model_cmd = cmd == AOQ_ADMIN_LOAD || cmd == AOQ_ADMIN_UNLOAD || cmd == AOQ_ADMIN_RECONFIGURE;
  Aoq__Reply *rep;
  int saved = c->timeout_ms;
  if (model_cmd && c->timeout_ms < 600000) c->timeout_ms = 600000; /* quantizing takes a while */
  aoq_status s =
      aoqc_call(c, &req, model_cmd ? AOQ__REPLY__BODY_EMPTY : AOQ__REPLY__BODY_ADMIN, &rep);
  c->timeout_ms = saved;
  if (s != AOQ_OK) return s;
  if (!model_cmd && json) {
    *json = strdup(rep->admin->json);
    if (!*json) s = aoqc_fail(c, AOQ_ENOMEM, "status copy");
  }
  aoq__reply__free_unpacked(rep, NULL);
  return s;
}
