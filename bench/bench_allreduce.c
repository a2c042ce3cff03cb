/* bench_allreduce.c - MPI_Allreduce (sum, float32, in place) timed at the
 * sizes given, osu_allreduce-style: warm-up calls, then the mean of
 * timed calls, the slowest rank's time counting. Prints per size the
 * seconds, the algorithm bandwidth (bytes / s) and the bus bandwidth
 * (x 2(p-1)/p: what each link carries in a ring allreduce), which the
 * cost model of docs/distributed.md is fed with.
 * Build: mpicc -O2 bench/bench_allreduce.c -o build/bench_allreduce
 * Usage: mpirun -np P build/bench_allreduce FLOATS [FLOATS...] */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, p;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &p);
    if (rank == 0) printf("%14s %12s %12s %12s\n", "floats", "seconds", "algbw GB/s", "busbw GB/s");
    for (int a = 1; a < argc; a++) {
        long n = atol(argv[a]);
        float *x = malloc((size_t)n * sizeof(float));
        if (!x || n <= 0 || n > 1L << 30) {
            fprintf(stderr, "bench_allreduce: bad size %s\n", argv[a]);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        for (long i = 0; i < n; i++)
            x[i] = 1e-3f * (float)(i % 1000);
        /* fewer repetitions for big buffers: about 1 GB moved per size */
        int iters = (int)(1e9 / ((double)n * 4) + 1);
        iters = iters > 200 ? 200 : iters < 3 ? 3 : iters;
        for (int i = 0; i < 2; i++)
            MPI_Allreduce(MPI_IN_PLACE, x, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        for (int i = 0; i < iters; i++)
            MPI_Allreduce(MPI_IN_PLACE, x, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        double t = (MPI_Wtime() - t0) / iters, worst;
        MPI_Reduce(&t, &worst, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
        double bytes = (double)n * sizeof(float);
        if (rank == 0)
            printf("%14ld %12.6f %12.3f %12.3f\n", n, worst, bytes / worst / 1e9,
                   bytes / worst / 1e9 * 2.0 * (p - 1) / p);
        free(x);
    }
    MPI_Finalize();
    return 0;
}
