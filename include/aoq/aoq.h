/*
 * aoq.h — the public C API of aoq: status codes, dtypes, formats, version, and the client library
 * (libaoq) that talks to the resident daemon aoqd.
 *
 * Every fallible function returns an aoq_status (AOQ_OK = 0); aoq_strerror() names it, and the
 * detail of the last error (what, which tensor/field, expected vs got) is kept per thread and read
 * with aoq_last_error(), or per client handle with aoq_client_last_error().
 */
#ifndef AOQ_AOQ_H
#define AOQ_AOQ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AOQ_VERSION_MAJOR 0
#define AOQ_VERSION_MINOR 1
#define AOQ_VERSION_PATCH 0
#define AOQ_VERSION_STRING "0.1.0"

/* Returns AOQ_VERSION_STRING of the library actually linked. */
const char *aoq_version(void);

typedef enum aoq_status {
  AOQ_OK = 0,
  AOQ_EINVAL,       /* an argument is out of range or inconsistent */
  AOQ_ENOMEM,       /* host or device allocation failed */
  AOQ_EIO,          /* a system call on a file, socket or shared-memory object failed */
  AOQ_EFORMAT,      /* malformed input data: file, header, message, config string */
  AOQ_EUNSUPPORTED, /* valid request that this build or device cannot serve */
  AOQ_EDEVICE,      /* the device runtime reported an error (its message is in the detail) */
  AOQ_ENODEV,       /* the backend was not built, or no such device / driver */
  AOQ_ENOTFOUND,    /* unknown model, tensor, buffer or sequence */
  AOQ_ESHAPE,       /* tensor shape or size does not match */
  AOQ_EPERM,        /* the caller may not do this (foreign buffer, admin from another uid) */
  AOQ_EPROTO,       /* protocol violation or version mismatch on the wire */
  AOQ_EBUSY,        /* resource in use; try again later */
  AOQ_ETIMEOUT,     /* no answer in time */
  AOQ_ECANCELED,    /* the request was cancelled */
  AOQ_EQUOTA,       /* a tenant quota would be exceeded */
  AOQ_ECONN,        /* no daemon at the endpoint, or the connection broke */
  AOQ_EINTERNAL,    /* an invariant of aoq itself failed: a bug */
  AOQ_STATUS_COUNT
} aoq_status;

/* Static string naming the status ("invalid argument", ...); never NULL. */
const char *aoq_strerror(aoq_status s);

/* Detail of the last error set on this thread (empty string if none). Borrowed, valid until the
 * next aoq call on this thread. */
const char *aoq_last_error(void);

/* Element types of tensors. Names follow safetensors where it has one. */
typedef enum aoq_dtype {
  AOQ_DTYPE_F32 = 0,
  AOQ_DTYPE_F16,
  AOQ_DTYPE_BF16,
  AOQ_DTYPE_F64,
  AOQ_DTYPE_I8,
  AOQ_DTYPE_U8,
  AOQ_DTYPE_I16,
  AOQ_DTYPE_U16,
  AOQ_DTYPE_I32,
  AOQ_DTYPE_U32,
  AOQ_DTYPE_I64,
  AOQ_DTYPE_U64,
  AOQ_DTYPE_BOOL,
  AOQ_DTYPE_F8_E4M3,   /* float8_e4m3fn */
  AOQ_DTYPE_F8_E5M2,   /* float8_e5m2 */
  AOQ_DTYPE_F8_E8M0,   /* MX scale byte */
  AOQ_DTYPE_F4_E2M1X2, /* two E2M1 codes per byte, even index in the low nibble */
  AOQ_DTYPE_COUNT
} aoq_dtype;

/* Bytes of one stored element (F4_E2M1X2: 1 byte holds two codes). 0 for an invalid value. */
size_t aoq_dtype_size(aoq_dtype t);
/* Canonical name ("BF16", "F8_E4M3", ...); NULL for an invalid value. */
const char *aoq_dtype_name(aoq_dtype t);

/* Quantization format families (spec/formats.md). Parameters such as group size and bit width
 * live beside the kind in core/format.h's aoq_format. */
typedef enum aoq_format_kind {
  AOQ_FMT_BF16 = 0,   /* no quantization */
  AOQ_FMT_INT8WO,     /* §2 int8 weight-only, per-row */
  AOQ_FMT_INT8DQ,     /* §2 int8 weights per-row, int8 per-token dynamic activations */
  AOQ_FMT_FP8WO,      /* §3 e4m3 weight-only per-row */
  AOQ_FMT_FP8DQ,      /* §3 e4m3 dynamic, per-tensor act and weight */
  AOQ_FMT_FP8DQ_ROW,  /* §3 e4m3 dynamic, per-row act and weight */
  AOQ_FMT_FP8DQ_BLOCK,/* §3 e4m3 dynamic, 1x128 act, 128x128 weight */
  AOQ_FMT_INT4WO,     /* §4 int4 weight-only, tinygemm numerics, group 32..256 */
  AOQ_FMT_INT4WO_HQQ, /* §4 int4 weight-only with HQQ qparams */
  AOQ_FMT_FP8_INT4,   /* §4 fp8 dynamic act x int4 weight */
  AOQ_FMT_INT8_INT4,  /* §4 int8 dynamic act x int4 symmetric weight (removed config) */
  AOQ_FMT_INTXWO,     /* §5 intx 1..8 bit weight-only */
  AOQ_FMT_INT8_INTX,  /* §5 int8 asym per-token act x intx weight */
  AOQ_FMT_MXFP8,      /* §6 */
  AOQ_FMT_MXFP4,      /* §6 */
  AOQ_FMT_NVFP4,      /* §7 dynamic act */
  AOQ_FMT_NVFP4WO,    /* §7 weight-only */
  AOQ_FMT_FP6_E3M2,   /* §8 */
  AOQ_FMT_FP6_E2M3,   /* §8 */
  AOQ_FMT_CODEBOOK,   /* §9 */
  AOQ_FMT_W158,       /* ternary */
  AOQ_FMT_COUNT
} aoq_format_kind;

#ifdef __cplusplus
}
#endif
#endif /* AOQ_AOQ_H */
