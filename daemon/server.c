/* server.c — aoqd's socket loop, sessions and request dispatch (server.h). */
#include "daemon/server.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>

#include "base/log.h"
#include "daemon/admin.h"
#include "proto/wire.h"

volatile sig_atomic_t aoqd_sig_term, aoqd_sig_hup;

#define REPLY_ENDPOINT "inproc://aoqd-replies"
#define TXBUF_BYTES (64u << 10)

/* ---- replies ---------------------------------------------------------------------------- */

static void send_frames(aoqd_server *sv, const aoqd_addr *a, const void *data, size_t n) {
  void *sock = sv->sock[a->sock];
  if (!sock) return;
  /* A peer that is gone makes ROUTER drop the message: nothing to do for us. */
  if (zmq_send(sock, a->rid, a->rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) return;
  if (zmq_send(sock, data, n, ZMQ_DONTWAIT) < 0) return;
  pthread_mutex_lock(&sv->mx->mu);
  sv->mx->tx_bytes[a->type] += n;
  pthread_mutex_unlock(&sv->mx->mu);
}

void aoqd_server_reply(aoqd_server *sv, const aoqd_addr *a, Aoq__Reply *r) {
  static uint8_t txbuf[TXBUF_BYTES]; /* server thread only */
  r->id = a->req_id;
  size_t n = aoq__reply__get_packed_size(r);
  uint8_t *buf = n <= sizeof txbuf ? txbuf : malloc(n);
  if (!buf) {
    AOQ_ERROR("reply of %zu bytes: out of memory", n);
    return;
  }
  aoq__reply__pack(r, buf);
  send_frames(sv, a, buf, n);
  if (buf != txbuf) free(buf);
}

void aoqd_server_error(aoqd_server *sv, const aoqd_addr *a, aoq_status st, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  Aoq__Reply r = AOQ__REPLY__INIT;
  Aoq__Error e = AOQ__ERROR__INIT;
  e.status = (uint32_t)st;
  e.message = msg;
  r.body_case = AOQ__REPLY__BODY_ERROR;
  r.error = &e;
  pthread_mutex_lock(&sv->mx->mu);
  sv->mx->errors[a->type]++;
  pthread_mutex_unlock(&sv->mx->mu);
  aoqd_server_reply(sv, a, &r);
}

static void send_empty(aoqd_server *sv, const aoqd_addr *a) {
  Aoq__Reply r = AOQ__REPLY__INIT;
  Aoq__Empty e = AOQ__EMPTY__INIT;
  r.body_case = AOQ__REPLY__BODY_EMPTY;
  r.empty = &e;
  aoqd_server_reply(sv, a, &r);
}

/* ---- sessions --------------------------------------------------------------------------- */

static aoqd_session *find_session(aoqd_server *sv, const aoqd_addr *a) {
  for (int i = 0; i < sv->n_sessions; i++) {
    aoqd_session *s = &sv->sessions[i];
    if (s->sock == a->sock && s->rid_len == a->rid_len && !memcmp(s->rid, a->rid, a->rid_len))
      return s;
  }
  return NULL;
}

static void tenant_buffers_publish(aoqd_server *sv, int tenant) {
  int c;
  uint64_t b;
  int dc;
  uint64_t db;
  aoqd_bufreg_usage(sv->reg, tenant, &c, &b);
  aoqd_bufreg_device_usage(sv->reg, tenant, &dc, &db);
  pthread_mutex_lock(&sv->mx->mu);
  sv->mx->tenants[tenant].buffers = c;
  sv->mx->tenants[tenant].buffer_bytes = b;
  sv->mx->tenants[tenant].device_buffers = dc;
  sv->mx->tenants[tenant].device_buffer_bytes = db;
  pthread_mutex_unlock(&sv->mx->mu);
}

static void close_session(aoqd_server *sv, int i, const char *why) {
  aoqd_session s = sv->sessions[i];
  sv->sessions[i] = sv->sessions[--sv->n_sessions];
  int nb = aoqd_bufreg_remove_session(sv->reg, s.id);
  tenant_buffers_publish(sv, s.tenant);
  aoqd_job *j = calloc(1, sizeof *j);
  if (j) {
    j->kind = AOQD_JOB_SESSION_GONE;
    j->session = s.id;
    j->tenant = s.tenant;
    aoqd_sched_submit(sv->sched, j);
  }
  pthread_mutex_lock(&sv->mx->mu);
  sv->mx->tenants[s.tenant].sessions--;
  sv->mx->sessions = sv->n_sessions;
  sv->mx->sessions_reaped++;
  pthread_mutex_unlock(&sv->mx->mu);
  AOQ_INFO("session closed|session=%llu tenant=%s client=%s pid=%ld reason=%s buffers_freed=%d",
           (unsigned long long)s.id, sv->mx->tenants[s.tenant].name, s.client, s.pid, why, nb);
}

static long peer_cred(int fd, long *pid) {
  struct ucred cr;
  socklen_t l = sizeof cr;
  *pid = -1;
  if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &l) != 0) return -1;
  *pid = cr.pid;
  return (long)cr.uid;
}

static void mark_stale_fd(aoqd_server *sv, int sock, int fd) {
  for (int k = 0; k < 16; k++)
    if (sv->stale_fd[sock][k] < 0) {
      sv->stale_fd[sock][k] = fd;
      return;
    }
}

static void do_hello(aoqd_server *sv, const aoqd_addr *a, int fd, const char *user_id,
                     const Aoq__Hello *h) {
  if (h->protocol_version != AOQ_PROTOCOL_VERSION)
    return aoqd_server_error(sv, a, AOQ_EPROTO,
                             "protocol version mismatch: client speaks %u, aoqd %s speaks %u",
                             h->protocol_version, aoq_version(), AOQ_PROTOCOL_VERSION);
  long pid, uid = a->sock == AOQD_SOCK_TCP ? -1 : peer_cred(fd, &pid);
  if (a->sock == AOQD_SOCK_TCP) pid = h->pid;
  char tenant[64];
  if (a->sock == AOQD_SOCK_TCP) {
    if (!user_id || !user_id[0])
      return aoqd_server_error(sv, a, AOQ_EPERM, "tcp client without an authenticated key");
    snprintf(tenant, sizeof tenant, "%s", user_id);
  } else if (h->tenant[0]) {
    if (strlen(h->tenant) >= sizeof tenant)
      return aoqd_server_error(sv, a, AOQ_EINVAL, "tenant name longer than %zu bytes",
                               sizeof tenant - 1);
    snprintf(tenant, sizeof tenant, "%s", h->tenant);
  } else {
    snprintf(tenant, sizeof tenant, "uid%ld", uid);
  }
  /* A hello on a live session restarts it; a live session on the same fd is a dead connection
   * whose DISCONNECTED event is still on its way (libzmq reused the fd). */
  for (int i = sv->n_sessions - 1; i >= 0; i--) {
    aoqd_session *s = &sv->sessions[i];
    if (s->sock != a->sock) continue;
    int same = s->rid_len == a->rid_len && !memcmp(s->rid, a->rid, a->rid_len);
    if (same) {
      close_session(sv, i, "hello again");
    } else if (fd >= 0 && s->fd == fd) {
      close_session(sv, i, "connection replaced");
      mark_stale_fd(sv, a->sock, fd);
    }
  }
  int t;
  pthread_mutex_lock(&sv->mx->mu);
  aoq_status st = aoqd_tenant_get_locked(sv->mx, tenant, &t);
  pthread_mutex_unlock(&sv->mx->mu);
  if (st != AOQ_OK) return aoqd_server_error(sv, a, st, "%s", aoq_last_error());
  if (sv->n_sessions == sv->cap_sessions) {
    int cap = sv->cap_sessions ? 2 * sv->cap_sessions : 64;
    aoqd_session *ns = realloc(sv->sessions, (size_t)cap * sizeof *ns);
    if (!ns) return aoqd_server_error(sv, a, AOQ_ENOMEM, "session table");
    sv->sessions = ns;
    sv->cap_sessions = cap;
  }
  aoqd_session *s = &sv->sessions[sv->n_sessions++];
  memset(s, 0, sizeof *s);
  s->id = sv->next_session++;
  s->sock = a->sock;
  s->rid_len = a->rid_len;
  memcpy(s->rid, a->rid, a->rid_len);
  s->fd = fd;
  s->uid = uid;
  s->pid = pid;
  s->tenant = t;
  snprintf(s->client, sizeof s->client, "%s", h->client_name);
  pthread_mutex_lock(&sv->mx->mu);
  sv->mx->tenants[t].sessions++;
  sv->mx->sessions = sv->n_sessions;
  pthread_mutex_unlock(&sv->mx->mu);
  AOQ_INFO("session open|session=%llu tenant=%s client=%s uid=%ld pid=%ld",
           (unsigned long long)s->id, tenant, s->client, uid, pid);
  Aoq__Reply r = AOQ__REPLY__INIT;
  Aoq__HelloReply hr = AOQ__HELLO_REPLY__INIT;
  hr.protocol_version = AOQ_PROTOCOL_VERSION;
  hr.session_id = s->id;
  hr.tenant = tenant;
  hr.daemon_version = (char *)aoq_version();
  r.body_case = AOQ__REPLY__BODY_HELLO;
  r.hello = &hr;
  aoqd_server_reply(sv, a, &r);
}

/* ---- request handlers (server thread) ------------------------------------------------- */

typedef struct ctx {
  aoqd_server *sv;
  const aoqd_addr *a;
  aoqd_session *s;
  Aoq__Request *req; /* set to NULL by a handler that takes it */
} ctx;

static void buffer_reply(ctx *c, aoqd_buffer *b) {
  Aoq__Reply r = AOQ__REPLY__INIT;
  Aoq__BufferReply br = AOQ__BUFFER_REPLY__INIT;
  br.buffer_id = b->id;
  br.shm_name = b->shm.name;
  br.size = b->shm.size;
  if (b->device) {
    br.device = 1;
    br.ipc_handle.data = b->ipc.bytes;
    br.ipc_handle.len = sizeof b->ipc.bytes;
  }
  r.body_case = AOQ__REPLY__BODY_BUFFER;
  r.buffer = &br;
  aoqd_server_reply(c->sv, c->a, &r);
}

static void h_ping(ctx *c) {
  send_empty(c->sv, c->a);
}

static void h_buffer_register(ctx *c) {
  Aoq__BufferRegister *b = c->req->buffer_register;
  aoqd_buffer *buf;
  aoq_status st = aoqd_bufreg_register(c->sv->reg, c->s->id, c->s->tenant, b->shm_name, b->size,
                                       c->s->uid, &buf);
  if (st != AOQ_OK) return aoqd_server_error(c->sv, c->a, st, "%s", aoq_last_error());
  tenant_buffers_publish(c->sv, c->s->tenant);
  buffer_reply(c, buf);
}

static void h_buffer_create_device(ctx *c) {
  aoqd_buffer *buf;
  aoq_status st = aoqd_bufreg_create_device(c->sv->reg, c->s->id, c->s->tenant,
                                            c->req->buffer_create->size, &buf);
  if (st != AOQ_OK) return aoqd_server_error(c->sv, c->a, st, "%s", aoq_last_error());
  AOQ_INFO("device buffer created|session=%llu id=%llu bytes=%llu", (unsigned long long)c->s->id,
           (unsigned long long)buf->id, (unsigned long long)buf->shm.size);
  tenant_buffers_publish(c->sv, c->s->tenant);
  buffer_reply(c, buf);
}

static void h_buffer_register_ipc(ctx *c) {
  Aoq__BufferRegisterIpc *b = c->req->buffer_register_ipc;
  aoq_ipc_handle h;
  if (b->ipc_handle.len != sizeof h.bytes)
    return aoqd_server_error(c->sv, c->a, AOQ_EINVAL, "ipc_handle is %zu bytes, expected %zu",
                             b->ipc_handle.len, sizeof h.bytes);
  memcpy(h.bytes, b->ipc_handle.data, sizeof h.bytes);
  aoqd_buffer *buf;
  aoq_status st = aoqd_bufreg_register_ipc(c->sv->reg, c->s->id, c->s->tenant, &h, b->size, &buf);
  if (st != AOQ_OK) {
    AOQ_WARN("device buffer refused|session=%llu error=\"%s\"", (unsigned long long)c->s->id,
             aoq_last_error());
    return aoqd_server_error(c->sv, c->a, st, "%s", aoq_last_error());
  }
  tenant_buffers_publish(c->sv, c->s->tenant);
  buffer_reply(c, buf);
}

static void h_buffer_create(ctx *c) {
  if (c->req->buffer_create->device) return h_buffer_create_device(c);
  aoqd_buffer *buf;
  aoq_status st = aoqd_bufreg_create_buffer(c->sv->reg, c->s->id, c->s->tenant,
                                            c->req->buffer_create->size, &buf);
  if (st != AOQ_OK) return aoqd_server_error(c->sv, c->a, st, "%s", aoq_last_error());
  /* the client maps it by name: give the object to the client's uid */
  if (c->s->uid >= 0 && c->s->uid != (long)geteuid()) {
    char path[300];
    snprintf(path, sizeof path, "/dev/shm%s", buf->shm.name);
    if (chown(path, (uid_t)c->s->uid, (gid_t)-1) != 0)
      AOQ_WARN("chown of a shared buffer failed|path=%s errno=%d", path, errno);
  }
  tenant_buffers_publish(c->sv, c->s->tenant);
  buffer_reply(c, buf);
}

static void h_buffer_unregister(ctx *c) {
  aoq_status st = aoqd_bufreg_remove(c->sv->reg, c->s->id, c->req->buffer_unregister->buffer_id);
  if (st != AOQ_OK) return aoqd_server_error(c->sv, c->a, st, "%s", aoq_last_error());
  tenant_buffers_publish(c->sv, c->s->tenant);
  send_empty(c->sv, c->a);
}

static int name_ok(ctx *c, const char *what, const char *s) {
  if (strlen(s) < AOQ_MAX_NAME_BYTES) return 1;
  aoqd_server_error(c->sv, c->a, AOQ_EINVAL, "%s longer than %zu bytes", what,
                    AOQ_MAX_NAME_BYTES - 1);
  return 0;
}

/* Hands the request to the scheduler with the buffers it names (references held). */
static void to_scheduler(ctx *c, uint64_t in_id, uint64_t in_off, uint64_t out_id, uint64_t out_off,
                         int need_in, int need_out) {
  aoqd_job *j = calloc(1, sizeof *j);
  if (!j) return aoqd_server_error(c->sv, c->a, AOQ_ENOMEM, "job");
  aoq_status st = AOQ_OK;
  if (need_in) st = aoqd_bufreg_acquire(c->sv->reg, c->s->id, in_id, in_off, 0, &j->in);
  if (st == AOQ_OK && need_out)
    st = aoqd_bufreg_acquire(c->sv->reg, c->s->id, out_id, out_off, 0, &j->out);
  if (st != AOQ_OK) {
    if (st == AOQ_EPERM) {
      AOQ_WARN("foreign buffer refused|session=%llu tenant=%s", (unsigned long long)c->s->id,
               c->sv->mx->tenants[c->s->tenant].name);
      pthread_mutex_lock(&c->sv->mx->mu);
      c->sv->mx->tenants[c->s->tenant].refused++;
      pthread_mutex_unlock(&c->sv->mx->mu);
    }
    aoqd_server_error(c->sv, c->a, st, "%s", aoq_last_error());
    aoqd_job_free(j);
    return;
  }
  j->kind = AOQD_JOB_REQUEST;
  j->addr = *c->a;
  j->session = c->s->id;
  j->tenant = c->s->tenant;
  j->req = c->req;
  c->req = NULL;
  aoqd_sched_submit(c->sv->sched, j);
}

static void h_generate(ctx *c) {
  Aoq__Generate *g = c->req->generate;
  if (c->sv->draining) return aoqd_server_error(c->sv, c->a, AOQ_EBUSY, "the daemon is draining");
  if (!name_ok(c, "model name", g->model)) return;
  if (g->n_tokens > AOQ_MAX_TOKENS || g->max_tokens > AOQ_MAX_TOKENS)
    return aoqd_server_error(c->sv, c->a, AOQ_EINVAL, "more than %zu tokens", AOQ_MAX_TOKENS);
  to_scheduler(c, 0, 0, 0, 0, 0, 0);
}

static void h_forward(ctx *c) {
  Aoq__Forward *f = c->req->forward;
  if (c->sv->draining) return aoqd_server_error(c->sv, c->a, AOQ_EBUSY, "the daemon is draining");
  if (!name_ok(c, "model name", f->model)) return;
  to_scheduler(c, 0, 0, f->out_buffer, f->out_offset, 0, 1);
}

static void h_matmul(ctx *c) {
  Aoq__Matmul *m = c->req->matmul;
  if (!name_ok(c, "model name", m->model) || !name_ok(c, "layer name", m->layer)) return;
  to_scheduler(c, m->in_buffer, m->in_offset, m->out_buffer, m->out_offset, 1, 1);
}

static void h_model_request(ctx *c) {
  to_scheduler(c, 0, 0, 0, 0, 0, 0);
}

static void h_admin_on_main(ctx *c) {
  aoqd_server_error(c->sv, c->a, AOQ_EPERM, "admin commands are served on the admin endpoint only");
}

typedef struct route {
  Aoq__Request__BodyCase body;
  void (*fn)(ctx *c);
} route;

/* The dispatch table of the client sockets (hello is handled before: it creates the session). */
static const route routes[] = {
    {AOQ__REQUEST__BODY_PING, h_ping},
    {AOQ__REQUEST__BODY_GENERATE, h_generate},
    {AOQ__REQUEST__BODY_CANCEL, h_model_request},
    {AOQ__REQUEST__BODY_FORWARD, h_forward},
    {AOQ__REQUEST__BODY_MATMUL, h_matmul},
    {AOQ__REQUEST__BODY_TOKENIZE, h_model_request},
    {AOQ__REQUEST__BODY_DETOKENIZE, h_model_request},
    {AOQ__REQUEST__BODY_MODELS, h_model_request},
    {AOQ__REQUEST__BODY_BUFFER_REGISTER, h_buffer_register},
    {AOQ__REQUEST__BODY_BUFFER_CREATE, h_buffer_create},
    {AOQ__REQUEST__BODY_BUFFER_UNREGISTER, h_buffer_unregister},
    {AOQ__REQUEST__BODY_BUFFER_REGISTER_IPC, h_buffer_register_ipc},
    {AOQ__REQUEST__BODY_ADMIN, h_admin_on_main},
};

/* ---- one incoming message ------------------------------------------------------------- */

static void handle_message(aoqd_server *sv, int sock, zmq_msg_t *rid, zmq_msg_t *body, int extra) {
  aoqd_addr a;
  memset(&a, 0, offsetof(aoqd_addr, rid));
  a.sock = (uint8_t)sock;
  a.rid_len = (uint8_t)(zmq_msg_size(rid) > 255 ? 255 : zmq_msg_size(rid));
  memcpy(a.rid, zmq_msg_data(rid), a.rid_len);
  a.type = (uint8_t)aoq_wire_type_index((Aoq__Request__BodyCase)-1);
  size_t n = zmq_msg_size(body);
  Aoq__Request *req = extra ? NULL : aoq__request__unpack(NULL, n, zmq_msg_data(body));
  if (req) {
    a.type = (uint8_t)aoq_wire_type_index(req->body_case);
    a.req_id = req->id;
  }
  pthread_mutex_lock(&sv->mx->mu);
  sv->mx->requests[a.type]++;
  sv->mx->rx_bytes[a.type] += n;
  pthread_mutex_unlock(&sv->mx->mu);
  if (!req) {
    AOQ_WARN("malformed request|bytes=%zu frames=%d", n, extra + 2);
    if (extra)
      return aoqd_server_error(sv, &a, AOQ_EPROTO, "one frame per request expected, got %d",
                               extra + 1);
    return aoqd_server_error(sv, &a, AOQ_EPROTO,
                             "malformed request: %zu bytes are not an aoq.Request", n);
  }
  int fd = zmq_msg_get(body, ZMQ_SRCFD);
  if (sock == AOQD_SOCK_ADMIN) {
    long pid, uid = peer_cred(fd, &pid);
    if (uid != (long)geteuid()) {
      pthread_mutex_lock(&sv->mx->mu);
      sv->mx->refused_admin++;
      pthread_mutex_unlock(&sv->mx->mu);
      AOQ_WARN("admin command refused|uid=%ld pid=%ld daemon_uid=%ld", uid, pid, (long)geteuid());
      aoqd_server_error(sv, &a, AOQ_EPERM, "admin commands are accepted from uid %ld only, not %ld",
                        (long)geteuid(), uid);
    } else if (req->body_case == AOQ__REQUEST__BODY_ADMIN) {
      aoqd_admin_handle(sv, &a, req);
      return; /* took req */
    } else if (req->body_case == AOQ__REQUEST__BODY_PING) {
      send_empty(sv, &a);
    } else {
      aoqd_server_error(sv, &a, AOQ_EPROTO, "the admin endpoint serves admin requests only");
    }
    aoq__request__free_unpacked(req, NULL);
    return;
  }
  if (req->body_case == AOQ__REQUEST__BODY_HELLO) {
    do_hello(sv, &a, fd, zmq_msg_gets(body, "User-Id"), req->hello);
    aoq__request__free_unpacked(req, NULL);
    return;
  }
  ctx c = {sv, &a, find_session(sv, &a), req};
  if (!c.s) {
    aoqd_server_error(sv, &a, AOQ_EPROTO, "no session: send Hello first");
  } else {
    size_t i = 0;
    while (i < sizeof routes / sizeof routes[0] && routes[i].body != req->body_case) i++;
    if (i == sizeof routes / sizeof routes[0])
      aoqd_server_error(sv, &a, AOQ_EPROTO, "request without a known body (case %d)",
                        (int)req->body_case);
    else
      routes[i].fn(&c);
  }
  if (c.req) aoq__request__free_unpacked(c.req, NULL);
}

static void read_socket(aoqd_server *sv, int sock) {
  for (int k = 0; k < 256; k++) {
    zmq_msg_t rid, body;
    zmq_msg_init(&rid);
    if (zmq_msg_recv(&rid, sv->sock[sock], ZMQ_DONTWAIT) < 0) {
      zmq_msg_close(&rid);
      return;
    }
    zmq_msg_init(&body);
    int extra = 0;
    if (!zmq_msg_more(&rid) || zmq_msg_recv(&body, sv->sock[sock], 0) < 0) {
      zmq_msg_close(&rid);
      zmq_msg_close(&body);
      continue;
    }
    while (zmq_msg_more(&body)) { /* drop extra frames: a protocol error */
      zmq_msg_t x;
      zmq_msg_init(&x);
      int r = zmq_msg_recv(&x, sv->sock[sock], 0);
      int more = r >= 0 && zmq_msg_more(&x);
      zmq_msg_close(&x);
      extra++;
      if (!more) break;
    }
    handle_message(sv, sock, &rid, &body, extra);
    zmq_msg_close(&rid);
    zmq_msg_close(&body);
  }
}

static void read_monitor(aoqd_server *sv, int sock) {
  for (;;) {
    zmq_msg_t ev, ep;
    zmq_msg_init(&ev);
    if (zmq_msg_recv(&ev, sv->mon[sock], ZMQ_DONTWAIT) < 0) {
      zmq_msg_close(&ev);
      return;
    }
    zmq_msg_init(&ep);
    if (zmq_msg_more(&ev)) zmq_msg_recv(&ep, sv->mon[sock], 0);
    uint16_t event = 0;
    int32_t value = -1;
    if (zmq_msg_size(&ev) >= 6) {
      memcpy(&event, zmq_msg_data(&ev), 2);
      memcpy(&value, (uint8_t *)zmq_msg_data(&ev) + 2, 4);
    }
    zmq_msg_close(&ev);
    zmq_msg_close(&ep);
    if (event != ZMQ_EVENT_DISCONNECTED) continue;
    int stale = 0;
    for (int k = 0; k < 16 && !stale; k++)
      if (sv->stale_fd[sock][k] == value) {
        sv->stale_fd[sock][k] = -1;
        stale = 1;
      }
    if (stale) continue;
    for (int i = sv->n_sessions - 1; i >= 0; i--)
      if (sv->sessions[i].sock == sock && sv->sessions[i].fd == value)
        close_session(sv, i, "peer disconnected");
  }
}

static void forward_replies(aoqd_server *sv) {
  for (int k = 0; k < 4096; k++) {
    aoqd_addr a;
    int r = zmq_recv(sv->pull, &a, sizeof a, ZMQ_DONTWAIT);
    if (r < 0) return;
    zmq_msg_t body;
    zmq_msg_init(&body);
    if (zmq_msg_recv(&body, sv->pull, 0) >= 0 && r == (int)sizeof a)
      send_frames(sv, &a, zmq_msg_data(&body), zmq_msg_size(&body));
    zmq_msg_close(&body);
  }
}

/* ---- setup ------------------------------------------------------------------------------ */

static aoq_status set_common(aoqd_server *sv, void *s) {
  int zero = 0, hwm = 100000, hb = sv->opts->heartbeat_ms, hb_to = 4 * sv->opts->heartbeat_ms;
  int64_t max = (int64_t)AOQ_MAX_MESSAGE_BYTES + 4096;
  if (zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero) ||
      zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max, sizeof max) ||
      zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm) ||
      zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm) ||
      zmq_setsockopt(s, ZMQ_HEARTBEAT_IVL, &hb, sizeof hb) ||
      zmq_setsockopt(s, ZMQ_HEARTBEAT_TIMEOUT, &hb_to, sizeof hb_to) ||
      zmq_setsockopt(s, ZMQ_HEARTBEAT_TTL, &hb_to, sizeof hb_to))
    return aoq_err(AOQ_EIO, "socket options: %s", zmq_strerror(zmq_errno()));
  return AOQ_OK;
}

static aoq_status add_monitor(aoqd_server *sv, int i) {
  char ep[64];
  snprintf(ep, sizeof ep, "inproc://aoqd-monitor-%d", i);
  if (zmq_socket_monitor(sv->sock[i], ep, ZMQ_EVENT_DISCONNECTED))
    return aoq_err(AOQ_EIO, "socket monitor: %s", zmq_strerror(zmq_errno()));
  sv->mon[i] = zmq_socket(sv->zctx, ZMQ_PAIR);
  if (!sv->mon[i] || zmq_connect(sv->mon[i], ep))
    return aoq_err(AOQ_EIO, "socket monitor: %s", zmq_strerror(zmq_errno()));
  return AOQ_OK;
}

/* A socket file left by a daemon that died is removed; one with a live daemon behind it is not. */
static aoq_status claim_path(const char *path) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path)
    return aoq_err(AOQ_EINVAL, "socket path too long: %s", path);
  struct stat st;
  if (stat(path, &st) != 0) return AOQ_OK;
  strcpy(sa.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  int live = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
  if (fd >= 0) close(fd);
  if (live) return aoq_err(AOQ_EBUSY, "another aoqd is serving at %s", path);
  unlink(path);
  return AOQ_OK;
}

static aoq_status bind_ipc(aoqd_server *sv, int i, const char *endpoint) {
  const char *path = endpoint + 6;
  int slot = i == AOQD_SOCK_ADMIN;
  if (strlen(path) >= sizeof sv->ipc_path[0]) return aoq_err(AOQ_EINVAL, "endpoint too long");
  AOQ_TRY(claim_path(path));
  sv->sock[i] = zmq_socket(sv->zctx, ZMQ_ROUTER);
  if (!sv->sock[i]) return aoq_err(AOQ_EIO, "socket: %s", zmq_strerror(zmq_errno()));
  AOQ_TRY(set_common(sv, sv->sock[i]));
  AOQ_TRY(add_monitor(sv, i));
  mode_t old = umask(0177);
  int r = zmq_bind(sv->sock[i], endpoint);
  umask(old);
  if (r) return aoq_err(AOQ_EIO, "bind %s: %s", endpoint, zmq_strerror(zmq_errno()));
  strcpy(sv->ipc_path[slot], path);
  if (chmod(path, (mode_t)sv->opts->socket_mode) != 0)
    return aoq_err(AOQ_EIO, "chmod %s: %s", path, strerror(errno));
  AOQ_INFO("listening|endpoint=%s mode=%03o", endpoint, sv->opts->socket_mode);
  return AOQ_OK;
}

aoq_status aoqd_server_init(aoqd_server *sv, const aoqd_opts *o, aoq_device *dev,
                            aoqd_models *models, aoqd_metrics *mx) {
  memset(sv, 0, sizeof *sv);
  memset(sv->stale_fd, -1, sizeof sv->stale_fd);
  sv->opts = o;
  sv->dev = dev;
  sv->models = models;
  sv->mx = mx;
  sv->next_session = 1;
  sv->t_start = aoqd_now();
  sv->zctx = zmq_ctx_new();
  if (!sv->zctx) return aoq_err(AOQ_EIO, "zmq context: %s", zmq_strerror(zmq_errno()));
  AOQ_TRY(aoqd_bufreg_create(dev, AOQ_MAX_BUFFERS_PER_SESSION, &sv->reg));
  if (o->conf) AOQ_TRY(aoqd_admin_load_conf(sv, o->conf));
  sv->pull = zmq_socket(sv->zctx, ZMQ_PULL);
  int hwm = 0;
  if (!sv->pull || zmq_setsockopt(sv->pull, ZMQ_RCVHWM, &hwm, sizeof hwm) ||
      zmq_bind(sv->pull, REPLY_ENDPOINT))
    return aoq_err(AOQ_EIO, "reply pipe: %s", zmq_strerror(zmq_errno()));
  aoqd_sched_opts so = {sv->zctx, REPLY_ENDPOINT, mx, models, o->max_batch_tokens};
  AOQ_TRY(aoqd_sched_start(&so, &sv->sched));

  char ep[600], aep[600];
  if (o->endpoint)
    snprintf(ep, sizeof ep, "%s", o->endpoint);
  else
    AOQ_TRY(aoq_wire_default_endpoint(0, ep, sizeof ep));
  if (o->admin_endpoint)
    snprintf(aep, sizeof aep, "%s", o->admin_endpoint);
  else
    AOQ_TRY(aoq_wire_default_endpoint(1, aep, sizeof aep));
  if (!o->endpoint || !o->admin_endpoint) {
    char dir[512];
    AOQ_TRY(aoq_wire_default_dir(dir, sizeof dir));
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
      return aoq_err(AOQ_EIO, "mkdir %s: %s", dir, strerror(errno));
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
      return aoq_err(AOQ_EPERM, "%s is not a directory of uid %ld", dir, (long)geteuid());
    if (chmod(dir, 0700) != 0) return aoq_err(AOQ_EIO, "chmod %s: %s", dir, strerror(errno));
  }
  AOQ_TRY(bind_ipc(sv, AOQD_SOCK_IPC, ep));
  AOQ_TRY(bind_ipc(sv, AOQD_SOCK_ADMIN, aep));
  if (o->listen) {
    AOQ_TRY(aoqd_curve_load(o->curve_keys, o->curve_clients, &sv->curve));
    AOQ_TRY(aoqd_curve_start(sv->curve, sv->zctx, mx));
    void *s = sv->sock[AOQD_SOCK_TCP] = zmq_socket(sv->zctx, ZMQ_ROUTER);
    int one = 1;
    if (!s) return aoq_err(AOQ_EIO, "socket: %s", zmq_strerror(zmq_errno()));
    AOQ_TRY(set_common(sv, s));
    if (zmq_setsockopt(s, ZMQ_CURVE_SERVER, &one, sizeof one) ||
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, aoqd_curve_secret(sv->curve), 40) ||
        zmq_setsockopt(s, ZMQ_ZAP_DOMAIN, "aoq", 3))
      return aoq_err(AOQ_EIO, "CURVE options: %s", zmq_strerror(zmq_errno()));
    AOQ_TRY(add_monitor(sv, AOQD_SOCK_TCP));
    if (zmq_bind(s, o->listen))
      return aoq_err(AOQ_EIO, "bind %s: %s", o->listen, zmq_strerror(zmq_errno()));
    AOQ_INFO("listening|endpoint=%s security=curve", o->listen);
  }
  return AOQ_OK;
}

int aoqd_server_run(aoqd_server *sv) {
  zmq_pollitem_t items[2 * AOQD_NSOCK + 1];
  int kind[2 * AOQD_NSOCK + 1], which[2 * AOQD_NSOCK + 1], n = 0;
  items[n] = (zmq_pollitem_t){sv->pull, 0, ZMQ_POLLIN, 0};
  kind[n++] = 0;
  for (int i = 0; i < AOQD_NSOCK; i++) {
    if (!sv->sock[i]) continue;
    items[n] = (zmq_pollitem_t){sv->mon[i], 0, ZMQ_POLLIN, 0};
    kind[n] = 1;
    which[n++] = i;
    items[n] = (zmq_pollitem_t){sv->sock[i], 0, ZMQ_POLLIN, 0};
    kind[n] = 2;
    which[n++] = i;
  }
  AOQ_INFO("serving|pid=%ld", (long)getpid());
  for (;;) {
    if (aoqd_sig_term && !sv->exit_when_idle) {
      AOQ_INFO("SIGTERM: draining, then exiting");
      sv->draining = sv->exit_when_idle = 1;
    }
    if (aoqd_sig_hup) {
      aoqd_sig_hup = 0;
      if (!sv->opts->conf) {
        AOQ_INFO("SIGHUP: no --conf file to re-read");
      } else if (aoqd_admin_load_conf(sv, sv->opts->conf) != AOQ_OK) {
        AOQ_WARN("SIGHUP: settings not applied|error=\"%s\"", aoq_last_error());
      } else {
        AOQ_INFO("SIGHUP: settings re-read|file=%s", sv->opts->conf);
      }
    }
    if (sv->exit_when_idle && aoqd_sched_idle(sv->sched)) {
      forward_replies(sv);
      AOQ_INFO("drained: exiting");
      return 0;
    }
    int r = zmq_poll(items, n, 100);
    if (r < 0) {
      if (zmq_errno() == EINTR) continue;
      AOQ_ERROR("poll failed|error=\"%s\"", zmq_strerror(zmq_errno()));
      return 1;
    }
    /* monitors first: a disconnect must close its session before a new peer reuses the fd */
    for (int i = 0; i < n; i++)
      if (kind[i] == 1) read_monitor(sv, which[i]);
    forward_replies(sv);
    for (int i = 0; i < n; i++)
      if (kind[i] == 2 && (items[i].revents & ZMQ_POLLIN)) read_socket(sv, which[i]);
  }
}

void aoqd_server_fini(aoqd_server *sv) {
  if (sv->sched) aoqd_sched_stop(sv->sched);
  if (sv->pull) forward_replies(sv);
  for (int i = 0; i < AOQD_NSOCK; i++) {
    if (sv->sock[i]) {
      zmq_socket_monitor(sv->sock[i], NULL, 0);
      zmq_close(sv->sock[i]);
    }
    if (sv->mon[i]) zmq_close(sv->mon[i]);
  }
  if (sv->pull) zmq_close(sv->pull);
  aoqd_curve_free(sv->curve);
  for (int i = 0; i < 2; i++)
    if (sv->ipc_path[i][0]) unlink(sv->ipc_path[i]);
  aoqd_bufreg_free(sv->reg);
  free(sv->sessions);
  if (sv->zctx) zmq_ctx_term(sv->zctx);
}
