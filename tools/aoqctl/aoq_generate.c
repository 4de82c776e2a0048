/* aoq-generate — a minimal libaoq client: streams a generation from a running aoqd to stdout.
 *   aoq-generate [--endpoint EP] [--tenant T] [--model M] [--max-tokens N] [--temperature X]
 *                [--seed S] PROMPT
 * Exit codes: 0 ok, 1 the daemon or the connection failed, 2 usage. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aoq/aoq.h"

static int on_token(void *ctx, int32_t token, const char *text) {
  (void)ctx, (void)token;
  fputs(text, stdout);
  fflush(stdout);
  return 0;
}

int main(int argc, char **argv) {
  static const struct option opts[] = {{"endpoint", required_argument, 0, 'e'},
                                       {"tenant", required_argument, 0, 't'},
                                       {"model", required_argument, 0, 'm'},
                                       {"max-tokens", required_argument, 0, 'n'},
                                       {"temperature", required_argument, 0, 'T'},
                                       {"seed", required_argument, 0, 's'},
                                       {"help", no_argument, 0, 'h'},
                                       {"version", no_argument, 0, 'V'},
                                       {0, 0, 0, 0}};
  aoq_connect_opts co = {0};
  co.name = "aoq-generate";
  const char *model = "tiny";
  aoq_gen_params p = {0};
  p.max_tokens = 64;
  int c;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
      case 'e':
        co.endpoint = optarg;
        break;
      case 't':
        co.tenant = optarg;
        break;
      case 'm':
        model = optarg;
        break;
      case 'n':
        p.max_tokens = (uint32_t)strtoul(optarg, NULL, 10);
        break;
      case 'T':
        p.temperature = strtof(optarg, NULL);
        break;
      case 's':
        p.seed = strtoull(optarg, NULL, 10);
        break;
      case 'h':
        printf(
            "usage: aoq-generate [--endpoint EP] [--tenant T] [--model M] [--max-tokens N] "
            "[--temperature X] [--seed S] PROMPT\n");
        return 0;
      case 'V':
        printf("aoq-generate %s\n", aoq_version());
        return 0;
      default:
        return 2;
    }
  }
  if (optind != argc - 1) {
    fprintf(stderr, "aoq-generate: one PROMPT argument expected (--help)\n");
    return 2;
  }
  aoq_client *cl;
  if (aoq_connect_with(&co, &cl) != AOQ_OK) {
    fprintf(stderr, "aoq-generate: %s\n", aoq_last_error());
    return 1;
  }
  aoq_gen_result r;
  aoq_status s = aoq_generate_ex(cl, model, argv[optind], NULL, 0, &p, on_token, NULL, &r);
  if (s != AOQ_OK) {
    fprintf(stderr, "\naoq-generate: %s (%s)\n", aoq_client_last_error(cl), aoq_strerror(s));
    aoq_disconnect(cl);
    return 1;
  }
  printf("\n[%s: %zu tokens after %u prompt tokens, tenant %s]\n", r.finish_reason, r.n_tokens,
         r.prompt_tokens, aoq_client_tenant(cl));
  aoq_gen_result_free(&r);
  aoq_disconnect(cl);
  return 0;
}
