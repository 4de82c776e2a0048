/* wire.c — default endpoints, message packing and per-type names (wire.h). */
#include "proto/wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/error.h"

aoq_status aoq_wire_default_dir(char *dir, size_t n) {
  const char *xdg = getenv("XDG_RUNTIME_DIR");
  int k = (xdg && xdg[0]) ? snprintf(dir, n, "%s/aoq", xdg)
                          : snprintf(dir, n, "/tmp/aoq-%u", (unsigned)getuid());
  if (k < 0 || (size_t)k >= n) return aoq_err(AOQ_EINVAL, "socket directory path too long");
  return AOQ_OK;
}

aoq_status aoq_wire_default_endpoint(int admin, char *out, size_t n) {
  const char *env = getenv(admin ? "AOQ_ADMIN_ENDPOINT" : "AOQ_ENDPOINT");
  if (env && env[0]) {
    if (strlen(env) >= n) return aoq_err(AOQ_EINVAL, "endpoint from environment too long");
    strcpy(out, env);
    return AOQ_OK;
  }
  char dir[512];
  AOQ_TRY(aoq_wire_default_dir(dir, sizeof dir));
  int k = snprintf(out, n, "ipc://%s/%s", dir, admin ? "aoqd-admin.sock" : "aoqd.sock");
  if (k < 0 || (size_t)k >= n) return aoq_err(AOQ_EINVAL, "endpoint too long");
  return AOQ_OK;
}

aoq_status aoq_wire_pack_request(const Aoq__Request *r, uint8_t **buf, size_t *len) {
  size_t n = aoq__request__get_packed_size(r);
  if (n > AOQ_MAX_MESSAGE_BYTES)
    return aoq_err(AOQ_EINVAL, "request of %zu bytes exceeds the %zu-byte message limit", n,
                   AOQ_MAX_MESSAGE_BYTES);
  uint8_t *b = malloc(n ? n : 1);
  if (!b) return aoq_err(AOQ_ENOMEM, "request buffer of %zu bytes", n);
  aoq__request__pack(r, b);
  *buf = b;
  *len = n;
  return AOQ_OK;
}

aoq_status aoq_wire_pack_reply(const Aoq__Reply *r, uint8_t **buf, size_t *len) {
  size_t n = aoq__reply__get_packed_size(r);
  uint8_t *b = malloc(n ? n : 1);
  if (!b) return aoq_err(AOQ_ENOMEM, "reply buffer of %zu bytes", n);
  aoq__reply__pack(r, b);
  *buf = b;
  *len = n;
  return AOQ_OK;
}

static const struct {
  Aoq__Request__BodyCase c;
  const char *name;
} types[AOQ_WIRE_NTYPES] = {
    {AOQ__REQUEST__BODY__NOT_SET, "none"},
    {AOQ__REQUEST__BODY_HELLO, "hello"},
    {AOQ__REQUEST__BODY_GENERATE, "generate"},
    {AOQ__REQUEST__BODY_CANCEL, "cancel"},
    {AOQ__REQUEST__BODY_FORWARD, "forward"},
    {AOQ__REQUEST__BODY_MATMUL, "matmul"},
    {AOQ__REQUEST__BODY_TOKENIZE, "tokenize"},
    {AOQ__REQUEST__BODY_DETOKENIZE, "detokenize"},
    {AOQ__REQUEST__BODY_MODELS, "models"},
    {AOQ__REQUEST__BODY_BUFFER_REGISTER, "buffer_register"},
    {AOQ__REQUEST__BODY_BUFFER_CREATE, "buffer_create"},
    {AOQ__REQUEST__BODY_BUFFER_UNREGISTER, "buffer_unregister"},
    {AOQ__REQUEST__BODY_ADMIN, "admin"},
    {AOQ__REQUEST__BODY_PING, "ping"},
    {AOQ__REQUEST__BODY_BUFFER_REGISTER_IPC, "buffer_register_ipc"},
    {(Aoq__Request__BodyCase)-1, "malformed"},
};

int aoq_wire_type_index(Aoq__Request__BodyCase c) {
  for (int i = 0; i < AOQ_WIRE_NTYPES - 1; i++)
    if (types[i].c == c) return i;
  return AOQ_WIRE_NTYPES - 1;
}

const char *aoq_wire_type_name(int index) {
  if (index < 0 || index >= AOQ_WIRE_NTYPES) return "malformed";
  return types[index].name;
}
