// Built-in indicator: conversion rate. Output "conversion_rate" (scale 6) = order records /
// all visit records in the window, rounded down; 0 for an empty window.
import { OP_ORDER, Output, ratio, visitAt, visitOp } from "./sdk";
export { p2pmkt_alloc } from "./sdk";

export function p2pmkt_eval(visits: usize, n: i32, params: usize, nParams: i32): i32 {
  let orders: i64 = 0;
  for (let i = 0; i < n; i++) {
    orders += <i64>(visitOp(visitAt(visits, i)) == OP_ORDER); // branch-free: ops are random
  }
  return new Output(1, 6).set(0, "conversion_rate", ratio(orders, n, 6)).done();
}
