/*
 * test_backends_nodev.c — on a machine without an AMD or Intel GPU (or its driver), opening
 * "hip:N" / "xpu:N" fails cleanly with AOQ_ENODEV and a message naming what is missing: the
 * driver or device when the backend was built, the build flag when it was not. "auto" then falls
 * back to the CPU. The test asserts the no-GPU outcome; on a machine that has the device it
 * checks instead that the device opens and reports its kind.
 */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
// clang-format on

#include "base/error.h"
#include "devices/device.h"

/* Opens name; either it works (a real device: kind must match) or fails with ENODEV and a
 * message that contains every string in `want` (NULL-terminated). */
static void open_or_explain(const char *name, aoq_device_kind kind, const char *const *want) {
  aoq_device *d = NULL;
  aoq_status st = aoq_device_open(name, &d);
  if (st == AOQ_OK) {
    aoq_device_info info;
    assert_int_equal(aoq_device_info_get(d, &info), AOQ_OK);
    assert_int_equal(info.kind, kind);
    print_message("%s: opened %s\n", name, info.name);
    aoq_device_close(d);
    return;
  }
  const char *msg = aoq_last_error();
  print_message("%s: %s: %s\n", name, aoq_strerror(st), msg);
  assert_int_equal(st, AOQ_ENODEV);
  assert_null(d);
  for (; *want; want++)
    if (!strstr(msg, *want)) fail_msg("'%s' not in the message: %s", *want, msg);
}

static void hip_open_fails_cleanly_without_amd_gpu(void **state) {
  (void)state;
#ifdef AOQ_HAVE_HIP
  const char *const want[] = {"hip:0", "HIP", NULL};
#else
  const char *const want[] = {"hip:0", "not built", "AOQ_HIP", NULL};
#endif
  open_or_explain("hip:0", AOQ_DEVICE_HIP, want);
  open_or_explain("hip:3", AOQ_DEVICE_HIP, want + 1);
}

static void xpu_open_fails_cleanly_without_level_zero_driver(void **state) {
  (void)state;
#ifdef AOQ_HAVE_XPU
  const char *const want[] = {"xpu:0", "Level Zero", NULL};
#else
  const char *const want[] = {"xpu:0", "not built", "AOQ_XPU", NULL};
#endif
  open_or_explain("xpu:0", AOQ_DEVICE_XPU, want);
  /* twice: a failed zeInit must leave the process able to try again */
  open_or_explain("xpu:0", AOQ_DEVICE_XPU, want);
}

static void malformed_names_are_einval(void **state) {
  (void)state;
  aoq_device *d = NULL;
  assert_int_equal(aoq_device_open("hip:x", &d), AOQ_EINVAL);
  assert_int_equal(aoq_device_open("xpu:-1", &d), AOQ_EINVAL);
  assert_int_equal(aoq_device_open("xpu:", &d), AOQ_EINVAL);
  assert_null(d);
}

static void auto_falls_back_to_a_working_device(void **state) {
  (void)state;
  aoq_device *d = NULL;
  assert_int_equal(aoq_device_open("auto", &d), AOQ_OK);
  aoq_device_info info;
  assert_int_equal(aoq_device_info_get(d, &info), AOQ_OK);
  print_message("auto: %s\n", info.name);
  void *p = NULL;
  assert_int_equal(aoq_dev_alloc(d, 64, &p), AOQ_OK);
  aoq_dev_free(d, p);
  aoq_device_close(d);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(hip_open_fails_cleanly_without_amd_gpu),
      cmocka_unit_test(xpu_open_fails_cleanly_without_level_zero_driver),
      cmocka_unit_test(malformed_names_are_einval),
      cmocka_unit_test(auto_falls_back_to_a_working_device),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
