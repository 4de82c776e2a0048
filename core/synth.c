/*
 * synth.c — deterministic synthetic weights (DESIGN.md `--synthetic`): every tensor is a function
 * of (seed, tensor name) only, generated row by row, so a layer can be regenerated at any time
 * (reconfigure) and every machine gets the same bytes.
 */
#include <math.h>
#include <string.h>

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
  for (int64_t r = 0; r < n; r++) {
    uint64_t s = base + (uint64_t)r * 0x9e3779b97f4a7c15ull;
    splitmix64(&s);
    uint16_t *row = out + r * k;
    int64_t c = 0;
    while (c < k) {
      uint64_t z = splitmix64(&s);
      for (int j = 0; j < 4 && c < k; j++, c++, z >>= 16)
        row[c] = aoq_f32_to_bf16(lo + (float)(z & 0xffffu) * (scale / 65536.0f));
    }
  }
}
