// The worked examples of docs/PROTOCOL.md §7, byte for byte: `node vectors.mjs` (offline)
// prints {"ok": true, …} or names what differs. demo.mjs runs it first.
import {
  Key, bytesToHex, cborDecode, cborEncode, encodeBody, frame, hexToBytes, recoverAddress, sha256,
  signTransaction, visitBatchPayload, visitPackPayload
} from './client.mjs'

const hex = (s) => s.replace(/\s+/g, '')

const DOC = {
  secret: 'e4544325ba218928d5e143bbde4cbd80a6acd7511e696ef9e4fe82a0d8b436e8',
  pubkey: '02f12e2d4ea9abac0bb5d5989a6dffa54cb311652e3b43824fc286fa5354464b36',
  address: '0xccf581cc086234102e4ebee3babbb059c3cad088',
  body: hex(`a56466726f6d54ccf581cc086234102e4ebee3babbb059c3cad088646b696e64
    6b76697369742e626174636865636861696e6a7032706d6b742d646576656e6f
    6e636500677061796c6f6164a16676697369747381886831302e302e302e3160
    1b0000019ab697e8006461636d656762726f7773657264766965776000`),
  prefix: '7032706d6b742f7369672f7631007032706d6b742d64657600747800',
  digest: 'b437c28714f60b26469e77c21886d70230bd74e6a95653642006714256396849',
  sig: '02d497262927775c81e71c5b2e29894fcfe85016f714bce725cf3d821211ac5847eaa86da3287e64a25e558745acea2ddf1526fb52ae65f4c64329457767d81300',
  txid: 'aef4c0832845b53e26b46686edcca18758e8b478ac46b110b65775877ab75647',
  wire: hex(`a263736967584102d497262927775c81e71c5b2e29894fcfe85016f714bce725
    cf3d821211ac5847eaa86da3287e64a25e558745acea2ddf1526fb52ae65f4c6
    4329457767d8130064626f6479587da56466726f6d54ccf581cc086234102e4e
    bee3babbb059c3cad088646b696e646b76697369742e62617463686563686169
    6e6a7032706d6b742d646576656e6f6e636500677061796c6f6164a166766973
    69747381886831302e302e302e31601b0000019ab697e8006461636d65676272
    6f7773657264766965776000`),
  request: hex(`ef01a362696401666d6574686f646974782e7375626d697466706172616d73a1
    62747858cca263736967584102d497262927775c81e71c5b2e29894fcfe85016
    f714bce725cf3d821211ac5847eaa86da3287e64a25e558745acea2ddf1526fb
    52ae65f4c64329457767d8130064626f6479587da56466726f6d54ccf581cc08
    6234102e4ebee3babbb059c3cad088646b696e646b76697369742e6261746368
    65636861696e6a7032706d6b742d646576656e6f6e636500677061796c6f6164
    a16676697369747381886831302e302e302e31601b0000019ab697e800646163
    6d656762726f7773657264766965776000`),
  answer: hex(`34a26269640166726573756c74a164747869645820aef4c0832845b53e26b466
    86edcca18758e8b478ac46b110b65775877ab75647`),
  pack: hex(`a26676697369747358440100000000000000005c4fb89a010000020000000200
    0400000000000000000000000100000003000000dc614fb89a01000002000000
    020304000000cf0700000000000067737472696e677385606831302e302e302e
    376461636d6563616e6e65736b752d31`)
}

export function checkDocVectors () {
  const failures = []
  const eq = (name, got, want) => { if (got !== want) failures.push({ name, got, want }) }

  const key = Key.fromHex(DOC.secret)
  eq('doc key = dev key "doc-example"', Key.dev('doc-example').secretHex, DOC.secret)
  eq('pubkey', bytesToHex(key.publicKey), DOC.pubkey)
  eq('address', key.addressHex, DOC.address)

  const payload = visitBatchPayload([{ ip: '10.0.0.1', account: '', time: 1764000000000, merchant: 'acme', method: 'browser', op: 'view', item: '', amount: 0 }])
  const tx = { chain: 'p2pmkt-dev', nonce: 0, kind: 'visit.batch', payload }
  eq('body', bytesToHex(encodeBody({ ...tx, from: key.address })), DOC.body)
  eq('sha256(doc prefix ‖ body) = doc digest', bytesToHex(sha256(hexToBytes(DOC.prefix + DOC.body))), DOC.digest)
  const signed = signTransaction(key, tx)
  eq('digest', bytesToHex(signed.digest), DOC.digest)
  eq('sig', bytesToHex(signed.sig), DOC.sig)
  eq('txid', bytesToHex(signed.txid), DOC.txid)
  eq('wire', bytesToHex(signed.wire), DOC.wire)
  eq('recover', bytesToHex(recoverAddress(signed.digest, signed.sig)), DOC.address.slice(2))
  eq('request frame', bytesToHex(frame(cborEncode({ id: 1, method: 'tx.submit', params: { tx: signed.wire } }))), DOC.request)
  const answer = cborDecode(hexToBytes(DOC.answer.slice(2)))
  eq('answer frame', `${answer.id}:${bytesToHex(answer.result.txid)}`, `1:${DOC.txid}`)

  const pack = visitPackPayload([
    { ip: '10.0.0.7', account: '', time: 1764028800000, merchant: 'acme', method: 'app', op: 'view', item: 'sku-1', amount: 0 },
    { ip: '10.0.0.7', account: 'ann', time: 1764028801500, merchant: 'acme', method: 'app', op: 'order', item: 'sku-1', amount: 1999 }
  ])
  eq('visit.pack payload', bytesToHex(cborEncode(pack)), DOC.pack)
  return { ok: failures.length === 0, checked: 13, failures }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = checkDocVectors()
  console.log(JSON.stringify(r))
  process.exit(r.ok ? 0 : 1)
}
