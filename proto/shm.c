/* shm.c — POSIX shared-memory objects for shared buffers (shm.h). */
#include "proto/shm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"

aoq_status aoq_shm_name_check(const char *name) {
  if (!name || name[0] != '/') return aoq_err(AOQ_EINVAL, "shm name must start with '/'");
  size_t n = strlen(name);
  if (n < 2 || n > 200) return aoq_err(AOQ_EINVAL, "shm name length %zu not in 2..200", n);
  if (strchr(name + 1, '/')) return aoq_err(AOQ_EINVAL, "shm name '%s' has a second '/'", name);
  for (size_t i = 1; i < n; i++) {
    unsigned char c = (unsigned char)name[i];
    if (c <= 32 || c >= 127) return aoq_err(AOQ_EINVAL, "shm name has a non-printable byte");
  }
  return AOQ_OK;
}

static aoq_status map_fd(int fd, size_t size, aoq_shm *out) {
  if (aoq_fault_hit()) return aoq_err(AOQ_EIO, "mmap %s: injected fault", out->name);
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED)
    return aoq_err(AOQ_EIO, "mmap %s (%zu bytes): %s", out->name, size, strerror(errno));
  out->base = p;
  out->size = size;
  return AOQ_OK;
}

aoq_status aoq_shm_create(size_t size, aoq_shm *out) {
  static atomic_uint counter;
  memset(out, 0, sizeof *out);
  if (size == 0) return aoq_err(AOQ_EINVAL, "shared buffer of 0 bytes");
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  snprintf(out->name, sizeof out->name, "/aoq-%d-%u-%lx", (int)getpid(),
           atomic_fetch_add(&counter, 1), (unsigned long)(ts.tv_nsec ^ (ts.tv_sec << 20)));
  if (aoq_fault_hit()) return aoq_err(AOQ_EIO, "shm_open %s: injected fault", out->name);
  int fd = shm_open(out->name, O_RDWR | O_CREAT | O_EXCL, 0600);
  if (fd < 0) return aoq_err(AOQ_EIO, "shm_open %s: %s", out->name, strerror(errno));
  if (ftruncate(fd, (off_t)size) != 0) {
    aoq_status s = aoq_err(errno == ENOSPC ? AOQ_ENOMEM : AOQ_EIO, "ftruncate %s to %zu: %s",
                           out->name, size, strerror(errno));
    close(fd);
    shm_unlink(out->name);
    return s;
  }
  aoq_status s = map_fd(fd, size, out);
  close(fd);
  if (s != AOQ_OK) shm_unlink(out->name);
  return s;
}

aoq_status aoq_shm_map(const char *name, size_t size, long owner_uid, aoq_shm *out) {
  memset(out, 0, sizeof *out);
  AOQ_TRY(aoq_shm_name_check(name));
  if (size == 0) return aoq_err(AOQ_EINVAL, "shared buffer of 0 bytes");
  strcpy(out->name, name);
  if (aoq_fault_hit()) return aoq_err(AOQ_EIO, "shm_open %s: injected fault", name);
  int fd = shm_open(name, O_RDWR, 0);
  if (fd < 0)
    return aoq_err(errno == ENOENT ? AOQ_ENOTFOUND : AOQ_EIO, "shm_open %s: %s", name,
                   strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    close(fd);
    return aoq_err(AOQ_EIO, "fstat %s: %s", name, strerror(errno));
  }
  if (owner_uid >= 0 && (long)st.st_uid != owner_uid) {
    close(fd);
    return aoq_err(AOQ_EPERM, "shm %s belongs to uid %ld, not to the caller (uid %ld)", name,
                   (long)st.st_uid, owner_uid);
  }
  if ((size_t)st.st_size < size) {
    close(fd);
    return aoq_err(AOQ_ESHAPE, "shm %s holds %lld bytes, %zu claimed", name, (long long)st.st_size,
                   size);
  }
  aoq_status s = map_fd(fd, size, out);
  close(fd);
  return s;
}

void aoq_shm_close(aoq_shm *s, int unlink_too) {
  if (!s) return;
  if (s->base) munmap(s->base, s->size);
  if (unlink_too && s->name[0]) shm_unlink(s->name);
  s->base = NULL;
  s->size = 0;
}
