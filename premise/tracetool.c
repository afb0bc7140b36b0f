/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * tracetool: look at memswap traces, and replay them through the
 * simulator's cache model in validation mode.
 *
 *   tracetool info TRACE...
 *       one line per trace: records, instructions, pages, bytes, program
 *   tracetool replay-flat --I1=S,A,L --D1=S,A,L --LL=S,A,L TRACE
 *       load the trace (every check of sim_trace_load), set up the model's
 *       LLC with the --LL geometry (cachegrind's option syntax: size,
 *       associativity, line size), replay the whole trace once through a
 *       cold L1 of the --I1/--D1 geometry with machine address = virtual
 *       address (sim_trace_replay_flat), and print the counts as key=value
 *       pairs on one line, cachegrind's names: Ir I1mr ILmr Dr D1mr DLmr Dw
 *       D1mw DLmw, plus records and seconds.
 *
 * Exit status 0, 1 on a bad trace or option (with a message), 2 on usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim/sim.h"

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void usage(void)
{
    fprintf(stderr, "usage: tracetool info TRACE...\n"
                    "       tracetool replay-flat --I1=S,A,L --D1=S,A,L --LL=S,A,L TRACE\n");
    exit(2);
}

static struct sim_trace *load(const char *path)
{
    struct sim_trace *t;
    char err[512];

    if ( sim_trace_load(path, &t, err, sizeof(err)) )
    {
        fprintf(stderr, "tracetool: %s\n", err);
        exit(1);
    }
    return t;
}

static int info(int argc, char **argv)
{
    int i;

    for ( i = 0; i < argc; i++ )
    {
        struct sim_trace *t = load(argv[i]);
        struct sim_trace_info in;

        sim_trace_info(t, &in);
        printf("%s: records=%llu instructions=%llu loads=%llu stores=%llu modifies=%llu "
               "pages=%llu bytes=%llu bytes_per_record=%.2f program=%s\n", argv[i],
               (unsigned long long)in.records, (unsigned long long)in.instructions,
               (unsigned long long)in.loads, (unsigned long long)in.stores,
               (unsigned long long)in.modifies, (unsigned long long)in.nr_pages,
               (unsigned long long)in.file_bytes, (double)in.file_bytes / (double)in.records,
               in.program);
        sim_trace_put(t);
    }
    return 0;
}

/* "--NAME=size,assoc,line" into @c; false if @arg is not that option. */
static bool geometry_opt(const char *arg, const char *name, struct sim_llc_config *c)
{
    size_t n = strlen(name);
    unsigned long long size, assoc, line;
    char tail;

    if ( strncmp(arg, name, n) || arg[n] != '=' )
        return false;
    if ( sscanf(arg + n + 1, "%llu,%llu,%llu%c", &size, &assoc, &line, &tail) != 3 ||
         assoc > 1024 || line > 1 << 20 )
    {
        fprintf(stderr, "tracetool: %s: expected %s=size,associativity,line\n", arg, name);
        exit(1);
    }
    c->size_bytes = size;
    c->ways = (uint32_t)assoc;
    c->line_bytes = (uint32_t)line;
    return true;
}

static int replay_flat(int argc, char **argv)
{
    struct sim_llc_config ll = { 0 };
    struct sim_l1_config l1;
    struct sim_trace_counts c;
    struct sim_trace *t;
    const char *path = NULL;
    double t0;
    int i, rc;

    memset(&l1, 0, sizeof(l1));
    for ( i = 0; i < argc; i++ )
    {
        if ( geometry_opt(argv[i], "--I1", &l1.i1) || geometry_opt(argv[i], "--D1", &l1.d1) ||
             geometry_opt(argv[i], "--LL", &ll) )
            continue;
        if ( argv[i][0] == '-' || path )
            usage();
        path = argv[i];
    }
    if ( !path || !ll.size_bytes || !l1.i1.size_bytes || !l1.d1.size_bytes )
        usage();
    t = load(path);
    rc = sim_llc_init(&ll);
    if ( rc )
    {
        fprintf(stderr, "tracetool: the model refuses LL %llu,%u,%u: %s\n",
                (unsigned long long)ll.size_bytes, ll.ways, ll.line_bytes, strerror(-rc));
        return 1;
    }
    t0 = now_s();
    rc = sim_trace_replay_flat(t, &l1, 0, &c);
    if ( rc )
    {
        fprintf(stderr, "tracetool: replay: %s (an L1 geometry the model refuses?)\n",
                strerror(-rc));
        return 1;
    }
    printf("records=%llu Ir=%llu I1mr=%llu ILmr=%llu Dr=%llu D1mr=%llu DLmr=%llu "
           "Dw=%llu D1mw=%llu DLmw=%llu seconds=%.3f\n",
           (unsigned long long)c.records, (unsigned long long)c.i_refs,
           (unsigned long long)c.i1_misses, (unsigned long long)c.ll_i_misses,
           (unsigned long long)c.d_reads, (unsigned long long)c.d1_read_misses,
           (unsigned long long)c.ll_d_read_misses, (unsigned long long)c.d_writes,
           (unsigned long long)c.d1_write_misses, (unsigned long long)c.ll_d_write_misses,
           now_s() - t0);
    sim_llc_fini();
    sim_trace_put(t);
    return 0;
}

int main(int argc, char **argv)
{
    if ( argc < 3 )
        usage();
    if ( !strcmp(argv[1], "info") )
        return info(argc - 2, argv + 2);
    if ( !strcmp(argv[1], "replay-flat") )
        return replay_flat(argc - 2, argv + 2);
    usage();
    return 2;
}
