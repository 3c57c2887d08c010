/** denseFlops (framework/engine/compile.ts): the multiply-add work of convolutions and matrix products, analytically. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { denseFlops } from '../../../framework/engine/compile.js';

const attr = (name: string, value: unknown) => ({ name, type: 0, value });

test('convolutions: forward and both gradients cost 2 * outputs * kh * kw * Cin', () => {
  const conv = 2 * (2 * 8 * 8 * 16) * (3 * 3 * 4);
  assert.equal(denseFlops('Conv2D', [], [[2, 10, 10, 4], [3, 3, 4, 16]], [2, 8, 8, 16]), conv);
  assert.equal(denseFlops('Conv2DBackpropInput', [], [[4], [3, 3, 4, 16], [2, 8, 8, 16]], [2, 10, 10, 4]), conv);
  assert.equal(denseFlops('Conv2DBackpropFilter', [], [[2, 10, 10, 4], [4], [2, 8, 8, 16]], [3, 3, 4, 16]), conv);
  // depthwise: kh*kw multiply-adds per output value
  assert.equal(denseFlops('DepthwiseConv2dNative', [], [[1, 14, 14, 3], [5, 5, 3, 2]], [1, 10, 10, 6]), 2 * 600 * 25);
});

test('matrix products: 2 * outputs * K, K read from the transposed side where the attrs say so', () => {
  assert.equal(denseFlops('MatMul', [attr('transpose_a', false)], [[3, 5], [5, 7]], [3, 7]), 2 * 21 * 5);
  assert.equal(denseFlops('MatMul', [attr('transpose_a', true)], [[5, 3], [5, 7]], [3, 7]), 2 * 21 * 5);
  assert.equal(denseFlops('BatchMatMulV2', [attr('adj_x', false)], [[2, 4, 3, 5], [2, 4, 5, 7]], [2, 4, 3, 7]), 2 * 168 * 5);
  assert.equal(denseFlops('BatchMatMulV2', [attr('adj_x', true)], [[2, 4, 5, 3], [2, 4, 5, 7]], [2, 4, 3, 7]), 2 * 168 * 5);
});

test('other ops and unknown shapes count nothing', () => {
  assert.equal(denseFlops('Add', [], [[100, 100], [100, 100]], [100, 100]), 0);
  assert.equal(denseFlops('Conv2D', [], [[2, 10, 10, 4], undefined], [2, 8, 8, 16]), 0);
  assert.equal(denseFlops('MatMul', [], [undefined, [5, 7]], [3, 7]), 0);
});
