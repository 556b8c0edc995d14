// A p2pmkt client for Node.js, written from docs/PROTOCOL.md alone (wire protocol
// /p2pmkt/rpc/1.0.0): libp2p transport, framing, request/answer matching, events,
// secp256k1 keys, canonical CBOR transactions, signing, blocks.
//
//   import { P2pmktClient, Key } from './client.mjs'
//   const client = await P2pmktClient.connect('/ip4/127.0.0.1/tcp/7100/p2p/16Uiu2…')
//   const info = await client.request('node.info')
//   const { txid } = await client.sendTransaction(Key.dev('terminal'), 'visit.batch', payload)
//   const status = await client.waitForTx(txid)
//   await client.close()
import './node20-compat.mjs' // must stay the first import (Promise.withResolvers on Node 20)

import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { secp256k1 } from '@noble/curves/secp256k1'
import { sha256 } from '@noble/hashes/sha2'
import { bytesToHex, concatBytes, hexToBytes, utf8ToBytes } from '@noble/hashes/utils'
import { decode as cborgDecode, encode as cborgEncode } from 'cborg'
import { byteStream } from 'it-byte-stream'
import { createLibp2p } from 'libp2p'

export { bytesToHex, hexToBytes, sha256, utf8ToBytes }

export const PROTOCOL_ID = '/p2pmkt/rpc/1.0.0'
/** The Python client's answer limit (PROTOCOL.md §2): 32 MiB + 64 KiB. */
export const DEFAULT_MAX_FRAME = 32 * 1024 * 1024 + 64 * 1024

/** PROTOCOL.md §4. */
export const ERROR_NAMES = Object.freeze({
  [-32700]: 'PARSE_ERROR',
  [-32600]: 'INVALID_REQUEST',
  [-32601]: 'METHOD_NOT_FOUND',
  [-32602]: 'INVALID_PARAMS',
  [-32603]: 'INTERNAL_ERROR',
  [-32001]: 'INVALID_TX',
  [-32002]: 'BAD_SIGNATURE',
  [-32003]: 'BAD_NONCE',
  [-32004]: 'PERMISSION_DENIED',
  [-32005]: 'NOT_FOUND',
  [-32006]: 'BUSY',
  [-32007]: 'RATE_LIMITED',
  [-32008]: 'TOO_MANY_STREAMS',
  [-32009]: 'FRAME_TOO_LARGE'
})
export const ERROR_CODES = Object.freeze(
  Object.fromEntries(Object.entries(ERROR_NAMES).map(([code, name]) => [name, Number(code)])))

// ---------------------------------------------------------------------------------------------
// Canonical CBOR (§2): ints, byte strings, text, arrays, text-keyed maps, true/false/null.
// cborg's default encoder sorts map keys length-first then bytewise, which for text keys is the
// RFC 8949 §4.2.1 order, and writes shortest-form heads.

function checkCborValue (v, path) {
  if (v === null || typeof v === 'boolean' || typeof v === 'string' || v instanceof Uint8Array) return
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new TypeError(`${path}: ${v} is not a safe integer (p2pmkt CBOR has no floats; use a BigInt above 2^53)`)
    return
  }
  if (typeof v === 'bigint') {
    if (v < -(2n ** 64n) || v >= 2n ** 64n) throw new TypeError(`${path}: ${v} is outside the 64-bit range`)
    return
  }
  if (Array.isArray(v)) { v.forEach((x, i) => checkCborValue(x, `${path}[${i}]`)); return }
  if (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    for (const [k, x] of Object.entries(v)) checkCborValue(x, `${path}.${k}`)
    return
  }
  throw new TypeError(`${path}: ${typeof v} ${v?.constructor?.name ?? ''} cannot be encoded (p2pmkt CBOR: ints, bytes, text, arrays, text-keyed objects, bools, null)`)
}

/** Canonical CBOR bytes of `value` (plain objects become text-keyed maps). */
export function cborEncode (value) {
  checkCborValue(value, '$')
  return cborgEncode(value)
}

/** Decode one CBOR item (maps → plain objects, byte strings → Uint8Array, big ints → BigInt). */
export function cborDecode (bytes) {
  return cborgDecode(bytes, { useMaps: false, rejectDuplicateMapKeys: true })
}

// ---------------------------------------------------------------------------------------------
// Framing (§2): frame = uvarint(len(payload)) ‖ payload.

/** Minimal unsigned LEB128 (multiformats uvarint) of a non-negative integer. */
export function encodeUvarint (n) {
  let v = BigInt(n)
  if (v < 0n) throw new RangeError('uvarint of a negative number')
  const out = []
  do {
    let b = Number(v & 0x7fn)
    v >>= 7n
    if (v !== 0n) b |= 0x80
    out.push(b)
  } while (v !== 0n)
  return Uint8Array.from(out)
}

/** One frame around an already encoded payload. */
export function frame (payload) {
  return concatBytes(encodeUvarint(payload.length), payload)
}

export class FrameError extends Error {}

// ---------------------------------------------------------------------------------------------
// Errors

/** An `error` answer (§3/§4): `code`, `codeName` (e.g. 'BAD_NONCE'), `data`, `reason` (data.reason), `id`. */
export class RpcError extends Error {
  constructor (error, id) {
    const code = error?.code
    const codeName = ERROR_NAMES[code] ?? `code ${code}`
    super(`${codeName} (${code}): ${error?.message ?? ''}`)
    this.name = 'RpcError'
    this.code = code
    this.codeName = codeName
    this.data = error?.data ?? null
    this.reason = error?.data?.reason ?? null
    this.id = id
  }
}

/** The stream ended (EOF, reset, or after a stream-level error which is then `cause`). */
export class StreamClosedError extends Error {
  constructor (message, cause) {
    super(message, cause ? { cause } : undefined)
    this.name = 'StreamClosedError'
  }
}

// ---------------------------------------------------------------------------------------------
// One RPC stream: requests with ids, answers matched by id, events routed by `sub`.

class AsyncQueue {
  constructor () { this.items = []; this.waiters = []; this.done = false }
  push (item) {
    const w = this.waiters.shift()
    if (w) w.resolve(item); else this.items.push(item)
  }
  end () {
    this.done = true
    for (const w of this.waiters.splice(0)) w.resolve(null)
  }
  /** Next item, or null once ended (or at the timeout, when given). */
  next (timeoutMs) {
    if (this.items.length > 0) return Promise.resolve(this.items.shift())
    if (this.done) return Promise.resolve(null)
    const w = Promise.withResolvers()
    this.waiters.push(w)
    if (timeoutMs !== undefined) {
      const t = setTimeout(() => {
        const i = this.waiters.indexOf(w)
        if (i >= 0) this.waiters.splice(i, 1)
        w.resolve(null)
      }, timeoutMs)
      w.promise.finally(() => clearTimeout(t))
    }
    return w.promise
  }
}

/** A subscription made with events.subscribe: `await sub.next(ms)` → event map or null. */
export class Subscription {
  constructor (rpc, sub) {
    this.rpc = rpc
    this.sub = sub
    this.queue = new AsyncQueue()
    this.endReason = null
  }
  /** The next event ({event, sub, data}); null when the subscription ended or `timeoutMs` passed. */
  next (timeoutMs) { return this.queue.next(timeoutMs) }
  async * [Symbol.asyncIterator] () {
    for (;;) {
      const ev = await this.next()
      if (ev === null) return
      yield ev
    }
  }
  async unsubscribe () {
    const res = await this.rpc.request('events.unsubscribe', { sub: this.sub })
    this.queue.end()
    this.rpc.subs.delete(this.sub)
    return res.ok
  }
}

export class RpcStream {
  /** @param stream a libp2p stream already negotiated on PROTOCOL_ID */
  constructor (stream, { maxFrameBytes = DEFAULT_MAX_FRAME, requestTimeoutMs = 30000 } = {}) {
    this.stream = stream
    this.bytes = byteStream(stream)
    this.maxFrameBytes = maxFrameBytes
    this.requestTimeoutMs = requestTimeoutMs
    this.nextId = 1
    this.pending = new Map() // id → {resolve, reject, onResult}
    this.subs = new Map() // sub → Subscription
    this.streamErrors = [] // id-null errors (stream-level, §4)
    this.unmatched = [] // answers to ids this object did not send (raw frames) or gave up on
    this.closed = false
    this.closeError = null
    this.writes = Promise.resolve()
    this.readLoop = this.#readLoop()
  }

  /** Send `method` with `params`; resolves with `result`, rejects with RpcError / StreamClosedError. */
  request (method, params = {}, { timeoutMs = this.requestTimeoutMs, onResult } = {}) {
    if (this.closed) return Promise.reject(new StreamClosedError('stream is closed', this.closeError))
    const id = this.nextId++
    const w = Promise.withResolvers()
    const timer = setTimeout(() => {
      if (this.pending.delete(id)) w.reject(new Error(`${method}: no answer within ${timeoutMs} ms`))
    }, timeoutMs)
    this.pending.set(id, { ...w, onResult, timer })
    this.sendMessage({ id, method, params }).catch(err => {
      if (this.pending.delete(id)) { clearTimeout(timer); w.reject(err) }
    })
    return w.promise
  }

  /** Encode `msg` canonically and write it as one frame. */
  sendMessage (msg) { return this.sendRaw(frame(cborEncode(msg))) }

  /** Write raw bytes (no framing added): for tests of malformed input. */
  sendRaw (bytes) {
    const p = this.writes.then(() => this.bytes.write(bytes))
    this.writes = p.catch(() => {})
    return p
  }

  /** Subscribe to events (§6); kinds: any of "block", "report", "market" (default: all). */
  async subscribe ({ kinds, merchant } = {}) {
    const params = {}
    if (kinds !== undefined) params.kinds = kinds
    if (merchant !== undefined) params.merchant = merchant
    let subscription
    // Register the subscription while the answer is dispatched, before the next frame is read:
    // the node may send the subscription's first event right after its answer.
    await this.request('events.subscribe', params, {
      onResult: (result) => {
        subscription = new Subscription(this, result.sub)
        this.subs.set(result.sub, subscription)
      }
    })
    return subscription
  }

  async close () {
    if (!this.closed) {
      try { await this.stream.close() } catch { this.stream.abort?.(new Error('closed')) }
    }
    await this.readLoop
  }

  async #readFrame () {
    // uvarint prefix: at most 9 bytes, minimal
    let len = 0
    let shift = 1
    for (let i = 0; ; i++) {
      let chunk
      try {
        chunk = await this.bytes.read({ bytes: 1 })
      } catch (err) {
        if (i === 0) return null // EOF between frames
        throw err
      }
      const b = chunk.get(0)
      len += (b & 0x7f) * shift
      shift *= 128
      if ((b & 0x80) === 0) {
        if (i > 0 && b === 0) throw new FrameError('non-minimal length prefix')
        break
      }
      if (i === 8) throw new FrameError('length prefix longer than 9 bytes')
    }
    if (len > this.maxFrameBytes) throw new FrameError(`frame of ${len} bytes exceeds the limit of ${this.maxFrameBytes}`)
    if (len === 0) return new Uint8Array(0)
    return (await this.bytes.read({ bytes: len })).subarray()
  }

  async #readLoop () {
    let reason = null
    try {
      for (;;) {
        const payload = await this.#readFrame()
        if (payload === null) break
        this.#dispatch(cborDecode(payload))
      }
    } catch (err) {
      reason = err
    }
    this.#shutdown(reason)
  }

  #dispatch (msg) {
    if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) throw new FrameError('answer is not a map')
    if ('event' in msg) {
      const s = this.subs.get(msg.sub)
      if (s) {
        s.queue.push(msg)
        if (msg.event === 'end') { s.endReason = msg.data?.reason ?? null; s.queue.end(); this.subs.delete(msg.sub) }
      }
      return
    }
    if (msg.id === null || msg.id === undefined) {
      // an error whose request id could not be read (PARSE_ERROR, FRAME_TOO_LARGE, TOO_MANY_STREAMS close the stream next)
      // Pending requests are failed only when the stream actually ends (#shutdown).
      const err = new RpcError(msg.error, null)
      this.streamErrors.push(err)
      this.closeError = err
      return
    }
    const id = typeof msg.id === 'bigint' ? Number(msg.id) : msg.id
    const p = this.pending.get(id)
    if (!p) { this.unmatched.push(msg); return } // timed out, or sent with sendRaw
    this.pending.delete(id)
    clearTimeout(p.timer)
    if ('error' in msg) {
      p.reject(new RpcError(msg.error, id))
    } else {
      try { p.onResult?.(msg.result) } catch (err) { p.reject(err); return }
      p.resolve(msg.result)
    }
  }

  #shutdown (reason) {
    this.closed = true
    if (reason && !this.closeError) this.closeError = reason
    const err = new StreamClosedError(`stream closed${this.closeError ? `: ${this.closeError.message}` : ''}`, this.closeError)
    for (const [id, p] of this.pending) { clearTimeout(p.timer); this.pending.delete(id); p.reject(err) }
    for (const s of this.subs.values()) { s.endReason ??= 'stream closed'; s.queue.end() }
    this.subs.clear()
  }
}

// ---------------------------------------------------------------------------------------------
// The client: one libp2p node, one connection to the p2pmkt node, one main RPC stream.

/** A dial-only libp2p node: TCP, Noise, Yamux, identify (§1, §10), ephemeral Ed25519 identity. */
export async function createClientNode () {
  return createLibp2p({
    addresses: { listen: [] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify() }
  })
}

export class P2pmktClient {
  constructor (node, addr, rpc, ownsNode) {
    this.node = node
    this.addr = addr
    this.rpc = rpc
    this.ownsNode = ownsNode
    this.chain = null
  }

  /** Dial `addr` (a multiaddr ending in /p2p/<peer id>) and open the RPC stream. */
  static async connect (addr, { node, dialTimeoutMs = 10000, ...streamOpts } = {}) {
    const ownsNode = node === undefined
    node ??= await createClientNode()
    try {
      const ma = multiaddr(addr)
      if (!ma.getPeerId()) throw new Error(`${addr}: the multiaddr must end in /p2p/<peer id>`)
      const client = new P2pmktClient(node, ma, null, ownsNode)
      client.streamOpts = streamOpts
      client.dialTimeoutMs = dialTimeoutMs
      client.rpc = await client.openStream()
      return client
    } catch (err) {
      if (ownsNode) await node.stop()
      throw err
    }
  }

  /** Another RPC stream on the same connection (a node allows 8 per peer). */
  async openStream () {
    const stream = await this.node.dialProtocol(this.addr, PROTOCOL_ID, { signal: AbortSignal.timeout(this.dialTimeoutMs) })
    return new RpcStream(stream, this.streamOpts)
  }

  request (method, params = {}, opts) { return this.rpc.request(method, params, opts) }
  subscribe (opts) { return this.rpc.subscribe(opts) }

  async info () {
    const info = await this.request('node.info')
    this.chain = info.chain
    return info
  }

  async chainId () { return this.chain ?? (await this.info()).chain }
  head () { return this.request('chain.head') }
  account (address) { return this.request('account.get', { address: toAddressBytes(address) }) }
  getTx (txid) { return this.request('tx.get', { txid }) }

  /** `chain.block` by height (number) or hash (Uint8Array); `body` false omits the block bytes. */
  block (heightOrHash, { body = true } = {}) {
    const params = heightOrHash instanceof Uint8Array ? { hash: heightOrHash } : { height: heightOrHash }
    if (!body) params.body = false
    return this.request('chain.block', params)
  }

  /** Submit signed wire bytes; resolves with the txid (bytes32). */
  async submit (wire) { return (await this.request('tx.submit', { tx: wire })).txid }

  /**
   * Sign and submit one transaction of `kind` with `payload` from `key`; the nonce is the
   * account's `pending_nonce` unless given. Resolves with {txid, nonce, wire, body}.
   */
  async sendTransaction (key, kind, payload, { nonce } = {}) {
    const chain = await this.chainId()
    if (nonce === undefined) nonce = (await this.account(key.address)).pending_nonce
    const tx = signTransaction(key, { chain, nonce, kind, payload })
    const txid = await this.submit(tx.wire)
    if (!equalBytes(txid, tx.txid)) throw new Error(`node answered txid ${bytesToHex(txid)}, expected sha256(body) = ${bytesToHex(tx.txid)}`)
    return { ...tx, nonce }
  }

  /**
   * Wait until `txid` is committed or rejected (tx.get), re-checking at every block event (one
   * `block` subscription on a separate stream) and at least every `pollMs`.
   * Resolves with the tx.get result; rejects on timeout.
   */
  async waitForTx (txid, { timeoutMs = 30000, pollMs = 500 } = {}) {
    const deadline = Date.now() + timeoutMs
    const events = await this.openStream()
    try {
      const blocks = await events.subscribe({ kinds: ['block'] })
      for (;;) {
        let status
        try {
          status = await this.getTx(txid)
        } catch (err) {
          if (!(err instanceof RpcError && err.codeName === 'NOT_FOUND')) throw err
          status = null
        }
        if (status && status.status !== 'pending') return status
        const left = deadline - Date.now()
        if (left <= 0) throw new Error(`tx ${bytesToHex(txid)} not committed within ${timeoutMs} ms (last status: ${status?.status ?? 'not found'})`)
        await blocks.next(Math.min(left, pollMs))
      }
    } finally {
      await events.close().catch(() => {})
    }
  }

  async close () {
    try { await this.rpc?.close() } catch {}
    if (this.ownsNode) await this.node.stop()
  }
}

// ---------------------------------------------------------------------------------------------
// Keys, addresses, signatures (§7)

export class Key {
  constructor (secret) {
    if (!(secret instanceof Uint8Array) || secret.length !== 32 || !secp256k1.utils.isValidPrivateKey(secret)) {
      throw new Error('a secp256k1 secret key is 32 bytes in [1, n-1]')
    }
    this.secret = secret
    this.publicKey = secp256k1.getPublicKey(secret, true) // compressed, 33 bytes
    this.address = addressOf(this.publicKey)
  }
  static generate () { return new Key(secp256k1.utils.randomPrivateKey()) }
  static fromHex (hex) { return new Key(hexToBytes(hex.replace(/^0x/, ''))) }
  /** A documented dev key (testnet/README.md): sha256("p2pmkt dev key\0" + name). Public: never use outside a local chain. */
  static dev (name) { return new Key(sha256(utf8ToBytes(`p2pmkt dev key\0${name}`))) }
  get addressHex () { return addressHex(this.address) }
  get secretHex () { return bytesToHex(this.secret) }
}

/** First 20 bytes of sha256(compressed public key). */
export function addressOf (compressedPublicKey) { return sha256(compressedPublicKey).slice(0, 20) }
export function addressHex (address) { return `0x${bytesToHex(address)}` }
export function toAddressBytes (address) {
  if (address instanceof Uint8Array) return address
  const b = hexToBytes(String(address).replace(/^0x/, ''))
  if (b.length !== 20) throw new Error(`${address}: an address is 20 bytes`)
  return b
}

/** sha256("p2pmkt/sig/v1" ‖ 0 ‖ chain ‖ 0 ‖ purpose ‖ 0 ‖ bytes); purpose "tx" or "block". */
export function signingDigest (chain, purpose, bytes) {
  return sha256(concatBytes(utf8ToBytes('p2pmkt/sig/v1'), Uint8Array.of(0), utf8ToBytes(chain),
    Uint8Array.of(0), utf8ToBytes(purpose), Uint8Array.of(0), bytes))
}

/** Recoverable ECDSA over the 32-byte digest (no further hashing): r ‖ s ‖ v, low-s, RFC 6979. */
export function signDigest (key, digest) {
  const sig = secp256k1.sign(digest, key.secret, { lowS: true, prehash: false })
  return concatBytes(sig.toCompactRawBytes(), Uint8Array.of(sig.recovery))
}

/** The address whose key made the 65-byte signature `sig` over `digest`. */
export function recoverAddress (digest, sig) {
  if (sig.length !== 65 || sig[64] > 1) throw new Error('a signature is 65 bytes, r ‖ s ‖ v with v 0 or 1')
  const s = secp256k1.Signature.fromCompact(sig.subarray(0, 64)).addRecoveryBit(sig[64])
  return addressOf(s.recoverPublicKey(digest).toRawBytes(true))
}

// ---------------------------------------------------------------------------------------------
// Transactions (§7)

/** Canonical body bytes of {chain, from, nonce, kind, payload}. */
export function encodeBody ({ chain, from, nonce, kind, payload }) {
  return cborEncode({ chain, from: toAddressBytes(from), nonce, kind, payload })
}

/** Build and sign a transaction: {body, sig, wire, txid, digest}. */
export function signTransaction (key, { chain, nonce, kind, payload }) {
  const body = encodeBody({ chain, from: key.address, nonce, kind, payload })
  const digest = signingDigest(chain, 'tx', body)
  const sig = signDigest(key, digest)
  const wire = cborEncode({ body, sig })
  return { body, sig, wire, txid: sha256(body), digest }
}

/** Decode SignedTransaction wire bytes: {body, sig, tx (the decoded body map), txid, signer}. */
export function decodeTransaction (wire) {
  const { body, sig } = cborDecode(wire)
  const tx = cborDecode(body)
  const signer = recoverAddress(signingDigest(tx.chain, 'tx', body), sig)
  return { body, sig, tx, txid: sha256(body), signer, signatureOk: equalBytes(signer, tx.from) }
}

// ---------------------------------------------------------------------------------------------
// Blocks (§8)

/** Decode a block's wire bytes: header map, hash = sha256(header), proposer check, transactions. */
export function decodeBlock (bytes) {
  const block = cborDecode(bytes)
  const header = cborDecode(block.header)
  const proposerFromSig = recoverAddress(signingDigest(header.chain, 'block', block.header), block.sig)
  return {
    header,
    hash: sha256(block.header),
    sig: block.sig,
    proposerSignatureOk: equalBytes(proposerFromSig, header.proposer),
    txs: block.txs.map(decodeTransaction)
  }
}

// ---------------------------------------------------------------------------------------------
// Visits (§7 "Visit transactions")

export const VISIT_METHODS = Object.freeze(['browser', 'desktop', 'app'])
export const VISIT_OPS = Object.freeze(['view', 'click', 'cart', 'order', 'search', 'login', 'other'])

function normVisit (v) {
  return {
    ip: v.ip, account: v.account ?? '', time: v.time, merchant: v.merchant,
    method: v.method ?? 'browser', op: v.op ?? 'view', item: v.item ?? '', amount: v.amount ?? 0
  }
}

/** `visit.batch` payload: {"visits": [[ip, account, time, merchant, method, op, item, amount], …]}. */
export function visitBatchPayload (visits) {
  return { visits: visits.map(normVisit).map(v => [v.ip, v.account, v.time, v.merchant, v.method, v.op, v.item, v.amount]) }
}

function compareBytes (a, b) {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i]
  return a.length - b.length
}

/** `visit.pack` payload: {"strings": sorted distinct texts, "visits": 34-byte little-endian records}. */
export function visitPackPayload (visits) {
  const vs = visits.map(normVisit)
  const texts = [...new Set(vs.flatMap(v => [v.ip, v.account, v.merchant, v.item]))]
    .map(t => [t, utf8ToBytes(t)])
    .sort((a, b) => compareBytes(a[1], b[1]))
    .map(([t]) => t)
  const index = new Map(texts.map((t, i) => [t, i]))
  const records = new Uint8Array(34 * vs.length)
  const dv = new DataView(records.buffer)
  vs.forEach((v, i) => {
    const o = 34 * i
    const method = VISIT_METHODS.indexOf(v.method)
    const op = VISIT_OPS.indexOf(v.op)
    if (method < 0 || op < 0) throw new Error(`visit ${i}: unknown method ${v.method} or op ${v.op}`)
    dv.setUint32(o, index.get(v.ip), true)
    dv.setUint32(o + 4, index.get(v.account), true)
    dv.setBigUint64(o + 8, BigInt(v.time), true)
    dv.setUint32(o + 16, index.get(v.merchant), true)
    dv.setUint8(o + 20, method)
    dv.setUint8(o + 21, op)
    dv.setUint32(o + 22, index.get(v.item), true)
    dv.setBigUint64(o + 26, BigInt(v.amount), true)
  })
  return { strings: texts, visits: records }
}

// ---------------------------------------------------------------------------------------------

export function equalBytes (a, b) {
  if (!(a instanceof Uint8Array) || !(b instanceof Uint8Array) || a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** JSON.stringify replacer: bytes → hex, BigInt → string. */
export function jsonReplacer (_key, value) {
  if (value instanceof Uint8Array) return bytesToHex(value)
  if (typeof value === 'bigint') return value.toString()
  return value
}
