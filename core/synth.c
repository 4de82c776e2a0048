/*
 * synth.c — deterministic synthetic weights (DESIGN.md `--synthetic`): every tensor is a function
 * of (seed, tensor name) only, generated row by row, so a layer can be regenerated at any time
 * (reconfigure) and every machine gets the same bytes.
 */
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "base/numerics.h"
#include "core/llama_internal.h"

static uint64_t splitmix64(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static uint64_t fnv1a(const char *s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
  return h;
}

static bool ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && !strcmp(s + a - b, suffix);
}

typedef struct synth_job {
  uint64_t base;
  float lo, scale;
  uint16_t *out;
  int64_t r0, r1, k;
} synth_job;

static void *synth_rows(void *arg) {
  const synth_job *j = arg;
  for (int64_t r = j->r0; r < j->r1; r++) {
    uint64_t s = j->base + (uint64_t)r * 0x9e3779b97f4a7c15ull;
    splitmix64(&s);
    uint16_t *row = j->out + r * j->k;
    int64_t c = 0;
    while (c < j->k) {
      uint64_t z = splitmix64(&s);
      for (int i = 0; i < 4 && c < j->k; i++, c++, z >>= 16)
        row[c] = aoq_f32_to_bf16(j->lo + (float)(z & 0xffffu) * (j->scale / 65536.0f));
    }
  }
  return NULL;
}

void aoq_synth_fill(uint64_t seed, const char *name, uint16_t *out, int64_t n, int64_t k) {
  float lo, scale; /* value = lo + u * scale, u uniform in [0, 1) on 16 bits */
  if (ends_with(name, "norm.weight"))
    lo = 0.875f, scale = 0.25f;
  else if (strstr(name, "embed_tokens"))
    lo = -1.0f, scale = 2.0f;
  else {
    float a = sqrtf(3.0f / (float)k);
    lo = -a, scale = 2.0f * a;
  }
  uint64_t base = fnv1a(name) ^ (seed * 0xd1342543de82ef95ull);
  /* Rows are independent (each seeded by its index), so threads split them: big tensors of the
   * 8B model take seconds on one core. The bytes do not depend on the split. */
  enum { MAX_THREADS = 16 };
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  int nt = n * k < (1 << 22) ? 1 : (int)(cores < 1 ? 1 : cores > MAX_THREADS ? MAX_THREADS : cores);
  if (nt > n) nt = (int)(n > 0 ? n : 1);
  synth_job jobs[MAX_THREADS];
  pthread_t th[MAX_THREADS];
  int started = 0;
  for (int t = 0; t < nt; t++) {
    jobs[t] = (synth_job){base, lo, scale, out, n * t / nt, n * (t + 1) / nt, k};
    if (t > 0 && pthread_create(&th[t], NULL, synth_rows, &jobs[t]) == 0) {
      started |= 1 << t;
    } else if (t > 0) {
      synth_rows(&jobs[t]); /* no thread: do it here */
    }
  }
  synth_rows(&jobs[0]);
  for (int t = 1; t < nt; t++)
    if (started & (1 << t)) pthread_join(th[t], NULL);
}
