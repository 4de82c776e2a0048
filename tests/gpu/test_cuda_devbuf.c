/*
 * test_cuda_devbuf.c — device buffers through CUDA IPC, end to end: a real aoqd on cuda:0 (tiny,
 * synthetic) as a child process, and client processes that make their own CUDA calls.
 *   1. a daemon-created device buffer and a client-registered one (cudaMalloc + IPC handle):
 *      matmul with device input and output equals the same matmul on shm buffers bit for bit, and
 *      so do the mixed cases (host in / device out, device in / host out) and forward's logits;
 *      registering one allocation twice opens it once (the import cache);
 *   2. bad handles are refused with a clear error and the daemon keeps serving: garbage, a freed
 *      allocation's handle, a size beyond the allocation, the daemon's own buffer's handle;
 *   3. a client killed while it holds device buffers: the daemon frees them (status shows it);
 *   4. the daemon drains and exits 0.
 * The parent makes no CUDA call (each client process makes its own, after fork). Exit 77 only
 * without a CUDA device.
 */
#include <cuda_runtime_api.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "aoq/aoq.h"
#include "tests/unit/aoqd_spawn.h"

#define MODEL "tiny"

#define CHECK(cond, code, ...)                   \
  do {                                           \
    if (!(cond)) {                               \
      fprintf(stderr, "client: " __VA_ARGS__);   \
      fprintf(stderr, " (line %d)\n", __LINE__); \
      return code;                               \
    }                                            \
  } while (0)
#define CUOK(call, code)                                                     \
  do {                                                                       \
    cudaError_t e_ = (call);                                                 \
    CHECK(e_ == cudaSuccess, code, "%s: %s", #call, cudaGetErrorString(e_)); \
  } while (0)

static uint16_t bf16_of(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* One linear on every pairing of host/device input and output; all must equal the shm result. */
static int check_layer(aoq_client *c, const char *layer, int rows, aoq_buffer *xh, aoq_buffer *yh,
                       aoq_buffer *xd, void *xd_p, aoq_buffer *yd, void *yd_p, int64_t n,
                       int64_t k) {
  size_t xb = (size_t)(rows * k) * 2, yb = (size_t)(rows * n) * 2;
  uint16_t *x = aoq_buffer_map(xh, NULL), *ref = malloc(yb), *got = malloc(yb);
  for (size_t i = 0; i < (size_t)(rows * k); i++)
    x[i] = bf16_of((float)((int)((i * 2654435761u) % 2001) - 1000) / 997.0f);
  CHECK(aoq_matmul(c, MODEL, layer, xh, 0, yh, 0, rows, NULL, NULL) == AOQ_OK, 20,
        "shm matmul %s: %s", layer, aoq_client_last_error(c));
  memcpy(ref, aoq_buffer_map(yh, NULL), yb);
  CUOK(cudaMemcpy(xd_p, x, xb, cudaMemcpyHostToDevice), 21);
  /* device in, device out */
  CUOK(cudaMemset(yd_p, 0xff, yb), 22);
  CUOK(cudaDeviceSynchronize(), 22);
  CHECK(aoq_matmul(c, MODEL, layer, xd, 0, yd, 0, rows, NULL, NULL) == AOQ_OK, 23,
        "device matmul %s: %s", layer, aoq_client_last_error(c));
  CUOK(cudaMemcpy(got, yd_p, yb, cudaMemcpyDeviceToHost), 24);
  CHECK(!memcmp(got, ref, yb), 25, "%s: device in/out differs from shm", layer);
  /* host in, device out */
  CUOK(cudaMemset(yd_p, 0, yb), 26);
  CUOK(cudaDeviceSynchronize(), 26);
  CHECK(aoq_matmul(c, MODEL, layer, xh, 0, yd, 0, rows, NULL, NULL) == AOQ_OK, 27,
        "host->device matmul: %s", aoq_client_last_error(c));
  CUOK(cudaMemcpy(got, yd_p, yb, cudaMemcpyDeviceToHost), 28);
  CHECK(!memcmp(got, ref, yb), 29, "%s: host in / device out differs", layer);
  /* device in, host out */
  memset(aoq_buffer_map(yh, NULL), 0, yb);
  CHECK(aoq_matmul(c, MODEL, layer, xd, 0, yh, 0, rows, NULL, NULL) == AOQ_OK, 30,
        "device->host matmul: %s", aoq_client_last_error(c));
  CHECK(!memcmp(aoq_buffer_map(yh, NULL), ref, yb), 31, "%s: device in / host out differs", layer);
  /* device in and out at unaligned (even) offsets */
  CUOK(cudaMemcpy((uint8_t *)xd_p + 2, x, xb, cudaMemcpyHostToDevice), 32);
  CUOK(cudaMemset(yd_p, 0, yb + 6), 32);
  CUOK(cudaDeviceSynchronize(), 32);
  CHECK(aoq_matmul(c, MODEL, layer, xd, 2, yd, 6, rows, NULL, NULL) == AOQ_OK, 33,
        "device matmul at offsets 2/6: %s", aoq_client_last_error(c));
  CUOK(cudaMemcpy(got, (uint8_t *)yd_p + 6, yb, cudaMemcpyDeviceToHost), 34);
  CHECK(!memcmp(got, ref, yb), 35, "%s: device in/out at offsets 2/6 differs", layer);
  printf("  %s [%lld x %lld], %d rows: device/host pairings equal the shm result bit for bit\n",
         layer, (long long)n, (long long)k, rows);
  free(ref);
  free(got);
  return 0;
}

/* Part 1 and 2: one client process. */
static int client_main(void) {
  CUOK(cudaSetDevice(0), 2);
  aoq_client *c;
  CHECK(aoq_connect(NULL, &c) == AOQ_OK, 3, "connect: %s", aoq_last_error());
  const size_t big = 8u << 20;
  aoq_buffer *xh, *yh;
  CHECK(aoq_buffer_create(c, big, AOQ_MEM_HOST, &xh) == AOQ_OK, 4, "shm buffer");
  CHECK(aoq_buffer_create(c, big, AOQ_MEM_HOST, &yh) == AOQ_OK, 4, "shm buffer");
  CHECK(!aoq_buffer_is_device(xh), 4, "host buffer called device");
  uint8_t hd[AOQ_IPC_HANDLE_BYTES];
  CHECK(aoq_buffer_ipc_handle(xh, hd) == AOQ_EINVAL, 4, "a host buffer gave an IPC handle");

  /* daemon-created device buffers, opened here */
  aoq_buffer *xd, *yd;
  CHECK(aoq_buffer_create(c, big, AOQ_MEM_DEVICE, &xd) == AOQ_OK, 5, "device buffer: %s",
        aoq_client_last_error(c));
  CHECK(aoq_buffer_create(c, big, AOQ_MEM_DEVICE, &yd) == AOQ_OK, 5, "device buffer: %s",
        aoq_client_last_error(c));
  size_t sz = 0;
  CHECK(aoq_buffer_is_device(xd) && aoq_buffer_map(xd, &sz) == NULL && sz == big, 6,
        "device buffer map/size");
  void *xd_p, *yd_p;
  cudaIpcMemHandle_t ih;
  CHECK(aoq_buffer_ipc_handle(xd, hd) == AOQ_OK, 7, "ipc handle");
  memcpy(&ih, hd, sizeof ih);
  CUOK(cudaIpcOpenMemHandle(&xd_p, ih, cudaIpcMemLazyEnablePeerAccess), 7);
  CHECK(aoq_buffer_ipc_handle(yd, hd) == AOQ_OK, 7, "ipc handle");
  memcpy(&ih, hd, sizeof ih);
  CUOK(cudaIpcOpenMemHandle(&yd_p, ih, cudaIpcMemLazyEnablePeerAccess), 7);
  uint8_t z[64];
  CUOK(cudaMemcpy(z, xd_p, sizeof z, cudaMemcpyDeviceToHost), 7);
  for (size_t i = 0; i < sizeof z; i++) CHECK(z[i] == 0, 7, "daemon-created memory not zeroed");

  /* client-allocated device buffers, registered through their handles */
  void *xc_p, *yc_p;
  CUOK(cudaMalloc(&xc_p, big), 8);
  CUOK(cudaMalloc(&yc_p, big), 8);
  aoq_buffer *xc, *yc, *xc2;
  CUOK(cudaIpcGetMemHandle(&ih, xc_p), 8);
  CHECK(aoq_buffer_register_ipc(c, (const uint8_t *)&ih, big, &xc) == AOQ_OK, 9, "register_ipc: %s",
        aoq_client_last_error(c));
  CHECK(aoq_buffer_register_ipc(c, (const uint8_t *)&ih, 4096, &xc2) == AOQ_OK, 9,
        "register_ipc again: %s", aoq_client_last_error(c));
  CUOK(cudaIpcGetMemHandle(&ih, yc_p), 8);
  CHECK(aoq_buffer_register_ipc(c, (const uint8_t *)&ih, big, &yc) == AOQ_OK, 9, "register_ipc: %s",
        aoq_client_last_error(c));
  double nb = aoqd_status_number("device_buffers"), ni = aoqd_status_number("device_ipc_imports");
  CHECK(nb == 5 && ni == 2, 10,
        "status: %g device buffers (5 expected), %g imports (2: the same "
        "allocation registered twice opens once)",
        nb, ni);
  CHECK(aoqd_status_number("device_buffer_bytes") == (double)(4 * big + 4096), 10,
        "device_buffer_bytes");

  const char *layers[] = {"layers.0.self_attn.o_proj", "layers.1.mlp.gate_proj",
                          "layers.0.mlp.down_proj", "layers.3.self_attn.k_proj", "lm_head"};
  for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++) {
    int64_t n, k;
    CHECK(aoq_matmul(c, MODEL, layers[i], xh, 0, yh, 0, 1, &n, &k) == AOQ_OK, 11, "shape of %s: %s",
          layers[i], aoq_client_last_error(c));
    /* 5 rows: one chunk; 300: several chunks of the linear's workspace (and the GEMM path) */
    for (int rows = 5; rows <= 300; rows += 295) {
      int r = check_layer(c, layers[i], rows, xh, yh, xd, xd_p, yd, yd_p, n, k);
      if (r) return r;
      r = check_layer(c, layers[i], rows, xh, yh, xc, xc_p, yc, yc_p, n, k);
      if (r) return r;
    }
  }
  /* the second registration of xc's allocation reads the same memory (first 4096 bytes) */
  {
    int64_t n, k;
    CHECK(aoq_matmul(c, MODEL, layers[0], xh, 0, yh, 0, 1, &n, &k) == AOQ_OK, 12, "shape");
    CHECK((size_t)k * 2 <= 4096, 12, "k too large for the small view");
    CHECK(aoq_matmul(c, MODEL, layers[0], xc2, 0, yd, 0, 1, NULL, NULL) == AOQ_OK, 12,
          "matmul from the second registration: %s", aoq_client_last_error(c));
    CHECK(
        aoq_matmul(c, MODEL, layers[0], xc2, 0, yd, 0, 2, NULL, NULL) == AOQ_OK || 2 * k * 2 > 4096,
        12, "two rows");
    CHECK(aoq_matmul(c, MODEL, layers[0], xc2, 4096 - 2, yd, 0, 1, NULL, NULL) == AOQ_ESHAPE, 12,
          "a range past the registered size was not refused");
    printf("  a second registration of one allocation: served from the cached import\n");
  }

  /* forward: logits into a device buffer equal the shm logits bit for bit */
  {
    int32_t toks[4] = {1, 7, 42, 3};
    uint32_t vocab = 0;
    CHECK(aoq_forward(c, MODEL, toks, 4, yh, 0, &vocab) == AOQ_OK, 13, "forward shm: %s",
          aoq_client_last_error(c));
    float *got = malloc((size_t)vocab * 4);
    CHECK(aoq_forward(c, MODEL, toks, 4, yd, 4096, &vocab) == AOQ_OK, 13, "forward device: %s",
          aoq_client_last_error(c));
    CUOK(cudaMemcpy(got, (uint8_t *)yd_p + 4096, (size_t)vocab * 4, cudaMemcpyDeviceToHost), 13);
    CHECK(!memcmp(got, aoq_buffer_map(yh, NULL), (size_t)vocab * 4), 13,
          "forward logits in a device buffer differ from the shm ones");
    CHECK(aoq_forward(c, MODEL, toks, 4, yc, 0, &vocab) == AOQ_OK, 13, "forward registered: %s",
          aoq_client_last_error(c));
    CUOK(cudaMemcpy(got, yc_p, (size_t)vocab * 4, cudaMemcpyDeviceToHost), 13);
    CHECK(!memcmp(got, aoq_buffer_map(yh, NULL), (size_t)vocab * 4), 13,
          "forward logits in a registered buffer differ");
    CHECK(aoq_forward(c, MODEL, toks, 4, yd, big - 8, &vocab) == AOQ_ESHAPE, 13,
          "forward past the device buffer's end was not refused");
    printf("  forward: %u logits in daemon-made and registered device buffers equal shm's\n",
           vocab);
    free(got);
  }

  /* bad handles: refused with a clear error, the daemon keeps serving */
  {
    aoq_buffer *bad = NULL;
    uint8_t junk[AOQ_IPC_HANDLE_BYTES];
    for (int i = 0; i < AOQ_IPC_HANDLE_BYTES; i++) junk[i] = (uint8_t)(i * 97 + 13);
    aoq_status s = aoq_buffer_register_ipc(c, junk, 4096, &bad);
    CHECK(s == AOQ_EINVAL && !bad, 14, "garbage handle: %s (%s)", aoq_strerror(s),
          aoq_client_last_error(c));
    printf("  garbage handle: %s: %s\n", aoq_strerror(s), aoq_client_last_error(c));
    void *tmp;
    CUOK(cudaMalloc(&tmp, 1 << 20), 15);
    cudaIpcMemHandle_t th;
    CUOK(cudaIpcGetMemHandle(&th, tmp), 15);
    CUOK(cudaFree(tmp), 15);
    s = aoq_buffer_register_ipc(c, (const uint8_t *)&th, 4096, &bad);
    CHECK(s != AOQ_OK && !bad, 15, "a freed allocation's handle was accepted");
    printf("  freed allocation's handle: %s: %s\n", aoq_strerror(s), aoq_client_last_error(c));
    CUOK(cudaIpcGetMemHandle(&th, xc_p), 16);
    s = aoq_buffer_register_ipc(c, (const uint8_t *)&th, big + 1, &bad);
    CHECK(s == AOQ_ESHAPE && !bad, 16, "size beyond the allocation: %s", aoq_strerror(s));
    printf("  size beyond the allocation: %s: %s\n", aoq_strerror(s), aoq_client_last_error(c));
    CHECK(aoq_buffer_ipc_handle(xd, hd) == AOQ_OK, 17, "handle");
    s = aoq_buffer_register_ipc(c, hd, 4096, &bad);
    CHECK(s == AOQ_EINVAL && !bad, 17, "the daemon's own handle: %s", aoq_strerror(s));
    printf("  the daemon's own handle: %s: %s\n", aoq_strerror(s), aoq_client_last_error(c));
  }
  /* still serving after the refusals */
  {
    int64_t n, k;
    CHECK(aoq_matmul(c, MODEL, layers[0], xh, 0, yh, 0, 1, &n, &k) == AOQ_OK, 18, "shape");
    int r = check_layer(c, layers[0], 7, xh, yh, xc, xc_p, yd, yd_p, n, k);
    if (r) return r;
  }

  CUOK(cudaIpcCloseMemHandle(xd_p), 19);
  CUOK(cudaIpcCloseMemHandle(yd_p), 19);
  CHECK(aoq_buffer_free(xd) == AOQ_OK && aoq_buffer_free(yd) == AOQ_OK, 19, "free");
  CHECK(aoq_buffer_free(xc) == AOQ_OK && aoq_buffer_free(yc) == AOQ_OK, 19, "free");
  CHECK(aoqd_status_number("device_ipc_imports") == 1, 19, "xc2 still holds its import");
  CHECK(aoq_buffer_free(xc2) == AOQ_OK, 19, "free");
  CHECK(aoqd_status_number("device_buffers") == 0 && aoqd_status_number("device_ipc_imports") == 0,
        19, "device buffers left after freeing them");
  cudaFree(xc_p);
  cudaFree(yc_p);
  aoq_buffer_free(xh);
  aoq_buffer_free(yh);
  aoq_disconnect(c);
  return 0;
}

/* Part 3: holds 2 daemon-made and 1 registered device buffer, says so on `wr`, then waits to be
 * killed. */
static int dying_client(int wr) {
  CUOK(cudaSetDevice(0), 40);
  aoq_client *c;
  CHECK(aoq_connect(NULL, &c) == AOQ_OK, 41, "connect");
  aoq_buffer *a, *b, *r;
  CHECK(aoq_buffer_create(c, 1 << 20, AOQ_MEM_DEVICE, &a) == AOQ_OK, 42, "create");
  CHECK(aoq_buffer_create(c, 3 << 20, AOQ_MEM_DEVICE, &b) == AOQ_OK, 42, "create");
  uint8_t hd[AOQ_IPC_HANDLE_BYTES];
  cudaIpcMemHandle_t ih;
  void *p;
  CHECK(aoq_buffer_ipc_handle(a, hd) == AOQ_OK, 43, "handle");
  memcpy(&ih, hd, sizeof ih);
  CUOK(cudaIpcOpenMemHandle(&p, ih, cudaIpcMemLazyEnablePeerAccess), 43);
  void *mine;
  CUOK(cudaMalloc(&mine, 2 << 20), 44);
  CUOK(cudaIpcGetMemHandle(&ih, mine), 44);
  CHECK(aoq_buffer_register_ipc(c, (const uint8_t *)&ih, 2 << 20, &r) == AOQ_OK, 45, "register");
  char ok = 1;
  if (write(wr, &ok, 1) != 1) return 46;
  for (;;) pause();
}

static int wait_child(pid_t pid) {
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int main(void) {
  /* probe in a child: the parent stays free of CUDA so that its later forks are clean */
  pid_t probe = fork();
  if (probe == 0) {
    int n = 0;
    _exit(cudaGetDeviceCount(&n) == cudaSuccess && n > 0 ? 0 : 77);
  }
  if (wait_child(probe) == 77) {
    fprintf(stderr, "no CUDA device -- skipping\n");
    return 77;
  }
  aoqd_child d;
  if (aoqd_start(&d, "cuda:0", 120) != 0) {
    aoqd_dump_log(&d);
    aoqd_stop(&d);
    return 1;
  }
  int rc = 0;
  pid_t pc = fork();
  if (pc == 0) {
    int r = client_main();
    fflush(stdout);
    _exit(r);
  }
  int r = wait_child(pc);
  if (r) {
    fprintf(stderr, "FAIL: client exited %d\n", r);
    rc = 1;
  } else {
    printf("ok: device buffers (daemon-made and registered) match shm; bad handles refused\n");
  }

  if (!rc) {
    int pfd[2];
    if (pipe(pfd)) return 1;
    pid_t pd = fork();
    if (pd == 0) {
      close(pfd[0]);
      int r = dying_client(pfd[1]);
      fflush(stdout);
      _exit(r);
    }
    close(pfd[1]);
    char ok = 0;
    ssize_t got = read(pfd[0], &ok, 1);
    close(pfd[0]);
    double held = aoqd_status_number("device_buffers");
    double bytes = aoqd_status_number("device_buffer_bytes");
    kill(pd, SIGKILL);
    wait_child(pd);
    double after = -1, imports = -1;
    for (int i = 0; i < 100; i++) {
      after = aoqd_status_number("device_buffers");
      imports = aoqd_status_number("device_ipc_imports");
      if (after == 0 && imports == 0) break;
      aoqd_sleep_ms(100);
    }
    if (got != 1 || held != 3 || bytes != (double)(6 << 20) || after != 0 || imports != 0) {
      fprintf(stderr,
              "FAIL: dying client: ready=%d held=%g (3) bytes=%g (%d) after=%g imports=%g\n",
              (int)got, held, bytes, 6 << 20, after, imports);
      rc = 1;
    } else {
      printf("ok: a killed client's 3 device buffers (%g bytes) were freed by the daemon\n", bytes);
    }
  }
  if (rc) aoqd_dump_log(&d);
  int ex = aoqd_stop(&d);
  if (ex != 0) {
    fprintf(stderr, "FAIL: aoqd exited %d\n", ex);
    rc = 1;
  }
  return rc;
}
