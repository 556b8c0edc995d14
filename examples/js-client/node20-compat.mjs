// Node 20 lacks Promise.withResolvers (ES2024, Node 22+), which js-libp2p 2.x's peer store
// (mortice → it-queue) calls inside createLibp2p(). Import this module before anything from
// libp2p: ES modules evaluate their imports in order, so it runs first. A no-op on Node 22+.
if (typeof Promise.withResolvers !== 'function') {
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    value: function withResolvers () {
      let resolve, reject
      const promise = new this((res, rej) => { resolve = res; reject = rej })
      return { promise, resolve, reject }
    }
  })
}
