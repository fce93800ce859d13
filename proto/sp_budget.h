/*
 * sp_budget.h - a protobuf-c allocator with a hard memory budget.
 *
 * Untrusted bytes are parsed with this allocator so that a small message
 * cannot make the parser allocate without bound (many tiny sub-messages
 * cost far more in memory than on the wire).  When the budget would be
 * exceeded the allocation fails, protobuf-c's unpack returns NULL and
 * `exceeded` tells the caller why.
 */
#ifndef SP_BUDGET_H
#define SP_BUDGET_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

typedef struct sp_budget {
    size_t limit; /* most bytes live at once */
    size_t used;  /* bytes live now */
    size_t peak;  /* most bytes live so far */
    int exceeded; /* an allocation was refused for the budget */
    ProtobufCAllocator allocator;
} sp_budget;

/* Set up b with a limit in bytes; b must outlive every message unpacked
 * with sp_budget_allocator(b). */
void sp_budget_init(sp_budget *b, size_t limit);
ProtobufCAllocator *sp_budget_allocator(sp_budget *b);

#endif
