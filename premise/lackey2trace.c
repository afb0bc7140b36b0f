/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * lackey2trace: valgrind lackey's --trace-mem=yes output, read from a pipe,
 * written as a memswap trace (format: sim/trace.h).
 *
 *   valgrind --tool=lackey --trace-mem=yes --basic-counts=no --log-fd=3 \
 *       PROGRAM... 3>&1 >/dev/null | lackey2trace -o OUT.mtr -p 'PROGRAM...'
 *
 * Lackey writes one line per reference ("I  addr,size", " L addr,size",
 * " S addr,size", " M addr,size", addresses in hex) and one write(2) per
 * line: a pipe that wakes its reader for every line costs more than the
 * tracing itself. So the pipe is enlarged to 1 MiB and the reader naps a
 * couple of milliseconds whenever it finds little waiting, letting lackey's
 * writes pile up instead.
 *
 * Lines valgrind itself logs ("==pid== ...", "--pid-- ...") are copied to
 * stderr. Anything else is an error: the trace is abandoned (nothing is
 * left under OUT) and the exit status is 1. On success, one summary line.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sim/trace.h"

#define PIPE_BYTES      (1 << 20)
#define BUF_BYTES       (4 << 20)
#define NAP_BELOW       (256 << 10)     /* read less than this: nap before the next read */
#define NAP_NS          2000000

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void usage(void)
{
    fprintf(stderr, "usage: lackey2trace -o OUT.mtr [-p PROGRAM-TEXT] < lackey-output\n");
    exit(2);
}

/* Parse "hex,dec" up to the end of the line; false if it is not that. */
static bool parse_ref(const char *p, const char *end, uint64_t *addr, uint32_t *size)
{
    uint64_t a = 0, s = 0;
    unsigned int digits = 0;

    for ( ; p < end && *p != ','; p++, digits++ )
    {
        unsigned int v;

        if ( *p >= '0' && *p <= '9' )
            v = *p - '0';
        else if ( *p >= 'a' && *p <= 'f' )
            v = *p - 'a' + 10;
        else if ( *p >= 'A' && *p <= 'F' )
            v = *p - 'A' + 10;
        else
            return false;
        if ( digits >= 16 )
            return false;
        a = a << 4 | v;
    }
    if ( !digits || p >= end )
        return false;
    for ( p++, digits = 0; p < end; p++, digits++ )
    {
        if ( *p < '0' || *p > '9' || digits >= 6 )
            return false;
        s = s * 10 + (*p - '0');
    }
    if ( !digits || !s )
        return false;
    *addr = a;
    *size = (uint32_t)s;
    return true;
}

int main(int argc, char **argv)
{
    const char *out = NULL, *program = "";
    struct sim_trace_writer *w;
    struct sim_trace_header h;
    char err[512];
    char *buf;
    size_t have = 0;
    uint64_t line_no = 0, vg_lines = 0;
    double t0 = now_s();
    int opt, rc;

    while ( (opt = getopt(argc, argv, "o:p:")) != -1 )
    {
        if ( opt == 'o' )
            out = optarg;
        else if ( opt == 'p' )
            program = optarg;
        else
            usage();
    }
    if ( !out || optind != argc )
        usage();
    buf = malloc(BUF_BYTES);
    if ( !buf )
    {
        fprintf(stderr, "lackey2trace: out of memory\n");
        return 1;
    }
    /* Not a pipe (a file, a terminal): the call fails and nothing changes. */
    (void)fcntl(0, F_SETPIPE_SZ, PIPE_BYTES);
    rc = sim_trace_writer_open(out, program, &w, err, sizeof(err));
    if ( rc )
    {
        fprintf(stderr, "lackey2trace: %s\n", err);
        return 1;
    }

    for ( ;; )
    {
        ssize_t n = read(0, buf + have, BUF_BYTES - have);
        char *p, *end, *nl;

        if ( n < 0 && errno == EINTR )
            continue;
        if ( n < 0 )
        {
            fprintf(stderr, "lackey2trace: read: %s\n", strerror(errno));
            goto fail;
        }
        if ( n == 0 )
        {
            if ( have )
            {
                fprintf(stderr, "lackey2trace: input ends inside line %llu\n",
                        (unsigned long long)line_no + 1);
                goto fail;
            }
            break;
        }
        have += (size_t)n;
        p = buf;
        end = buf + have;
        while ( (nl = memchr(p, '\n', end - p)) )
        {
            enum sim_trace_kind kind;
            uint64_t addr;
            uint32_t size;
            bool ok = true;

            line_no++;
            if ( nl - p >= 4 && p[0] == 'I' && p[1] == ' ' && p[2] == ' ' )
                kind = SIM_TRACE_INSTR;
            else if ( nl - p >= 4 && p[0] == ' ' && p[2] == ' ' &&
                      (p[1] == 'L' || p[1] == 'S' || p[1] == 'M') )
                kind = p[1] == 'L' ? SIM_TRACE_LOAD : p[1] == 'S' ? SIM_TRACE_STORE
                                                                 : SIM_TRACE_MODIFY;
            else if ( nl - p >= 2 && (p[0] == '=' || p[0] == '-' || p[0] == '*') &&
                      p[1] == p[0] )
            {
                fprintf(stderr, "%.*s\n", (int)(nl - p), p);   /* valgrind's own */
                vg_lines++;
                p = nl + 1;
                continue;
            }
            else
                ok = false;
            if ( ok )
                ok = parse_ref(p + 3, nl, &addr, &size);
            if ( !ok )
            {
                fprintf(stderr, "lackey2trace: line %llu is not a lackey reference: %.*s\n",
                        (unsigned long long)line_no, (int)(nl - p > 80 ? 80 : nl - p), p);
                goto fail;
            }
            rc = sim_trace_writer_add(w, kind, addr, size);
            if ( rc )
            {
                fprintf(stderr, "lackey2trace: line %llu (%.*s): %s\n",
                        (unsigned long long)line_no, (int)(nl - p), p,
                        rc == -EINVAL ? "size out of range" : strerror(-rc));
                goto fail;
            }
            p = nl + 1;
        }
        have = (size_t)(end - p);
        if ( have == BUF_BYTES )
        {
            fprintf(stderr, "lackey2trace: line %llu longer than %d bytes\n",
                    (unsigned long long)line_no + 1, BUF_BYTES);
            goto fail;
        }
        memmove(buf, p, have);
        if ( (size_t)n < NAP_BELOW )
            nanosleep(&(struct timespec){ 0, NAP_NS }, NULL);
    }

    sim_trace_writer_header(w, &h);
    if ( !h.instructions )
    {
        fprintf(stderr, "lackey2trace: no references in the input (was lackey run "
                "with --trace-mem=yes and --log-fd pointing at this pipe?)\n");
        goto fail;
    }
    rc = sim_trace_writer_close(w, true, err, sizeof(err));
    free(buf);
    if ( rc )
    {
        fprintf(stderr, "lackey2trace: %s\n", err);
        return 1;
    }
    printf("lackey2trace: %s: %llu records (%llu instructions, %llu loads, %llu stores, "
           "%llu modifies), %llu pages, %.2f bytes/record, %.1f s\n", out,
           (unsigned long long)h.records, (unsigned long long)h.instructions,
           (unsigned long long)h.loads, (unsigned long long)h.stores,
           (unsigned long long)h.modifies, (unsigned long long)h.nr_pages,
           (double)h.body_bytes / (double)h.records, now_s() - t0);
    return 0;

 fail:
    sim_trace_writer_close(w, false, NULL, 0);
    free(buf);
    return 1;
}
