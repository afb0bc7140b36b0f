/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Memory-reference traces of real programs: the file format and its codec.
 *
 * Shared by the writer (premise/lackey2trace.c, the tests), the loader
 * (sim/trace.c) and the replay (sim/llc.c). sim/sim.h has the API the
 * simulator's users call; this header is what a tool that writes traces
 * needs.
 *
 * A trace is the sequence of memory references one run of a program made,
 * as valgrind's lackey reports them (--trace-mem=yes): an instruction fetch
 * per executed instruction ("I", with the instruction's length) followed by
 * its data accesses: loads ("L"), stores ("S") and modifies ("M": a load and
 * a store of the same address and size by one instruction, which caches see
 * as one access). Addresses are the program's virtual addresses.
 *
 * File layout (integers little-endian):
 *
 *   offset 0    header, SIM_TRACE_HEADER_BYTES (128):
 *     0   magic "MSWTRACE"
 *     8   u32 version (1)
 *     12  u32 page_shift: log2 of the page size the pages list uses (12)
 *     16  u64 records: every record in the body
 *     24  u64 instructions: "I" records
 *     32  u64 loads, 40 u64 stores, 48 u64 modifies
 *     56  u64 body_bytes
 *     64  u64 nr_pages
 *     72  u64 body_hash: FNV-1a 64 of the body bytes
 *     80  u32 program_len
 *     84  44 bytes zero
 *   128         program: program_len bytes, the command line traced (text)
 *   then        body: body_bytes of records, encoded as below
 *   then        pages: nr_pages u64, every virtual page number (address >>
 *               page_shift) that a record's first or last byte falls in,
 *               strictly increasing
 *   end of file (nothing may follow)
 *
 * Records are variable-length, byte-aligned, starting with an opcode byte:
 *
 *   0x01..0x1f  instruction fetch at the predicted address, length = opcode
 *   0x21..0x3f  instruction fetch elsewhere, length = opcode - 0x20; a
 *               varint zigzag(address - predicted address) follows
 *               (the predicted address is the previous fetch's address plus
 *               its length: straight-line code costs one byte a fetch)
 *   0x40..0xff  data access: bits 7-6 kind (1 load, 2 store, 3 modify),
 *               bits 5-3 size code (size = 1 << code for 0..6; 7: a varint
 *               size follows the opcode), bits 2-1 base slot s, bit 0 "same":
 *               1 = the address is base[s], 0 = a varint zigzag(address -
 *               base[s]) follows (after the size varint, if any); then
 *               base[s] := address. Four bases let stack, heap and stream
 *               accesses each stay a byte or two from their own base.
 *   0x00, 0x20  invalid
 *
 * The predicted address and the four bases are 0 at the start of the body.
 * Varints are unsigned LEB128 (7 bits a byte, least significant first, at
 * most 10 bytes); zigzag maps signed d to (d << 1) ^ (d >> 63). Sizes are
 * 1..SIM_TRACE_MAX_SIZE bytes. Typical traces take 1.5-2 bytes a record.
 */
#ifndef SIM_TRACE_H
#define SIM_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIM_TRACE_MAGIC         "MSWTRACE"
#define SIM_TRACE_VERSION       1
#define SIM_TRACE_HEADER_BYTES  128
#define SIM_TRACE_MAX_PROGRAM   4096
#define SIM_TRACE_MAX_SIZE      4096      /* bytes one record may access */
#define SIM_TRACE_NR_BASES      4

enum sim_trace_kind {
    SIM_TRACE_INSTR  = 0,
    SIM_TRACE_LOAD   = 1,
    SIM_TRACE_STORE  = 2,
    SIM_TRACE_MODIFY = 3,
};

struct sim_trace_header {
    uint32_t version;
    uint32_t page_shift;
    uint64_t records;
    uint64_t instructions;
    uint64_t loads, stores, modifies;
    uint64_t body_bytes;
    uint64_t nr_pages;
    uint64_t body_hash;
    uint32_t program_len;
};

/* One decoded record. */
struct sim_trace_ref {
    uint64_t addr;
    uint32_t size;
    enum sim_trace_kind kind;
};

/* Decoder state: where in the body, and the predictors. */
struct sim_trace_cursor {
    const uint8_t *p, *end;
    uint64_t next_ip;                   /* predicted instruction address */
    uint64_t base[SIM_TRACE_NR_BASES];
};

static inline void sim_trace_cursor_init(struct sim_trace_cursor *c,
                                         const uint8_t *body, uint64_t bytes)
{
    unsigned int i;

    c->p = body;
    c->end = body + bytes;
    c->next_ip = 0;
    for ( i = 0; i < SIM_TRACE_NR_BASES; i++ )
        c->base[i] = 0;
}

static inline bool sim_trace_get_varint(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
    const uint8_t *p = *pp;
    uint64_t x = 0;
    unsigned int shift;

    for ( shift = 0; shift < 70 && p < end; shift += 7 )
    {
        uint8_t b = *p++;

        x |= (uint64_t)(b & 0x7f) << shift;
        if ( !(b & 0x80) )
        {
            *pp = p;
            *v = x;
            return true;
        }
    }
    return false;                       /* truncated or longer than 10 bytes */
}

static inline uint64_t sim_trace_unzigzag(uint64_t z)
{
    return (z >> 1) ^ (0 - (z & 1));
}

static inline uint64_t sim_trace_zigzag(int64_t d)
{
    return ((uint64_t)d << 1) ^ (uint64_t)(d >> 63);
}

/*
 * Decode the next record: 1 and *r filled, 0 at the end of the body, -1 on
 * a malformed record (the cursor is left where it was).
 */
static inline int sim_trace_next(struct sim_trace_cursor *c, struct sim_trace_ref *r)
{
    const uint8_t *p = c->p;
    uint64_t v;
    uint8_t op;

    if ( p >= c->end )
        return 0;
    op = *p++;
    if ( op < 0x40 )
    {
        uint32_t len = op & 0x1f;

        if ( !len )
            return -1;
        r->addr = c->next_ip;
        if ( op & 0x20 )
        {
            if ( !sim_trace_get_varint(&p, c->end, &v) )
                return -1;
            r->addr += sim_trace_unzigzag(v);
        }
        r->size = len;
        r->kind = SIM_TRACE_INSTR;
        c->next_ip = r->addr + len;
    }
    else
    {
        unsigned int code = (op >> 3) & 7, slot = (op >> 1) & 3;

        if ( code == 7 )
        {
            if ( !sim_trace_get_varint(&p, c->end, &v) || !v || v > SIM_TRACE_MAX_SIZE )
                return -1;
            r->size = (uint32_t)v;
        }
        else
            r->size = 1u << code;
        r->addr = c->base[slot];
        if ( !(op & 1) )
        {
            if ( !sim_trace_get_varint(&p, c->end, &v) )
                return -1;
            r->addr += sim_trace_unzigzag(v);
        }
        c->base[slot] = r->addr;
        r->kind = (enum sim_trace_kind)(op >> 6);
    }
    c->p = p;
    return 1;
}

/* ---- writing ----------------------------------------------------------- */

/*
 * A trace writer: records go to a temporary file next to @path, which is
 * renamed onto @path by a successful sim_trace_writer_close() only, so an
 * interrupted capture never leaves a partial trace under the final name.
 * Errors are negative errno values; @err gets a sentence.
 */
struct sim_trace_writer;
int sim_trace_writer_open(const char *path, const char *program,
                          struct sim_trace_writer **out, char *err, size_t errlen);
/* Append one record (size 1..SIM_TRACE_MAX_SIZE; instructions 1..31). */
int sim_trace_writer_add(struct sim_trace_writer *w, enum sim_trace_kind kind,
                         uint64_t addr, uint32_t size);
/* Finish (@commit) or abandon (!@commit) the trace; frees @w either way. */
int sim_trace_writer_close(struct sim_trace_writer *w, bool commit, char *err, size_t errlen);
/* The counts so far (header fields; body_hash is final only after close). */
void sim_trace_writer_header(const struct sim_trace_writer *w, struct sim_trace_header *h);

/* ---- a loaded trace (sim/trace.c; the replay in sim/llc.c reads it) ----- */

struct sim_trace {
    unsigned int refs;
    struct sim_trace_header h;
    const uint8_t *body;                /* h.body_bytes, inside the mapping */
    uint64_t *pages;                    /* h.nr_pages, strictly increasing */
    char *program;
    void *map;                          /* the file, mapped read-only */
    size_t map_bytes;
};

struct sim_trace *sim_trace_get(struct sim_trace *t);
/* Index of virtual page @vpn in t->pages, or -1 if the trace never touches it. */
long sim_trace_page_index(const struct sim_trace *t, uint64_t vpn);

#endif /* SIM_TRACE_H */
