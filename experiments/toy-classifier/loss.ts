import * as tf from '@tensorflow/tfjs-core';
import { definePlugin } from '../../framework/api.js';

/**
 * The loss contract of the toy classifier (local to this experiment): the mean loss over a
 * batch and its gradient with respect to the logits. Returning the gradient keeps the toy
 * trainer independent of tfjs autodiff, and keeps loss plugins easy to check against
 * finite differences. Both tensors are created inside the caller's tf.tidy.
 */
export interface ClassifierLoss {
  /** `logits` [batch, classes]; `targets` one-hot float32 [batch, classes] */
  compute(logits: tf.Tensor2D, targets: tf.Tensor2D): { loss: tf.Scalar; dLogits: tf.Tensor2D };
}

/** Softmax cross-entropy, the built-in default: loss = -mean_b sum_k t log softmax(z); d/dz = (softmax(z) - t) / B. */
export const toyCrossEntropy = definePlugin({
  kind: 'loss',
  name: 'toy-cross-entropy',
  description: 'softmax cross-entropy with analytic logit gradient (the toy classifier\'s default loss)',
  schema: { type: 'object', additionalProperties: false, properties: {} } as const,
  create: (): ClassifierLoss => ({
    compute(logits, targets) {
      const batch = logits.shape[0];
      const logp = tf.logSoftmax(logits);
      const loss = tf.div(tf.neg(tf.sum(tf.mul(logp, targets))), batch) as tf.Scalar;
      const dLogits = tf.div(tf.sub(tf.exp(logp), targets), batch) as tf.Tensor2D;
      return { loss, dLogits };
    },
  }),
});
