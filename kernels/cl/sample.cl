/*
 * sample.cl — token sampling (temperature, top-k, top-p) with the CPU backend's algorithm
 * (devices/cpu/cpu_sample.c): radix selection of the top-k / top-p thresholds over
 * order-preserving keys of z = logit / temperature, masses exp(z - zmax) summed in double, one
 * uniform number u = splitmix64(seed) drawn over the kept tokens in index order. One work-item
 * per row (sequential, like the reference): a correctness kernel, not a fast one. Needs fp64
 * (cl_khr_fp64), so it is its own module: a device without fp64 only loses `sample`.
 *
 * params: per row 8 uints: temperature bits, top_p bits, top_k, 0, seed low, seed high, 0, 0.
 */
#pragma OPENCL EXTENSION cl_khr_fp64 : enable

typedef struct smp_row {
  __global const ushort *lg;
  long vocab;
  float inv_t, zmax;
} smp_row;

static inline float smp_logit(__global const ushort *lg, long i) {
  float v = aoq_bf2f(lg[i]);
  return isnan(v) ? -INFINITY : v;
}

static inline float smp_z(const smp_row *r, long i) { return smp_logit(r->lg, i) * r->inv_t; }

static inline uint smp_key(float f) {
  uint u = as_uint(f);
  return (u & 0x80000000u) ? ~u : u | 0x80000000u;
}

static inline ulong splitmix64(ulong x) {
  x += 0x9e3779b97f4a7c15ul;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ul;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebul;
  return x ^ (x >> 31);
}

static uint smp_select(const smp_row *r, uint floor, int by_mass, double target) {
  uint prefix = 0;
  double above = 0;
  for (int shift = 24; shift >= 0; shift -= 8) {
    double hist[256];
    for (int b = 0; b < 256; b++) hist[b] = 0;
    uint hi_mask = shift == 24 ? 0 : ~0u << (shift + 8);
    for (long i = 0; i < r->vocab; i++) {
      float z = smp_z(r, i);
      uint k = smp_key(z);
      if (k < floor || (k & hi_mask) != prefix) continue;
      hist[(k >> shift) & 255] += by_mass ? exp((double)z - (double)r->zmax) : 1.0;
    }
    int bkt = 255;
    for (; bkt > 0; bkt--) {
      if (above + hist[bkt] >= target) break;
      above += hist[bkt];
    }
    prefix |= (uint)bkt << shift;
  }
  return prefix;
}

static double smp_total(const smp_row *r, uint floor) {
  double total = 0;
  for (long i = 0; i < r->vocab; i++) {
    float z = smp_z(r, i);
    if (smp_key(z) >= floor) total += exp((double)z - (double)r->zmax);
  }
  return total;
}

__kernel void aoq_sample(AOQ_PTR(const ushort, logits), AOQ_PTR(int, out),
                         AOQ_PTR(const uint, params), long vocab) {
  const long row = get_group_id(0);
  __global const uint *pr = AOQ_AT(const uint, params) + row * 8;
  const float temperature = as_float(pr[0]), top_p = as_float(pr[1]);
  const int top_k = (int)pr[2];
  const ulong seed = (ulong)pr[4] | ((ulong)pr[5] << 32);
  __global const ushort *lg = AOQ_AT(const ushort, logits) + row * vocab;
  long am = 0;
  float top = smp_logit(lg, 0);
  for (long i = 1; i < vocab; i++) {
    float v = smp_logit(lg, i);
    if (v > top) top = v, am = i;
  }
  __global int *o = AOQ_AT(int, out) + row;
  if (!(temperature > 0) || top_k == 1 || (isinf(top) && top < 0)) {
    *o = (int)am;
    return;
  }
  smp_row r = {lg, vocab, 1.0f / temperature, 0};
  r.zmax = top * r.inv_t;
  if (!isfinite(r.zmax)) {
    *o = (int)am;
    return;
  }
  uint floor = 0;
  if (top_k > 0 && top_k < vocab) floor = smp_select(&r, 0, 0, (double)top_k);
  double total = smp_total(&r, floor);
  if (top_p > 0 && top_p < 1) {
    uint kp = smp_select(&r, floor, 1, (double)top_p * total);
    if (kp > floor) {
      floor = kp;
      total = smp_total(&r, floor);
    }
  }
  double u = (double)(splitmix64(seed) >> 11) * 0x1.0p-53 * total;
  double cum = 0;
  int last = -1;
  for (long i = 0; i < vocab; i++) {
    float z = smp_z(&r, i);
    if (smp_key(z) < floor) continue;
    double w = exp((double)z - (double)r.zmax);
    if (w <= 0) continue;
    last = (int)i;
    cum += w;
    if (u < cum) {
      *o = last;
      return;
    }
  }
  *o = last;
}
