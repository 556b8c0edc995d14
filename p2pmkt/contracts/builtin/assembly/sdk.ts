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
 * Allocate `size` bytes (16-byte aligned, never freed). When the store's memory limit leaves
 * no room, end the evaluation with `abort("memory_limit")`, which the host reports as the
 * error "memory_limit" (a bare allocator would hit `unreachable` instead).
 */
export function allocate(size: usize): usize {
  // Grow first, by enough pages for `size` wherever the allocator's bump pointer is (it is
  // below the current end of memory), so that heap.alloc below never needs memory.grow.
  if (memory.grow(<i32>((size + 0xffff) >> 16) + 1) < 0) abort("memory_limit");
  return heap.alloc(size);
}

/** Reserve `size` bytes for the host's input (params, then visits). ABI export. */
export function p2pmkt_alloc(size: i32): i32 {
  return <i32>allocate(<usize>size);
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
  return account != 0 ? account : load<u64>(v, 24);
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
    memory.fill(this.ptr, 0, 8 + <usize>count * 32);
    store<u32>(this.ptr, count);
    store<u32>(this.ptr, scale, 4);
  }
  /** Set entry `i` to (`name`, `value`); names are 1..24 chars of [a-z0-9_.]. */
  set(i: i32, name: string, value: i64): Output {
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
 * A set of non-zero u64 ids (open addressing, linear probing), sized once for `maxItems`.
 * Ids from the host are sha256-derived, so they are already well mixed.
 */
export class IdSet {
  private slots: usize;
  private mask: u64;
  size: i32 = 0;
  constructor(maxItems: i32) {
    let cap: u64 = 16;
    while (cap < <u64>maxItems * 2) cap <<= 1;
    this.mask = cap - 1;
    this.slots = allocate(<usize>cap * 8);
    memory.fill(this.slots, 0, <usize>cap * 8);
  }
  /** Insert `id` (non-zero); true when it was not there yet. */
  add(id: u64): bool {
    let i = id & this.mask;
    while (true) {
      const at = this.slots + <usize>(i << 3);
      const cur = load<u64>(at);
      if (cur == id) return false;
      if (cur == 0) {
        store<u64>(at, id);
        this.size++;
        return true;
      }
      i = (i + 1) & this.mask;
    }
  }
}

/**
 * A map from non-zero u64 id to two i64 counters (24-byte slots), sized for `maxItems`.
 * `slot(id)` returns the address of the slot: +0 id, +8 counter a, +16 counter b.
 */
export class IdMap {
  private slots: usize;
  private mask: u64;
  size: i32 = 0;
  constructor(maxItems: i32) {
    let cap: u64 = 16;
    while (cap < <u64>maxItems * 2) cap <<= 1;
    this.mask = cap - 1;
    this.slots = allocate(<usize>cap * 24);
    memory.fill(this.slots, 0, <usize>cap * 24);
  }
  /** Address of `id`'s slot; a new slot has both counters 0 and `isNew` reports true. */
  slot(id: u64): usize {
    let i = id & this.mask;
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
      i = (i + 1) & this.mask;
    }
  }
  isNew: bool = false;
  /** Iterate: address of slot `i` of capacity() slots; empty slots have id 0. */
  slotAt(i: i32): usize { return this.slots + <usize>i * 24; }
  capacity(): i32 { return <i32>(this.mask + 1); }
}
