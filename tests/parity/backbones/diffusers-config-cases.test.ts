import * as tf from '@tensorflow/tfjs-core';
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { useBackend } from '../../../framework/engine/backend.js';
import { readSafetensors, toFloat32 } from '../../../framework/engine/safetensors.js';
import { UserError } from '../../../framework/errors.js';
import { loadUNet, loadVae } from '../../../registry/backbones/sd/pretrained.js';
import { UNET_KEYS, VAE_KEYS, type KeyRule } from '../../../registry/backbones/sd/diffusers-config.js';
import { FIXTURES } from './_fixtures.js';

/**
 * diffusers config cases (scripts/fixtures/backbones/gen_config_cases.py): every sampled
 * UNet2DConditionModel / AutoencoderKL config either loads and matches diffusers' output on
 * the same weights within 1e-4 relative (max |ours - diffusers| / max |diffusers|), or is
 * refused with a UserError naming the key and its value -- whichever the fixture declares.
 */
const CASES = join(FIXTURES, 'config-cases');
const REL_TOL = 1e-4;

interface Case {
  name: string;
  kind: 'unet' | 'vae';
  what: string;
  expect: 'parity' | { refused: string; value: unknown };
}
const index = JSON.parse(readFileSync(join(CASES, 'cases.json'), 'utf8')) as { seed: number; diffusers: string; cases: Case[] };
const signature = JSON.parse(readFileSync(join(CASES, 'signature.json'), 'utf8')) as Record<string, Record<string, unknown>>;
const configOf = (c: Case): Record<string, unknown> => JSON.parse(readFileSync(join(CASES, c.name, c.kind, 'config.json'), 'utf8')) as Record<string, unknown>;

function io(c: Case): Record<string, tf.Tensor> {
  const out: Record<string, tf.Tensor> = {};
  for (const [k, e] of readSafetensors(join(CASES, c.name, 'io.safetensors')).tensors) out[k] = tf.tensor(toFloat32(e), e.shape);
  return out;
}

function relErr(ours: tf.Tensor, ref: tf.Tensor): number {
  assert.deepEqual(ours.shape, ref.shape, 'output shape differs from diffusers');
  return tf.tidy(() => (tf.max(tf.abs(tf.sub(ours, ref))).dataSync()[0] as number) / Math.max(tf.max(tf.abs(ref)).dataSync()[0] as number, 1e-12));
}

/** Largest relative error over the case's outputs (the test fails if it is over REL_TOL). */
function runParity(c: Case): number {
  const t = io(c);
  const root = join(CASES, c.name);
  const errs: number[] = [];
  if (c.kind === 'unet') {
    const unet = loadUNet(root);
    const out = unet.forward(t.sample as tf.Tensor4D, t.timesteps as tf.Tensor1D, t.context as tf.Tensor3D);
    errs.push(relErr(out.sample, t.out));
    out.sample.dispose();
    unet.dispose();
  } else {
    const vae = loadVae(root);
    const enc = vae.encode(t.image as tf.Tensor4D);
    const dec = vae.decode(t.mean as tf.Tensor4D);
    errs.push(relErr(enc.mean, t.mean), relErr(enc.logvar, t.logvar), relErr(dec.sample, t.decoded));
    tf.dispose([enc.mean, enc.logvar, dec.sample]);
    vae.dispose();
  }
  tf.dispose(Object.values(t));
  return Math.max(...errs);
}

describe(`diffusers ${index.diffusers} config cases (seed ${index.seed}): parity within ${REL_TOL} relative or a refusal naming the key`, () => {
  before(async () => {
    await useBackend('cpu');
  });

  for (const c of index.cases) {
    if (c.expect === 'parity') {
      it(`${c.name} loads and matches diffusers (${c.what})`, (t) => {
        const start = tf.memory().numTensors;
        const err = runParity(c);
        t.diagnostic(`relative error ${err.toExponential(2)}`);
        assert.ok(err <= REL_TOL, `${c.name}: relative error ${err.toExponential(3)} > ${REL_TOL}`);
        assert.equal(tf.memory().numTensors, start, 'loading and running the case leaked tensors');
      });
    } else {
      const { refused, value } = c.expect;
      it(`${c.name} is refused naming ${refused} = ${JSON.stringify(value)}`, () => {
        const load = c.kind === 'unet' ? loadUNet : loadVae;
        assert.throws(
          () => load(join(CASES, c.name)).dispose(),
          (e: unknown) => {
            assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`);
            assert.ok(e.message.includes(`${refused} = ${JSON.stringify(value)}`), `the refusal does not name ${refused} = ${JSON.stringify(value)}:\n${e.message}`);
            assert.ok(e.message.includes(join(CASES, c.name, c.kind, 'config.json')), `the refusal does not name the config file:\n${e.message}`);
            return true;
          },
          `${c.name}: expected a refusal naming ${refused}, but the config loaded`,
        );
      });
    }
  }
});

describe('the key tables cover diffusers exactly, and every key has a case', () => {
  for (const [cls, table, kind] of [
    ['UNet2DConditionModel', UNET_KEYS, 'unet'],
    ['AutoencoderKL', VAE_KEYS, 'vae'],
  ] as [string, Readonly<Record<string, KeyRule>>, 'unet' | 'vae'][]) {
    it(`${cls}: one rule per __init__ parameter of the installed diffusers, with diffusers' default`, () => {
      const params = signature[cls];
      assert.deepEqual(Object.keys(table).sort(), Object.keys(params).sort());
      for (const [k, rule] of Object.entries(table)) assert.deepEqual(rule.default, params[k], `default of ${k}`);
    });

    it(`${cls}: every implemented key has a parity case with a non-default value, every default-only key a refusal case`, () => {
      const cases = index.cases.filter((c) => c.kind === kind);
      const parityConfigs = cases.filter((c) => c.expect === 'parity').map(configOf);
      const refusedKeys = new Set(cases.map((c) => (c.expect === 'parity' ? null : c.expect.refused.replace(/\[\d+\]$/, ''))));
      const uncovered: string[] = [];
      for (const [k, rule] of Object.entries(table)) {
        if (rule.status === 'default-only') {
          if (!refusedKeys.has(k)) uncovered.push(`${k} (no refusal case)`);
        } else if (!parityConfigs.some((cfg) => k in cfg && JSON.stringify(cfg[k]) !== JSON.stringify(rule.default))) {
          uncovered.push(`${k} (no parity case with a non-default value)`);
        }
      }
      assert.deepEqual(uncovered, []);
    });

    it(`${cls}: docs/diffusers-configs.md has a row for every key with its status`, () => {
      const doc = readFileSync(join(process.cwd(), 'docs', 'diffusers-configs.md'), 'utf8');
      const section = doc.split(`## ${cls}`)[1]?.split('\n## ')[0] ?? '';
      assert.ok(section, `docs/diffusers-configs.md has no "## ${cls}" section`);
      const missing = Object.entries(table).filter(([k, rule]) => !new RegExp(`^\\| \`${k}\` \\| ${rule.status} \\|`, 'm').test(section));
      assert.deepEqual(missing.map(([k]) => k), []);
    });
  }
});
