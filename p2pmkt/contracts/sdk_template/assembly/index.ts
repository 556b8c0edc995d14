// NAME: a custom p2pmkt indicator (ABI v1, docs/CONTRACTS.md).
//
// Example logic: "big orders". Counts orders whose amount is at least the parameter
// `min_amount` (minor currency units, default 10000) and reports them with their share of
// all orders (scale 4: 2500 means 25.00 %). Replace it with your own.
import { OP_ORDER, Output, param, visitAmount, visitAt, visitOp } from "./sdk";
export { p2pmkt_alloc } from "./sdk";

export function p2pmkt_eval(visits: usize, n: i32, params: usize, nParams: i32): i32 {
  const minAmount = param(params, nParams, "min_amount", 10000);
  let orders: i64 = 0;
  let big: i64 = 0;
  for (let i = 0; i < n; i++) {
    const v = visitAt(visits, i);
    if (visitOp(v) != OP_ORDER) continue;
    orders++;
    if (visitAmount(v) >= minAmount) big++;
  }
  const share = orders == 0 ? 0 : big * 10000 / orders;
  return new Output(2, 4).set(0, "big_orders", big * 10000).set(1, "big_order_share", share).done();
}
