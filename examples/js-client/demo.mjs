#!/usr/bin/env node
// End-to-end demo of client.mjs against a running p2pmkt node. Prints one JSON object.
//
//   node demo.mjs /ip4/127.0.0.1/tcp/7100/p2p/16Uiu2… [--key HEX] [--tech-key HEX]
//                 [--merchant acme] [--no-market] [--no-checks] [--timeout-ms 30000]
//
// --key       secret of a key with the `terminal` role (default: the dev chain's public dev key
//             "terminal"); it submits a visit.batch and a visit.pack, pipelined.
// --tech-key  secret of a key with `merchant-tech:<merchant>` (default: dev key "<merchant>-tech");
//             it submits a market.update, and the new version is read back.
// A freshly generated key is also tried: it holds no role, so its visits are PERMISSION_DENIED.
// Unless --no-checks: bad signature, wrong chain, replay, non-canonical body, bad requests and
// malformed frames, each with the error PROTOCOL.md documents, and the node still serving.
// Exit status 0 when everything matched, 1 when a check failed, 2 on a usage error.
import {
  Key, P2pmktClient, RpcError, addressHex, bytesToHex, cborEncode, decodeBlock, encodeUvarint,
  equalBytes, frame, jsonReplacer, sha256, signDigest, signTransaction, signingDigest,
  visitBatchPayload, visitPackPayload
} from './client.mjs'
import { encode as cborgEncode } from 'cborg'
import { checkDocVectors } from './vectors.mjs'

function usage (msg) {
  process.stderr.write(`${msg}\nusage: node demo.mjs MULTIADDR [--key HEX] [--tech-key HEX] [--merchant ID] [--no-market] [--no-checks] [--timeout-ms MS]\n`)
  process.exit(2)
}

function parseArgs (argv) {
  const opts = { merchant: 'acme', market: true, checks: true, timeoutMs: 30000 }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const val = () => { if (i + 1 >= argv.length) usage(`${a} needs a value`); return argv[++i] }
    if (a === '--key') opts.key = val()
    else if (a === '--tech-key') opts.techKey = val()
    else if (a === '--merchant') opts.merchant = val()
    else if (a === '--no-market') opts.market = false
    else if (a === '--no-checks') opts.checks = false
    else if (a === '--timeout-ms') opts.timeoutMs = Number(val())
    else if (a.startsWith('--')) usage(`unknown option ${a}`)
    else if (opts.addr === undefined) opts.addr = a
    else usage(`unexpected argument ${a}`)
  }
  if (opts.addr === undefined) usage('the node multiaddr is required')
  return opts
}

const log = (msg) => process.stderr.write(`[js-client] ${msg}\n`)
const errInfo = (err) => err instanceof RpcError
  ? { code: err.code, codeName: err.codeName, reason: err.reason, message: err.message }
  : { error: err?.name ?? 'Error', message: String(err?.message ?? err) }

/** Run `fn`, expecting an RpcError named `codeName` (and `reason`, when given). */
async function expectError (codeName, fn, reason) {
  try {
    const result = await fn()
    return { expected: codeName, ok: false, got: { result } }
  } catch (err) {
    const got = errInfo(err)
    return { expected: reason ? `${codeName}/${reason}` : codeName, ok: got.codeName === codeName && (!reason || got.reason === reason), got }
  }
}

/** Wait for `promise` at most `ms`; resolves with true if it settled in time. */
function within (promise, ms) {
  return Promise.race([promise.then(() => true, () => true), new Promise(resolve => setTimeout(() => resolve(false), ms).unref())])
}

async function visits (client, terminal, merchant, timeoutMs) {
  const acct = await client.account(terminal.address)
  const now = Date.now()
  const batch = visitBatchPayload([
    { ip: '192.0.2.10', time: now, merchant, method: 'browser', op: 'view', item: 'js-sku-1' },
    { ip: '192.0.2.10', account: 'js-user', time: now + 1, merchant, method: 'browser', op: 'order', item: 'js-sku-1', amount: 4200 }
  ])
  const pack = visitPackPayload([
    { ip: '192.0.2.11', time: now + 2, merchant, method: 'app', op: 'cart', item: 'js-sku-2' },
    { ip: '192.0.2.11', account: 'js-user', time: now + 3, merchant, method: 'desktop', op: 'search' }
  ])
  const n = acct.pending_nonce
  const events = await client.openStream() // block events, to compare with chain.block (§6)
  const blockSub = await events.subscribe({ kinds: ['block'] })
  // Pipelined: both requests go out before either answer; the node answers in order.
  const sent = await Promise.all([
    client.sendTransaction(terminal, 'visit.batch', batch, { nonce: n }),
    client.sendTransaction(terminal, 'visit.pack', pack, { nonce: n + 1 })
  ])
  const txs = []
  for (const [i, tx] of sent.entries()) {
    const status = await client.waitForTx(tx.txid, { timeoutMs })
    txs.push({ kind: i === 0 ? 'visit.batch' : 'visit.pack', nonce: tx.nonce, visits: 2, wire_bytes: tx.wire.length, ...status, txid: bytesToHex(tx.txid) })
  }
  // Read their blocks back and check them (PROTOCOL.md §8).
  const blocks = []
  const seen = new Map() // height → block event data
  for (const height of [...new Set(txs.map(t => t.height))]) {
    const deadline = Date.now() + 5000
    while (!seen.has(height) && Date.now() < deadline) {
      const ev = await blockSub.next(deadline - Date.now())
      if (ev === null) break
      if (ev.event === 'block') seen.set(ev.data.height, ev.data)
    }
    const res = await client.block(height)
    const block = decodeBlock(res.block)
    const ev = seen.get(height)
    const contained = txs.filter(t => block.txs.some(btx => bytesToHex(btx.txid) === t.txid)).map(t => t.txid)
    blocks.push({
      height: res.height,
      hash: bytesToHex(res.hash),
      hash_is_sha256_of_header: equalBytes(res.hash, block.hash),
      proposer: addressHex(block.header.proposer),
      proposer_signature_ok: block.proposerSignatureOk,
      tx_count: block.txs.length,
      tx_signatures_ok: block.txs.every(t => t.signatureOk),
      contains: contained,
      block_event: ev ? { height: ev.height, hash: bytesToHex(ev.hash), txs: ev.txs } : null,
      block_event_matches: !!ev && equalBytes(ev.hash, res.hash) && ev.txs === block.txs.length
    })
  }
  await events.close().catch(() => {})
  const after = await client.account(terminal.address)
  const ok = txs.every(t => t.status === 'committed') &&
    blocks.every(b => b.hash_is_sha256_of_header && b.proposer_signature_ok && b.tx_signatures_ok && b.block_event_matches) &&
    txs.every(t => blocks.some(b => b.contains.includes(t.txid))) &&
    after.nonce >= acct.nonce + 2
  const result = { ok, key: terminal.addressHex, roles: acct.roles, nonce_before: acct.nonce, nonce_after: after.nonce, txs, blocks }
  Object.defineProperty(result, 'replayWire', { value: sent[0].wire, enumerable: false }) // for the replay check
  return result
}

async function market (client, tech, merchant, timeoutMs) {
  let current = null
  try {
    current = (await client.request('market.info', { merchant })).info
  } catch (err) {
    if (!(err instanceof RpcError && err.codeName === 'NOT_FOUND')) throw err
  }
  const base = current?.version ?? 0
  let campaigns
  if (current && current.campaigns.length > 0) {
    // Same campaigns, first one's max bid one minor unit higher.
    campaigns = current.campaigns.map((c, i) => i === 0 ? { ...c, max_bid: c.max_bid + 1 } : c)
  } else {
    campaigns = [{
      name: 'js-client', active: true, channels: ['search'], daily_budget: 10000, max_bid: 100,
      keywords: [{ text: 'javascript client', match: 'phrase' }]
    }]
  }
  const payload = { merchant, base_version: base, cause: '', campaigns }
  const events = await client.openStream()
  try {
    const sub = await events.subscribe({ kinds: ['market'], merchant })
    const tx = await client.sendTransaction(tech, 'market.update', payload)
    const status = await client.waitForTx(tx.txid, { timeoutMs })
    let event = null
    const deadline = Date.now() + 5000
    while (event === null && Date.now() < deadline) {
      const ev = await sub.next(deadline - Date.now())
      if (ev === null) break
      if (ev.event === 'market' && ev.data.version === base + 1) event = ev
    }
    const info = (await client.request('market.info', { merchant })).info
    const ok = status.status === 'committed' && info.version === base + 1 &&
      equalBytes(info.author, tech.address) && event !== null
    return {
      ok,
      key: tech.addressHex,
      merchant,
      base_version: base,
      txid: bytesToHex(tx.txid),
      status,
      version_after: info.version,
      author_after: bytesToHex(info.author),
      campaigns_after: info.campaigns,
      event: event && { event: event.event, sub: event.sub, version: event.data.version, merchant: event.data.merchant }
    }
  } finally {
    await events.close().catch(() => {})
  }
}

async function freshKeyTry (client, merchant) {
  const fresh = Key.generate()
  const acct = await client.account(fresh.address)
  const payload = visitBatchPayload([{ ip: '192.0.2.99', time: Date.now(), merchant }])
  const denied = await expectError('PERMISSION_DENIED', () => client.sendTransaction(fresh, 'visit.batch', payload))
  return { ok: denied.ok && acct.member === false && acct.roles.length === 0, key: fresh.addressHex, account: acct, visit_batch: denied }
}

/** A raw frame on a new stream: the expected stream-level error with id null, then the stream closes. */
async function rawStreamCheck (client, bytes, codeName) {
  const s = await client.openStream()
  try {
    await s.sendRaw(bytes)
    const closed = await within(s.readLoop, 5000)
    const err = s.streamErrors[0]
    const got = err ? { id: err.id, ...errInfo(err) } : { message: 'no error answer' }
    return { expected: `${codeName} (id null), stream closed`, ok: !!err && err.codeName === codeName && closed, got, closed }
  } finally {
    await s.close().catch(() => {})
  }
}

async function checks (client, terminal, merchant, visitsResult) {
  const chain = await client.chainId()
  const out = {}
  const fresh = Key.generate()
  const nonce = (await client.account(terminal.address)).pending_nonce
  const payload = visitBatchPayload([{ ip: '192.0.2.77', time: Date.now(), merchant }])

  // Signed by another key than `from`.
  {
    const body = cborEncode({ chain, from: terminal.address, nonce, kind: 'visit.batch', payload })
    const sig = signDigest(fresh, signingDigest(chain, 'tx', body))
    out.bad_signature_wrong_signer = await expectError('BAD_SIGNATURE', () => client.submit(cborEncode({ body, sig })))
  }
  // The right signature with one bit flipped in s.
  {
    const tx = signTransaction(terminal, { chain, nonce, kind: 'visit.batch', payload })
    const sig = tx.sig.slice()
    sig[63] ^= 0x01
    out.bad_signature_corrupted = await expectError('BAD_SIGNATURE', () => client.submit(cborEncode({ body: tx.body, sig })))
  }
  // Signed for another chain.
  {
    const tx = signTransaction(terminal, { chain: `${chain}-other`, nonce, kind: 'visit.batch', payload })
    out.wrong_chain = await expectError('INVALID_TX', () => client.submit(tx.wire), 'wrong_chain')
  }
  // A body whose map keys are in insertion order, not canonical order (validly signed).
  {
    const body = cborgEncode({ chain, from: terminal.address, nonce, kind: 'visit.batch', payload }, { mapSorter: () => 0 })
    const sig = signDigest(terminal, signingDigest(chain, 'tx', body))
    out.non_canonical_body = await expectError('INVALID_TX', () => client.submit(cborEncode({ body, sig })))
  }
  // Replay of the committed visit.batch.
  if (visitsResult) {
    out.replay = await expectError('BAD_NONCE', () => client.submit(visitsResult.replayWire), 'nonce_used')
  }
  out.unknown_kind = await expectError('INVALID_TX', () => client.sendTransaction(terminal, 'visit.nonsense', {}, { nonce }), 'unknown_kind')
  out.unknown_method = await expectError('METHOD_NOT_FOUND', () => client.request('node.nonsense'))
  out.unknown_param = await expectError('INVALID_PARAMS', () => client.request('chain.head', { verbose: true }))
  out.tx_not_found = await expectError('NOT_FOUND', () => client.getTx(sha256(Uint8Array.of(1, 2, 3))))

  // INVALID_REQUEST with a readable id: answered with that id, the stream stays usable.
  {
    const s = await client.openStream()
    try {
      const id = 424242
      await s.sendRaw(frame(cborEncode({ id, method: 'node.info', params: {}, extra: 1 })))
      const info = await s.request('node.info') // answered after the bad one (in order)
      const bad = s.unmatched.find(m => m.id === id)
      out.invalid_request = {
        expected: 'INVALID_REQUEST with its id, stream usable',
        ok: bad?.error?.code === -32600 && info.chain === chain,
        got: bad ?? { message: 'no answer' }
      }
    } finally {
      await s.close().catch(() => {})
    }
  }
  // Malformed frames, each on its own stream (§2, §4).
  out.parse_error_not_cbor = await rawStreamCheck(client, Uint8Array.of(0x01, 0xff), 'PARSE_ERROR')
  out.parse_error_not_a_map = await rawStreamCheck(client, frame(cborEncode([1, 'node.info', {}])), 'PARSE_ERROR')
  out.parse_error_non_minimal_prefix = await rawStreamCheck(client, Uint8Array.of(0x80, 0x00), 'PARSE_ERROR')
  out.frame_too_large = await rawStreamCheck(client, encodeUvarint(5 * 1024 * 1024), 'FRAME_TOO_LARGE')

  // After all that, the main stream still works and the account's nonce was not consumed.
  const info = await client.info()
  const acct = await client.account(terminal.address)
  out.still_serving = { expected: 'node.info on the first stream, nonce unchanged', ok: info.chain === chain && acct.pending_nonce === nonce, got: { height: info.height, pending_nonce: acct.pending_nonce } }
  return out
}

/**
 * Behaviour PROTOCOL.md does not pin down (reported, never failing the demo): what happens to a
 * request whose id cannot be read, and to a request map that is not in canonical order.
 */
async function observations (client) {
  const out = {}
  {
    const s = await client.openStream()
    try {
      await s.sendRaw(frame(cborEncode({ id: 'seven', method: 'node.info', params: {} })))
      const closed = await within(s.readLoop, 3000)
      const err = s.streamErrors[0]
      out.request_with_unreadable_id = { answer: err ? { id: err.id, code: err.code, codeName: err.codeName } : null, stream_closed: closed }
    } finally {
      await s.close().catch(() => {})
    }
  }
  {
    const s = await client.openStream()
    try {
      const id = 777
      await s.sendRaw(frame(cborgEncode({ params: {}, method: 'chain.head', id }, { mapSorter: () => 0 })))
      await s.request('chain.head')
      const answer = s.unmatched.find(m => m.id === id)
      out.non_canonical_request_map = { answered: answer ? ('error' in answer ? `error ${answer.error.code}` : 'result') : null }
    } finally {
      await s.close().catch(() => {})
    }
  }
  return out
}

async function main () {
  const opts = parseArgs(process.argv.slice(2))
  const result = { ok: false }
  const vectors = checkDocVectors()
  result.vectors = vectors
  const t0 = Date.now()
  const client = await P2pmktClient.connect(opts.addr)
  try {
    result.connect_ms = Date.now() - t0
    result.node = await client.info()
    result.head = await client.head()
    log(`connected to ${result.node.peer_id} (chain ${result.node.chain}, height ${result.head.height}) in ${result.connect_ms} ms`)

    result.fresh_key = await freshKeyTry(client, opts.merchant)
    log(`fresh key ${result.fresh_key.key}: visit.batch → ${result.fresh_key.visit_batch.got.codeName}`)

    const terminal = opts.key ? Key.fromHex(opts.key) : Key.dev('terminal')
    const v = await visits(client, terminal, opts.merchant, opts.timeoutMs)
    result.visits = v
    log(`visits committed at height(s) ${v.txs.map(t => t.height).join(', ')}; nonce ${v.nonce_before} → ${v.nonce_after}`)

    if (opts.market) {
      const tech = opts.techKey ? Key.fromHex(opts.techKey) : Key.dev(`${opts.merchant}-tech`)
      result.market = await market(client, tech, opts.merchant, opts.timeoutMs)
      log(`market.update committed: ${opts.merchant} version ${result.market.base_version} → ${result.market.version_after}`)
    }
    if (opts.checks) {
      result.checks = await checks(client, terminal, opts.merchant, v)
      const failed = Object.entries(result.checks).filter(([, c]) => !c.ok).map(([k]) => k)
      log(`checks: ${Object.keys(result.checks).length - failed.length}/${Object.keys(result.checks).length} as documented${failed.length ? `; FAILED: ${failed.join(', ')}` : ''}`)
    }
    if (opts.checks) result.observations = await observations(client)
    result.ok = vectors.ok && result.fresh_key.ok && v.ok && (!opts.market || result.market.ok) &&
      (!opts.checks || Object.values(result.checks).every(c => c.ok))
  } catch (err) {
    result.error = { ...errInfo(err), stack: err?.stack }
  } finally {
    await client.close()
  }
  process.stdout.write(`${JSON.stringify(result, jsonReplacer)}\n`)
  process.exit(result.ok ? 0 : 1)
}

main().catch(err => {
  process.stderr.write(`${err?.stack ?? err}\n`)
  process.exit(1)
})
