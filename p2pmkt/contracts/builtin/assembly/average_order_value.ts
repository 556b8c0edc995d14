// Built-in indicator: average order value. Output "average_order_value" (scale 2) = sum of
// order amounts / number of orders, in minor currency units with 2 extra decimals; 0 when
// there are no orders.
import { OP_ORDER, Output, ratio, visitAmount, visitAt, visitOp } from "./sdk";
export { p2pmkt_alloc } from "./sdk";

export function p2pmkt_eval(visits: usize, n: i32, params: usize, nParams: i32): i32 {
  let orders: i64 = 0;
  let total: i64 = 0;
  for (let i = 0; i < n; i++) {
    const v = visitAt(visits, i);
    // Branch-free: orders come in no predictable order.
    const isOrder = visitOp(v) == OP_ORDER;
    orders += <i64>isOrder;
    total += select<i64>(visitAmount(v), 0, isOrder);
  }
  return new Output(1, 2).set(0, "average_order_value", ratio(total, orders, 2)).done();
}
