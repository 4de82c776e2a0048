/*
 * cl_kernels.h — the OpenCL C kernels of kernels/cl, embedded into the binary at build time
 * (kernels/cl/CMakeLists.txt): their source text (for OpenCL runtimes that compile source, such as
 * PoCL in the tests) and their SPIR-V modules (for Level Zero). Plain C, no OpenCL header needed.
 *
 * Every module is compiled as aoq_cl.h followed by the module's .cl file: from source, pass
 * `aoq_cl_prelude` then the module's text to clCreateProgramWithSource with AOQ_CL_BUILD_OPTIONS.
 */
#ifndef AOQ_KERNELS_CL_CL_KERNELS_H
#define AOQ_KERNELS_CL_CL_KERNELS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct aoq_cl_blob {
  const char *name;          /* module name: the .cl file without extension ("ops", "linear") */
  const unsigned char *data; /* bytes, followed by a NUL (so text blobs are C strings) */
  size_t size;               /* bytes without the NUL */
} aoq_cl_blob;

/* Options for building the sources: the same numerics as the SPIR-V compile (correctly rounded
 * fp32 division and sqrt, which the quantizers' scale rules need). */
#define AOQ_CL_BUILD_OPTIONS "-cl-std=CL1.2 -cl-fp32-correctly-rounded-divide-sqrt"

/* aoq_cl.h text; module sources (library aoq_clsrc, always built). */
extern const aoq_cl_blob aoq_cl_prelude[];
extern const int aoq_cl_prelude_count;
extern const aoq_cl_blob aoq_cl_sources[];
extern const int aoq_cl_sources_count;

/* SPIR-V modules, validated by spirv-val at build time (library aoq_clspv, built with AOQ_XPU). */
extern const aoq_cl_blob aoq_cl_spirv[];
extern const int aoq_cl_spirv_count;

#ifdef __cplusplus
}
#endif
#endif
