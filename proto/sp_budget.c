/*
 * sp_budget.c - budgeted protobuf-c allocator (see sp_budget.h).
 *
 * Each block carries a header with its size so that free can give the
 * bytes back to the budget; the header is 16 bytes to keep malloc's
 * alignment for doubles and 64-bit integers.
 */
#include "sp_budget.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SP_BUDGET_HDR 16

static void *budget_alloc(void *data, size_t size)
{
    sp_budget *b = data;
    unsigned char *p;
    if (size > b->limit - b->used || size > SIZE_MAX - SP_BUDGET_HDR) {
        b->exceeded = 1;
        return NULL;
    }
    p = malloc(size + SP_BUDGET_HDR);
    if (!p)
        return NULL;
    memcpy(p, &size, sizeof size);
    b->used += size;
    if (b->used > b->peak)
        b->peak = b->used;
    return p + SP_BUDGET_HDR;
}

static void budget_free(void *data, void *ptr)
{
    sp_budget *b = data;
    unsigned char *p;
    size_t size;
    if (!ptr)
        return;
    p = (unsigned char *)ptr - SP_BUDGET_HDR;
    memcpy(&size, p, sizeof size);
    b->used -= size;
    free(p);
}

void sp_budget_init(sp_budget *b, size_t limit)
{
    b->limit = limit;
    b->used = 0;
    b->peak = 0;
    b->exceeded = 0;
    b->allocator.alloc = budget_alloc;
    b->allocator.free = budget_free;
    b->allocator.allocator_data = b;
}

ProtobufCAllocator *sp_budget_allocator(sp_budget *b)
{
    return &b->allocator;
}
