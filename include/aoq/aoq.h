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


/* =============================================================================================
 * Client library (libaoq): talk to the resident daemon aoqd.
 *
 * Threading: a client handle is one ZeroMQ DEALER socket and is NOT thread-safe — use one handle
 * per thread (handles are cheap: aoq_connect per thread). Calls on different handles run
 * concurrently. Every call is synchronous; aoq_generate calls the token callback on the calling
 * thread. A process that forks must not use its parent's handles in the child.
 *
 * Errors: every function returns an aoq_status; the daemon's (or the library's) detail for the
 * last failed call on a handle is aoq_client_last_error(c). Timeouts come from $AOQ_TIMEOUT_MS
 * (default 60000 ms between two replies; connect: $AOQ_CONNECT_TIMEOUT_MS, default 5000 ms).
 * Liveness: ZMTP heartbeats every $AOQ_HEARTBEAT_MS (default 100 ms) carry a 4 s TTL (or 4 x the
 * interval), after which aoqd drops a silent (stopped, hung) client and frees what it held.
 * ============================================================================================= */

typedef struct aoq_client aoq_client;
typedef struct aoq_buffer aoq_buffer;

/* Where a buffer's memory lives: AOQ_MEM_HOST (POSIX shared memory), or AOQ_MEM_DEVICE (memory
 * of the daemon's GPU, shared through CUDA IPC; needs a daemon whose device has IPC). */
typedef enum aoq_mem_kind { AOQ_MEM_HOST = 0, AOQ_MEM_DEVICE = 1 } aoq_mem_kind;

/* Size of a device buffer's IPC handle (a cudaIpcMemHandle_t). */
#define AOQ_IPC_HANDLE_BYTES 64

typedef struct aoq_connect_opts {
  const char *endpoint; /* NULL: $AOQ_ENDPOINT, else the default ipc socket of this user */
  const char *tenant;   /* ipc: tenant name (NULL: $AOQ_TENANT, else "uid<uid>"); tcp: the CURVE
                           key decides and this is ignored */
  const char *name;     /* client name shown in the daemon's log (NULL: "libaoq") */
  int admin;            /* 1: connect to the admin endpoint (endpoint NULL: default admin socket) */
  uint32_t protocol_version; /* 0: this library's; tests set others to check the refusal */
} aoq_connect_opts;

/* Connects to the daemon at `endpoint` (NULL: the default, see aoq_connect_opts) and says hello.
 * tcp:// endpoints need CURVE keys in $AOQ_CURVE_SERVERKEY, $AOQ_CURVE_PUBLICKEY and
 * $AOQ_CURVE_SECRETKEY (Z85). On success *out is a new handle; free it with aoq_disconnect.
 * Errors: AOQ_ECONN (no daemon answered in time, or refused the key), AOQ_EPROTO (protocol
 * version mismatch: the detail names both versions), AOQ_ENOMEM, AOQ_EINVAL. On failure *out is
 * NULL and the detail is in aoq_last_error(). */
aoq_status aoq_connect(const char *endpoint, aoq_client **out);
/* Same with options (opts may be NULL). */
aoq_status aoq_connect_with(const aoq_connect_opts *opts, aoq_client **out);
/* Closes the connection; the daemon frees the session's buffers and cancels its sequences.
 * Buffers of c must be freed before (aoq_buffer_free) or are unmapped here. NULL is a no-op. */
void aoq_disconnect(aoq_client *c);
/* Detail of the last failed call on c (empty if none). Borrowed, valid until the next call on c. */
const char *aoq_client_last_error(const aoq_client *c);
/* Session id and tenant the daemon assigned (borrowed, valid while c lives). */
uint64_t aoq_client_session(const aoq_client *c);
const char *aoq_client_tenant(const aoq_client *c);
/* Round trip of an empty request (liveness; the IPC benchmark's baseline). */
aoq_status aoq_ping(aoq_client *c);

/* Creates a shared buffer of `bytes`: the library creates a POSIX shm object, maps it, and
 * registers it with the daemon, which maps it too (zero copy). *out is owned by the caller: free
 * with aoq_buffer_free. Errors: AOQ_EIO, AOQ_ENOMEM, AOQ_EQUOTA (too many buffers in this
 * session), AOQ_ECONN.
 * AOQ_MEM_DEVICE: the daemon allocates `bytes` (zeroed) on its device and exports them; the
 * library makes no CUDA call: the caller opens aoq_buffer_ipc_handle's handle itself
 * (cudaIpcOpenMemHandle, on the daemon's GPU) and must close that mapping
 * (cudaIpcCloseMemHandle) before aoq_buffer_free. aoq_buffer_map returns NULL for it. Requests
 * read the buffer when the daemon serves them: finish (synchronize) writes to it first.
 * AOQ_EUNSUPPORTED when the daemon's device has no IPC (e.g. the CPU backend). */
aoq_status aoq_buffer_create(aoq_client *c, size_t bytes, aoq_mem_kind kind, aoq_buffer **out);
/* Asks the daemon to create the shm object (it owns the name and unlinks it when freed); the
 * library maps it. Same ownership and errors. */
aoq_status aoq_buffer_create_remote(aoq_client *c, size_t bytes, aoq_buffer **out);
/* Registers an existing shm object the caller created (shm_open name, e.g. "/mybuf", at least
 * `bytes` long, owned by the caller's uid); the library maps it as well. The caller keeps the
 * name and unlinks it. */
aoq_status aoq_buffer_register(aoq_client *c, const char *shm_name, size_t bytes, aoq_buffer **out);
/* Registers device memory the caller allocated (cudaMalloc on the daemon's GPU) and exported
 * (cudaIpcGetMemHandle into `handle`, AOQ_IPC_HANDLE_BYTES bytes); `bytes` may not exceed the
 * allocation. The daemon opens the handle once (registering the same allocation again reuses that
 * mapping) and closes it when the last buffer of it is freed or the session ends; the caller keeps
 * the allocation alive until then. *out: free with aoq_buffer_free. Errors: AOQ_EUNSUPPORTED (no
 * IPC on the daemon's device), AOQ_EINVAL (a handle the device refuses: garbage, a freed
 * allocation, one of the daemon's own buffers), AOQ_ESHAPE (bytes beyond the allocation),
 * AOQ_EQUOTA, AOQ_ECONN. */
aoq_status aoq_buffer_register_ipc(aoq_client *c, const uint8_t handle[AOQ_IPC_HANDLE_BYTES],
                                   size_t bytes, aoq_buffer **out);
/* Copies a device buffer's IPC handle to out (what the daemon or the caller exported).
 * AOQ_EINVAL for a host buffer. */
aoq_status aoq_buffer_ipc_handle(const aoq_buffer *b, uint8_t out[AOQ_IPC_HANDLE_BYTES]);
/* Whether b is device memory (AOQ_MEM_DEVICE or aoq_buffer_register_ipc). */
int aoq_buffer_is_device(const aoq_buffer *b);
/* The caller's mapping of b (borrowed, valid until aoq_buffer_free) and its size; NULL (with the
 * size) for a device buffer. */
void *aoq_buffer_map(aoq_buffer *b, size_t *bytes);
/* The daemon's id of b (what requests name). */
uint64_t aoq_buffer_id(const aoq_buffer *b);
/* Unregisters b with the daemon and unmaps it (and unlinks an object aoq_buffer_create made).
 * NULL is a no-op. Returns the daemon's error if unregistering failed; b is freed in any case. */
aoq_status aoq_buffer_free(aoq_buffer *b);

typedef struct aoq_gen_params {
  float temperature;  /* <= 0: greedy */
  float top_p;        /* 0 or 1: off */
  int top_k;          /* 0: off */
  uint64_t seed;      /* same seed + same prompt -> same tokens */
  uint32_t max_tokens;/* 0: 64 */
  const int32_t *stop_tokens; /* NULL: the model's EOS ids */
  size_t n_stop_tokens;
  int add_bos;        /* prepend BOS to a text prompt */
} aoq_gen_params;

/* Called for each generated token, in order, on the calling thread; text is the token's text
 * (borrowed, valid during the call; may be empty for a partial UTF-8 character). Return nonzero
 * to cancel the generation (aoq_generate then returns AOQ_ECANCELED). */
typedef int (*aoq_token_cb)(void *ctx, int32_t token, const char *text);

typedef struct aoq_gen_result {
  int32_t *tokens;       /* malloc'ed, free with aoq_gen_result_free */
  size_t n_tokens;
  char *text;            /* malloc'ed, NUL-terminated */
  uint32_t prompt_tokens;
  char finish_reason[16];/* "stop", "length", "cancel" */
} aoq_gen_result;
void aoq_gen_result_free(aoq_gen_result *r);

/* Generates from a text prompt; cb (or NULL) sees each token as it comes; returns when done.
 * params NULL: greedy, 64 tokens. Errors: AOQ_ENOTFOUND (model), AOQ_EINVAL, AOQ_EQUOTA,
 * AOQ_EBUSY (draining), AOQ_ECANCELED (cb returned nonzero), AOQ_ECONN/AOQ_ETIMEOUT. */
aoq_status aoq_generate(aoq_client *c, const char *model, const char *prompt,
                        const aoq_gen_params *params, aoq_token_cb cb, void *ctx);
/* Generates from token ids (or from `prompt` text when tokens is NULL) and, if result is not
 * NULL, fills it (the caller frees it with aoq_gen_result_free, also after AOQ_ECANCELED). */
aoq_status aoq_generate_ex(aoq_client *c, const char *model, const char *prompt,
                           const int32_t *tokens, size_t n_tokens, const aoq_gen_params *params,
                           aoq_token_cb cb, void *ctx, aoq_gen_result *result);

/* Runs tokens [n] through the model as a fresh sequence and writes the last token's logits
 * (fp32 [vocab]) into `logits` at `offset` (4-aligned). *vocab (may be NULL) gets the size.
 * Errors: AOQ_ESHAPE (buffer too small), AOQ_EPERM (buffer of another session), AOQ_ENOTFOUND. */
aoq_status aoq_forward(aoq_client *c, const char *model, const int32_t *tokens, size_t n,
                       aoq_buffer *logits, size_t offset, uint32_t *vocab);

/* y[rows, n] = x[rows, k] @ W^T with the model's resident linear `layer` ("layers.3.mlp.down_proj"
 * or a full checkpoint name); x and y are bf16 row-major in shared buffers at even offsets.
 * *n_out / *k_out (may be NULL) get the layer's shape. Errors: AOQ_ENOTFOUND (model/layer),
 * AOQ_ESHAPE (buffers too small for rows x k / rows x n), AOQ_EPERM (foreign buffer). */
aoq_status aoq_matmul(aoq_client *c, const char *model, const char *layer, aoq_buffer *x,
                      size_t x_offset, aoq_buffer *y, size_t y_offset, size_t rows,
                      int64_t *n_out, int64_t *k_out);

/* Tokenizes with the model's tokenizer; *ids is malloc'ed (free with aoq_free). */
aoq_status aoq_tokenize(aoq_client *c, const char *model, const char *text, int add_bos,
                        int32_t **ids, size_t *n);
/* Detokenizes; *text is malloc'ed, NUL-terminated (free with aoq_free). */
aoq_status aoq_detokenize(aoq_client *c, const char *model, const int32_t *ids, size_t n,
                          int skip_special, char **text);

typedef struct aoq_model_desc {
  char name[256];
  char format[32];
  char state[16];
  uint64_t weight_bytes, kv_bytes;
  int vocab_size, hidden_size, n_layers;
  int kv_pages_total, kv_pages_free, live_seqs;
} aoq_model_desc;
/* Lists the resident models; *models is malloc'ed (free with aoq_free). */
aoq_status aoq_models(aoq_client *c, aoq_model_desc **models, size_t *n);

/* Frees memory returned by the library (ids, text, model lists, admin JSON). */
void aoq_free(void *p);

/* Admin calls (aoqctl): c must come from aoq_connect_with with admin = 1; the daemon accepts
 * them only from its own uid (AOQ_EPERM otherwise, and it logs the refusal). Each returns the
 * daemon's status document as JSON in *json (malloc'ed, free with aoq_free) where noted. */
typedef enum aoq_admin_cmd {
  AOQ_ADMIN_STATUS = 0, AOQ_ADMIN_TENANTS, AOQ_ADMIN_QUOTA, AOQ_ADMIN_LOAD, AOQ_ADMIN_UNLOAD,
  AOQ_ADMIN_RECONFIGURE, AOQ_ADMIN_DRAIN, AOQ_ADMIN_SHUTDOWN
} aoq_admin_cmd;
typedef struct aoq_admin_args {
  const char *model, *config; /* load / unload / reconfigure */
  int synthetic;              /* load */
  const char *tenant;         /* quota */
  int kv_pages, max_seqs, priority;
} aoq_admin_args;
/* Runs one admin command. status/tenants/quota/drain/shutdown fill *json (may be NULL to
 * discard); load/unload/reconfigure return once the daemon finished (reconfigure: committed
 * between two steps) and leave *json NULL. */
aoq_status aoq_admin(aoq_client *c, aoq_admin_cmd cmd, const aoq_admin_args *args, char **json);

#ifdef __cplusplus
}
#endif
#endif /* AOQ_AOQ_H */
