// Built-in indicator: repeat-visit rate. Output "repeat_visit_rate" (scale 6) = visitors with
// two or more sessions / unique visitors. A visitor (login account, else IP) starts a new
// session when a record comes more than `session_gap_ms` (param, default 30 minutes) after
// that visitor's previous record in the window. Records are taken in chain order; a record
// whose time is not later than the previous one continues the session. (A record whose
// visitor id is 0 is skipped; on chain the IP id is never 0.)
//
// One pass, one open-addressing table sized from the window: 16-byte slots {visitor id, time
// of the visitor's latest record} and, beside them, one byte per slot "has a second session".
import { Output, allocate, homeSlot, param, ratio, tableCapacity, visitAt, visitTime, visitorId } from "./sdk";
export { p2pmkt_alloc } from "./sdk";

export function p2pmkt_eval(visits: usize, n: i32, params: usize, nParams: i32): i32 {
  const gap = param(params, nParams, "session_gap_ms", 30 * 60 * 1000);
  const cap = tableCapacity(n);
  const slots = allocate(<usize>cap * 16); // zeroed: id 0 marks an empty slot
  const repeats = allocate(<usize>cap);
  let visitors: i64 = 0;
  let repeaters: i64 = 0;
  for (let i = 0; i < n; i++) {
    const v = visitAt(visits, i);
    const id = visitorId(v);
    if (id == 0) continue;
    const t = visitTime(v);
    let k = homeSlot(id, cap);
    let at = slots + <usize>(k << 4);
    let cur = load<u64>(at);
    while (cur != id && cur != 0) {
      if (++k == cap) k = 0;
      at = slots + <usize>(k << 4);
      cur = load<u64>(at);
    }
    if (cur == 0) { // first record of this visitor
      store<u64>(at, id);
      store<i64>(at, t, 8);
      visitors++;
      continue;
    }
    const last = load<i64>(at, 8);
    if (t - last > gap) {
      const flag = repeats + <usize>k;
      if (load<u8>(flag) == 0) {
        store<u8>(flag, 1);
        repeaters++;
      }
    }
    if (t > last) store<i64>(at, t, 8);
  }
  return new Output(1, 6).set(0, "repeat_visit_rate", ratio(repeaters, visitors, 6)).done();
}
