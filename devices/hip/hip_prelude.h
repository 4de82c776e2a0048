/*
 * hip_prelude.h — included first by every HIP translation unit of devices/hip (the wrappers that
 * compile kernels/gpu/<name>.cu, and hip.c through hip_names.h).
 *
 * Why: a build with both CUDA and HIP compiles the same kernel sources twice, and both copies end
 * up in one link (aoq_cuda and aoq_hip under aoq_devices). The HIP copy therefore gets its own
 * names: the C entry points aoq_gk_* are renamed to aoq_hip_gk_* by the generated hip_names.h
 * (definitions and hip.c's calls alike), and everything else in a .cu file (kernels, templates,
 * helpers with external linkage) is compiled inside `namespace aoq_hip` by the wrapper. The
 * headers those files include are included here first, at global scope, so that their include
 * guards keep them out of the namespace.
 */
#ifndef AOQ_DEVICES_HIP_HIP_PRELUDE_H
#define AOQ_DEVICES_HIP_HIP_PRELUDE_H

#include "devices/hip/hip_names.h" /* generated from kernels/gpu/gpu_kernels.h */

#ifdef __HIPCC__
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
// clang-format off
#include "kernels/gpu/vendor.h" /* first: hip_runtime.h defines what numerics.h uses */
#include "base/numerics.h"
#include "kernels/gpu/gpu_kernels.h"
// clang-format on
#endif

#endif
