/*
 * test_hip_build.c — what can be checked of the AMD backend without an AMD GPU: every kernel file
 * of kernels/gpu was compiled by hipcc into an offload bundle holding a code object for each
 * target of AOQ_HIP_ARCHS (MI200 gfx90a, MI300 gfx940, RDNA2 gfx1030 by default), and the backend
 * opens as ENODEV (test_backends_nodev.c). The bundle ids are read from the objects that
 * devices/hip/CMakeLists.txt produced in this build tree.
 */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
// clang-format on

#if defined(AOQ_HAVE_HIP) && defined(AOQ_HIP_ARCHS_STR)
/* True if the file contains the bytes of s. */
static int file_has(const char *path, const char *s) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  size_t cap = 1 << 20, len = 0, n;
  char *buf = malloc(cap);
  while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
    len += n;
    if (len == cap) {
      char *nb = realloc(buf, cap *= 2);
      if (!nb) break;
      buf = nb;
    }
  }
  fclose(f);
  int found = 0;
  size_t sl = strlen(s);
  for (size_t i = 0; buf && i + sl <= len && !found; i++) found = !memcmp(buf + i, s, sl);
  free(buf);
  return found;
}

static void every_kernel_object_has_every_target(void **state) {
  (void)state;
  const char *kernels[] = {"ops", "attention", "linear", "sample"};
  char archs[256];
  snprintf(archs, sizeof archs, "%s", AOQ_HIP_ARCHS_STR);
  int n_arch = 0;
  for (char *save = NULL, *a = strtok_r(archs, ";", &save); a; a = strtok_r(NULL, ";", &save)) {
    n_arch++;
    for (size_t i = 0; i < sizeof kernels / sizeof kernels[0]; i++) {
      char path[1024], id[128];
      snprintf(path, sizeof path, "%s/devices/hip/hip_%s.o", AOQ_BUILD_DIR, kernels[i]);
      snprintf(id, sizeof id, "hipv4-amdgcn-amd-amdhsa--%s", a);
      int r = file_has(path, id);
      if (r < 0) fail_msg("%s: missing (HIP kernels not built?)", path);
      if (!r) fail_msg("%s: no code object for %s", path, a);
    }
  }
  assert_true(n_arch >= 1);
  print_message("%d targets x %zu kernel files: all present\n", n_arch,
                sizeof kernels / sizeof kernels[0]);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(every_kernel_object_has_every_target)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
#else
int main(void) {
  fprintf(stderr, "SKIPPED: built without the HIP backend (AOQ_HIP=OFF or hipcc not found)\n");
  return 77;
}
#endif
