import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { buildNode, PluginRegistry, type ComponentNode } from '../../../framework/api.js';
import { registryPackage } from '../../../registry/index.js';

export const f32 = (b64: string) => new Float32Array(new Uint8Array(Buffer.from(b64, 'base64')).buffer);

let reg: PluginRegistry | undefined;
/** Build a node through the real registry: schema validation, defaults, ctx.build for nested nodes. */
export function build<T>(node: ComponentNode, baseDir?: string): Promise<T> {
  if (!reg) {
    reg = new PluginRegistry();
    reg.loadPackage(registryPackage);
  }
  return buildNode<T>(node, reg, { baseDir });
}

/**
 * Gradients are tiny where the loss is a mean over many elements, so an absolute 1e-4 would be
 * vacuous: compare every element within `tol` relative to the largest reference magnitude.
 */
export function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, label: string): number {
  assert.equal(got.length, want.length, `${label}: length`);
  let scale = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  assert.ok(scale > 0, `${label}: reference is all zeros`);
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]) / scale;
    assert.ok(Number.isFinite(got[i]), `${label}[${i}] = ${got[i]}`);
    worst = Math.max(worst, e);
  }
  assert.ok(worst <= tol, `${label}: max |got - want| / max|want| = ${worst.toExponential(2)} > ${tol}`);
  return worst;
}

export function scalar(t: tf.Tensor): number {
  return t.dataSync()[0];
}
