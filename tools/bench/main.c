/* aoq-bench: speed measurements. Each subcommand lives in tools/bench/bench_<name>.c. */
#include <stdio.h>
#include <string.h>

#include "aoq/aoq.h"
#include "aoq_bench_table.h"

static void usage(FILE *f) {
  fprintf(f, "usage: aoq-bench <command> [options]   (aoq-bench <command> --help for its options)\n"
             "commands:");
  for (size_t i = 0; i < sizeof aoq_bench_table / sizeof aoq_bench_table[0]; i++)
    fprintf(f, " %s", aoq_bench_table[i].name);
  fprintf(f, "\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    usage(stdout);
    return 0;
  }
  if (!strcmp(argv[1], "--version")) {
    printf("aoq-bench %s\n", aoq_version());
    return 0;
  }
  for (size_t i = 0; i < sizeof aoq_bench_table / sizeof aoq_bench_table[0]; i++)
    if (!strcmp(argv[1], aoq_bench_table[i].name)) return aoq_bench_table[i].run(argc - 1, argv + 1);
  fprintf(stderr, "aoq-bench: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}
