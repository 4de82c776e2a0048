/*
 * golden_check.c — see golden_check.h. One golden file holds the bf16 `weight`, torchao's inner
 * tensors of the quantized weight, its dequantization, activations x1/x16 with their torchao
 * quantization (dynamic formats) and torchao's linear outputs y1/y16.
 */
#include "tools/golden/golden_check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/numerics.h"
#include "core/format_impl.h"
#include "core/safetensors.h"

/* ---------------------------------------------------------------------------------------------
 * torchao config repr -> aoq format
 * ------------------------------------------------------------------------------------------- */

/* Integer after `key` in s (e.g. key "group_size=" -> 128); -1 if absent or malformed. */
static long int_after(const char *s, const char *key) {
  const char *p = strstr(s, key);
  if (!p) return -1;
  p += strlen(key);
  char *end;
  long v = strtol(p, &end, 10);
  return end == p ? -1 : v;
}

static bool starts(const char *s, const char *prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

aoq_status aoq_golden_config_from_repr(const char *repr, aoq_format *out) {
  if (!repr || !out) return aoq_err(AOQ_EINVAL, "config repr: NULL argument");
  char name[64];
  const char *cfg = NULL;
  if (starts(repr, "Int8WeightOnlyConfig(")) {
    cfg = "int8wo";
  } else if (starts(repr, "Int8DynamicActivationInt8WeightConfig(")) {
    cfg = "int8dq";
  } else if (starts(repr, "Float8WeightOnlyConfig(")) {
    cfg = "fp8wo";
  } else if (starts(repr, "Float8DynamicActivationFloat8WeightConfig(")) {
    if (strstr(repr, "granularity=[PerTensor(), PerTensor()]") || strstr(repr, "granularity=None"))
      cfg = "fp8dq";
    else if (strstr(repr, "granularity=[PerRow"))
      cfg = "fp8dq-row";
    else if (strstr(repr, "granularity=[PerBlock"))
      cfg = "fp8dq-block";
    else
      return aoq_err(AOQ_EFORMAT, "config repr: unknown fp8 granularity in '%.120s'", repr);
  } else if (starts(repr, "Float8DynamicActivationInt4WeightConfig(")) {
    /* aoq implements the 'plain' packing's numerics; 'preshuffled' (the default) quantizes the
     * fp8-rounded weight with e4m3 group scales: another format. */
    if (!strstr(repr, "plain"))
      return aoq_err(AOQ_EUNSUPPORTED, "config repr: fp8-int4 is the 'plain' packing: '%.120s'",
                     repr);
    cfg = "fp8-int4";
  } else if (starts(repr, "Int8DynamicActivationInt4WeightConfig(")) {
    cfg = "int8-int4";
  } else if (starts(repr, "Int4WeightOnlyConfig(")) {
    long g = int_after(repr, "group_size=");
    bool hqq = strstr(repr, "int4_choose_qparams_algorithm='hqq'") ||
               strstr(repr, "Int4ChooseQParamsAlgorithm.HQQ");
    snprintf(name, sizeof name, "int4wo-%ld%s", g, hqq ? "-hqq" : "");
    cfg = name;
  } else if (starts(repr, "IntxWeightOnlyConfig(") ||
             starts(repr, "Int8DynamicActivationIntxWeightConfig(")) {
    bool dyn = starts(repr, "Int8");
    long b = int_after(repr, "weight_dtype=torch.int");
    long g = int_after(repr, "PerGroup(group_size=");
    if (b < 1 || b > 8)
      return aoq_err(AOQ_EFORMAT, "config repr: no weight_dtype in '%.120s'", repr);
    if (!strstr(repr, "MappingType.SYMMETRIC:"))
      return aoq_err(AOQ_EUNSUPPORTED, "config repr: aoq's intx formats are symmetric: '%.120s'",
                     repr);
    if (dyn && g < 0)
      return aoq_err(AOQ_EUNSUPPORTED, "config repr: int8-intx weights are per group: '%.120s'",
                     repr);
    if (dyn)
      snprintf(name, sizeof name, "int8-intx%ld-%ld", b, g);
    else if (g > 0)
      snprintf(name, sizeof name, "intx%ldwo-%ld", b, g);
    else
      snprintf(name, sizeof name, "intx%ldwo", b);
    cfg = name;
  } else if (starts(repr, "MXDynamicActivationMXWeightConfig(")) {
    if (strstr(repr, "weight_dtype=torch.float8_e4m3fn"))
      cfg = "mxfp8";
    else if (strstr(repr, "weight_dtype=torch.float4_e2m1fn_x2"))
      cfg = "mxfp4";
    else
      return aoq_err(AOQ_EFORMAT, "config repr: unknown MX element in '%.120s'", repr);
  } else if (starts(repr, "NVFP4DynamicActivationNVFP4WeightConfig(")) {
    cfg = "nvfp4";
  } else if (starts(repr, "NVFP4WeightOnlyConfig(")) {
    cfg = "nvfp4wo";
  } else if (starts(repr, "CodebookWeightOnlyConfig(")) {
    long b = int_after(repr, "dtype=torch.uint");
    snprintf(name, sizeof name, "codebook%ld", b);
    cfg = name;
  } else {
    return aoq_err(AOQ_ENOTFOUND, "config repr: unknown torchao config '%.80s'", repr);
  }
  return aoq_format_parse(cfg, out);
}

/* ---------------------------------------------------------------------------------------------
 * Comparisons
 * ------------------------------------------------------------------------------------------- */

static const char *base_name(const char *path) {
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

/* Bit-exact comparison of `got` with the golden tensor t, element by element of t's dtype. */
static void compare_exact(FILE *out, const char *file, const aoq_st_tensor *t, const void *got,
                          size_t got_bytes, aoq_golden_stats *st) {
  size_t es = aoq_dtype_size(t->dtype);
  if (es == 0) es = 1;
  size_t count = t->nbytes / es;
  if (got_bytes != t->nbytes) {
    fprintf(out, "FAIL %s %s size: aoq=%zu bytes torchao=%zu bytes\n", file, t->name, got_bytes,
            t->nbytes);
    st->fail++;
    return;
  }
  const uint8_t *a = got, *b = t->data;
  size_t first = count, ndiff = 0;
  for (size_t i = 0; i < count; i++)
    if (memcmp(a + i * es, b + i * es, es) != 0) {
      if (first == count) first = i;
      ndiff++;
    }
  if (ndiff == 0) {
    fprintf(out, "PASS %s %s bit-exact (%zu elements)\n", file, t->name, count);
    st->pass++;
    return;
  }
  uint64_t va = 0, vb = 0;
  memcpy(&va, a + first * es, es < 8 ? es : 8);
  memcpy(&vb, b + first * es, es < 8 ? es : 8);
  fprintf(out,
          "FAIL %s %s first mismatch at index %zu: aoq=0x%0*llx torchao=0x%0*llx (%zu of %zu "
          "elements differ)\n",
          file, t->name, first, (int)(es * 2), (unsigned long long)va, (int)(es * 2),
          (unsigned long long)vb, ndiff, count);
  st->fail++;
}

/* Tolerance of y = x W^T against torchao's linear, relative to max |y_torchao|. torchao's GEMMs
 * sum in another order and round intermediates differently (bf16 casts between scales, fp8 fast
 * accumulation), so y is compared within a bound, not bit for bit: 2 bf16 ulps of the largest
 * output (2 * 2^-8), 4 for tinygemm's int4 kernel, which dequantizes in its own tile order. The
 * measured errors on the golden files are at most half of these. */
static double y_tolerance(aoq_format_kind k) {
  return k == AOQ_FMT_INT4WO || k == AOQ_FMT_INT4WO_HQQ ? 4.0 / 256.0 : 2.0 / 256.0;
}

static void check_linear(FILE *out, const char *file, aoq_st_file *sf, const aoq_format *f,
                         const uint16_t *wt, int64_t n, int64_t k, const char *xname,
                         const char *yname, aoq_golden_stats *st) {
  const aoq_st_tensor *x = aoq_st_find(sf, xname), *y = aoq_st_find(sf, yname);
  if (!y) return; /* torchao could not run this linear (e.g. nvfp4 needs sm100) */
  if (!x || x->dtype != AOQ_DTYPE_BF16 || x->ndim != 2 || x->shape[1] != k ||
      y->dtype != AOQ_DTYPE_BF16 || y->nbytes != (size_t)(x->shape[0] * n) * 2) {
    fprintf(out, "FAIL %s %s: %s/%s missing or mis-shaped\n", file, yname, xname, yname);
    st->fail++;
    return;
  }
  int64_t m = x->shape[0];
  aoq_device *d = NULL;
  aoq_qweight w;
  memset(&w, 0, sizeof w);
  void *dx = NULL, *dy = NULL, *ws = NULL;
  uint16_t *hy = malloc((size_t)(m * n) * 2);
  aoq_status s = hy ? aoq_device_open("cpu", &d) : aoq_err(AOQ_ENOMEM, "y buffer");
  if (s == AOQ_OK) s = aoq_qweight_quantize(d, f, wt, n, k, NULL, &w);
  if (s == AOQ_OK) s = aoq_dev_alloc(d, x->nbytes, &dx);
  if (s == AOQ_OK) s = aoq_dev_alloc(d, y->nbytes, &dy);
  size_t wsb = s == AOQ_OK ? aoq_dev_linear_workspace(d, &w, m) : 0;
  if (s == AOQ_OK && wsb) s = aoq_dev_alloc(d, wsb, &ws);
  if (s == AOQ_OK) s = aoq_dev_copy_h2d(d, dx, x->data, x->nbytes, NULL);
  if (s == AOQ_OK) s = aoq_dev_linear(d, &w, dx, dy, m, AOQ_DTYPE_BF16, ws, NULL);
  if (s == AOQ_OK) s = aoq_dev_copy_d2h(d, hy, dy, y->nbytes, NULL);
  if (s == AOQ_OK) s = aoq_dev_stream_sync(d, NULL);
  if (s != AOQ_OK) {
    fprintf(out, "FAIL %s %s: cpu linear: %s: %s\n", file, yname, aoq_strerror(s),
            aoq_last_error());
    st->fail++;
  } else {
    const uint8_t *ty = y->data; /* may be unaligned in the mapping */
    double maxref = 0.0, maxabs = 0.0;
    size_t worst = 0;
    bool nonfinite = false;
    for (int64_t i = 0; i < m * n; i++) {
      uint16_t tb;
      memcpy(&tb, ty + 2 * i, 2);
      double a = aoq_bf16_to_f32(hy[i]), b = aoq_bf16_to_f32(tb);
      if (!isfinite(a)) nonfinite = true;
      maxref = fmax(maxref, fabs(b));
      if (fabs(a - b) > maxabs) maxabs = fabs(a - b), worst = (size_t)i;
    }
    double rel = maxref > 0 ? maxabs / maxref : maxabs, tol = y_tolerance(f->kind);
    bool ok = !nonfinite && rel <= tol;
    fprintf(out, "%s %s %s max_abs=%.4g max_rel=%.4g (of max|y|=%.4g, tol %.3g, worst index %zu)\n",
            ok ? "PASS" : "FAIL", file, yname, maxabs, rel, maxref, tol, worst);
    if (ok)
      st->pass++;
    else
      st->fail++;
  }
  if (d) {
    aoq_dev_free(d, ws);
    aoq_dev_free(d, dx);
    aoq_dev_free(d, dy);
    aoq_qweight_dev_free(d, &w);
    aoq_device_close(d);
  }
  free(hy);
}

/* xq<M>.<attr>: the activation x<M> quantized as torchao's linear does for this format. */
static void check_act(FILE *out, const char *file, aoq_st_file *sf, const aoq_format *f,
                      const aoq_st_tensor *t, int64_t k, aoq_golden_stats *st) {
  char xname[32];
  const char *dot = strchr(t->name, '.');
  size_t mlen = (size_t)(dot - (t->name + 2));
  if (mlen == 0 || mlen > 8) {
    fprintf(out, "FAIL %s %s: malformed activation tensor name\n", file, t->name);
    st->fail++;
    return;
  }
  snprintf(xname, sizeof xname, "x%.*s", (int)mlen, t->name + 2);
  const aoq_st_tensor *x = aoq_st_find(sf, xname);
  if (!x || x->dtype != AOQ_DTYPE_BF16 || x->ndim != 2 || x->shape[1] != k) {
    fprintf(out, "FAIL %s %s: activation %s missing or mis-shaped\n", file, t->name, xname);
    st->fail++;
    return;
  }
  void *bytes = NULL;
  size_t nb = 0;
  uint16_t *xa = malloc(x->nbytes); /* tensor data in the mapping may be unaligned */
  aoq_status s = xa ? AOQ_OK : aoq_err(AOQ_ENOMEM, "activation copy");
  if (s == AOQ_OK) {
    memcpy(xa, x->data, x->nbytes);
    s = aoq_torchao_act_tensor(f, xa, x->shape[0], k, dot + 1, &bytes, &nb);
  }
  free(xa);
  if (s == AOQ_ENOTFOUND) {
    fprintf(out, "N/A  %s %s: %s\n", file, t->name, aoq_last_error());
    st->na++;
  } else if (s != AOQ_OK) {
    fprintf(out, "FAIL %s %s: %s: %s\n", file, t->name, aoq_strerror(s), aoq_last_error());
    st->fail++;
  } else {
    compare_exact(out, file, t, bytes, nb, st);
  }
  free(bytes);
}

aoq_status aoq_golden_check_file(const char *path, FILE *out, aoq_golden_stats *st) {
  if (!path || !out || !st) return aoq_err(AOQ_EINVAL, "golden check: NULL argument");
  const char *file = base_name(path);
  aoq_st_file *sf;
  AOQ_TRY(aoq_st_open(path, &sf));

  /* Config: torchao's repr in the metadata, cross-checked with the file name stem. */
  aoq_format f, fstem;
  char stem[128];
  snprintf(stem, sizeof stem, "%s", file);
  char *ext = strstr(stem, ".safetensors");
  if (ext) *ext = '\0';
  bool have_stem = aoq_format_parse(stem, &fstem) == AOQ_OK;
  const char *repr = aoq_st_meta(sf, "config");
  aoq_status s = AOQ_OK;
  if (repr) {
    s = aoq_golden_config_from_repr(repr, &f);
    if (s != AOQ_OK && have_stem) {
      fprintf(out, "NOTE %s config repr not mapped (%s); using the file name '%s'\n", file,
              aoq_last_error(), stem);
      f = fstem;
      s = AOQ_OK;
    }
  } else if (have_stem) {
    f = fstem;
  } else {
    s = aoq_err(AOQ_EFORMAT, "%s: no config metadata and the name is no aoq format", file);
  }
  if (s != AOQ_OK) {
    aoq_st_close(sf);
    return s;
  }
  char fname[64], sname[64];
  aoq_format_name(&f, fname, sizeof fname);
  if (have_stem && strcmp(aoq_format_name(&fstem, sname, sizeof sname), fname) != 0) {
    fprintf(out, "FAIL %s config: metadata says '%s', file name says '%s'\n", file, fname, sname);
    st->fail++;
  }

  const aoq_st_tensor *wt = aoq_st_find(sf, "weight");
  if (!wt || wt->dtype != AOQ_DTYPE_BF16 || wt->ndim != 2) {
    aoq_st_close(sf);
    return aoq_err(AOQ_EFORMAT, "%s: no bf16 2-D 'weight' tensor", file);
  }
  int64_t n = wt->shape[0], k = wt->shape[1];
  /* The weight's bytes may be unaligned inside the mapping: copy them. */
  uint16_t *wb = malloc(wt->nbytes), *deq = malloc(wt->nbytes);
  aoq_qweight q;
  memset(&q, 0, sizeof q);
  if (!wb || !deq) s = aoq_err(AOQ_ENOMEM, "%s: weight copy", file);
  if (s == AOQ_OK) memcpy(wb, wt->data, wt->nbytes);
  if (s == AOQ_OK) s = aoq_format_plan(&f, n, k, &q);
  if (s == AOQ_OK) s = aoq_qweight_host_alloc(&q);
  if (s == AOQ_OK) s = aoq_quantize_ref(wb, &q);
  if (s == AOQ_OK) s = aoq_dequantize_ref(&q, deq);
  if (s != AOQ_OK) {
    fprintf(out, "FAIL %s %s: quantize: %s: %s\n", file, fname, aoq_strerror(s), aoq_last_error());
    st->fail++;
    s = AOQ_OK;
    goto done;
  }
  fprintf(out, "FORMAT %s %s [%lld, %lld] %.3f bits/weight\n", file, fname, (long long)n,
          (long long)k, aoq_format_bits_per_weight(&f, n, k));

  for (size_t i = 0; i < aoq_st_count(sf); i++) {
    const aoq_st_tensor *t = aoq_st_at(sf, i);
    if (starts(t->name, "q.") || starts(t->name, "ref.")) {
      const char *attr = starts(t->name, "q.") ? t->name + 2 : t->name;
      void *bytes = NULL;
      size_t nb = 0;
      aoq_status vs = aoq_format_torchao_tensor(&q, attr, &bytes, &nb);
      if (vs != AOQ_OK) {
        fprintf(out, "FAIL %s %s: no aoq view: %s: %s\n", file, t->name, aoq_strerror(vs),
                aoq_last_error());
        st->fail++;
      } else {
        compare_exact(out, file, t, bytes, nb, st);
      }
      free(bytes);
    } else if (strcmp(t->name, "dequant") == 0) {
      compare_exact(out, file, t, deq, wt->nbytes, st);
    } else if (starts(t->name, "xq")) {
      check_act(out, file, sf, &f, t, k, st);
    }
  }
  check_linear(out, file, sf, &f, wb, n, k, "x1", "y1", st);
  check_linear(out, file, sf, &f, wb, n, k, "x16", "y16", st);

done:
  aoq_qweight_host_free(&q);
  free(wb);
  free(deq);
  aoq_st_close(sf);
  return s;
}
