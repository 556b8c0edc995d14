// Built-in indicator: unique visitors. Output "unique_visitors" (scale 0) = distinct visitors
// in the window, a visitor being the login account when logged in, else the IP address.
// One pass over the window into an open-addressing set sized from the window (never full).
import { IdSet, Output } from "./sdk";
export { p2pmkt_alloc } from "./sdk";

export function p2pmkt_eval(visits: usize, n: i32, params: usize, nParams: i32): i32 {
  const seen = new IdSet(n);
  seen.addVisitors(visits, n);
  return new Output(1, 0).set(0, "unique_visitors", seen.size).done();
}
