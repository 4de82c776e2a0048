/* test_devbuf.c — device buffers (AOQ_MEM_DEVICE, aoq_buffer_register_ipc) against a real aoqd on
 * the CPU backend, which has no IPC: both are refused with AOQ_EUNSUPPORTED and a reason; malformed
 * IPC handles (wrong length, empty) sent raw on the socket get AOQ_EINVAL before anything else; the
 * daemon keeps serving shm buffers, counts no device buffers, and drains and exits 0.
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

int main(void) {
  char bin[4096];
  if (!aoqd_find(bin, sizeof bin)) {
    fprintf(stderr, "no aoqd binary built -- skipping\n");
    return 77;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(device_buffers_are_refused_on_a_cpu_daemon),
      cmocka_unit_test(malformed_ipc_handles_get_einval),
  };
  return cmocka_run_group_tests(tests, daemon_up, daemon_down);
}
