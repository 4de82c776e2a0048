/*
 * e2e_client — one real client process for the end-to-end tests (tests/e2e/test_NAME.sh). Each mode
 * prints results on stdout and exits 0 only if every check it makes passed; failures say what on
 * stderr. Modes:
 *   work TENANT SEED          generate (seeded sampling) + matmul; prints "gen ..." and "mm <hash>"
 *   slowgen TENANT            streams a long generation slowly (to be SIGKILLed)
 *   gen TENANT SEED MAXTOK    generate, print the tokens and the finish reason
 *   hostile                   malformed/truncated/random frames, wrong shapes, unknown model,
 *                             foreign buffers, version mismatch: each must get the right error
 *   zerocopy                  socket bytes per matmul stay constant from 4 KiB to 64 MiB tensors
 *   reconf CONFIG             reconfigure during a generation; later requests see the new format
 *   ping                      one hello + ping (exit 1 on failure, message on stderr)
 * Endpoints: $AOQ_ENDPOINT, $AOQ_ADMIN_ENDPOINT.
 */
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "aoq/aoq.h"
#include "proto/aoq.pb-c.h"
#include "proto/wire.h"

#define MODEL "tiny"
#define FAIL(...)                                \
  do {                                           \
    fprintf(stderr, "e2e_client: " __VA_ARGS__); \
    fputc('\n', stderr);                         \
    exit(1);                                     \
  } while (0)
#define CHECK(c, st)                                                                         \
  do {                                                                                       \
    aoq_status s_ = (st);                                                                    \
    if (s_ != AOQ_OK)                                                                        \
      FAIL("%s:%d: %s: %s", __FILE__, __LINE__, aoq_strerror(s_), aoq_client_last_error(c)); \
  } while (0)

static aoq_client *connect_as(const char *tenant) {
  aoq_connect_opts o = {0};
  o.tenant = tenant;
  o.name = "e2e_client";
  aoq_client *c;
  if (aoq_connect_with(&o, &c) != AOQ_OK) FAIL("connect: %s", aoq_last_error());
  return c;
}

static aoq_client *connect_admin(void) {
  aoq_connect_opts o = {0};
  o.admin = 1;
  aoq_client *c;
  if (aoq_connect_with(&o, &c) != AOQ_OK) FAIL("admin connect: %s", aoq_last_error());
  return c;
}

static cJSON *status(void) {
  aoq_client *a = connect_admin();
  char *doc;
  CHECK(a, aoq_admin(a, AOQ_ADMIN_STATUS, NULL, &doc));
  cJSON *j = cJSON_Parse(doc);
  aoq_free(doc);
  aoq_disconnect(a);
  if (!j) FAIL("status is not JSON");
  return j;
}

static double jnum(const cJSON *o, const char *path) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s", path);
  const cJSON *cur = o;
  for (char *save, *k = strtok_r(buf, ".", &save); k && cur; k = strtok_r(NULL, ".", &save))
    cur = cJSON_GetObjectItem(cur, k);
  return cur && cJSON_IsNumber(cur) ? cur->valuedouble : -1;
}

static uint64_t fnv(const void *p, size_t n) {
  const uint8_t *b = p;
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

static uint16_t bf16_of(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

static void fill_x(uint16_t *x, size_t n, uint64_t seed) {
  uint64_t s = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    x[i] = bf16_of((float)((int)(s >> 40) % 2001 - 1000) / 1000.0f);
  }
}

static int mode_work(const char *tenant, uint64_t seed) {
  aoq_client *c = connect_as(tenant);
  aoq_gen_params p = {0};
  p.temperature = 0.8f;
  p.top_k = 40;
  p.seed = seed;
  p.max_tokens = 24;
  int32_t prompt[6] = {256, 72, 101, 108, 108, 111};
  aoq_gen_result r;
  CHECK(c, aoq_generate_ex(c, MODEL, NULL, prompt, 6, &p, NULL, NULL, &r));
  printf("gen %s", r.finish_reason);
  for (size_t i = 0; i < r.n_tokens; i++) printf(" %d", r.tokens[i]);
  printf("\n");
  aoq_gen_result_free(&r);
  size_t rows = 8;
  aoq_buffer *x, *y;
  CHECK(c, aoq_buffer_create(c, rows * 768 * 2, AOQ_MEM_HOST, &x));
  CHECK(c, aoq_buffer_create(c, rows * 256 * 2, AOQ_MEM_HOST, &y));
  fill_x(aoq_buffer_map(x, NULL), rows * 768, seed);
  int64_t n, k;
  CHECK(c, aoq_matmul(c, MODEL, "layers.1.mlp.down_proj", x, 0, y, 0, rows, &n, &k));
  if (n != 256 || k != 768) FAIL("down_proj shape %lldx%lld", (long long)n, (long long)k);
  printf("mm %016llx\n", (unsigned long long)fnv(aoq_buffer_map(y, NULL), rows * 256 * 2));
  CHECK(c, aoq_buffer_free(x));
  CHECK(c, aoq_buffer_free(y));
  aoq_disconnect(c);
  return 0;
}

static int slow_cb(void *ctx, int32_t t, const char *text) {
  (void)ctx, (void)text;
  printf("tok %d\n", t);
  fflush(stdout);
  usleep(20000);
  return 0;
}

static int mode_slowgen(const char *tenant) {
  aoq_client *c = connect_as(tenant);
  aoq_buffer *b;
  CHECK(c, aoq_buffer_create(c, 1 << 20, AOQ_MEM_HOST, &b)); /* memory the daemon must free */
  aoq_gen_params p = {0};
  p.max_tokens = 3000;
  p.stop_tokens = (int32_t[]){-1};
  p.n_stop_tokens = 1;
  int32_t prompt[3] = {256, 65, 66};
  CHECK(c, aoq_generate_ex(c, MODEL, NULL, prompt, 3, &p, slow_cb, NULL, NULL));
  aoq_disconnect(c);
  return 0;
}

static int mode_gen(const char *tenant, uint64_t seed, unsigned max_tokens) {
  aoq_client *c = connect_as(tenant);
  aoq_gen_params p = {0};
  p.temperature = 0.7f;
  p.seed = seed;
  p.max_tokens = max_tokens;
  p.stop_tokens = (int32_t[]){-1};
  p.n_stop_tokens = 1;
  aoq_gen_result r;
  CHECK(c, aoq_generate_ex(c, MODEL, "Once upon a time", NULL, 0, &p, NULL, NULL, &r));
  printf("gen %s %zu\n", r.finish_reason, r.n_tokens);
  aoq_gen_result_free(&r);
  aoq_disconnect(c);
  return 0;
}

/* ---- hostile input ---------------------------------------------------------------------- */

static Aoq__Reply *raw_call(void *sock, const void *data, size_t n) {
  if (zmq_send(sock, data, n, 0) < 0) FAIL("raw send");
  zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
  if (zmq_poll(&it, 1, 10000) != 1) FAIL("no reply to a %zu-byte hostile message", n);
  zmq_msg_t m;
  zmq_msg_init(&m);
  zmq_msg_recv(&m, sock, 0);
  Aoq__Reply *r = aoq__reply__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
  zmq_msg_close(&m);
  if (!r) FAIL("the daemon's reply is not an aoq.Reply");
  return r;
}

static void expect_error(Aoq__Reply *r, aoq_status want, const char *what) {
  if (r->body_case != AOQ__REPLY__BODY_ERROR)
    FAIL("%s: expected an error reply, got case %d", what, r->body_case);
  if (want != AOQ_OK && r->error->status != (uint32_t)want)
    FAIL("%s: expected %s, got %s (%s)", what, aoq_strerror(want), aoq_strerror(r->error->status),
         r->error->message);
  if (!r->error->message[0]) FAIL("%s: error without a message", what);
  printf("ok %-28s -> %s: %s\n", what, aoq_strerror(r->error->status), r->error->message);
  aoq__reply__free_unpacked(r, NULL);
}

static int cancel_cb(void *ctx, int32_t t, const char *text) {
  (void)t, (void)text;
  return ++*(int *)ctx >= 3;
}

static int mode_hostile(void) {
  char ep[600];
  aoq_wire_default_endpoint(0, ep, sizeof ep);
  void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_DEALER);
  int zero = 0;
  zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
  if (zmq_connect(s, ep)) FAIL("connect %s", ep);
  /* before hello: a valid request without a session */
  Aoq__Request req = AOQ__REQUEST__INIT;
  Aoq__Ping ping = AOQ__PING__INIT;
  req.body_case = AOQ__REQUEST__BODY_PING;
  req.ping = &ping;
  req.id = 7;
  uint8_t buf[4096];
  size_t n = aoq__request__pack(&req, buf);
  expect_error(raw_call(s, buf, n), AOQ_EPROTO, "request before hello");
  /* protocol version mismatch */
  Aoq__Hello h = AOQ__HELLO__INIT;
  h.protocol_version = 999;
  req.body_case = AOQ__REQUEST__BODY_HELLO;
  req.hello = &h;
  n = aoq__request__pack(&req, buf);
  expect_error(raw_call(s, buf, n), AOQ_EPROTO, "protocol version 999");
  /* a fuzz loop over the wire: random bytes, truncations and bit flips of a valid hello */
  h.protocol_version = AOQ_PROTOCOL_VERSION;
  h.tenant = (char *)"hostile";
  n = aoq__request__pack(&req, buf);
  uint64_t rs = 12345;
  int errors = 0, oks = 0;
  for (int it = 0; it < 300; it++) {
    uint8_t msg[512];
    size_t len;
    rs = rs * 6364136223846793005ull + 1;
    if (it % 3 == 0) { /* random bytes */
      len = 1 + (rs >> 33) % sizeof msg;
      for (size_t i = 0; i < len; i++) {
        rs = rs * 6364136223846793005ull + 1;
        msg[i] = (uint8_t)(rs >> 56);
      }
    } else if (it % 3 == 1) { /* truncated valid message */
      len = (rs >> 33) % n;
      memcpy(msg, buf, len);
    } else { /* bit flip */
      len = n;
      memcpy(msg, buf, n);
      msg[(rs >> 33) % n] ^= (uint8_t)(1u << ((rs >> 20) % 8));
    }
    Aoq__Reply *r = raw_call(s, msg, len);
    if (r->body_case == AOQ__REPLY__BODY_ERROR)
      errors++;
    else
      oks++; /* a mutation that still decodes as a valid message gets a normal answer */
    aoq__reply__free_unpacked(r, NULL);
  }
  printf("ok fuzz 300 messages: %d errors, %d valid\n", errors, oks);
  if (errors < 100) FAIL("fuzz: only %d error replies", errors);
  /* two frames in one request */
  zmq_send(s, "ab", 2, ZMQ_SNDMORE);
  expect_error(raw_call(s, "cd", 2), AOQ_EPROTO, "two-frame request");
  zmq_close(s);
  zmq_ctx_term(ctx);

  /* semantic errors through libaoq */
  aoq_client *a = connect_as("hostile-a"), *b = connect_as("hostile-b");
  aoq_buffer *xa, *ya, *yb;
  CHECK(a, aoq_buffer_create(a, 4 * 768 * 2, AOQ_MEM_HOST, &xa));
  CHECK(a, aoq_buffer_create(a, 4 * 256 * 2, AOQ_MEM_HOST, &ya));
  CHECK(b, aoq_buffer_create(b, 4 * 256 * 2, AOQ_MEM_HOST, &yb));
  typedef struct {
    aoq_status want, got;
    const char *what;
  } tcase;
  tcase cases[8];
  int k = 0;
  cases[k++] = (tcase){AOQ_ESHAPE,
                       aoq_matmul(a, MODEL, "layers.0.mlp.down_proj", xa, 0, ya, 0, 5, NULL, NULL),
                       "wrong shape (rows 5)"};
  cases[k++] =
      (tcase){AOQ_ENOTFOUND,
              aoq_matmul(a, "no-such-model", "layers.0.mlp.down_proj", xa, 0, ya, 0, 4, NULL, NULL),
              "unknown model"};
  cases[k++] = (tcase){AOQ_ENOTFOUND,
                       aoq_matmul(a, MODEL, "layers.99.mlp.down_proj", xa, 0, ya, 0, 4, NULL, NULL),
                       "unknown layer"};
  cases[k++] = (tcase){AOQ_EPERM,
                       aoq_matmul(b, MODEL, "layers.0.mlp.down_proj", xa, 0, yb, 0, 4, NULL, NULL),
                       "foreign buffer id"};
  int32_t bad_tok[2] = {1, 100000};
  cases[k++] =
      (tcase){AOQ_EINVAL, aoq_generate_ex(a, MODEL, NULL, bad_tok, 2, NULL, NULL, NULL, NULL),
              "token outside vocab"};
  cases[k++] = (tcase){AOQ_ENOTFOUND, aoq_generate(a, "nope", "hi", NULL, NULL, NULL),
                       "generate unknown model"};
  uint32_t vocab;
  cases[k++] = (tcase){AOQ_ESHAPE, aoq_forward(a, MODEL, bad_tok, 1, ya, 1024, &vocab),
                       "forward past buffer end"};
  for (int i = 0; i < k; i++) {
    if (cases[i].got != cases[i].want)
      FAIL("%s: expected %s, got %s", cases[i].what, aoq_strerror(cases[i].want),
           aoq_strerror(cases[i].got));
    printf("ok %-28s -> %s\n", cases[i].what, aoq_strerror(cases[i].got));
  }
  aoq_connect_opts o = {0};
  o.protocol_version = 2;
  aoq_client *bad;
  aoq_status st = aoq_connect_with(&o, &bad);
  if (st != AOQ_EPROTO || !strstr(aoq_last_error(), "version"))
    FAIL("version mismatch via libaoq: %s", aoq_strerror(st));
  printf("ok %-28s -> %s: %s\n", "libaoq version mismatch", aoq_strerror(st), aoq_last_error());
  /* and the daemon still serves: a correct matmul */
  fill_x(aoq_buffer_map(xa, NULL), 4 * 768, 1);
  CHECK(a, aoq_matmul(a, MODEL, "layers.0.mlp.down_proj", xa, 0, ya, 0, 4, NULL, NULL));
  CHECK(a, aoq_ping(a));
  CHECK(a, aoq_forward(a, MODEL, bad_tok, 1, ya, 0, &vocab));
  if (vocab != 512) FAIL("forward: vocab %u", vocab);
  const float *lg = aoq_buffer_map(ya, NULL);
  int finite = 0;
  for (int i = 0; i < 512; i++) finite += lg[i] == lg[i] && lg[i] != 0.0f;
  if (finite < 256) FAIL("forward logits look empty (%d nonzero finite)", finite);
  /* a buffer the daemon creates, and one the caller made with shm_open, serve like any other */
  aoq_buffer *xr, *yu;
  CHECK(a, aoq_buffer_create_remote(a, 4 * 768 * 2, &xr));
  fill_x(aoq_buffer_map(xr, NULL), 4 * 768, 1);
  char name[64];
  snprintf(name, sizeof name, "/aoq-e2e-%d", (int)getpid());
  int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
  if (fd < 0 || ftruncate(fd, 4 * 256 * 2) != 0) FAIL("shm_open %s", name);
  close(fd);
  CHECK(a, aoq_buffer_register(a, name, 4 * 256 * 2, &yu));
  CHECK(a, aoq_matmul(a, MODEL, "layers.0.mlp.down_proj", xr, 0, yu, 0, 4, NULL, NULL));
  uint64_t h_user = fnv(aoq_buffer_map(yu, NULL), 4 * 256 * 2);
  CHECK(a, aoq_matmul(a, MODEL, "layers.0.mlp.down_proj", xa, 0, ya, 0, 4, NULL, NULL));
  uint64_t h_lib = fnv(aoq_buffer_map(ya, NULL), 4 * 256 * 2);
  if (h_user != h_lib) FAIL("same matmul through daemon-made/user-made buffers differs");
  CHECK(a, aoq_buffer_free(xr));
  CHECK(a, aoq_buffer_free(yu));
  shm_unlink(name);
  printf("ok daemon-made and user-registered buffers\n");
  /* cancel from the token callback: the generation stops early, the handle stays usable */
  int seen = 0;
  aoq_gen_params gp = {0};
  gp.max_tokens = 500;
  gp.stop_tokens = (int32_t[]){-1};
  gp.n_stop_tokens = 1;
  aoq_gen_result gr;
  aoq_status cs = aoq_generate_ex(a, MODEL, "cancel me", NULL, 0, &gp, cancel_cb, &seen, &gr);
  if (cs != AOQ_ECANCELED) FAIL("cancel from the callback returned %s", aoq_strerror(cs));
  if (strcmp(gr.finish_reason, "cancel") || gr.n_tokens >= 500)
    FAIL("cancelled generation: %s after %zu tokens", gr.finish_reason, gr.n_tokens);
  printf("ok cancel from callback after %d events: %s, %zu tokens\n", seen, gr.finish_reason,
         gr.n_tokens);
  aoq_gen_result_free(&gr);
  CHECK(a, aoq_ping(a));
  aoq_disconnect(a);
  aoq_disconnect(b);
  printf("ok daemon still serving\n");
  return 0;
}

/* ---- zero copy -------------------------------------------------------------------------- */

static int mode_zerocopy(void) {
  aoq_client *c = connect_as("zerocopy");
  const char *layer = "layers.0.self_attn.o_proj"; /* 256 x 256: 512 bytes per row */
  size_t sizes[] = {4u << 10, 64u << 10, 1u << 20, 16u << 20, 64u << 20};
  double per_req_rx = -1, per_req_tx = -1;
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t rows = sizes[i] / 512;
    aoq_buffer *x, *y;
    CHECK(c, aoq_buffer_create(c, sizes[i], AOQ_MEM_HOST, &x));
    CHECK(c, aoq_buffer_create(c, sizes[i], AOQ_MEM_HOST, &y));
    fill_x(aoq_buffer_map(x, NULL), sizes[i] / 2, i);
    cJSON *before = status();
    CHECK(c, aoq_matmul(c, MODEL, layer, x, 0, y, 0, rows, NULL, NULL));
    cJSON *after = status();
    double rx =
        jnum(after, "wire.matmul.rx_bytes") -
        (jnum(before, "wire.matmul.rx_bytes") > 0 ? jnum(before, "wire.matmul.rx_bytes") : 0);
    double tx =
        jnum(after, "wire.matmul.tx_bytes") -
        (jnum(before, "wire.matmul.tx_bytes") > 0 ? jnum(before, "wire.matmul.tx_bytes") : 0);
    double reqs =
        jnum(after, "wire.matmul.requests") -
        (jnum(before, "wire.matmul.requests") > 0 ? jnum(before, "wire.matmul.requests") : 0);
    cJSON_Delete(before);
    cJSON_Delete(after);
    printf("tensor %10zu bytes: rows %6zu, socket rx %4.0f tx %4.0f bytes for %.0f matmul\n",
           sizes[i], rows, rx, tx, reqs);
    if (reqs != 1) FAIL("expected one matmul in the counters, got %.0f", reqs);
    /* varint-coded rows may grow the request by a few bytes: allow 8 */
    if (per_req_rx < 0) {
      per_req_rx = rx;
      per_req_tx = tx;
    } else if (rx > per_req_rx + 8 || tx > per_req_tx + 8) {
      FAIL("socket bytes grew with the tensor: rx %.0f tx %.0f (first: %.0f / %.0f)", rx, tx,
           per_req_rx, per_req_tx);
    }
    if (rx > 256 || tx > 256) FAIL("more than 256 bytes on the socket per matmul");
    CHECK(c, aoq_buffer_free(x));
    CHECK(c, aoq_buffer_free(y));
  }
  aoq_disconnect(c);
  printf("ok zero copy\n");
  return 0;
}

/* ---- reconfigure ------------------------------------------------------------------------ */

typedef struct {
  aoq_gen_result r;
  aoq_status st;
  int tokens_seen;
} gen_job;

static int count_cb(void *ctx, int32_t t, const char *text) {
  (void)t, (void)text;
  gen_job *g = ctx;
  g->tokens_seen++;
  usleep(2000);
  return 0;
}

static void *gen_thread(void *arg) {
  gen_job *g = arg;
  aoq_client *c = connect_as("reconf");
  aoq_gen_params p = {0};
  p.max_tokens = 400;
  p.stop_tokens = (int32_t[]){-1};
  p.n_stop_tokens = 1;
  int32_t prompt[2] = {256, 70};
  g->st = aoq_generate_ex(c, MODEL, NULL, prompt, 2, &p, count_cb, g, &g->r);
  aoq_disconnect(c);
  return NULL;
}

static const char *model_format(void) {
  static char fmt[64];
  cJSON *s = status();
  cJSON *m = cJSON_GetArrayItem(cJSON_GetObjectItem(s, "models"), 0);
  snprintf(fmt, sizeof fmt, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(m, "format")));
  cJSON_Delete(s);
  return fmt;
}

static int mode_reconf(const char *config) {
  const char *before = model_format();
  char b4[64];
  snprintf(b4, sizeof b4, "%s", before);
  aoq_client *c = connect_as("reconf-mm");
  aoq_buffer *x, *y;
  CHECK(c, aoq_buffer_create(c, 4 * 256 * 2, AOQ_MEM_HOST, &x));
  CHECK(c, aoq_buffer_create(c, 4 * 256 * 2, AOQ_MEM_HOST, &y));
  fill_x(aoq_buffer_map(x, NULL), 4 * 256, 3);
  CHECK(c, aoq_matmul(c, MODEL, "layers.0.self_attn.o_proj", x, 0, y, 0, 4, NULL, NULL));
  uint64_t h0 = fnv(aoq_buffer_map(y, NULL), 4 * 256 * 2);
  gen_job g = {0};
  pthread_t th;
  pthread_create(&th, NULL, gen_thread, &g);
  while (g.tokens_seen < 5) usleep(1000);
  aoq_client *a = connect_admin();
  aoq_admin_args args = {0};
  args.model = MODEL;
  args.config = config;
  int seen_at_start = g.tokens_seen;
  CHECK(a, aoq_admin(a, AOQ_ADMIN_RECONFIGURE, &args, NULL));
  int seen_at_commit = g.tokens_seen;
  aoq_disconnect(a);
  pthread_join(th, NULL);
  if (g.st != AOQ_OK) FAIL("generation during reconfigure: %s", aoq_strerror(g.st));
  if (g.r.n_tokens != 400 || strcmp(g.r.finish_reason, "length"))
    FAIL("generation during reconfigure ended early: %zu tokens, %s", g.r.n_tokens,
         g.r.finish_reason);
  aoq_gen_result_free(&g.r);
  const char *after = model_format();
  printf(
      "format %s -> %s; generation ran through it (tokens %d..%d during the reconfigure, 400 in "
      "all)\n",
      b4, after, seen_at_start, seen_at_commit);
  if (strcmp(after, config)) FAIL("format after reconfigure is %s, expected %s", after, config);
  CHECK(c, aoq_matmul(c, MODEL, "layers.0.self_attn.o_proj", x, 0, y, 0, 4, NULL, NULL));
  uint64_t h1 = fnv(aoq_buffer_map(y, NULL), 4 * 256 * 2);
  if (h0 == h1) FAIL("matmul output identical after switching to %s", config);
  printf("ok later matmul uses the new weights (%016llx -> %016llx)\n", (unsigned long long)h0,
         (unsigned long long)h1);
  aoq_disconnect(c);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) FAIL("usage: e2e_client MODE ...");
  const char *m = argv[1];
  if (!strcmp(m, "work") && argc == 4) return mode_work(argv[2], strtoull(argv[3], NULL, 10));
  if (!strcmp(m, "slowgen") && argc == 3) return mode_slowgen(argv[2]);
  if (!strcmp(m, "gen") && argc == 5)
    return mode_gen(argv[2], strtoull(argv[3], NULL, 10), (unsigned)atoi(argv[4]));
  if (!strcmp(m, "hostile")) return mode_hostile();
  if (!strcmp(m, "zerocopy")) return mode_zerocopy();
  if (!strcmp(m, "reconf") && argc == 3) return mode_reconf(argv[2]);
  if (!strcmp(m, "ping")) {
    aoq_client *c;
    if (aoq_connect(NULL, &c) != AOQ_OK) FAIL("connect: %s", aoq_last_error());
    CHECK(c, aoq_ping(c));
    printf("ok ping tenant=%s\n", aoq_client_tenant(c));
    aoq_disconnect(c);
    return 0;
  }
  FAIL("unknown mode or arguments: %s", m);
}
