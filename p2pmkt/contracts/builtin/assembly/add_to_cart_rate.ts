// Built-in indicator: add-to-cart rate. Output "add_to_cart_rate" (scale 6) = "cart" records /
// all visit records in the window, rounded down; 0 for an empty window.
import { OP_CART, Output, ratio, visitAt, visitOp } from "./sdk";
export { p2pmkt_alloc } from "./sdk";

export function p2pmkt_eval(visits: usize, n: i32, params: usize, nParams: i32): i32 {
  let carts: i64 = 0;
  for (let i = 0; i < n; i++) {
    carts += <i64>(visitOp(visitAt(visits, i)) == OP_CART); // branch-free: ops are random
  }
  return new Output(1, 6).set(0, "add_to_cart_rate", ratio(carts, n, 6)).done();
}
