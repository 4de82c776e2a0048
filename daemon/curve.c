/* curve.c — CURVE keys and the ZAP handler for the TCP endpoint (curve.h). */
#include "daemon/curve.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "base/log.h"

typedef struct {
  uint8_t key[32];
  char tenant[64];
} client_key;

struct aoqd_curve {
  char secret[41], public_[41];
  client_key *clients;
  int n;
  void *zctx, *rep;
  aoqd_metrics *mx;
  pthread_t thread;
  int started;
  atomic_int stop;
};

static int read_token(FILE *f, char *buf, size_t n) {
  return fscanf(f, "%63s", buf) == 1 && strlen(buf) < n;
}

aoq_status aoqd_curve_load(const char *keys_file, const char *clients_file, aoqd_curve **out) {
  if (!zmq_has("curve")) return aoq_err(AOQ_EUNSUPPORTED, "this libzmq was built without CURVE");
  aoqd_curve *c = calloc(1, sizeof *c);
  if (!c) return aoq_err(AOQ_ENOMEM, "curve state");
  FILE *f = fopen(keys_file, "r");
  if (!f) {
    free(c);
    return aoq_err(AOQ_EIO, "%s: %s", keys_file, strerror(errno));
  }
  char a[64], b[64];
  int ok = read_token(f, a, 64) && read_token(f, b, 64) && strlen(a) == 40 && strlen(b) == 40;
  fclose(f);
  if (!ok) {
    free(c);
    return aoq_err(AOQ_EFORMAT, "%s: expected a public and a secret key, 40 Z85 characters each",
                   keys_file);
  }
  memcpy(c->public_, a, 41);
  memcpy(c->secret, b, 41);
  f = fopen(clients_file, "r");
  if (!f) {
    free(c);
    return aoq_err(AOQ_EIO, "%s: %s", clients_file, strerror(errno));
  }
  char line[512];
  int ln = 0;
  aoq_status st = AOQ_OK;
  while (fgets(line, sizeof line, f)) {
    ln++;
    char key[64], tenant[64];
    if (line[0] == '#' || sscanf(line, "%63s", key) != 1) continue;
    if (sscanf(line, "%63s %63s", key, tenant) != 2 || strlen(key) != 40) {
      st = aoq_err(AOQ_EFORMAT, "%s:%d: expected '<public key, 40 Z85 chars> <tenant>'",
                   clients_file, ln);
      break;
    }
    client_key *nk = realloc(c->clients, (size_t)(c->n + 1) * sizeof *nk);
    if (!nk) {
      st = aoq_err(AOQ_ENOMEM, "client keys");
      break;
    }
    c->clients = nk;
    if (!zmq_z85_decode(nk[c->n].key, key)) {
      st = aoq_err(AOQ_EFORMAT, "%s:%d: not a Z85 key", clients_file, ln);
      break;
    }
    snprintf(nk[c->n].tenant, sizeof nk[c->n].tenant, "%s", tenant);
    c->n++;
  }
  fclose(f);
  if (st == AOQ_OK && c->n == 0) st = aoq_err(AOQ_EFORMAT, "%s: no client keys", clients_file);
  if (st != AOQ_OK) {
    free(c->clients);
    free(c);
    return st;
  }
  *out = c;
  return AOQ_OK;
}

const char *aoqd_curve_secret(const aoqd_curve *c) {
  return c->secret;
}

/* Receives one ZAP request (RFC 27) into frames; returns the frame count or -1. */
static int recv_frames(void *sock, zmq_msg_t *f, int max) {
  int n = 0, more = 1;
  while (more) {
    zmq_msg_t tmp;
    zmq_msg_t *m = n < max ? &f[n] : &tmp;
    zmq_msg_init(m);
    if (zmq_msg_recv(m, sock, 0) < 0) {
      zmq_msg_close(m);
      return -1;
    }
    more = zmq_msg_more(m);
    if (m == &tmp)
      zmq_msg_close(m);
    else
      n++;
  }
  return n;
}

static void *zap_main(void *arg) {
  aoqd_curve *c = arg;
  void *rep = c->rep; /* bound by aoqd_curve_start; handed over to this thread */
  while (!atomic_load(&c->stop)) {
    zmq_pollitem_t it = {rep, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, 100) <= 0) continue;
    zmq_msg_t f[8];
    int n = recv_frames(rep, f, 8);
    if (n < 0) continue;
    const char *status = "400", *text = "denied";
    char user[64] = "", addr[64] = "?", mech[16] = "?";
    if (n >= 6) {
      snprintf(addr, sizeof addr, "%.*s", (int)zmq_msg_size(&f[3]), (char *)zmq_msg_data(&f[3]));
      snprintf(mech, sizeof mech, "%.*s", (int)zmq_msg_size(&f[5]), (char *)zmq_msg_data(&f[5]));
    }
    if (n >= 7 && !strcmp(mech, "CURVE") && zmq_msg_size(&f[6]) == 32) {
      for (int i = 0; i < c->n; i++)
        if (!memcmp(c->clients[i].key, zmq_msg_data(&f[6]), 32)) {
          status = "200";
          text = "OK";
          snprintf(user, sizeof user, "%s", c->clients[i].tenant);
        }
      if (!user[0]) text = "unknown client key";
    } else if (n >= 6 && !strcmp(mech, "NULL")) {
      status = "200"; /* ipc sockets (no ZAP domain) are checked by peer uid instead */
      text = "OK";
    }
    if (status[0] != '2') {
      char z85[41] = "";
      if (n >= 7 && zmq_msg_size(&f[6]) == 32) zmq_z85_encode(z85, zmq_msg_data(&f[6]), 32);
      AOQ_WARN("CURVE client refused|peer=%s mechanism=%s key=%s reason=\"%s\"", addr, mech, z85,
               text);
      pthread_mutex_lock(&c->mx->mu);
      c->mx->refused_curve++;
      pthread_mutex_unlock(&c->mx->mu);
    }
    const char *reqid = n >= 2 ? zmq_msg_data(&f[1]) : "";
    size_t reqid_len = n >= 2 ? zmq_msg_size(&f[1]) : 0;
    zmq_send(rep, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(rep, reqid, reqid_len, ZMQ_SNDMORE);
    zmq_send(rep, status, 3, ZMQ_SNDMORE);
    zmq_send(rep, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(rep, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(rep, "", 0, 0);
    for (int i = 0; i < n; i++) zmq_msg_close(&f[i]);
  }
  zmq_close(rep);
  return NULL;
}

aoq_status aoqd_curve_start(aoqd_curve *c, void *zctx, aoqd_metrics *mx) {
  c->zctx = zctx;
  c->mx = mx;
  atomic_init(&c->stop, 0);
  /* Bound before any CURVE socket exists: without a handler libzmq would admit every key. */
  c->rep = zmq_socket(zctx, ZMQ_REP);
  int linger = 0;
  if (!c->rep || zmq_setsockopt(c->rep, ZMQ_LINGER, &linger, sizeof linger) ||
      zmq_bind(c->rep, "inproc://zeromq.zap.01")) {
    aoq_status s = aoq_err(AOQ_EIO, "ZAP handler: %s", zmq_strerror(zmq_errno()));
    if (c->rep) zmq_close(c->rep);
    c->rep = NULL;
    return s;
  }
  if (pthread_create(&c->thread, NULL, zap_main, c) != 0)
    return aoq_err(AOQ_ENOMEM, "cannot start the ZAP thread");
  c->started = 1;
  return AOQ_OK;
}

void aoqd_curve_free(aoqd_curve *c) {
  if (!c) return;
  if (c->started) {
    atomic_store(&c->stop, 1);
    pthread_join(c->thread, NULL);
  } else if (c->rep) {
    zmq_close(c->rep);
  }
  free(c->clients);
  free(c);
}
