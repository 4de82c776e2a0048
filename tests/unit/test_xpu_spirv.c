/*
 * test_xpu_spirv.c — the SPIR-V that the Level Zero backend loads (kernels/cl compiled at build
 * time and embedded in aoq_xpu): every module is a well-formed SPIR-V 1.2 binary, and every
 * kernel that xpu_ze.c creates by name (aoq_xk_names) is an OpEntryPoint of its module, as a
 * Kernel. Without a Level Zero driver this is what can be checked of the modules themselves
 * (spirv-val already ran on them at build time); the kernels' behaviour is checked on PoCL from
 * the same source (test_opencl_*.c).
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

#ifdef AOQ_HAVE_XPU
#include "devices/xpu/xpu_ops.h"
#include "kernels/cl/cl_kernels.h"

static uint32_t word(const aoq_cl_blob *b, size_t i) {
  uint32_t w;
  memcpy(&w, b->data + 4 * i, 4);
  return w;
}

/* True if module b declares `name` as an OpEntryPoint with execution model Kernel (6). */
static int has_kernel(const aoq_cl_blob *b, const char *name) {
  size_t n = b->size / 4;
  for (size_t i = 5; i < n;) {
    uint32_t op = word(b, i) & 0xffffu, len = word(b, i) >> 16;
    if (!len || i + len > n) return 0;
    if (op == 15 /* OpEntryPoint */ && word(b, i + 1) == 6 /* Kernel */) {
      const char *lit = (const char *)(b->data + 4 * (i + 3));
      size_t max = 4 * (len - 3);
      if (strnlen(lit, max) < max && !strcmp(lit, name)) return 1;
    }
    i += len;
  }
  return 0;
}

static void modules_are_spirv_1_2(void **state) {
  (void)state;
  assert_true(aoq_cl_spirv_count >= 5);
  for (int i = 0; i < aoq_cl_spirv_count; i++) {
    const aoq_cl_blob *b = &aoq_cl_spirv[i];
    print_message("%-8s %6zu bytes\n", b->name, b->size);
    assert_true(b->size >= 20 && b->size % 4 == 0);
    assert_int_equal(word(b, 0), 0x07230203u); /* magic, little-endian */
    assert_true(word(b, 1) <= 0x00010200u);    /* version <= 1.2 (Level Zero) */
  }
}

static void every_launched_kernel_is_an_entry_point(void **state) {
  (void)state;
  for (int k = 0; k < AOQ_XK_COUNT; k++) {
    const aoq_cl_blob *mod = NULL;
    for (int i = 0; i < aoq_cl_spirv_count; i++)
      if (!strcmp(aoq_cl_spirv[i].name, aoq_xk_names[k].module)) mod = &aoq_cl_spirv[i];
    if (!mod)
      fail_msg("kernel %s: module %s not embedded", aoq_xk_names[k].entry, aoq_xk_names[k].module);
    if (!has_kernel(mod, aoq_xk_names[k].entry))
      fail_msg("kernel %s is not an entry point of %s.spv", aoq_xk_names[k].entry, mod->name);
  }
  assert_false(has_kernel(&aoq_cl_spirv[0], "aoq_no_such_kernel"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(modules_are_spirv_1_2),
      cmocka_unit_test(every_launched_kernel_is_an_entry_point),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
#else
int main(void) {
  fprintf(stderr, "SKIPPED: built without the Level Zero backend (AOQ_XPU=OFF)\n");
  return 77;
}
#endif
