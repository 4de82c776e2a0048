/*
 * test_cuda_llama_fixture.c — the transformers fixture (tests/unit/test_llama_fixture.c: logits
 * of every position batched, prefill, greedy generation of 20 tokens, chunked prefill) on the
 * CUDA backend, with the same tolerances as on the CPU. Decode steps of one to three sequences
 * run through the captured graphs and the fused ops; the whole group runs with the embedding table
 * in mapped host memory (the default) and again in device memory. Exits 77 only without a CUDA
 * device.
 */
#define AOQ_FIXTURE_DEVICE "cuda:0"
#define AOQ_FIXTURE_BOTH_EMBEDS
#include "tests/unit/test_llama_fixture.c"
