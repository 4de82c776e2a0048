#include "base/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"

aoq_status aoq_file_read(const char *path, size_t limit, char **out, size_t *len) {
  if (!path || !out) return aoq_err(AOQ_EINVAL, "aoq_file_read: NULL argument");
  /* O_NONBLOCK: a FIFO is refused by the regular-file check below instead of blocking open. */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT) return aoq_err(AOQ_ENOTFOUND, "%s: no such file", path);
    return aoq_err(AOQ_EIO, "%s: open: %s", path, strerror(errno));
  }
  struct stat sb;
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    close(fd);
    return aoq_err(AOQ_EIO, "%s: not a regular file", path);
  }
  if ((unsigned long long)sb.st_size > limit) {
    close(fd);
    return aoq_err(AOQ_EFORMAT, "%s: %lld bytes, larger than the %zu allowed", path,
                   (long long)sb.st_size, limit);
  }
  size_t size = (size_t)sb.st_size;
  char *buf = aoq_fault_hit() ? NULL : malloc(size + 1);
  if (!buf) {
    close(fd);
    return aoq_err(AOQ_ENOMEM, "%s: out of memory for %zu bytes", path, size);
  }
  size_t got = 0;
  while (got < size) {
    ssize_t r = read(fd, buf + got, size - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += (size_t)r;
  }
  close(fd);
  if (got != size) {
    free(buf);
    return aoq_err(AOQ_EIO, "%s: short read (%zu of %zu bytes)", path, got, size);
  }
  buf[size] = 0;
  *out = buf;
  if (len) *len = size;
  return AOQ_OK;
}
