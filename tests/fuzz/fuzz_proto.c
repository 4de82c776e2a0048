/*
 * fuzz_proto.c — fuzz target for the wire decoding of aoqd and libaoq: the protobuf-c unpack of
 * one aoq.Request frame (what aoqd's handle_message does with every frame; its validation
 * handlers are static in daemon/server.c and need a running server) and of one aoq.Reply frame
 * (what libaoq does with every reply), plus proto/wire.c's helpers.
 *
 * Promises checked on every decoded message: protobuf_c_message_check passes; the body case is
 * one the daemon's type table knows (aoq_wire_type_index/name) and its body pointer is set; every
 * string the daemon or the client reads is non-NULL and NUL-terminated, every repeated field's
 * count comes with an array; packing it again (aoq_wire_pack_request/reply) gives bytes that
 * decode to a message that packs to the very same bytes, and a request over the message limit is
 * refused with a detail. A frame that is not a Request leaves the detail aoqd would log. A
 * broken promise traps.
 *
 * Built as a libFuzzer binary (AOQ_FUZZ=ON with clang) and into the standalone driver fuzz_main.c.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "proto/wire.h"

#define FUZZ_CHECK(cond)           \
  do {                             \
    if (!(cond)) __builtin_trap(); \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* For fuzz_main.c: field keys (tag << 3 | wire type) of aoq.proto and varints. Bytes 0 come from
 * the driver's byte mutations (these are C strings). */
extern const char *const fuzz_dict[];
const char *const fuzz_dict[] = {
    "\x08\x01",                 /* id = 1 */
    "\x08\xff\xff\xff\xff\x0f", /* id = 2^32-1 */
    "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
    "\x80\x80\x80\x80\x10",                         /* overlong length */
    "\x52\x02\x08\x01",                             /* hello {protocol_version 1} */
    "\x5a\x03\x0a\x01m",                            /* generate {model "m"} */
    "\x1a\x02\x01\x02",                             /* packed int32 tokens */
    "\x18\x05",                                     /* unpacked int32 */
    "\x18\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", /* int32 -1 */
    "\x22\x05\x0d\x00\x00\x80\x3f",                 /* sampling temperature 1.0 */
    "\x6a\x01",                                     /* admin, 1 byte */
    "\x2a\x02\x0a",                                 /* quota { tenant ... */
    "\x62",
    "\x6a",
    "\x72",
    "\x7a",
    "\x82\x01",
    "\x8a\x01",
    "\x92\x01",
    "\x9a\x01",
    "\xa2\x01",
    "\xaa\x01",
    "\xb2\x01\x00",
    "\xba\x01",
    "\x10\x01", /* reply more = true */
    "\x0a",
    "\x12",
    "\x1a",
    "\x22",
    "\x28",
    "\x30",
    "\x38",
    "\x40",
    "\x0d", /* fixed32 */
    "\x09", /* fixed64 */
    "\x0b", /* start group (deprecated wire type 3) */
    "\x0c",
    "\x0f",                 /* wire type 7: invalid */
    "\xf8\xff\xff\xff\x0f", /* field 2^29-1 */
    "\xc3\xa9",
    "\xff\xfe",
    NULL,
};

static volatile size_t fuzz_sink;

/* For fuzz_main.c's feedback: body cases and shape of the last input's decodes. */
static uint64_t last_outcome;
uint64_t fuzz_outcome_extra(void);
uint64_t fuzz_outcome_extra(void) {
  return last_outcome;
}

static uint64_t shape_of(const ProtobufCMessage *m) {
  return (uint64_t)(m->n_unknown_fields > 0) | (uint64_t)(m->n_unknown_fields > 4) << 1;
}

static void touch_str(const char *s) {
  FUZZ_CHECK(s != NULL);
  fuzz_sink += strlen(s);
}

static void touch_i32(const int32_t *p, size_t n) {
  FUZZ_CHECK(n == 0 || p != NULL);
  for (size_t i = 0; i < n; i++) fuzz_sink += (size_t)p[i];
}

/* What aoqd's handlers and scheduler read of each request body. */
static void check_request_fields(const Aoq__Request *r) {
  int idx = aoq_wire_type_index(r->body_case);
  FUZZ_CHECK(idx >= 0 && idx < AOQ_WIRE_NTYPES - 1);
  const char *name = aoq_wire_type_name(idx);
  FUZZ_CHECK(name != NULL && strcmp(name, "malformed") != 0);
  FUZZ_CHECK((r->body_case == AOQ__REQUEST__BODY__NOT_SET) == (strcmp(name, "none") == 0));
  switch (r->body_case) {
    case AOQ__REQUEST__BODY__NOT_SET:
      break;
    case AOQ__REQUEST__BODY_HELLO:
      FUZZ_CHECK(r->hello);
      touch_str(r->hello->client_name);
      touch_str(r->hello->tenant);
      touch_str(r->hello->api_key);
      break;
    case AOQ__REQUEST__BODY_GENERATE:
      FUZZ_CHECK(r->generate);
      touch_str(r->generate->model);
      touch_str(r->generate->prompt);
      touch_i32(r->generate->tokens, r->generate->n_tokens);
      touch_i32(r->generate->stop_tokens, r->generate->n_stop_tokens);
      if (r->generate->sampling) fuzz_sink += (size_t)r->generate->sampling->top_k;
      break;
    case AOQ__REQUEST__BODY_CANCEL:
      FUZZ_CHECK(r->cancel);
      break;
    case AOQ__REQUEST__BODY_FORWARD:
      FUZZ_CHECK(r->forward);
      touch_str(r->forward->model);
      touch_i32(r->forward->tokens, r->forward->n_tokens);
      break;
    case AOQ__REQUEST__BODY_MATMUL:
      FUZZ_CHECK(r->matmul);
      touch_str(r->matmul->model);
      touch_str(r->matmul->layer);
      break;
    case AOQ__REQUEST__BODY_TOKENIZE:
      FUZZ_CHECK(r->tokenize);
      touch_str(r->tokenize->model);
      touch_str(r->tokenize->text);
      break;
    case AOQ__REQUEST__BODY_DETOKENIZE:
      FUZZ_CHECK(r->detokenize);
      touch_str(r->detokenize->model);
      touch_i32(r->detokenize->tokens, r->detokenize->n_tokens);
      break;
    case AOQ__REQUEST__BODY_MODELS:
      FUZZ_CHECK(r->models);
      break;
    case AOQ__REQUEST__BODY_BUFFER_REGISTER:
      FUZZ_CHECK(r->buffer_register);
      touch_str(r->buffer_register->shm_name);
      break;
    case AOQ__REQUEST__BODY_BUFFER_CREATE:
      FUZZ_CHECK(r->buffer_create);
      break;
    case AOQ__REQUEST__BODY_BUFFER_UNREGISTER:
      FUZZ_CHECK(r->buffer_unregister);
      break;
    case AOQ__REQUEST__BODY_ADMIN:
      FUZZ_CHECK(r->admin);
      touch_str(r->admin->model);
      touch_str(r->admin->config);
      if (r->admin->quota) touch_str(r->admin->quota->tenant);
      break;
    case AOQ__REQUEST__BODY_PING:
      FUZZ_CHECK(r->ping);
      break;
    case AOQ__REQUEST__BODY_BUFFER_REGISTER_IPC: /* the daemon checks len == 64, then reads it */
      FUZZ_CHECK(r->buffer_register_ipc);
      FUZZ_CHECK(r->buffer_register_ipc->ipc_handle.len == 0 ||
                 r->buffer_register_ipc->ipc_handle.data);
      for (size_t i = 0; i < r->buffer_register_ipc->ipc_handle.len; i++)
        fuzz_sink += r->buffer_register_ipc->ipc_handle.data[i];
      break;
    default:
      FUZZ_CHECK(0); /* unpack never yields a case outside the oneof */
  }
}

/* What libaoq reads of each reply body. */
static void check_reply_fields(const Aoq__Reply *r) {
  switch (r->body_case) {
    case AOQ__REPLY__BODY__NOT_SET:
      break;
    case AOQ__REPLY__BODY_ERROR:
      FUZZ_CHECK(r->error);
      touch_str(r->error->message);
      break;
    case AOQ__REPLY__BODY_HELLO:
      FUZZ_CHECK(r->hello);
      touch_str(r->hello->tenant);
      touch_str(r->hello->daemon_version);
      break;
    case AOQ__REPLY__BODY_GENERATE:
      FUZZ_CHECK(r->generate);
      touch_i32(r->generate->tokens, r->generate->n_tokens);
      touch_str(r->generate->text);
      touch_str(r->generate->finish_reason);
      break;
    case AOQ__REPLY__BODY_TOKEN:
      FUZZ_CHECK(r->token);
      touch_str(r->token->text);
      break;
    case AOQ__REPLY__BODY_FORWARD:
      FUZZ_CHECK(r->forward);
      break;
    case AOQ__REPLY__BODY_MATMUL:
      FUZZ_CHECK(r->matmul);
      break;
    case AOQ__REPLY__BODY_TOKENIZE:
      FUZZ_CHECK(r->tokenize);
      touch_i32(r->tokenize->tokens, r->tokenize->n_tokens);
      break;
    case AOQ__REPLY__BODY_DETOKENIZE:
      FUZZ_CHECK(r->detokenize);
      touch_str(r->detokenize->text);
      break;
    case AOQ__REPLY__BODY_MODELS:
      FUZZ_CHECK(r->models);
      FUZZ_CHECK(r->models->n_models == 0 || r->models->models != NULL);
      for (size_t i = 0; i < r->models->n_models; i++) {
        FUZZ_CHECK(r->models->models[i]);
        touch_str(r->models->models[i]->name);
        touch_str(r->models->models[i]->format);
        touch_str(r->models->models[i]->state);
      }
      break;
    case AOQ__REPLY__BODY_BUFFER:
      FUZZ_CHECK(r->buffer);
      touch_str(r->buffer->shm_name);
      FUZZ_CHECK(r->buffer->ipc_handle.len == 0 || r->buffer->ipc_handle.data);
      break;
    case AOQ__REPLY__BODY_ADMIN:
      FUZZ_CHECK(r->admin);
      touch_str(r->admin->json);
      break;
    case AOQ__REPLY__BODY_EMPTY:
      FUZZ_CHECK(r->empty);
      break;
    default:
      FUZZ_CHECK(0);
  }
}

/* protobuf-c keeps an unknown field whose number is 0 when its key comes as an overlong varint
 * (0x80 0x00) but refuses the one-byte key 0x00 that packing writes for it, so such a message does
 * not survive a re-pack. aoqd and libaoq never re-pack a received message; the quirk is the
 * library's (tests/fuzz/README.md). */
static int has_field_zero(const ProtobufCMessage *m) {
  if (!m) return 0;
  for (unsigned i = 0; i < m->n_unknown_fields; i++)
    if (m->unknown_fields[i].tag == 0) return 1;
  /* and in every submessage that is set (a oneof member only when its case is chosen) */
  const ProtobufCMessageDescriptor *d = m->descriptor;
  const char *base = (const char *)m;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (f->type != PROTOBUF_C_TYPE_MESSAGE) continue;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = *(const size_t *)(const void *)(base + f->quantifier_offset);
      ProtobufCMessage *const *arr =
          *(ProtobufCMessage *const *const *)(const void *)(base + f->offset);
      for (size_t k = 0; k < n; k++)
        if (has_field_zero(arr[k])) return 1;
      continue;
    }
    if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
        *(const uint32_t *)(const void *)(base + f->quantifier_offset) != f->id)
      continue;
    if (has_field_zero(*(ProtobufCMessage *const *)(const void *)(base + f->offset))) return 1;
  }
  return 0;
}

/* Re-packing is stable: pack(m) decodes, and the decoded message packs to the same bytes. */
static void check_request(const Aoq__Request *r) {
  FUZZ_CHECK(protobuf_c_message_check(&r->base));
  check_request_fields(r);
  uint8_t *p1 = NULL, *p2 = NULL;
  size_t n1 = 0, n2 = 0;
  aoq_status st = aoq_wire_pack_request(r, &p1, &n1);
  if (st != AOQ_OK) {
    /* only a message over the limit is refused (unknown fields can make it grow) */
    FUZZ_CHECK(st == AOQ_EINVAL && aoq__request__get_packed_size(r) > AOQ_MAX_MESSAGE_BYTES);
    FUZZ_CHECK(aoq_last_error()[0] != 0);
    aoq_err_clear();
    return;
  }
  FUZZ_CHECK(n1 == aoq__request__get_packed_size(r));
  Aoq__Request *r2 = aoq__request__unpack(NULL, n1, p1);
  if (!r2 && has_field_zero(&r->base)) {
    free(p1);
    return;
  }
  FUZZ_CHECK(r2 != NULL);
  FUZZ_CHECK(r2->id == r->id && r2->body_case == r->body_case);
  FUZZ_CHECK(aoq_wire_pack_request(r2, &p2, &n2) == AOQ_OK);
  FUZZ_CHECK(n2 == n1 && memcmp(p1, p2, n1) == 0);
  aoq__request__free_unpacked(r2, NULL);
  free(p1);
  free(p2);
}

static void check_reply(const Aoq__Reply *r) {
  FUZZ_CHECK(protobuf_c_message_check(&r->base));
  check_reply_fields(r);
  uint8_t *p1 = NULL, *p2 = NULL;
  size_t n1 = 0, n2 = 0;
  FUZZ_CHECK(aoq_wire_pack_reply(r, &p1, &n1) == AOQ_OK);
  FUZZ_CHECK(n1 == aoq__reply__get_packed_size(r));
  Aoq__Reply *r2 = aoq__reply__unpack(NULL, n1, p1);
  if (!r2 && has_field_zero(&r->base)) {
    free(p1);
    return;
  }
  FUZZ_CHECK(r2 != NULL);
  FUZZ_CHECK(r2->id == r->id && r2->more == r->more && r2->body_case == r->body_case);
  FUZZ_CHECK(aoq_wire_pack_reply(r2, &p2, &n2) == AOQ_OK);
  FUZZ_CHECK(n2 == n1 && memcmp(p1, p2, n1) == 0);
  aoq__reply__free_unpacked(r2, NULL);
  free(p1);
  free(p2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* aoqd refuses a larger frame unread (ZMQ_MAXMSGSIZE) */
  if (size > AOQ_MAX_MESSAGE_BYTES) return 0;
  Aoq__Reply *rep = aoq__reply__unpack(NULL, size, data);
  last_outcome = 0;
  if (rep) {
    last_outcome =
        1 + (uint64_t)rep->body_case + (shape_of(&rep->base) << 8) + ((uint64_t)rep->more << 10);
    check_reply(rep);
    aoq__reply__free_unpacked(rep, NULL);
  }
  Aoq__Request *req = aoq__request__unpack(NULL, size, data);
  if (!req) {
    /* the detail aoqd logs and answers for such a frame; fuzz_main.c uses it as the outcome */
    aoq_err(AOQ_EPROTO, "malformed request: %zu bytes are not an aoq.Request%s", size,
            rep ? "" : " (nor an aoq.Reply)");
    return 0;
  }
  last_outcome |= (1 + (uint64_t)req->body_case + (shape_of(&req->base) << 8)) << 16;
  check_request(req);
  aoq__request__free_unpacked(req, NULL);
  aoq_err_clear();
  return 0;
}
