/*
 * bench_peak.c - this machine's ceiling: FP32 FMA peak per core and for all
 * cores, and stream-triad memory bandwidth (bench_ceiling.c).  Not a test:
 * prints a markdown table for docs/benchmarks.md ("CPU: the ceiling").
 *
 *   bench_peak [threads [reps]]     threads: default one per online core
 */
#include <stdio.h>
#include <unistd.h>

#include "bench_ceiling.h"
#include "sb_parse.h"

int main(int argc, char **argv)
{
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = online > 0 ? (int)online : 1, reps = 5;
    if ((argc > 1 && sb_parse_int(argv[1], 1, 1024, &threads)) ||
        (argc > 2 && sb_parse_int(argv[2], 1, 1000, &reps))) {
        fprintf(stderr, "usage: bench_peak [THREADS [REPS]]\n");
        return 2;
    }
    bench_ceiling c;
    if (bench_ceiling_measure(&c, threads, reps)) {
        fprintf(stderr, "bench_peak: could not start %d threads or allocate 192 MiB\n", threads);
        return 1;
    }
    printf("| kernel | lanes x accumulators | FP32 GFLOP/s, 1 thread | FP32 GFLOP/s, %d threads "
           "| triad GB/s, %d threads |\n|---|---|---|---|---|\n",
           threads, threads);
    printf("| %s | %d x %d | %.1f | %.1f | %.1f |\n", c.isa, c.lanes, c.accs, c.gflops_one,
           c.gflops_all, c.triad_gbs);
    printf("(best of %d repetitions)\n", reps);
    return 0;
}
