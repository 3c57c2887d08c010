import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ClipTokenizer } from '../../../registry/backbones/sd/tokenizer.js';

const FIX = join(process.cwd(), 'tests', 'fixtures', 'backbones');

describe('CLIP BPE tokenizer vs transformers CLIPTokenizer (fixture)', () => {
  const ref = JSON.parse(readFileSync(join(FIX, 'tokenizer.json'), 'utf8')) as {
    cases: { text: string; ids: number[] }[];
    padded: { text: string; max_length: number; ids: number[] };
  };
  const tok = ClipTokenizer.fromFolder(join(FIX, 'tiny-sd', 'tokenizer'));
  for (const c of ref.cases) {
    it(`encodes ${JSON.stringify(c.text)}`, () => assert.deepEqual(tok.encode(c.text), c.ids));
  }
  it('pads to max_length with the pad token', () => {
    assert.deepEqual(tok.encode(ref.padded.text, { pad: true, maxLength: ref.padded.max_length }), ref.padded.ids);
  });
  it('truncates keeping EOS last', () => {
    const ids = tok.encode('a photo of a cat a photo of a cat a photo of a cat', { maxLength: 6 });
    assert.equal(ids.length, 6);
    assert.equal(ids[5], tok.eosId);
  });
});
