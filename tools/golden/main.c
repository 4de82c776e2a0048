/*
 * aoq-golden — checks aoq's reference quantizers, activation quantizers and CPU linear against
 * torchao's golden files:
 *     aoq-golden FILE.safetensors...
 * One line per tensor (PASS / FAIL / N/A), a summary on stderr. Exit 0 when everything matched,
 * 1 on any mismatch or unreadable file, 2 on usage errors.
 */
#include <stdio.h>
#include <string.h>

#include "aoq/aoq.h"
#include "tools/golden/golden_check.h"

static void usage(FILE *to) {
  fprintf(to,
          "usage: aoq-golden [--help] [--version] FILE.safetensors...\n"
          "Quantizes each golden file's `weight` with the format its metadata names (torchao's\n"
          "config repr; the file name stem is aoq's config string and is cross-checked), then\n"
          "compares torchao's q.*/ref.* tensors, `dequant` and the xq<M>.* activation tensors bit\n"
          "for bit, and y1/y16 against aoq's CPU linear within a per-format tolerance.\n"
          "Exit status: 0 all matched, 1 a mismatch or unreadable file, 2 usage error.\n");
}

int main(int argc, char **argv) {
  int first = 1;
  for (; first < argc && argv[first][0] == '-'; first++) {
    if (strcmp(argv[first], "--help") == 0 || strcmp(argv[first], "-h") == 0) {
      usage(stdout);
      return 0;
    }
    if (strcmp(argv[first], "--version") == 0) {
      printf("aoq-golden %s\n", AOQ_VERSION_STRING);
      return 0;
    }
    if (strcmp(argv[first], "--") == 0) {
      first++;
      break;
    }
    fprintf(stderr, "aoq-golden: unknown option '%s'\n", argv[first]);
    usage(stderr);
    return 2;
  }
  if (first >= argc) {
    usage(stderr);
    return 2;
  }
  aoq_golden_stats st = {0, 0, 0};
  int bad_files = 0;
  for (int i = first; i < argc; i++) {
    aoq_status s = aoq_golden_check_file(argv[i], stdout, &st);
    if (s != AOQ_OK) {
      fprintf(stderr, "aoq-golden: %s: %s: %s\n", argv[i], aoq_strerror(s), aoq_last_error());
      bad_files++;
    }
  }
  fflush(stdout);
  fprintf(stderr, "aoq-golden: %d passed, %d failed, %d not applicable, %d unreadable files\n",
          st.pass, st.fail, st.na, bad_files);
  return st.fail || bad_files ? 1 : 0;
}
