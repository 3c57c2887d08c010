import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensors, serializeSafetensors, parseSafetensors, toFloat32, writeSafetensors } from '../../../framework/engine/safetensors.js';

test('round trip keeps names, shapes, values and metadata', () => {
  const dir = mkdtempSync(join(tmpdir(), 'st-'));
  const p = join(dir, 'w.safetensors');
  const a = Float32Array.from([1.5, -2, 3.25, 0, 7, 8]);
  writeSafetensors(p, { 'b.weight': { dtype: 'F32', shape: [2, 3], data: a }, 'a.idx': { dtype: 'I32', shape: [2], data: Int32Array.from([4, -5]) } }, { format: 'pt' });
  const f = readSafetensors(p);
  assert.deepEqual([...f.tensors.keys()], ['a.idx', 'b.weight']);
  assert.deepEqual(f.tensors.get('b.weight')!.shape, [2, 3]);
  assert.deepEqual([...toFloat32(f.tensors.get('b.weight')!)], [...a]);
  assert.deepEqual([...toFloat32(f.tensors.get('a.idx')!)], [4, -5]);
  assert.deepEqual(f.metadata, { format: 'pt' });
  // header length is a multiple of 8 (alignment as the reference writer produces)
  const buf = readFileSync(p);
  assert.equal(Number(buf.readBigUInt64LE(0)) % 8, 0);
});

test('fp16 and bf16 entries upcast exactly', () => {
  // 1.0 = 0x3c00 (f16), -2.5 = 0xc100 (f16); bf16 of 3.0 = 0x4040
  const header = JSON.stringify({ h: { dtype: 'F16', shape: [2], data_offsets: [0, 4] }, b: { dtype: 'BF16', shape: [1], data_offsets: [4, 6] } });
  const hb = Buffer.from(header);
  const buf = Buffer.alloc(8 + hb.length + 6);
  buf.writeBigUInt64LE(BigInt(hb.length), 0);
  hb.copy(buf, 8);
  buf.writeUInt16LE(0x3c00, 8 + hb.length);
  buf.writeUInt16LE(0xc100, 8 + hb.length + 2);
  buf.writeUInt16LE(0x4040, 8 + hb.length + 4);
  const f = parseSafetensors(buf);
  assert.deepEqual([...toFloat32(f.tensors.get('h')!)], [1, -2.5]);
  assert.deepEqual([...toFloat32(f.tensors.get('b')!)], [3]);
});

test('truncated and malformed files get errors naming the file and the problem', () => {
  const dir = mkdtempSync(join(tmpdir(), 'st-'));
  const good = serializeSafetensors({ w: { dtype: 'F32', shape: [4], data: new Float32Array(4) } });
  const p = join(dir, 'trunc.safetensors');
  writeFileSync(p, good.subarray(0, good.length - 3));
  assert.throws(() => readSafetensors(p), (e: Error) => e.message.includes(p) && /truncated/.test(e.message));
  assert.throws(() => parseSafetensors(new Uint8Array(4), 'x.st'), /x\.st.*shorter than the 8-byte/);
  const bad = Buffer.from(good);
  bad.write('#', 8); // break the JSON
  assert.throws(() => parseSafetensors(bad, 'y.st'), /y\.st.*not valid UTF-8 JSON/);
  const huge = Buffer.alloc(16);
  huge.writeBigUInt64LE(10n ** 12n, 0);
  assert.throws(() => parseSafetensors(huge, 'z.st'), /implausibly large/);
  const h = JSON.stringify({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } });
  const b2 = Buffer.alloc(8 + h.length + 8);
  b2.writeBigUInt64LE(BigInt(h.length), 0);
  b2.write(h, 8);
  assert.throws(() => parseSafetensors(b2, 'w.st'), /needs 12 bytes but its offsets span 8/);
  assert.throws(() => readSafetensors(join(dir, 'missing.safetensors')), /cannot open .*missing\.safetensors: ENOENT/);
});
