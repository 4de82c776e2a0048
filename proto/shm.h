/*
 * shm.h — POSIX shared-memory objects as used by aoq's shared buffers: both libaoq (creating or
 * mapping a client buffer) and aoqd (mapping a registered buffer, or creating one for a client).
 * Names are "/aoq-<pid>-<n>-<random>" style: a leading '/', no other '/', at most 200 bytes.
 * Thread-safe (no state). Fault injection: each call to shm_open/mmap checks aoq_fault_hit().
 */
#ifndef AOQ_PROTO_SHM_H
#define AOQ_PROTO_SHM_H

#include <stddef.h>

#include "aoq/aoq.h"

typedef struct aoq_shm {
  char name[224];
  size_t size;
  void *base; /* mapping of size bytes, read-write, shared */
} aoq_shm;

/* AOQ_OK if name is an acceptable shm name (see above), else AOQ_EINVAL with the reason. */
aoq_status aoq_shm_name_check(const char *name);
/* Creates a new object (O_EXCL) with a fresh unique name, sizes it and maps it. AOQ_EIO/ENOMEM. */
aoq_status aoq_shm_create(size_t size, aoq_shm *out);
/* Maps an existing object read-write; its size must be at least `size` (AOQ_ESHAPE otherwise);
 * AOQ_ENOTFOUND if it does not exist. owner_uid >= 0: the object must belong to that uid
 * (AOQ_EPERM otherwise) — the daemon passes the registering peer's uid so that a client cannot
 * name another user's memory. */
aoq_status aoq_shm_map(const char *name, size_t size, long owner_uid, aoq_shm *out);
/* Unmaps; unlink_too also removes the name. Safe on a zeroed struct. */
void aoq_shm_close(aoq_shm *s, int unlink_too);

#endif
