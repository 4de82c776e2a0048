/* buffer.c — libaoq shared buffers: create/register/map/free (aoq.h). */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "base/error.h"
#include "client/client_internal.h"

void aoqc_buffer_release(aoq_buffer *b) {
  aoq_shm_close(&b->shm, 0);
  free(b);
}

static void link_buffer(aoq_client *c, aoq_buffer *b) {
  b->c = c;
  b->next = c->buffers;
  c->buffers = b;
}

static aoq_status do_register(aoq_client *c, aoq_buffer *b) {
  Aoq__Request req = AOQ__REQUEST__INIT;
  Aoq__BufferRegister br = AOQ__BUFFER_REGISTER__INIT;
  br.shm_name = b->shm.name;
  br.size = b->shm.size;
  req.body_case = AOQ__REQUEST__BODY_BUFFER_REGISTER;
  req.buffer_register = &br;
  Aoq__Reply *rep;
  AOQ_TRY(aoqc_call(c, &req, AOQ__REPLY__BODY_BUFFER, &rep));
  b->id = rep->buffer->buffer_id;
  aoq__reply__free_unpacked(rep, NULL);
  return AOQ_OK;
}

/* A device buffer from the daemon's reply (created, or registered through IPC). */
static aoq_status device_buffer(aoq_client *c, Aoq__Request *req, size_t bytes, aoq_buffer **out) {
  Aoq__Reply *rep;
  AOQ_TRY(aoqc_call(c, req, AOQ__REPLY__BODY_BUFFER, &rep));
  Aoq__BufferReply *br = rep->buffer;
  int bad = !br->device || br->ipc_handle.len != AOQ_IPC_HANDLE_BYTES;
  aoq_buffer *b = bad ? NULL : calloc(1, sizeof *b);
  if (!b) {
    /* the daemon holds a buffer we cannot use: give it back, then report */
    uint64_t id = br->buffer_id;
    aoq__reply__free_unpacked(rep, NULL);
    Aoq__Request ur = AOQ__REQUEST__INIT;
    Aoq__BufferUnregister bu = AOQ__BUFFER_UNREGISTER__INIT;
    bu.buffer_id = id;
    ur.body_case = AOQ__REQUEST__BODY_BUFFER_UNREGISTER;
    ur.buffer_unregister = &bu;
    aoqc_call(c, &ur, AOQ__REPLY__BODY_EMPTY, NULL);
    if (bad)
      return aoqc_fail(c, AOQ_EPROTO, "device buffer reply without a %d-byte IPC handle",
                       AOQ_IPC_HANDLE_BYTES);
    return aoqc_fail(c, AOQ_ENOMEM, "buffer handle");
  }
  b->id = br->buffer_id;
  b->device = 1;
  b->shm.size = bytes;
  memcpy(b->ipc, br->ipc_handle.data, AOQ_IPC_HANDLE_BYTES);
  aoq__reply__free_unpacked(rep, NULL);
  link_buffer(c, b);
  *out = b;
  return AOQ_OK;
}

aoq_status aoq_buffer_register_ipc(aoq_client *c, const uint8_t handle[AOQ_IPC_HANDLE_BYTES],
                                   size_t bytes, aoq_buffer **out) {
  *out = NULL;
  if (!handle) return aoqc_fail(c, AOQ_EINVAL, "aoq_buffer_register_ipc: NULL handle");
  Aoq__Request req = AOQ__REQUEST__INIT;
  Aoq__BufferRegisterIpc bri = AOQ__BUFFER_REGISTER_IPC__INIT;
  bri.ipc_handle.data = (uint8_t *)handle;
  bri.ipc_handle.len = AOQ_IPC_HANDLE_BYTES;
  bri.size = bytes;
  req.body_case = AOQ__REQUEST__BODY_BUFFER_REGISTER_IPC;
  req.buffer_register_ipc = &bri;
  return device_buffer(c, &req, bytes, out);
}

aoq_status aoq_buffer_ipc_handle(const aoq_buffer *b, uint8_t out[AOQ_IPC_HANDLE_BYTES]) {
  if (!b || !out) return aoq_err(AOQ_EINVAL, "aoq_buffer_ipc_handle: NULL argument");
  if (!b->device)
    return aoqc_fail(b->c, AOQ_EINVAL, "buffer %llu is host memory: it has no IPC handle",
                     (unsigned long long)b->id);
  memcpy(out, b->ipc, AOQ_IPC_HANDLE_BYTES);
  return AOQ_OK;
}

int aoq_buffer_is_device(const aoq_buffer *b) {
  return b ? b->device : 0;
}

aoq_status aoq_buffer_create(aoq_client *c, size_t bytes, aoq_mem_kind kind, aoq_buffer **out) {
  *out = NULL;
  if (kind == AOQ_MEM_DEVICE) {
    Aoq__Request req = AOQ__REQUEST__INIT;
    Aoq__BufferCreate bc = AOQ__BUFFER_CREATE__INIT;
    bc.size = bytes;
    bc.device = 1;
    req.body_case = AOQ__REQUEST__BODY_BUFFER_CREATE;
    req.buffer_create = &bc;
    return device_buffer(c, &req, bytes, out);
  }
  if (kind != AOQ_MEM_HOST) return aoqc_fail(c, AOQ_EINVAL, "unknown memory kind %d", (int)kind);
  aoq_buffer *b = calloc(1, sizeof *b);
  if (!b) return aoqc_fail(c, AOQ_ENOMEM, "buffer handle");
  aoq_status s = aoq_shm_create(bytes, &b->shm);
  if (s != AOQ_OK) {
    free(b);
    return aoqc_fail(c, s, "%s", aoq_last_error());
  }
  s = do_register(c, b);
  /* Both sides hold a mapping now (or registering failed): the name is no longer needed, and
   * without it nothing leaks in /dev/shm if either process dies. */
  shm_unlink(b->shm.name);
  if (s != AOQ_OK) {
    aoqc_buffer_release(b);
    return s;
  }
  link_buffer(c, b);
  *out = b;
  return AOQ_OK;
}

aoq_status aoq_buffer_register(aoq_client *c, const char *shm_name, size_t bytes,
                               aoq_buffer **out) {
  *out = NULL;
  aoq_buffer *b = calloc(1, sizeof *b);
  if (!b) return aoqc_fail(c, AOQ_ENOMEM, "buffer handle");
  aoq_status s = aoq_shm_map(shm_name, bytes, -1, &b->shm);
  if (s != AOQ_OK) {
    free(b);
    return aoqc_fail(c, s, "%s", aoq_last_error());
  }
  s = do_register(c, b);
  if (s != AOQ_OK) {
    aoqc_buffer_release(b);
    return s;
  }
  link_buffer(c, b);
  *out = b;
  return AOQ_OK;
}

aoq_status aoq_buffer_create_remote(aoq_client *c, size_t bytes, aoq_buffer **out) {
  *out = NULL;
  Aoq__Request req = AOQ__REQUEST__INIT;
  Aoq__BufferCreate bc = AOQ__BUFFER_CREATE__INIT;
  bc.size = bytes;
  req.body_case = AOQ__REQUEST__BODY_BUFFER_CREATE;
  req.buffer_create = &bc;
  Aoq__Reply *rep;
  AOQ_TRY(aoqc_call(c, &req, AOQ__REPLY__BODY_BUFFER, &rep));
  aoq_buffer *b = calloc(1, sizeof *b);
  aoq_status s = b ? aoq_shm_map(rep->buffer->shm_name, bytes, -1, &b->shm) : AOQ_ENOMEM;
  uint64_t id = rep->buffer->buffer_id;
  aoq__reply__free_unpacked(rep, NULL);
  if (s != AOQ_OK) {
    free(b);
    return aoqc_fail(c, s, "mapping the daemon's buffer: %s", aoq_last_error());
  }
  b->id = id;
  link_buffer(c, b);
  *out = b;
  return AOQ_OK;
}

void *aoq_buffer_map(aoq_buffer *b, size_t *bytes) {
  if (bytes) *bytes = b ? b->shm.size : 0;
  return b ? b->shm.base : NULL;
}

uint64_t aoq_buffer_id(const aoq_buffer *b) {
  return b ? b->id : 0;
}

aoq_status aoq_buffer_free(aoq_buffer *b) {
  if (!b) return AOQ_OK;
  aoq_client *c = b->c;
  for (aoq_buffer **p = &c->buffers; *p; p = &(*p)->next)
    if (*p == b) {
      *p = b->next;
      break;
    }
  Aoq__Request req = AOQ__REQUEST__INIT;
  Aoq__BufferUnregister bu = AOQ__BUFFER_UNREGISTER__INIT;
  bu.buffer_id = b->id;
  req.body_case = AOQ__REQUEST__BODY_BUFFER_UNREGISTER;
  req.buffer_unregister = &bu;
  aoq_status s = aoqc_call(c, &req, AOQ__REPLY__BODY_EMPTY, NULL);
  aoqc_buffer_release(b);
  return s;
}
