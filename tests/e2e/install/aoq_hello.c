/* aoq_hello.c — a client built against an installed libaoq with `pkg-config --cflags --libs aoq`
 * only (tests/e2e/test_install.sh): connects, lists the models, generates, prints one line. */
#include <aoq/aoq.h>
#include <stdio.h>
#include <string.h>

static int count(void *ctx, int32_t token, const char *text) {
  (void)token;
  (void)text;
  ++*(int *)ctx;
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: aoq_hello ENDPOINT MODEL\n");
    return 2;
  }
  if (strcmp(aoq_version(), AOQ_VERSION_STRING)) {
    fprintf(stderr, "header %s, library %s\n", AOQ_VERSION_STRING, aoq_version());
    return 1;
  }
  aoq_client *c;
  if (aoq_connect(argv[1], &c) != AOQ_OK) {
    fprintf(stderr, "connect: %s\n", aoq_last_error());
    return 1;
  }
  aoq_model_desc *ms;
  size_t n;
  aoq_status st = aoq_models(c, &ms, &n);
  int found = 0;
  for (size_t i = 0; st == AOQ_OK && i < n; i++) found |= !strcmp(ms[i].name, argv[2]);
  if (st == AOQ_OK) aoq_free(ms);
  aoq_gen_params p;
  memset(&p, 0, sizeof p);
  p.max_tokens = 5;
  p.add_bos = 1;
  int seen = 0;
  if (st == AOQ_OK && found) st = aoq_generate(c, argv[2], "hello", &p, count, &seen);
  if (st != AOQ_OK || !found) {
    fprintf(stderr, "failed: %s %s\n", found ? aoq_strerror(st) : "model not listed",
            aoq_client_last_error(c));
    aoq_disconnect(c);
    return 1;
  }
  printf("aoq_hello: libaoq %s, tenant %s, %d tokens\n", aoq_version(), aoq_client_tenant(c), seen);
  aoq_disconnect(c);
  return seen == 5 ? 0 : 1;
}
