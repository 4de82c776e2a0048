/*
 * batch.h — the step planner of continuous batching: which sequences join the next step, with
 * how many tokens. Pure policy on plain arrays (no model, no locks), so it is unit-tested alone.
 *
 * Decode tokens go first (one per running sequence), then prefill chunks share what is left of
 * the token budget. Both passes are round robins over tenants: tenants of higher priority come
 * first, and among equal priority the starting tenant rotates with `rr` each step, so no tenant
 * can starve another by holding many sequences.
 */
#ifndef AOQD_BATCH_H
#define AOQD_BATCH_H

typedef struct aoqd_plan_seq {
  int tenant;   /* small non-negative index */
  int priority; /* the tenant's priority */
  int need;     /* tokens this sequence could take now: 1 for decode, prompt left for prefill */
  int decode;   /* 1 = decode token, 0 = prefill */
} aoqd_plan_seq;

/* Fills take[i] (tokens for seq i this step, 0 = not in it) for n sequences. At most max_items
 * sequences and `budget` tokens in total; prefill chunks are at most max(min_chunk, budget /
 * tenants-with-prefill). Returns the number of sequences taken. Thread-safe. */
int aoqd_plan_step(const aoqd_plan_seq *s, int n, int budget, int max_items, int min_chunk,
                   unsigned rr, int *take);

#endif
