// Built-in indicator: repeat-visit rate. Output "repeat_visit_rate" (scale 6) = visitors with
// two or more sessions / unique visitors. A visitor (login account, else IP) starts a new
// session when a record comes more than `session_gap_ms` (param, default 30 minutes) after
// that visitor's previous record in the window. Records are taken in chain order; a record
// whose time is not later than the previous one continues the session.
import { IdMap, Output, param, ratio, visitAt, visitTime, visitorId } from "./sdk";
export { p2pmkt_alloc } from "./sdk";

export function p2pmkt_eval(visits: usize, n: i32, params: usize, nParams: i32): i32 {
  const gap = param(params, nParams, "session_gap_ms", 30 * 60 * 1000);
  const visitors = new IdMap(n);
  let repeaters: i64 = 0;
  for (let i = 0; i < n; i++) {
    const v = visitAt(visits, i);
    const t = visitTime(v);
    const slot = visitors.slot(visitorId(v));
    // slot +8: time of the visitor's last record; +16: sessions so far
    if (visitors.isNew) {
      store<i64>(slot, t, 8);
      store<i64>(slot, 1, 16);
      continue;
    }
    if (t - load<i64>(slot, 8) > gap) {
      const sessions = load<i64>(slot, 16) + 1;
      store<i64>(slot, sessions, 16);
      if (sessions == 2) repeaters++;
    }
    if (t > load<i64>(slot, 8)) store<i64>(slot, t, 8);
  }
  return new Output(1, 6).set(0, "repeat_visit_rate", ratio(repeaters, visitors.size, 6)).done();
}
