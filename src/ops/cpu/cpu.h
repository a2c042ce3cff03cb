/* cpu.h - the entry points that only the CPU backend has: its kernel table,
 * its threads, and the choice of OpenBLAS kernels. Generic code selects a
 * backend with ops_select (ops.h), which also sets the threads. */
#ifndef MG_CPU_H
#define MG_CPU_H

#include "ops/ops.h"

/* The CPU backend: OpenMP + BLAS. */
const ops_backend_t *ops_cpu(void);
/* n_threads <= 0 keeps the OpenMP default; also sets up each thread's
 * floating-point mode. ops_select calls it for every run (host work of a
 * GPU run included): call it directly only where no backend is selected
 * (tests, bench programs). */
void ops_cpu_set_threads(int n_threads);
/* Call first thing in main(): on a CPU with AVX-512 that OpenBLAS does not
 * recognise as such, re-executes the program with OPENBLAS_CORETYPE set so
 * that OpenBLAS loads its AVX-512 kernels (about 2x the sgemm speed); and
 * unless OMP_WAIT_POLICY or GOMP_SPINCOUNT is set, with OMP_WAIT_POLICY=PASSIVE
 * on a busy machine (a busy core elsewhere would collapse the speed) and
 * GOMP_SPINCOUNT=300000 on a quiet one. An
 * explicit setting wins; returns if exec fails. */
void ops_cpu_select_kernels(char **argv);
/* e.g. "OpenBLAS, SkylakeX kernels" */
const char *ops_cpu_blas_info(void);
int ops_cpu_threads(void);

#endif
