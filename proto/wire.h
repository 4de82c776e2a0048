/*
 * wire.h — helpers shared by libaoq and aoqd around the generated protocol (aoq.pb-c.h):
 * default endpoints, packing a Request/Reply into one ZeroMQ frame, and the protocol limits.
 * Thread-safe (no state).
 */
#ifndef AOQ_PROTO_WIRE_H
#define AOQ_PROTO_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "aoq/aoq.h"
#include "proto/aoq.pb-c.h"

#define AOQ_PROTOCOL_VERSION ((uint32_t)AOQ__LIMITS__PROTOCOL_VERSION)
#define AOQ_MAX_MESSAGE_BYTES ((size_t)AOQ__LIMITS__MAX_MESSAGE_BYTES)
#define AOQ_MAX_TOKENS ((size_t)AOQ__LIMITS__MAX_TOKENS)
#define AOQ_MAX_BUFFERS_PER_SESSION ((int)AOQ__LIMITS__MAX_BUFFERS_PER_SESSION)
#define AOQ_MAX_STOP_TOKENS ((size_t)AOQ__LIMITS__MAX_STOP_TOKENS)
#define AOQ_MAX_NAME_BYTES ((size_t)AOQ__LIMITS__MAX_NAME_BYTES)

/* Directory of the default sockets: $XDG_RUNTIME_DIR/aoq, else /tmp/aoq-<uid>. Writes at most
 * n bytes (NUL included) to dir; AOQ_EINVAL if it does not fit. */
aoq_status aoq_wire_default_dir(char *dir, size_t n);
/* Default endpoints "ipc://<dir>/aoqd.sock" (admin=0) and "ipc://<dir>/aoqd-admin.sock" (admin=1),
 * or $AOQ_ENDPOINT / $AOQ_ADMIN_ENDPOINT when set. */
aoq_status aoq_wire_default_endpoint(int admin, char *out, size_t n);

/* Packs a message into a malloc'ed buffer (*buf, caller frees); AOQ_ENOMEM. Requests larger
 * than AOQ_MAX_MESSAGE_BYTES are refused with AOQ_EINVAL (the daemon would drop them). */
aoq_status aoq_wire_pack_request(const Aoq__Request *r, uint8_t **buf, size_t *len);
aoq_status aoq_wire_pack_reply(const Aoq__Reply *r, uint8_t **buf, size_t *len);

/* Name of a request body case ("generate", "matmul", ...; "none" for a missing body) and the
 * dense index used by per-type counters (0..AOQ_WIRE_NTYPES-1). */
#define AOQ_WIRE_NTYPES 16
int aoq_wire_type_index(Aoq__Request__BodyCase c);
const char *aoq_wire_type_name(int index);

#endif
