/* test_sched.c — the continuous-batching step planner (daemon/batch.h): decode before prefill,
 * round robin across tenants, priorities, rotation, prefill chunking, and invariants over random
 * scenarios. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
/* cmocka.h needs the headers above it */
#include <cmocka.h>

#include "daemon/batch.h"

static int sum(const int *t, int n) {
  int s = 0;
  for (int i = 0; i < n; i++) s += t[i];
  return s;
}

static void decode_tokens_join_before_prefill(void **st) {
  (void)st;
  aoqd_plan_seq s[4] = {{0, 0, 100, 0}, {0, 0, 1, 1}, {1, 0, 1, 1}, {2, 0, 1, 1}};
  int take[4];
  int k = aoqd_plan_step(s, 4, 10, 64, 1, 0, take);
  assert_int_equal(k, 4);
  assert_int_equal(take[1], 1);
  assert_int_equal(take[2], 1);
  assert_int_equal(take[3], 1);
  assert_int_equal(take[0], 7); /* the prefill chunk gets what is left */
}

static void a_tenant_with_many_sequences_cannot_starve_another(void **st) {
  (void)st;
  aoqd_plan_seq s[11];
  for (int i = 0; i < 10; i++) s[i] = (aoqd_plan_seq){0, 0, 1, 1};
  s[10] = (aoqd_plan_seq){1, 0, 1, 1};
  int take[11];
  for (unsigned rr = 0; rr < 4; rr++) {
    int k = aoqd_plan_step(s, 11, 4, 64, 1, rr, take);
    assert_int_equal(k, 4);
    assert_int_equal(take[10], 1); /* tenant 1's only sequence is in every step */
    assert_int_equal(sum(take, 10), 3);
  }
}

static void higher_priority_is_served_first(void **st) {
  (void)st;
  aoqd_plan_seq s[3] = {{0, 0, 1, 1}, {1, 5, 1, 1}, {2, 0, 1, 1}};
  int take[3];
  for (unsigned rr = 0; rr < 5; rr++) {
    assert_int_equal(aoqd_plan_step(s, 3, 1, 64, 1, rr, take), 1);
    assert_int_equal(take[1], 1);
  }
}

static void equal_priorities_rotate_step_by_step(void **st) {
  (void)st;
  aoqd_plan_seq s[4] = {{0, 0, 1, 1}, {0, 0, 1, 1}, {1, 0, 1, 1}, {1, 0, 1, 1}};
  int take[4], served[2] = {0, 0};
  for (unsigned rr = 0; rr < 10; rr++) {
    assert_int_equal(aoqd_plan_step(s, 4, 1, 64, 1, rr, take), 1);
    served[0] += take[0] + take[1];
    served[1] += take[2] + take[3];
  }
  assert_int_equal(served[0], 5);
  assert_int_equal(served[1], 5);
}

static void prefill_budget_is_shared_between_tenants(void **st) {
  (void)st;
  aoqd_plan_seq s[2] = {{0, 0, 1000, 0}, {1, 0, 1000, 0}};
  int take[2];
  assert_int_equal(aoqd_plan_step(s, 2, 512, 64, 16, 0, take), 2);
  assert_int_equal(take[0], 256);
  assert_int_equal(take[1], 256);
  /* a short prompt takes only what it needs */
  s[0].need = 10;
  aoqd_plan_step(s, 2, 512, 64, 16, 0, take);
  assert_int_equal(take[0], 10);
  assert_true(take[1] >= 256 && take[1] <= 502);
}

static void max_items_bounds_the_batch(void **st) {
  (void)st;
  aoqd_plan_seq s[8];
  for (int i = 0; i < 8; i++) s[i] = (aoqd_plan_seq){i % 3, 0, 1, 1};
  int take[8];
  assert_int_equal(aoqd_plan_step(s, 8, 100, 5, 1, 0, take), 5);
  int in = 0;
  for (int i = 0; i < 8; i++) in += take[i] > 0;
  assert_int_equal(in, 5);
}

static void invariants_hold_on_random_scenarios(void **st) {
  (void)st;
  uint64_t r = 42;
  aoqd_plan_seq s[64];
  int take[64];
  for (int iter = 0; iter < 2000; iter++) {
    r = r * 6364136223846793005ull + 1442695040888963407ull;
    int n = 1 + (int)(r >> 58);
    int budget = 1 + (int)((r >> 40) % 600), items = 1 + (int)((r >> 30) % 70);
    int decodes = 0;
    for (int i = 0; i < n; i++) {
      r = r * 6364136223846793005ull + 1442695040888963407ull;
      int dec = (r >> 63) & 1;
      s[i] = (aoqd_plan_seq){(int)((r >> 20) % 5), (int)((r >> 10) % 3),
                             dec ? 1 : 1 + (int)((r >> 32) % 900), dec};
      decodes += dec;
    }
    int k = aoqd_plan_step(s, n, budget, items, 16, (unsigned)iter, take);
    int in = 0;
    for (int i = 0; i < n; i++) {
      assert_true(take[i] >= 0 && take[i] <= s[i].need);
      in += take[i] > 0;
    }
    assert_int_equal(in, k);
    assert_true(k <= items);
    assert_true(sum(take, n) <= budget);
    /* work-conserving: something is scheduled whenever anything could be */
    assert_true(k > 0);
    /* decode tokens are never left out while prefill gets tokens */
    int dec_in = 0, pre_in = 0;
    for (int i = 0; i < n; i++) {
      if (s[i].decode)
        dec_in += take[i] > 0;
      else
        pre_in += take[i] > 0;
    }
    if (pre_in) assert_int_equal(dec_in, decodes);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(decode_tokens_join_before_prefill),
      cmocka_unit_test(a_tenant_with_many_sequences_cannot_starve_another),
      cmocka_unit_test(higher_priority_is_served_first),
      cmocka_unit_test(equal_priorities_rotate_step_by_step),
      cmocka_unit_test(prefill_budget_is_shared_between_tenants),
      cmocka_unit_test(max_items_bounds_the_batch),
      cmocka_unit_test(invariants_hold_on_random_scenarios),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
