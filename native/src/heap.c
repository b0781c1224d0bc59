/* A binary min-heap of connections by deadline; each connection knows its index in it. */
#include <stdlib.h>

#include "conn.h"

static void place(struct heap *h, uint32_t i, struct conn *c) {
  h->items[i] = c;
  c->heap = i;
}

static void sift_up(struct heap *h, uint32_t i) {
  struct conn *c = h->items[i];
  while (i > 0) {
    uint32_t parent = (i - 1) / 2;
    if (h->items[parent]->key <= c->key) break;
    place(h, i, h->items[parent]);
    i = parent;
  }
  place(h, i, c);
}

static void sift_down(struct heap *h, uint32_t i) {
  struct conn *c = h->items[i];
  for (;;) {
    uint32_t child = 2 * i + 1;
    if (child >= h->len) break;
    if (child + 1 < h->len && h->items[child + 1]->key < h->items[child]->key) child += 1;
    if (h->items[child]->key >= c->key) break;
    place(h, i, h->items[child]);
    i = child;
  }
  place(h, i, c);
}

int heap_push(struct heap *h, struct conn *c) {
  if (h->len == h->cap) {
    uint32_t cap = h->cap == 0 ? 64 : h->cap * 2;
    struct conn **items = realloc(h->items, cap * sizeof *items);
    if (items == NULL) return -1;
    h->items = items;
    h->cap = cap;
  }
  place(h, h->len, c);
  h->len += 1;
  sift_up(h, c->heap);
  return 0;
}

void heap_remove(struct heap *h, struct conn *c) {
  uint32_t i = c->heap;
  if (i == NO_HEAP) return;
  c->heap = NO_HEAP;
  h->len -= 1;
  if (i == h->len) return;
  struct conn *moved = h->items[h->len];
  place(h, i, moved);
  sift_down(h, i);
  sift_up(h, moved->heap);
}

void heap_update(struct heap *h, struct conn *c) {
  if (c->heap == NO_HEAP) return;
  sift_up(h, c->heap);
  sift_down(h, c->heap);
}
