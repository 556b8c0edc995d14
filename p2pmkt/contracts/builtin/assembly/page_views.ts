// Built-in indicator: page views. Output "page_views" (scale 0) = records with op "view".
import { OP_VIEW, Output, visitAt, visitOp } from "./sdk";
export { p2pmkt_alloc } from "./sdk";

export function p2pmkt_eval(visits: usize, n: i32, params: usize, nParams: i32): i32 {
  let views: i64 = 0;
  for (let i = 0; i < n; i++) {
    views += <i64>(visitOp(visitAt(visits, i)) == OP_VIEW); // branch-free: ops are random
  }
  return new Output(1, 0).set(0, "page_views", views).done();
}
