/*
 * models.h — model lifecycle in the daemon: the resident models, their load (at start or by
 * `aoqctl load`, on a worker thread), unload, and live reconfiguration (aoq_model_prepare on a
 * worker thread while steps go on; the scheduler commits between two steps).
 *
 * Threading: the set is owned by the scheduler thread. Worker threads touch only their own
 * aoqd_work record; the scheduler polls it with aoqd_models_poll.
 */
#ifndef AOQD_MODELS_H
#define AOQD_MODELS_H

#include <pthread.h>
#include <stdatomic.h>

#include "core/model.h"
#include "daemon/metrics.h"

typedef struct aoqd_model {
  char name[256];
  aoq_model *m;
  float *logits; /* [max_rows, vocab] step output */
  int max_rows, vocab;
  int page_size;
  uint64_t reconfigures;
} aoqd_model;

/* A background load or reconfigure. */
typedef struct aoqd_work {
  int kind; /* AOQD_WORK_LOAD, AOQD_WORK_RECONFIGURE */
  char model[256], config[64];
  int synthetic;
  aoqd_model *target; /* reconfigure: the model being prepared (never unloaded meanwhile) */
  aoq_model *loaded;  /* load result */
  aoq_model_weights *prepared;
  aoq_status status;
  char error[256];
  atomic_int done;
  pthread_t thread;
  void *cookie;        /* the scheduler's reply address (malloc'ed; freed by whoever polls) */
  aoq_model_opts opts; /* load defaults */
  aoq_device *dev;
} aoqd_work;

enum { AOQD_WORK_LOAD = 1, AOQD_WORK_RECONFIGURE = 2 };

typedef struct aoqd_models {
  aoq_device *dev;         /* borrowed */
  aoq_model_opts defaults; /* kv pages, page size, seqs, batch tokens for every load */
  aoqd_model *items[AOQD_MAX_MODELS];
  int n;
  aoqd_work *work[AOQD_MAX_MODELS];
  int n_work;
} aoqd_models;

/* Loads synchronously (daemon start). AOQ_EBUSY if a model of that name exists. */
aoq_status aoqd_models_load(aoqd_models *ms, const char *name, const char *config, int synthetic);
aoqd_model *aoqd_models_find(aoqd_models *ms, const char *name);
/* Frees the model; the caller has closed its sequences. AOQ_ENOTFOUND, AOQ_EBUSY (reconfiguring).
 */
aoq_status aoqd_models_unload(aoqd_models *ms, const char *name);
/* Starts a background load or reconfigure; cookie comes back from poll. AOQ_EBUSY if that model
 * is already loading or reconfiguring. */
aoq_status aoqd_models_start(aoqd_models *ms, int kind, const char *name, const char *config,
                             int synthetic, void *cookie);
/* Finishes the first completed background job: adds a loaded model or commits a prepared weight
 * set (between two steps). Returns 1 and fills *status, the detail and *cookie when one
 * finished, 0 otherwise. */
int aoqd_models_poll(aoqd_models *ms, aoq_status *status, char *detail, size_t n, void **cookie);
int aoqd_models_reconfiguring(const aoqd_models *ms, const aoqd_model *m);
/* Waits for running jobs and frees every model. */
void aoqd_models_free(aoqd_models *ms);
/* Publishes every model's info into mx (takes mx->mu). */
void aoqd_models_publish(aoqd_models *ms, aoqd_metrics *mx);

#endif
