/* test_shm.c — POSIX shm objects (proto/shm.h) and the daemon's buffer registry
 * (daemon/bufreg.h): ownership per session, range checks, limits, owner uid, reference counts
 * that keep a mapping alive past unregistering, fault injection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
/* cmocka.h needs the headers above it */
#include <cmocka.h>

#include "base/error.h"
#include "daemon/bufreg.h"
#include "proto/shm.h"

static void names_are_checked(void **st) {
  (void)st;
  assert_int_equal(aoq_shm_name_check("/ok-name"), AOQ_OK);
  assert_int_equal(aoq_shm_name_check("no-slash"), AOQ_EINVAL);
  assert_int_equal(aoq_shm_name_check("/a/b"), AOQ_EINVAL);
  assert_int_equal(aoq_shm_name_check("/"), AOQ_EINVAL);
  assert_int_equal(aoq_shm_name_check("/sp ace"), AOQ_EINVAL);
  char longname[260];
  memset(longname, 'a', sizeof longname);
  longname[0] = '/';
  longname[259] = 0;
  assert_int_equal(aoq_shm_name_check(longname), AOQ_EINVAL);
}

static void create_then_map_sees_the_same_bytes(void **st) {
  (void)st;
  aoq_shm a, b;
  assert_int_equal(aoq_shm_create(8192, &a), AOQ_OK);
  memset(a.base, 0x5a, 8192);
  assert_int_equal(aoq_shm_map(a.name, 8192, (long)getuid(), &b), AOQ_OK);
  assert_int_equal(((uint8_t *)b.base)[8191], 0x5a);
  ((uint8_t *)b.base)[0] = 7;
  assert_int_equal(((uint8_t *)a.base)[0], 7);
  /* too large a claim, another owner, missing object */
  aoq_shm c;
  assert_int_equal(aoq_shm_map(a.name, 8193, -1, &c), AOQ_ESHAPE);
  assert_int_equal(aoq_shm_map(a.name, 8192, (long)getuid() + 1, &c), AOQ_EPERM);
  aoq_shm_close(&b, 0);
  aoq_shm_close(&a, 1);
  assert_int_equal(aoq_shm_map(a.name, 8192, -1, &c), AOQ_ENOTFOUND);
  assert_int_equal(aoq_shm_create(0, &c), AOQ_EINVAL);
}

static void injected_faults_are_errors_not_crashes(void **st) {
  (void)st;
  aoq_shm a;
  aoq_fault_arm(1);
  assert_int_equal(aoq_shm_create(4096, &a), AOQ_EIO);
  aoq_fault_arm(2); /* the mmap after a successful shm_open */
  assert_int_equal(aoq_shm_create(4096, &a), AOQ_EIO);
  aoq_fault_arm(0);
  assert_int_equal(aoq_shm_create(4096, &a), AOQ_OK);
  aoq_shm_close(&a, 1);
}

static void buffers_belong_to_their_session(void **st) {
  (void)st;
  aoqd_bufreg *r;
  assert_int_equal(aoqd_bufreg_create(NULL, 4, &r), AOQ_OK);
  aoq_shm s;
  assert_int_equal(aoq_shm_create(4096, &s), AOQ_OK);
  aoqd_buffer *b, *got;
  assert_int_equal(aoqd_bufreg_register(r, 1, 0, s.name, 4096, (long)getuid(), &b), AOQ_OK);
  assert_int_equal(aoqd_bufreg_acquire(r, 1, b->id, 0, 4096, &got), AOQ_OK);
  aoqd_buffer_unref(got);
  assert_int_equal(aoqd_bufreg_acquire(r, 2, b->id, 0, 16, &got), AOQ_EPERM);
  assert_int_equal(aoqd_bufreg_acquire(r, 1, b->id + 100, 0, 16, &got), AOQ_ENOTFOUND);
  assert_int_equal(aoqd_bufreg_acquire(r, 1, b->id, 4000, 97, &got), AOQ_ESHAPE);
  assert_int_equal(aoqd_bufreg_acquire(r, 1, b->id, UINT64_MAX, 2, &got), AOQ_ESHAPE);
  assert_int_equal(aoqd_bufreg_remove(r, 2, b->id), AOQ_EPERM);
  int n;
  uint64_t bytes;
  aoqd_bufreg_usage(r, 0, &n, &bytes);
  assert_int_equal(n, 1);
  assert_int_equal(bytes, 4096);
  assert_int_equal(aoqd_bufreg_remove(r, 1, b->id), AOQ_OK);
  aoqd_bufreg_usage(r, -1, &n, &bytes);
  assert_int_equal(n, 0);
  aoq_shm_close(&s, 1);
  aoqd_bufreg_free(r);
}

static void a_request_in_flight_keeps_the_mapping(void **st) {
  (void)st;
  aoqd_bufreg *r;
  assert_int_equal(aoqd_bufreg_create(NULL, 4, &r), AOQ_OK);
  aoqd_buffer *b, *held;
  assert_int_equal(aoqd_bufreg_create_buffer(r, 9, 0, 65536, &b), AOQ_OK);
  char name[224];
  strcpy(name, b->shm.name);
  assert_int_equal(aoqd_bufreg_acquire(r, 9, b->id, 0, 65536, &held), AOQ_OK);
  assert_int_equal(aoqd_bufreg_remove_session(r, 9), 1);
  /* still mapped and writable for the holder; the daemon-made name survives until the last unref */
  memset(held->shm.base, 1, 65536);
  aoq_shm probe;
  assert_int_equal(aoq_shm_map(name, 65536, -1, &probe), AOQ_OK);
  aoq_shm_close(&probe, 0);
  aoqd_buffer_unref(held);
  assert_int_equal(aoq_shm_map(name, 65536, -1, &probe), AOQ_ENOTFOUND);
  aoqd_bufreg_free(r);
}

static void sessions_are_limited_in_buffers(void **st) {
  (void)st;
  aoqd_bufreg *r;
  assert_int_equal(aoqd_bufreg_create(NULL, 3, &r), AOQ_OK);
  aoqd_buffer *b;
  for (int i = 0; i < 3; i++)
    assert_int_equal(aoqd_bufreg_create_buffer(r, 5, 0, 4096, &b), AOQ_OK);
  assert_int_equal(aoqd_bufreg_create_buffer(r, 5, 0, 4096, &b), AOQ_EQUOTA);
  assert_int_equal(aoqd_bufreg_create_buffer(r, 6, 1, 4096, &b), AOQ_OK); /* another session */
  assert_int_equal(aoqd_bufreg_create_buffer(r, 6, 1, 0, &b), AOQ_EINVAL);
  assert_int_equal(aoqd_bufreg_register(r, 6, 1, "/aoq-test-does-not-exist", 4096, -1, &b),
                   AOQ_ENOTFOUND);
  assert_int_equal(aoqd_bufreg_register(r, 6, 1, "bad name", 4096, -1, &b), AOQ_EINVAL);
  int n;
  uint64_t bytes;
  aoqd_bufreg_usage(r, 1, &n, &bytes);
  assert_int_equal(n, 1);
  aoqd_bufreg_free(r); /* unlinks the daemon-made objects */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(names_are_checked),
      cmocka_unit_test(create_then_map_sees_the_same_bytes),
      cmocka_unit_test(injected_faults_are_errors_not_crashes),
      cmocka_unit_test(buffers_belong_to_their_session),
      cmocka_unit_test(a_request_in_flight_keeps_the_mapping),
      cmocka_unit_test(sessions_are_limited_in_buffers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
