/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Program traces: the writer and the loader of the format in sim/trace.h.
 *
 * The loader maps the file read-only and checks all of it before anyone
 * replays it (header against file size, body hash, every record decodable,
 * the counts, every page a record touches listed), so the replay loop can
 * trust what it decodes and a damaged file is refused with a sentence
 * saying what is wrong, never half-replayed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sim.h"
#include "trace.h"

#define TRACE_PAGE_SHIFT    12          /* the simulated guests' page size */
#define FNV_OFFSET          0xcbf29ce484222325ULL
#define FNV_PRIME           0x100000001b3ULL

static void say(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if ( !err || !errlen )
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t n)
{
    while ( n-- )
        h = (h ^ *p++) * FNV_PRIME;
    return h;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    unsigned int i;

    for ( i = 0; i < 4; i++ )
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
    unsigned int i;

    for ( i = 0; i < 8; i++ )
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
    return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

static void header_encode(const struct sim_trace_header *h, uint8_t *b)
{
    memset(b, 0, SIM_TRACE_HEADER_BYTES);
    memcpy(b, SIM_TRACE_MAGIC, 8);
    put_le32(b + 8, h->version);
    put_le32(b + 12, h->page_shift);
    put_le64(b + 16, h->records);
    put_le64(b + 24, h->instructions);
    put_le64(b + 32, h->loads);
    put_le64(b + 40, h->stores);
    put_le64(b + 48, h->modifies);
    put_le64(b + 56, h->body_bytes);
    put_le64(b + 64, h->nr_pages);
    put_le64(b + 72, h->body_hash);
    put_le32(b + 80, h->program_len);
}

static void header_decode(const uint8_t *b, struct sim_trace_header *h)
{
    h->version = get_le32(b + 8);
    h->page_shift = get_le32(b + 12);
    h->records = get_le64(b + 16);
    h->instructions = get_le64(b + 24);
    h->loads = get_le64(b + 32);
    h->stores = get_le64(b + 40);
    h->modifies = get_le64(b + 48);
    h->body_bytes = get_le64(b + 56);
    h->nr_pages = get_le64(b + 64);
    h->body_hash = get_le64(b + 72);
    h->program_len = get_le32(b + 80);
}

/* ---- the set of pages a trace touches ------------------------------------ */

struct page_set {
    uint64_t *slot;                     /* vpn + 1; 0 = empty */
    size_t cap, used;                   /* cap a power of two */
    uint64_t recent[4];                 /* vpn + 1 of recent inserts: most repeat */
    unsigned int recent_next;
};

static size_t page_hash(uint64_t key, size_t cap)
{
    return (size_t)((key * 0x9e3779b97f4a7c15ULL) >> 17) & (cap - 1);
}

static int page_set_grow(struct page_set *ps)
{
    size_t ncap = ps->cap ? ps->cap * 2 : 4096, i;
    uint64_t *ns = calloc(ncap, sizeof(*ns));

    if ( !ns )
        return -ENOMEM;
    for ( i = 0; i < ps->cap; i++ )
        if ( ps->slot[i] )
        {
            size_t j = page_hash(ps->slot[i], ncap);

            while ( ns[j] )
                j = (j + 1) & (ncap - 1);
            ns[j] = ps->slot[i];
        }
    free(ps->slot);
    ps->slot = ns;
    ps->cap = ncap;
    return 0;
}

static int page_set_add(struct page_set *ps, uint64_t vpn)
{
    uint64_t key = vpn + 1;
    unsigned int r;
    size_t j;

    for ( r = 0; r < 4; r++ )
        if ( ps->recent[r] == key )
            return 0;
    ps->recent[ps->recent_next++ & 3] = key;
    if ( 2 * (ps->used + 1) > ps->cap && page_set_grow(ps) )
        return -ENOMEM;
    for ( j = page_hash(key, ps->cap); ps->slot[j]; j = (j + 1) & (ps->cap - 1) )
        if ( ps->slot[j] == key )
            return 0;
    ps->slot[j] = key;
    ps->used++;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* ---- writer --------------------------------------------------------------- */

struct sim_trace_writer {
    FILE *f;
    char *path, *tmp, *program;
    struct sim_trace_header h;
    uint64_t next_ip;
    uint64_t base[SIM_TRACE_NR_BASES];
    uint64_t base_used[SIM_TRACE_NR_BASES];  /* last use, for replacing the coldest */
    uint64_t tick;
    struct page_set pages;
    int err;                                 /* first error, -errno */
};

int sim_trace_writer_open(const char *path, const char *program,
                          struct sim_trace_writer **out, char *err, size_t errlen)
{
    struct sim_trace_writer *w;
    uint8_t hdr[SIM_TRACE_HEADER_BYTES];
    size_t plen = program ? strlen(program) : 0;
    int rc = -ENOMEM;

    *out = NULL;
    if ( plen > SIM_TRACE_MAX_PROGRAM )
    {
        say(err, errlen, "program text longer than %d bytes", SIM_TRACE_MAX_PROGRAM);
        return -EINVAL;
    }
    w = calloc(1, sizeof(*w));
    if ( !w )
        goto fail;
    w->path = strdup(path);
    w->program = strdup(program ? program : "");
    w->tmp = malloc(strlen(path) + 32);
    if ( !w->path || !w->program || !w->tmp )
        goto fail;
    sprintf(w->tmp, "%s.tmp.%ld", path, (long)getpid());
    w->f = fopen(w->tmp, "wb");
    if ( !w->f )
    {
        rc = -errno;
        say(err, errlen, "%s: %s", w->tmp, strerror(errno));
        goto fail;
    }
    setvbuf(w->f, NULL, _IOFBF, 1 << 20);
    w->h.version = SIM_TRACE_VERSION;
    w->h.page_shift = TRACE_PAGE_SHIFT;
    w->h.program_len = (uint32_t)plen;
    w->h.body_hash = FNV_OFFSET;
    /* The header is written again, complete, when the trace is closed. */
    header_encode(&w->h, hdr);
    if ( fwrite(hdr, sizeof(hdr), 1, w->f) != 1 ||
         (plen && fwrite(w->program, plen, 1, w->f) != 1) )
    {
        rc = -EIO;
        say(err, errlen, "%s: write failed", w->tmp);
        goto fail;
    }
    *out = w;
    return 0;

 fail:
    if ( rc == -ENOMEM )
        say(err, errlen, "out of memory");
    if ( w )
    {
        if ( w->f )
        {
            fclose(w->f);
            unlink(w->tmp);
        }
        free(w->path);
        free(w->tmp);
        free(w->program);
        free(w);
    }
    return rc;
}

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;

    while ( v >= 0x80 )
    {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

static unsigned int size_code(uint32_t size)
{
    unsigned int c;

    for ( c = 0; c < 7; c++ )
        if ( size == 1u << c )
            return c;
    return 7;
}

int sim_trace_writer_add(struct sim_trace_writer *w, enum sim_trace_kind kind,
                         uint64_t addr, uint32_t size)
{
    uint8_t rec[1 + 10 + 10];
    size_t n = 0;
    uint64_t last = addr + size - 1;

    if ( w->err )
        return w->err;
    if ( !size || size > SIM_TRACE_MAX_SIZE || last < addr ||
         (kind == SIM_TRACE_INSTR && size > 31) || kind > SIM_TRACE_MODIFY )
        return -EINVAL;

    if ( kind == SIM_TRACE_INSTR )
    {
        if ( addr == w->next_ip )
            rec[n++] = (uint8_t)size;
        else
        {
            rec[n++] = (uint8_t)(0x20 | size);
            n += put_varint(rec + n, sim_trace_zigzag((int64_t)(addr - w->next_ip)));
        }
        w->next_ip = addr + size;
        w->h.instructions++;
    }
    else
    {
        /* The base nearest the address; a far one replaces the coldest base. */
        unsigned int s, best = 0, code = size_code(size);
        uint64_t bestz = UINT64_MAX;

        for ( s = 0; s < SIM_TRACE_NR_BASES; s++ )
        {
            uint64_t z = sim_trace_zigzag((int64_t)(addr - w->base[s]));

            if ( z < bestz )
            {
                bestz = z;
                best = s;
            }
        }
        if ( bestz >= (1u << 14) )
            for ( s = 0; s < SIM_TRACE_NR_BASES; s++ )
                if ( w->base_used[s] < w->base_used[best] )
                    best = s;
        bestz = sim_trace_zigzag((int64_t)(addr - w->base[best]));
        rec[n++] = (uint8_t)(kind << 6 | code << 3 | best << 1 | (bestz == 0));
        if ( code == 7 )
            n += put_varint(rec + n, size);
        if ( bestz )
            n += put_varint(rec + n, bestz);
        w->base[best] = addr;
        w->base_used[best] = ++w->tick;
        if ( kind == SIM_TRACE_LOAD )
            w->h.loads++;
        else if ( kind == SIM_TRACE_STORE )
            w->h.stores++;
        else
            w->h.modifies++;
    }
    if ( page_set_add(&w->pages, addr >> TRACE_PAGE_SHIFT) ||
         page_set_add(&w->pages, last >> TRACE_PAGE_SHIFT) )
        return w->err = -ENOMEM;
    if ( fwrite(rec, n, 1, w->f) != 1 )
        return w->err = -EIO;
    w->h.body_hash = fnv1a(w->h.body_hash, rec, n);
    w->h.body_bytes += n;
    w->h.records++;
    return 0;
}

void sim_trace_writer_header(const struct sim_trace_writer *w, struct sim_trace_header *h)
{
    *h = w->h;
    h->nr_pages = w->pages.used;
}

int sim_trace_writer_close(struct sim_trace_writer *w, bool commit, char *err, size_t errlen)
{
    uint8_t hdr[SIM_TRACE_HEADER_BYTES], le[8];
    uint64_t *pages = NULL;
    size_t i, n = 0;
    int rc = w->err;

    if ( rc )
        say(err, errlen, "%s: %s while writing", w->tmp, strerror(-rc));
    if ( commit && !rc )
    {
        pages = malloc((w->pages.used + 1) * sizeof(*pages));
        if ( !pages )
        {
            rc = -ENOMEM;
            say(err, errlen, "out of memory");
        }
    }
    if ( commit && !rc )
    {
        for ( i = 0; i < w->pages.cap; i++ )
            if ( w->pages.slot[i] )
                pages[n++] = w->pages.slot[i] - 1;
        qsort(pages, n, sizeof(*pages), cmp_u64);
        for ( i = 0; i < n && !rc; i++ )
        {
            put_le64(le, pages[i]);
            if ( fwrite(le, sizeof(le), 1, w->f) != 1 )
                rc = -EIO;
        }
        w->h.nr_pages = n;
        header_encode(&w->h, hdr);
        if ( !rc && (fseek(w->f, 0, SEEK_SET) || fwrite(hdr, sizeof(hdr), 1, w->f) != 1) )
            rc = -EIO;
        if ( rc )
            say(err, errlen, "%s: write failed", w->tmp);
    }
    if ( fclose(w->f) && commit && !rc )
    {
        rc = -errno;
        say(err, errlen, "%s: %s", w->tmp, strerror(errno));
    }
    if ( commit && !rc && rename(w->tmp, w->path) )
    {
        rc = -errno;
        say(err, errlen, "rename %s -> %s: %s", w->tmp, w->path, strerror(errno));
    }
    if ( !commit || rc )
        unlink(w->tmp);
    free(pages);
    free(w->pages.slot);
    free(w->path);
    free(w->tmp);
    free(w->program);
    free(w);
    return rc;
}

/* ---- loader --------------------------------------------------------------- */

long sim_trace_page_index(const struct sim_trace *t, uint64_t vpn)
{
    uint64_t lo = 0, hi = t->h.nr_pages;

    while ( lo < hi )
    {
        uint64_t mid = lo + (hi - lo) / 2;

        if ( t->pages[mid] < vpn )
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < t->h.nr_pages && t->pages[lo] == vpn ? (long)lo : -1;
}

struct sim_trace *sim_trace_get(struct sim_trace *t)
{
    t->refs++;
    return t;
}

void sim_trace_put(struct sim_trace *t)
{
    if ( !t || --t->refs )
        return;
    munmap(t->map, t->map_bytes);
    free(t->pages);
    free(t->program);
    free(t);
}

void sim_trace_info(const struct sim_trace *t, struct sim_trace_info *info)
{
    memset(info, 0, sizeof(*info));
    info->program = t->program;
    info->records = t->h.records;
    info->instructions = t->h.instructions;
    info->loads = t->h.loads;
    info->stores = t->h.stores;
    info->modifies = t->h.modifies;
    info->nr_pages = t->h.nr_pages;
    info->file_bytes = t->map_bytes;
}

/* Is @vpn listed? A small memo in front of the binary search. */
static bool page_listed(const struct sim_trace *t, uint64_t *memo, uint64_t vpn)
{
    uint64_t *m = &memo[vpn & 255];

    if ( *m == vpn + 1 )
        return true;
    if ( sim_trace_page_index(t, vpn) < 0 )
        return false;
    *m = vpn + 1;
    return true;
}

/* Decode the whole body once: every record well-formed, counts and pages as declared. */
static int check_body(const struct sim_trace *t, char *err, size_t errlen)
{
    struct sim_trace_cursor c;
    struct sim_trace_ref r;
    uint64_t n[4] = { 0 }, rec = 0;
    uint64_t *memo = calloc(256, sizeof(*memo));
    int got;

    if ( !memo )
        return -ENOMEM;
    sim_trace_cursor_init(&c, t->body, t->h.body_bytes);
    while ( (got = sim_trace_next(&c, &r)) == 1 )
    {
        uint64_t last = r.addr + r.size - 1;

        if ( last < r.addr )
        {
            say(err, errlen, "record %llu: access wraps the address space",
                (unsigned long long)rec);
            goto bad;
        }
        if ( !page_listed(t, memo, r.addr >> t->h.page_shift) ||
             !page_listed(t, memo, last >> t->h.page_shift) )
        {
            say(err, errlen, "record %llu: page of address %#llx is not in the page list",
                (unsigned long long)rec, (unsigned long long)r.addr);
            goto bad;
        }
        n[r.kind]++;
        rec++;
    }
    if ( got < 0 )
    {
        say(err, errlen, "record %llu at body byte %llu is malformed",
            (unsigned long long)rec, (unsigned long long)(c.p - t->body));
        goto bad;
    }
    if ( rec != t->h.records || n[SIM_TRACE_INSTR] != t->h.instructions ||
         n[SIM_TRACE_LOAD] != t->h.loads || n[SIM_TRACE_STORE] != t->h.stores ||
         n[SIM_TRACE_MODIFY] != t->h.modifies )
    {
        say(err, errlen, "body holds %llu records (%llu I, %llu L, %llu S, %llu M), "
            "header says %llu (%llu, %llu, %llu, %llu)",
            (unsigned long long)rec, (unsigned long long)n[0], (unsigned long long)n[1],
            (unsigned long long)n[2], (unsigned long long)n[3],
            (unsigned long long)t->h.records, (unsigned long long)t->h.instructions,
            (unsigned long long)t->h.loads, (unsigned long long)t->h.stores,
            (unsigned long long)t->h.modifies);
        goto bad;
    }
    free(memo);
    return 0;
 bad:
    free(memo);
    return -EINVAL;
}

int sim_trace_load(const char *path, struct sim_trace **out, char *err, size_t errlen)
{
    struct sim_trace *t = NULL;
    const uint8_t *b;
    struct stat st;
    uint64_t need, i, off;
    int fd, rc;

    *out = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if ( fd < 0 )
    {
        rc = -errno;
        say(err, errlen, "%s: %s", path, strerror(errno));
        return rc;
    }
    if ( fstat(fd, &st) )
    {
        rc = -errno;
        say(err, errlen, "%s: %s", path, strerror(errno));
        close(fd);
        return rc;
    }
    if ( (uint64_t)st.st_size < SIM_TRACE_HEADER_BYTES )
    {
        say(err, errlen, "%s: %lld bytes: too short for a trace", path, (long long)st.st_size);
        close(fd);
        return -EINVAL;
    }
    t = calloc(1, sizeof(*t));
    if ( !t )
    {
        close(fd);
        say(err, errlen, "out of memory");
        return -ENOMEM;
    }
    t->refs = 1;
    t->map_bytes = (size_t)st.st_size;
    t->map = mmap(NULL, t->map_bytes, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if ( t->map == MAP_FAILED )
    {
        rc = -errno;
        say(err, errlen, "%s: mmap: %s", path, strerror(errno));
        free(t);
        return rc;
    }
    b = t->map;
    rc = -EINVAL;
    if ( memcmp(b, SIM_TRACE_MAGIC, 8) )
    {
        say(err, errlen, "%s: not a memswap trace (bad magic)", path);
        goto fail;
    }
    header_decode(b, &t->h);
    if ( t->h.version != SIM_TRACE_VERSION )
    {
        say(err, errlen, "%s: trace format version %u, this simulator reads %u",
            path, t->h.version, SIM_TRACE_VERSION);
        goto fail;
    }
    if ( t->h.page_shift != TRACE_PAGE_SHIFT )
    {
        say(err, errlen, "%s: page shift %u, the simulator's guests have %u",
            path, t->h.page_shift, TRACE_PAGE_SHIFT);
        goto fail;
    }
    /* The sizes must add up to the file's exactly (each bounded first: no overflow). */
    if ( t->h.program_len > SIM_TRACE_MAX_PROGRAM || t->h.body_bytes > t->map_bytes ||
         t->h.nr_pages > t->map_bytes / 8 )
        need = UINT64_MAX;
    else
        need = SIM_TRACE_HEADER_BYTES + t->h.program_len + t->h.body_bytes + t->h.nr_pages * 8;
    if ( need != t->map_bytes )
    {
        say(err, errlen, "%s: header declares %llu bytes of program, body and pages; "
            "the file has %llu after the header (truncated or not a trace)", path,
            (unsigned long long)(t->h.program_len + t->h.body_bytes + t->h.nr_pages * 8),
            (unsigned long long)(t->map_bytes - SIM_TRACE_HEADER_BYTES));
        goto fail;
    }
    off = SIM_TRACE_HEADER_BYTES;
    t->program = malloc(t->h.program_len + 1);
    t->pages = malloc((t->h.nr_pages + 1) * sizeof(*t->pages));
    if ( !t->program || !t->pages )
    {
        rc = -ENOMEM;
        say(err, errlen, "out of memory");
        goto fail;
    }
    memcpy(t->program, b + off, t->h.program_len);
    t->program[t->h.program_len] = '\0';
    off += t->h.program_len;
    t->body = b + off;
    off += t->h.body_bytes;
    for ( i = 0; i < t->h.nr_pages; i++ )
    {
        t->pages[i] = get_le64(b + off + 8 * i);
        if ( i && t->pages[i] <= t->pages[i - 1] )
        {
            say(err, errlen, "%s: page list not strictly increasing at entry %llu",
                path, (unsigned long long)i);
            goto fail;
        }
    }
    madvise(t->map, t->map_bytes, MADV_SEQUENTIAL);
    if ( fnv1a(FNV_OFFSET, t->body, t->h.body_bytes) != t->h.body_hash )
    {
        say(err, errlen, "%s: body checksum mismatch (damaged file)", path);
        goto fail;
    }
    rc = check_body(t, err, errlen);
    if ( rc )
    {
        /* check_body said what; prefix the file name */
        if ( err && errlen )
        {
            char tmp[256];

            snprintf(tmp, sizeof(tmp), "%s", err);
            say(err, errlen, "%s: %s", path, tmp);
        }
        goto fail;
    }
    madvise(t->map, t->map_bytes, MADV_NORMAL);
    *out = t;
    return 0;

 fail:
    sim_trace_put(t);
    return rc;
}
