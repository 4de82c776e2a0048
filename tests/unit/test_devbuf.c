/* test_devbuf.c — device buffers (AOQ_MEM_DEVICE, aoq_buffer_register_ipc) against a real aoqd on
 * the CPU backend, which has no IPC: both are refused with AOQ_EUNSUPPORTED and a reason; malformed
 * IPC handles (wrong length, empty) sent raw on the socket get AOQ_EINVAL before anything else; the
 * daemon keeps serving shm buffers, counts no device buffers, and drains and exits 0. And the model
 * calls the daemon uses for device operands (aoq_model_linear_mem, aoq_model_logits_to_device) on
 * the CPU device, whose device pointers are host memory: they equal the host-pointer paths.
 * (Device buffers on a GPU: tests/gpu/test_cuda_devbuf.c.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
/* cmocka.h needs the headers above it */
#include <cmocka.h>
#include <zmq.h>

#include "core/model.h"
#include "proto/wire.h"
#include "tests/unit/aoqd_spawn.h"

static aoqd_child g_d;

static int daemon_up(void **st) {
  (void)st;
  if (aoqd_start(&g_d, "cpu", 60) != 0) {
    aoqd_dump_log(&g_d);
    aoqd_stop(&g_d);
    return -1;
  }
  return 0;
}

static int daemon_down(void **st) {
  (void)st;
  int rc = aoqd_stop(&g_d);
  if (rc != 0) fprintf(stderr, "aoqd exited %d\n", rc);
  return rc == 0 ? 0 : -1;
}

static void device_buffers_are_refused_on_a_cpu_daemon(void **st) {
  (void)st;
  aoq_client *c;
  assert_int_equal(aoq_connect(NULL, &c), AOQ_OK);
  aoq_buffer *b = (aoq_buffer *)1;
  assert_int_equal(aoq_buffer_create(c, 4096, AOQ_MEM_DEVICE, &b), AOQ_EUNSUPPORTED);
  assert_null(b);
  assert_non_null(strstr(aoq_client_last_error(c), "AOQ_CAP_IPC"));
  assert_non_null(strstr(aoq_client_last_error(c), "cpu"));
  uint8_t h[AOQ_IPC_HANDLE_BYTES];
  memset(h, 0x33, sizeof h);
  assert_int_equal(aoq_buffer_register_ipc(c, h, 4096, &b), AOQ_EUNSUPPORTED);
  assert_null(b);
  assert_int_equal(aoq_buffer_register_ipc(c, NULL, 4096, &b), AOQ_EINVAL);
  /* an unknown memory kind is the caller's error */
  assert_int_equal(aoq_buffer_create(c, 4096, (aoq_mem_kind)7, &b), AOQ_EINVAL);
  /* host buffers still work, and have no IPC handle */
  assert_int_equal(aoq_buffer_create(c, 1 << 20, AOQ_MEM_HOST, &b), AOQ_OK);
  assert_false(aoq_buffer_is_device(b));
  assert_false(aoq_buffer_is_device(NULL));
  assert_int_equal(aoq_buffer_ipc_handle(b, h), AOQ_EINVAL);
  int64_t n, k;
  assert_int_equal(aoq_matmul(c, "tiny", "layers.0.self_attn.o_proj", b, 0, b, 1 << 19, 1, &n, &k),
                   AOQ_OK);
  assert_true(n > 0 && k > 0);
  assert_int_equal(aoqd_status_number("device_buffers"), 0);
  assert_int_equal(aoqd_status_number("device_buffer_bytes"), 0);
  assert_int_equal(aoqd_status_number("shared_buffers"), 1);
  assert_int_equal(aoq_buffer_free(b), AOQ_OK);
  aoq_disconnect(c);
}

/* Sends one request on a raw DEALER socket and returns the reply (caller frees). */
static Aoq__Reply *raw_call(void *sock, Aoq__Request *req) {
  uint8_t *buf;
  size_t len;
  assert_int_equal(aoq_wire_pack_request(req, &buf, &len), AOQ_OK);
  assert_true(zmq_send(sock, buf, len, 0) == (int)len);
  free(buf);
  zmq_msg_t m;
  zmq_msg_init(&m);
  assert_true(zmq_msg_recv(&m, sock, 0) >= 0);
  Aoq__Reply *r = aoq__reply__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
  zmq_msg_close(&m);
  assert_non_null(r);
  return r;
}

static void malformed_ipc_handles_get_einval(void **st) {
  (void)st;
  void *ctx = zmq_ctx_new();
  void *s = zmq_socket(ctx, ZMQ_DEALER);
  int zero = 0, to = 20000;
  zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
  zmq_setsockopt(s, ZMQ_RCVTIMEO, &to, sizeof to);
  assert_int_equal(zmq_connect(s, g_d.endpoint), 0);
  Aoq__Request req = AOQ__REQUEST__INIT;
  Aoq__Hello h = AOQ__HELLO__INIT;
  h.protocol_version = AOQ_PROTOCOL_VERSION;
  h.client_name = "test_devbuf";
  req.id = 1;
  req.body_case = AOQ__REQUEST__BODY_HELLO;
  req.hello = &h;
  Aoq__Reply *r = raw_call(s, &req);
  assert_int_equal(r->body_case, AOQ__REPLY__BODY_HELLO);
  aoq__reply__free_unpacked(r, NULL);

  uint8_t bytes[AOQ_IPC_HANDLE_BYTES + 1];
  memset(bytes, 0x5a, sizeof bytes);
  const size_t lens[] = {10, 0, AOQ_IPC_HANDLE_BYTES + 1};
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    Aoq__Request q = AOQ__REQUEST__INIT;
    Aoq__BufferRegisterIpc b = AOQ__BUFFER_REGISTER_IPC__INIT;
    b.ipc_handle.data = bytes;
    b.ipc_handle.len = lens[i];
    b.size = 4096;
    q.id = 2 + i;
    q.body_case = AOQ__REQUEST__BODY_BUFFER_REGISTER_IPC;
    q.buffer_register_ipc = &b;
    r = raw_call(s, &q);
    assert_int_equal(r->id, 2 + i);
    assert_int_equal(r->body_case, AOQ__REPLY__BODY_ERROR);
    assert_int_equal(r->error->status, AOQ_EINVAL);
    char want[64];
    snprintf(want, sizeof want, "ipc_handle is %zu bytes, expected %d", lens[i],
             AOQ_IPC_HANDLE_BYTES);
    assert_non_null(strstr(r->error->message, want));
    aoq__reply__free_unpacked(r, NULL);
  }
  /* a well-formed handle on this device: the capability refusal */
  Aoq__Request q = AOQ__REQUEST__INIT;
  Aoq__BufferCreate bc = AOQ__BUFFER_CREATE__INIT;
  bc.size = 1 << 20;
  bc.device = 1;
  q.id = 9;
  q.body_case = AOQ__REQUEST__BODY_BUFFER_CREATE;
  q.buffer_create = &bc;
  r = raw_call(s, &q);
  assert_int_equal(r->body_case, AOQ__REPLY__BODY_ERROR);
  assert_int_equal(r->error->status, AOQ_EUNSUPPORTED);
  aoq__reply__free_unpacked(r, NULL);
  /* the daemon is still there */
  Aoq__Ping p = AOQ__PING__INIT;
  Aoq__Request pq = AOQ__REQUEST__INIT;
  pq.id = 10;
  pq.body_case = AOQ__REQUEST__BODY_PING;
  pq.ping = &p;
  r = raw_call(s, &pq);
  assert_int_equal(r->body_case, AOQ__REPLY__BODY_EMPTY);
  aoq__reply__free_unpacked(r, NULL);
  zmq_close(s);
  zmq_ctx_term(ctx);
  assert_int_equal(aoqd_status_number("device_buffers"), 0);
}

static void model_device_operands_equal_host_ones(void **st) {
  (void)st;
  aoq_device *dev;
  assert_int_equal(aoq_device_open("cpu", &dev), AOQ_OK);
  aoq_model_opts o = {.model = "tiny", .synthetic = true, .seed = 3};
  aoq_model *m;
  assert_int_equal(aoq_model_load(dev, &o, &m), AOQ_OK);
  const char *layers[] = {"layers.0.self_attn.o_proj", "layers.2.mlp.up_proj", "lm_head"};
  for (size_t li = 0; li < sizeof layers / sizeof layers[0]; li++) {
    int64_t n, k;
    assert_int_equal(aoq_model_linear_shape(m, layers[li], &n, &k), AOQ_OK);
    const int64_t rows = 70;
    size_t xb = (size_t)(rows * k) * 2, yb = (size_t)(rows * n) * 2;
    uint16_t *x = malloc(xb), *ref = malloc(yb), *got = malloc(yb);
    for (size_t i = 0; i < xb / 2; i++) x[i] = (uint16_t)(0x3c00 + (i * 37) % 512 - 256);
    assert_int_equal(aoq_model_linear(m, layers[li], x, ref, rows, NULL, NULL), AOQ_OK);
    void *xd, *yd;
    assert_int_equal(aoq_dev_alloc(dev, xb, &xd), AOQ_OK);
    assert_int_equal(aoq_dev_alloc(dev, yb, &yd), AOQ_OK);
    assert_int_equal(aoq_dev_copy_h2d(dev, xd, x, xb, NULL), AOQ_OK);
    for (int mode = 1; mode < 4; mode++) { /* bit 0: x on the device, bit 1: y on the device */
      int xdv = mode & 1, ydv = (mode >> 1) & 1;
      memset(got, 0, yb);
      assert_int_equal(aoq_dev_memset(dev, yd, 0, yb, NULL), AOQ_OK);
      assert_int_equal(aoq_model_linear_mem(m, layers[li], xdv ? xd : (void *)x, xdv,
                                            ydv ? yd : (void *)got, ydv, rows, NULL, NULL),
                       AOQ_OK);
      if (ydv) assert_int_equal(aoq_dev_copy_d2h(dev, got, yd, yb, NULL), AOQ_OK);
      assert_memory_equal(got, ref, yb);
    }
    aoq_dev_free(dev, xd);
    aoq_dev_free(dev, yd);
    free(x);
    free(ref);
    free(got);
  }
  /* two sequences in one step: each logits row copied to device memory equals the host row */
  int s0, s1;
  assert_int_equal(aoq_model_seq_open(m, &s0), AOQ_OK);
  assert_int_equal(aoq_model_seq_open(m, &s1), AOQ_OK);
  int32_t t0[3] = {256, 65, 66}, t1[2] = {256, 90};
  aoq_step_item items[2] = {{s0, t0, 3, true}, {s1, t1, 2, true}};
  int64_t V = aoq_model_info_get(m)->cfg.vocab_size;
  float *host = malloc((size_t)V * 2 * 4), *row = malloc((size_t)V * 4);
  int32_t picked[2];
  assert_int_equal(aoq_model_step_sample(m, items, 2, NULL, picked, host), AOQ_OK);
  void *dl;
  assert_int_equal(aoq_dev_alloc(dev, (size_t)V * 4 + 4, &dl), AOQ_OK);
  for (int r = 0; r < 2; r++) {
    assert_int_equal(aoq_model_logits_to_device(m, r, (uint8_t *)dl + 4), AOQ_OK);
    assert_int_equal(aoq_dev_copy_d2h(dev, row, (uint8_t *)dl + 4, (size_t)V * 4, NULL), AOQ_OK);
    assert_memory_equal(row, host + (size_t)r * (size_t)V, (size_t)V * 4);
  }
  assert_int_equal(aoq_model_logits_to_device(m, -1, dl), AOQ_EINVAL);
  assert_int_equal(aoq_model_logits_to_device(m, 0, NULL), AOQ_EINVAL);
  aoq_dev_free(dev, dl);
  free(host);
  free(row);
  aoq_model_free(m);
  aoq_device_close(dev);
}

int main(void) {
  const struct CMUnitTest model_tests[] = {
      cmocka_unit_test(model_device_operands_equal_host_ones),
  };
  int rc = cmocka_run_group_tests(model_tests, NULL, NULL);
  char bin[4096];
  if (!aoqd_find(bin, sizeof bin)) {
    fprintf(stderr, "no aoqd binary built: the daemon tests cannot run\n");
    return 1;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(device_buffers_are_refused_on_a_cpu_daemon),
      cmocka_unit_test(malformed_ipc_handles_get_einval),
  };
  return rc | cmocka_run_group_tests(tests, daemon_up, daemon_down);
}
