#include "aoq/aoq.h"

static const struct {
  const char *name;
  size_t size;
} dtypes[AOQ_DTYPE_COUNT] = {
    [AOQ_DTYPE_F32] = {"F32", 4},         [AOQ_DTYPE_F16] = {"F16", 2},
    [AOQ_DTYPE_BF16] = {"BF16", 2},       [AOQ_DTYPE_F64] = {"F64", 8},
    [AOQ_DTYPE_I8] = {"I8", 1},           [AOQ_DTYPE_U8] = {"U8", 1},
    [AOQ_DTYPE_I16] = {"I16", 2},         [AOQ_DTYPE_U16] = {"U16", 2},
    [AOQ_DTYPE_I32] = {"I32", 4},         [AOQ_DTYPE_U32] = {"U32", 4},
    [AOQ_DTYPE_I64] = {"I64", 8},         [AOQ_DTYPE_U64] = {"U64", 8},
    [AOQ_DTYPE_BOOL] = {"BOOL", 1},       [AOQ_DTYPE_F8_E4M3] = {"F8_E4M3", 1},
    [AOQ_DTYPE_F8_E5M2] = {"F8_E5M2", 1}, [AOQ_DTYPE_F8_E8M0] = {"F8_E8M0", 1},
    [AOQ_DTYPE_F4_E2M1X2] = {"F4_E2M1X2", 1},
};

size_t aoq_dtype_size(aoq_dtype t) {
  return (unsigned)t < AOQ_DTYPE_COUNT ? dtypes[t].size : 0;
}

const char *aoq_dtype_name(aoq_dtype t) {
  return (unsigned)t < AOQ_DTYPE_COUNT ? dtypes[t].name : NULL;
}
