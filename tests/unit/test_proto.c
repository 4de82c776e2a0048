/* test_proto.c — the wire protocol (proto/aoq.proto, proto/wire.h): every request body round
 * trips, garbage is rejected by the decoder, limits are enforced when packing, per-type counter
 * names are distinct, and default endpoints follow $XDG_RUNTIME_DIR / $AOQ_ENDPOINT. */
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

#include "proto/wire.h"

static void every_request_body_round_trips(void **st) {
  (void)st;
  int32_t toks[3] = {1, 2, 3};
  Aoq__Generate g = AOQ__GENERATE__INIT;
  g.model = "tiny";
  g.tokens = toks;
  g.n_tokens = 3;
  g.max_tokens = 9;
  g.stream = 1;
  Aoq__Matmul m = AOQ__MATMUL__INIT;
  m.model = "tiny";
  m.layer = "layers.0.mlp.down_proj";
  m.in_buffer = 4;
  m.rows = 77;
  m.out_offset = 1u << 30;
  Aoq__Admin ad = AOQ__ADMIN__INIT;
  ad.cmd = AOQ__ADMIN__CMD__RECONFIGURE;
  ad.model = "tiny";
  ad.config = "int8wo";
  Aoq__Request req = AOQ__REQUEST__INIT;
  for (int c = 0; c < 3; c++) {
    req.id = 1000 + c;
    if (c == 0) req.body_case = AOQ__REQUEST__BODY_GENERATE, req.generate = &g;
    if (c == 1) req.body_case = AOQ__REQUEST__BODY_MATMUL, req.matmul = &m;
    if (c == 2) req.body_case = AOQ__REQUEST__BODY_ADMIN, req.admin = &ad;
    uint8_t *buf;
    size_t n;
    assert_int_equal(aoq_wire_pack_request(&req, &buf, &n), AOQ_OK);
    Aoq__Request *back = aoq__request__unpack(NULL, n, buf);
    assert_non_null(back);
    assert_int_equal(back->id, 1000 + c);
    assert_int_equal(back->body_case, req.body_case);
    if (c == 0) {
      assert_int_equal(back->generate->n_tokens, 3);
      assert_int_equal(back->generate->tokens[2], 3);
      assert_true(back->generate->stream);
    } else if (c == 1) {
      assert_int_equal(back->matmul->rows, 77);
      assert_int_equal(back->matmul->out_offset, 1u << 30);
      assert_string_equal(back->matmul->layer, "layers.0.mlp.down_proj");
    } else {
      assert_int_equal(back->admin->cmd, AOQ__ADMIN__CMD__RECONFIGURE);
      assert_string_equal(back->admin->config, "int8wo");
    }
    aoq__request__free_unpacked(back, NULL);
    free(buf);
  }
}

static void garbage_does_not_decode(void **st) {
  (void)st;
  /* field 1 declared as a length-delimited string longer than the message */
  uint8_t lying[] = {0x52, 0x7f, 0x01};
  assert_null(aoq__request__unpack(NULL, sizeof lying, lying));
  /* an invalid wire type (7) */
  uint8_t badtype[] = {0x0f, 0x00};
  assert_null(aoq__request__unpack(NULL, sizeof badtype, badtype));
  /* a varint that never ends */
  uint8_t endless[12];
  memset(endless, 0xff, sizeof endless);
  endless[0] = 0x08;
  assert_null(aoq__request__unpack(NULL, sizeof endless, endless));
}

static void oversized_requests_are_refused_when_packing(void **st) {
  (void)st;
  size_t n = AOQ_MAX_MESSAGE_BYTES / 2; /* 3 bytes each: 1.5 MiB packed */
  int32_t *toks = calloc(n, sizeof *toks);
  for (size_t i = 0; i < n; i++) toks[i] = 100000; /* 3-byte varints */
  Aoq__Generate g = AOQ__GENERATE__INIT;
  g.tokens = toks;
  g.n_tokens = n;
  Aoq__Request req = AOQ__REQUEST__INIT;
  req.body_case = AOQ__REQUEST__BODY_GENERATE;
  req.generate = &g;
  uint8_t *buf;
  size_t len;
  assert_int_equal(aoq_wire_pack_request(&req, &buf, &len), AOQ_EINVAL);
  free(toks);
}

static void type_names_are_distinct(void **st) {
  (void)st;
  for (int i = 0; i < AOQ_WIRE_NTYPES; i++)
    for (int j = i + 1; j < AOQ_WIRE_NTYPES; j++)
      assert_string_not_equal(aoq_wire_type_name(i), aoq_wire_type_name(j));
  assert_string_equal(aoq_wire_type_name(aoq_wire_type_index(AOQ__REQUEST__BODY_MATMUL)), "matmul");
  assert_string_equal(aoq_wire_type_name(aoq_wire_type_index((Aoq__Request__BodyCase)12345)),
                      "malformed");
}

static void default_endpoints_follow_the_environment(void **st) {
  (void)st;
  char ep[600];
  unsetenv("AOQ_ENDPOINT");
  unsetenv("AOQ_ADMIN_ENDPOINT");
  setenv("XDG_RUNTIME_DIR", "/run/user/1234", 1);
  assert_int_equal(aoq_wire_default_endpoint(0, ep, sizeof ep), AOQ_OK);
  assert_string_equal(ep, "ipc:///run/user/1234/aoq/aoqd.sock");
  assert_int_equal(aoq_wire_default_endpoint(1, ep, sizeof ep), AOQ_OK);
  assert_string_equal(ep, "ipc:///run/user/1234/aoq/aoqd-admin.sock");
  unsetenv("XDG_RUNTIME_DIR");
  char want[64];
  snprintf(want, sizeof want, "ipc:///tmp/aoq-%u/aoqd.sock", (unsigned)getuid());
  assert_int_equal(aoq_wire_default_endpoint(0, ep, sizeof ep), AOQ_OK);
  assert_string_equal(ep, want);
  setenv("AOQ_ENDPOINT", "ipc:///x/y.sock", 1);
  assert_int_equal(aoq_wire_default_endpoint(0, ep, sizeof ep), AOQ_OK);
  assert_string_equal(ep, "ipc:///x/y.sock");
  assert_int_equal(aoq_wire_default_endpoint(0, ep, 8), AOQ_EINVAL);
  unsetenv("AOQ_ENDPOINT");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_request_body_round_trips),
      cmocka_unit_test(garbage_does_not_decode),
      cmocka_unit_test(oversized_requests_are_refused_when_packing),
      cmocka_unit_test(type_names_are_distinct),
      cmocka_unit_test(default_endpoints_follow_the_environment),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
