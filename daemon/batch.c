/* batch.c — round-robin step planner across tenants (batch.h). */
#include "daemon/batch.h"

#include <string.h>

#define MAX_T 256

typedef struct {
  int tenant, priority;
} tent;

/* Distinct tenants among the candidates in service order: priority descending, then rotated by rr
 * within each priority level. Returns how many (at most MAX_T). */
static int order_tenants(const aoqd_plan_seq *s, int n, unsigned rr, tent *out) {
  int k = 0;
  for (int i = 0; i < n; i++) {
    int seen = 0;
    for (int j = 0; j < k && !seen; j++) seen = out[j].tenant == s[i].tenant;
    if (!seen && k < MAX_T) out[k++] = (tent){s[i].tenant, s[i].priority};
  }
  /* sort by (priority desc, tenant asc): insertion sort, k is small */
  for (int i = 1; i < k; i++) {
    tent t = out[i];
    int j = i - 1;
    while (j >= 0 && (out[j].priority < t.priority ||
                      (out[j].priority == t.priority && out[j].tenant > t.tenant))) {
      out[j + 1] = out[j];
      j--;
    }
    out[j + 1] = t;
  }
  /* rotate each equal-priority run by rr */
  for (int a = 0; a < k;) {
    int b = a;
    while (b < k && out[b].priority == out[a].priority) b++;
    int len = b - a;
    if (len > 1) {
      tent tmp[MAX_T];
      for (int i = 0; i < len; i++) tmp[i] = out[a + (int)((i + rr) % (unsigned)len)];
      memcpy(out + a, tmp, (size_t)len * sizeof *tmp);
    }
    a = b;
  }
  return k;
}

/* Next candidate of tenant t for the given pass after position *cursor, or -1. */
static int next_of(const aoqd_plan_seq *s, int n, const int *take, int tenant, int decode,
                   int *cursor) {
  for (int i = *cursor; i < n; i++)
    if (s[i].tenant == tenant && s[i].decode == decode && take[i] == 0 && s[i].need > 0) {
      *cursor = i + 1;
      return i;
    }
  *cursor = n;
  return -1;
}

int aoqd_plan_step(const aoqd_plan_seq *s, int n, int budget, int max_items, int min_chunk,
                   unsigned rr, int *take) {
  tent order[MAX_T];
  int cursor[MAX_T];
  int nt = order_tenants(s, n, rr, order);
  int items = 0;
  for (int i = 0; i < n; i++) take[i] = 0;
  if (min_chunk < 1) min_chunk = 1;
  for (int pass = 0; pass < 2; pass++) {
    int decode = pass == 0;
    for (int t = 0; t < nt; t++) cursor[t] = 0;
    int chunk = budget;
    if (!decode) {
      int with_prefill = 0;
      for (int t = 0; t < nt; t++) {
        int c = 0;
        with_prefill += next_of(s, n, take, order[t].tenant, 0, &c) >= 0;
      }
      if (with_prefill) chunk = budget / with_prefill;
      if (chunk < min_chunk) chunk = min_chunk;
    }
    int progress = 1;
    while (progress && budget > 0 && items < max_items) {
      progress = 0;
      for (int t = 0; t < nt && budget > 0 && items < max_items; t++) {
        int i = next_of(s, n, take, order[t].tenant, decode, &cursor[t]);
        if (i < 0) continue;
        int k = decode ? 1 : s[i].need;
        if (k > chunk) k = chunk;
        if (k > budget) k = budget;
        take[i] = k;
        budget -= k;
        items++;
        progress = 1;
      }
    }
  }
  return items;
}
