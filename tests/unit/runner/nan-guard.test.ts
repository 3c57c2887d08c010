import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { NonFiniteMetricError, nanGuard } from '../../../framework/runner/nan-guard.js';

describe('fail_on_nan guard', () => {
  it('default policy guards loss-like names only, and names metric, value and step', () => {
    const g = nanGuard(undefined);
    g(3, { accuracy: NaN, psnr: Infinity }); // not loss-like: recorded, not fatal
    g(3, { loss: 0.5, val_loss: 1e30 });
    assert.throws(() => g(4, { accuracy: 1, 'train/loss_scl': NaN }), (e: unknown) => {
      assert.ok(e instanceof NonFiniteMetricError);
      assert.equal(e.metric, 'train/loss_scl');
      assert.equal(e.step, 4);
      assert.match(e.message, /metric "train\/loss_scl" became NaN at step 4/);
      return true;
    });
    assert.throws(() => g(5, { loss: -Infinity }), /became -Infinity at step 5/);
  });

  it('true guards every metric, false and [] none; globs are anchored and literal except *', () => {
    assert.throws(() => nanGuard(true)(1, { accuracy: NaN }), NonFiniteMetricError);
    nanGuard(false)(1, { loss: NaN });
    nanGuard([])(1, { loss: NaN });
    const g = nanGuard(['test_*', 'miou']);
    g(1, { loss: NaN, 'miou.x': NaN, pretest_acc: NaN });
    assert.throws(() => g(1, { test_acc: NaN }), /test_acc/);
    assert.throws(() => g(1, { miou: Infinity }), /miou/);
    const dot = nanGuard(['a.b']);
    dot(1, { axb: NaN }); // '.' is literal
    assert.throws(() => dot(1, { 'a.b': NaN }), /a\.b/);
  });
});
