/*
 * test_cuda_ipc.c — CUDA IPC between two processes: the parent allocates and fills a device
 * buffer and exports it; a forked child (which touches CUDA only after the fork, with its own
 * context) imports the handle, checks every byte, writes a reply pattern into the shared buffer
 * and closes the mapping; the parent then sees the child's bytes. Exit 77 only without a device.
 */
#include <sys/wait.h>
#include <unistd.h>

#include "tests/gpu/cuda_test_util.h"

#define NBYTES (4u << 20)

static int child(int rd, int wr) {
  aoq_ipc_handle h;
  if (read(rd, &h, sizeof h) != (ssize_t)sizeof h) return 10; /* parent had no device */
  aoq_device *d;
  if (aoq_device_open("cuda:0", &d) != AOQ_OK) return 11;
  void *p = NULL;
  if (aoq_dev_ipc_import(d, &h, &p) != AOQ_OK || !p) {
    fprintf(stderr, "child import: %s\n", aoq_last_error());
    return 12;
  }
  uint8_t *buf = malloc(NBYTES);
  if (aoq_dev_copy_d2h(d, buf, p, NBYTES, NULL) != AOQ_OK) return 13;
  for (size_t i = 0; i < NBYTES; i++)
    if (buf[i] != (uint8_t)(i * 31 + 7)) {
      fprintf(stderr, "child: byte %zu is %u\n", i, buf[i]);
      return 14;
    }
  if (aoq_dev_memset(d, p, 0x5a, 4096, NULL) != AOQ_OK) return 15;
  if (aoq_dev_stream_sync(d, NULL) != AOQ_OK) return 16;
  if (aoq_dev_ipc_close(d, p) != AOQ_OK) return 17;
  char ok = 1;
  if (write(wr, &ok, 1) != 1) return 18;
  free(buf);
  aoq_device_close(d);
  return 0;
}

int main(void) {
  int to_child[2], to_parent[2];
  if (pipe(to_child) || pipe(to_parent)) return 1;
  pid_t pid = fork();
  if (pid < 0) return 1;
  if (pid == 0) {
    close(to_child[1]), close(to_parent[0]);
    _exit(child(to_child[0], to_parent[1]));
  }
  close(to_child[0]), close(to_parent[1]);
  aoq_device *d;
  aoq_status st = aoq_device_open("cuda:0", &d);
  if (st == AOQ_ENODEV) {
    fprintf(stderr, "no CUDA device: %s -- skipping\n", aoq_last_error());
    close(to_child[1]);
    waitpid(pid, NULL, 0);
    return 77;
  }
  if (st != AOQ_OK) return 1;
  uint8_t *h = malloc(NBYTES);
  for (size_t i = 0; i < NBYTES; i++) h[i] = (uint8_t)(i * 31 + 7);
  void *p = NULL;
  if (aoq_dev_alloc(d, NBYTES, &p) != AOQ_OK) return 2;
  if (aoq_dev_copy_h2d(d, p, h, NBYTES, NULL) != AOQ_OK) return 3;
  aoq_ipc_handle hd;
  if (aoq_dev_ipc_export(d, p, &hd) != AOQ_OK) {
    fprintf(stderr, "export: %s\n", aoq_last_error());
    return 4;
  }
  if (write(to_child[1], &hd, sizeof hd) != (ssize_t)sizeof hd) return 5;
  char ok = 0;
  ssize_t got = read(to_parent[0], &ok, 1);
  int status = 0;
  waitpid(pid, &status, 0);
  if (got != 1 || !ok || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "child failed: exit %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 6;
  }
  if (aoq_dev_copy_d2h(d, h, p, 8192, NULL) != AOQ_OK) return 7;
  for (size_t i = 0; i < 8192; i++) {
    uint8_t want = i < 4096 ? 0x5a : (uint8_t)(i * 31 + 7);
    if (h[i] != want) {
      fprintf(stderr, "parent: byte %zu is %u, expected %u\n", i, h[i], want);
      return 8;
    }
  }
  printf("cuda ipc: child imported %u bytes and wrote back 4096\n", NBYTES);
  aoq_dev_free(d, p);
  free(h);
  aoq_device_close(d);
  return 0;
}
