// Built-in indicator: share of visits by access method. Outputs "browser", "desktop", "app"
// (scale 6) = records with that access method / all records; all 0 for an empty window.
import { METHOD_APP, METHOD_BROWSER, METHOD_DESKTOP, Output, ratio, visitAt, visitMethod } from "./sdk";
export { p2pmkt_alloc } from "./sdk";

export function p2pmkt_eval(visits: usize, n: i32, params: usize, nParams: i32): i32 {
  let browser: i64 = 0;
  let desktop: i64 = 0;
  let app: i64 = 0;
  for (let i = 0; i < n; i++) {
    const m = visitMethod(visitAt(visits, i));
    // Branch-free: methods come in no predictable order.
    browser += <i64>(m == METHOD_BROWSER);
    desktop += <i64>(m == METHOD_DESKTOP);
    app += <i64>(m == METHOD_APP);
  }
  return new Output(3, 6)
    .set(0, "browser", ratio(browser, n, 6))
    .set(1, "desktop", ratio(desktop, n, 6))
    .set(2, "app", ratio(app, n, 6))
    .done();
}
