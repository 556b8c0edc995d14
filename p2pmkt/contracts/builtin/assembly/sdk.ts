// p2pmkt indicator SDK for AssemblyScript, ABI version 1 (docs/CONTRACTS.md).
//
// A contract module re-exports `p2pmkt_alloc` from here and exports its own
//   p2pmkt_eval(visits: usize, nVisits: i32, params: usize, nParams: i32): i32
// which reads the 48-byte visit records with the accessors below and returns the address of
// an Output block (or a negative error code). Compile with `--runtime stub`: memory is never
// freed, the whole instance is thrown away after one evaluation.
//
// Everything is integer arithmetic: results are fixed-point (value / 10**scale).

export const VISIT_SIZE: i32 = 48;

// Access methods (visit record byte 40).
export const METHOD_BROWSER: u8 = 0;
export const METHOD_DESKTOP: u8 = 1;
export const METHOD_APP: u8 = 2;

// Operations (visit record byte 41).
export const OP_VIEW: u8 = 0;
export const OP_CLICK: u8 = 1;
export const OP_CART: u8 = 2;
export const OP_ORDER: u8 = 3;
export const OP_SEARCH: u8 = 4;
export const OP_LOGIN: u8 = 5;
export const OP_OTHER: u8 = 6;

/**
 * Allocate `size` bytes (16-byte aligned, zeroed, never freed). When the store's memory limit
 * leaves no room, end the evaluation with `abort("memory_limit")`, which the host reports as
 * the error "memory_limit" (a bare allocator would hit `unreachable` instead).
 *
 * Memory grows only when the block does not fit, and then by what it needs plus one page of
 * headroom (so the small objects `new` makes next fit too): every `memory.grow` costs the
 * host microseconds, and every byte of memory grown is zeroed again when the instance ends.
 */
export function allocate(size: usize): usize {
  return reserve(size, true);
}

// The allocation behind `allocate` and `p2pmkt_alloc`; `zero` false skips the zeroing where
// the host overwrites the whole block anyway.
function reserve(size: usize, zero: bool): usize {
  // Where the runtime's allocator will place the next block: allocating 0 bytes and freeing
  // that block again (it is the last one, so the stub runtime takes it back) reads it.
  const probe = heap.alloc(0);
  heap.free(probe);
  const end = <u64>probe + <u64>size + 16; // at least the end of the block heap.alloc makes
  const top = <u64>memory.size() << 16; // bytes from here on are fresh, hence zero
  if (end > top) {
    const pages = <i32>((end - top + 0xffff) >> 16);
    if (memory.grow(pages + 1) < 0 && memory.grow(pages) < 0) abort("memory_limit");
  }
  const ptr = heap.alloc(size);
  // Only memory below the old top can have been used before (a block given back by `free`).
  if (zero && <u64>ptr < top) memory.fill(ptr, 0, <usize>min<u64>(<u64>size, top - <u64>ptr));
  return ptr;
}

/** Reserve `size` bytes for the host's input (params, then visits). ABI export. */
export function p2pmkt_alloc(size: i32): i32 {
  return <i32>reserve(<usize>size, false);
}

/** Address of visit record `i` in the window starting at `visits`. */
// @ts-ignore: decorator
@inline export function visitAt(visits: usize, i: i32): usize {
  return visits + <usize>i * <usize>VISIT_SIZE;
}
/** Access time, ms since the Unix epoch. */
// @ts-ignore: decorator
@inline export function visitTime(v: usize): i64 { return load<i64>(v, 0); }
/** Order amount in minor currency units (0 unless op is OP_ORDER). */
// @ts-ignore: decorator
@inline export function visitAmount(v: usize): i64 { return load<i64>(v, 8); }
/** Login account id, 0 when the visitor was not logged in. */
// @ts-ignore: decorator
@inline export function visitAccount(v: usize): u64 { return load<u64>(v, 16); }
/** IP address id (never 0). */
// @ts-ignore: decorator
@inline export function visitIp(v: usize): u64 { return load<u64>(v, 24); }
/** Item id, 0 when none. */
// @ts-ignore: decorator
@inline export function visitItem(v: usize): u64 { return load<u64>(v, 32); }
/** Access method code (METHOD_*). */
// @ts-ignore: decorator
@inline export function visitMethod(v: usize): u8 { return load<u8>(v, 40); }
/** Operation code (OP_*). */
// @ts-ignore: decorator
@inline export function visitOp(v: usize): u8 { return load<u8>(v, 41); }
/** Visitor identity: the login account if any, else the IP (ids never collide by design). */
// @ts-ignore: decorator
@inline export function visitorId(v: usize): u64 {
  const account = load<u64>(v, 16);
  return select<u64>(account, load<u64>(v, 24), account != 0); // branch-free
}

/** FNV-1a 64 of an ASCII parameter name: the key the host sorted the params by. */
export function paramKey(name: string): u64 {
  let h: u64 = 0xcbf29ce484222325;
  for (let i = 0; i < name.length; i++) {
    h = (h ^ <u64>name.charCodeAt(i)) * 0x100000001b3;
  }
  return h;
}

/** Value of parameter `name`, or `fallback` when the indicator configuration omits it. */
export function param(params: usize, nParams: i32, name: string, fallback: i64): i64 {
  const key = paramKey(name);
  for (let i = 0; i < nParams; i++) {
    const rec = params + <usize>i * 16;
    if (load<u64>(rec) == key) return load<i64>(rec, 8);
  }
  return fallback;
}

/** `num / den` as a fixed-point value with `scale` decimals, rounded down; 0 when den is 0. */
export function ratio(num: i64, den: i64, scale: i32): i64 {
  if (den == 0) return 0;
  let unit: i64 = 1;
  for (let i = 0; i < scale; i++) unit *= 10;
  return num * unit / den;
}

/** The output block: `count` named i64 values sharing one fixed-point `scale`. */
export class Output {
  readonly ptr: usize;
  constructor(public count: i32, scale: i32) {
    this.ptr = allocate(8 + <usize>count * 32);
    store<u32>(this.ptr, count);
    store<u32>(this.ptr, scale, 4);
  }
  /** Set entry `i` to (`name`, `value`); names are 1..24 chars of [a-z0-9_.]. */
  set(i: i32, name: string, value: i64): Output {
    if (!ASC_NO_ASSERT) {
      // A longer name would be cut to 24 chars, and no target written with it would match.
      // (Built-ins compile with --noAssert, which compiles this branch out: their names are
      // fixed, and their committed modules stay what they were.)
      assert(name.length >= 1 && name.length <= 24, "output name must be 1..24 chars of [a-z0-9_.]");
      assert(i >= 0 && i < this.count, "output entry index is not below the count of new Output(count, scale)");
    }
    const entry = this.ptr + 8 + <usize>i * 32;
    for (let c = 0; c < name.length && c < 24; c++) {
      store<u8>(entry + <usize>c, <u8>name.charCodeAt(c));
    }
    store<i64>(entry, value, 24);
    return this;
  }
  /** The value p2pmkt_eval returns. */
  done(): i32 {
    return <i32>this.ptr;
  }
}

/**
 * Slots of an open-addressing table for at most `maxItems` ids: 1.5 x maxItems (at least 16),
 * so the table is at most two-thirds full and linear probing stays short. Not a power of two:
 * a table sized from a 100k-visit window takes 1.2 MB of 8-byte slots instead of 2 MB.
 */
export function tableCapacity(maxItems: i32): u64 {
  const n = <u64>max(maxItems, 0);
  return max<u64>(n + (n >> 1), 16);
}

/**
 * The home slot of `id` in a table of `cap` slots: the high 32 bits of `id` scaled to
 * [0, cap) ("fastrange": a multiply and a shift instead of a division). Ids from the host are
 * sha256-derived, so their high bits are already well mixed.
 */
// @ts-ignore: decorator
@inline export function homeSlot(id: u64, cap: u64): u64 {
  return ((id >> 32) * cap) >> 32;
}

/**
 * A set of non-zero u64 ids (open addressing, linear probing), sized once for `maxItems`
 * (e.g. the window's record count, so it can never fill up): tableCapacity(maxItems) slots of
 * 8 bytes, 12 bytes per item. Id 0 is never a member.
 */
export class IdSet {
  private slots: usize;
  private cap: u64;
  size: i32 = 0;
  constructor(maxItems: i32) {
    this.cap = tableCapacity(maxItems);
    this.slots = allocate(<usize>this.cap * 8);
  }
  /** Insert `id`; true when it was not there yet (always false for 0). */
  // @ts-ignore: decorator
  @inline add(id: u64): bool {
    const added = insertId(this.slots, this.cap, id);
    this.size += <i32>added;
    return added;
  }
  /**
   * Insert the visitor id of each of the `n` records at `visits`; return how many were new.
   * One tight loop with everything in locals: much faster than calling `add` in a loop.
   */
  addVisitors(visits: usize, n: i32): i32 {
    const slots = this.slots;
    const cap = this.cap;
    let added: i32 = 0;
    const end = visits + <usize>max(n, 0) * <usize>VISIT_SIZE;
    for (let v = visits; v < end; v += <usize>VISIT_SIZE) {
      added += <i32>insertId(slots, cap, visitorId(v));
    }
    this.size += added;
    return added;
  }
}

// Insert `id` into the table of `cap` 8-byte slots at `slots`; true when it is new (never for
// id 0, which stops at an empty slot and leaves it empty).
// @ts-ignore: decorator
@inline function insertId(slots: usize, cap: u64, id: u64): bool {
  let k = homeSlot(id, cap);
  let at = slots + <usize>(k << 3);
  let cur = load<u64>(at);
  while (cur != id && cur != 0) { // another id lives here: probe on
    if (++k == cap) k = 0;
    at = slots + <usize>(k << 3);
    cur = load<u64>(at);
  }
  // Branch-free from here (new and known ids come in no predictable order).
  store<u64>(at, id);
  return (cur == 0) & (id != 0);
}

/**
 * A map from non-zero u64 id to two i64 counters (24-byte slots), sized for `maxItems`.
 * `slot(id)` returns the address of the slot: +0 id, +8 counter a, +16 counter b.
 */
export class IdMap {
  private slots: usize;
  private cap: u64;
  size: i32 = 0;
  constructor(maxItems: i32) {
    this.cap = tableCapacity(maxItems);
    this.slots = allocate(<usize>this.cap * 24);
  }
  /** Address of `id`'s (non-zero) slot; a new slot has both counters 0 and `isNew` true. */
  slot(id: u64): usize {
    let i = homeSlot(id, this.cap);
    while (true) {
      const at = this.slots + <usize>i * 24;
      const cur = load<u64>(at);
      if (cur == id) { this.isNew = false; return at; }
      if (cur == 0) {
        store<u64>(at, id);
        this.size++;
        this.isNew = true;
        return at;
      }
      if (++i == this.cap) i = 0;
    }
  }
  isNew: bool = false;
  /** Iterate: address of slot `i` of capacity() slots; empty slots have id 0. */
  slotAt(i: i32): usize { return this.slots + <usize>i * 24; }
  capacity(): i32 { return <i32>this.cap; }
}
