import * as tf from '@tensorflow/tfjs-core';

/** What a custom op's forward returns: its value and the gradient of each input given dy and the saved tensors. */
export interface CustomOpResult {
  value: tf.Tensor;
  gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor[];
}

/**
 * tf.customGrad with the inputs as one array (tfjs types them as a mixed rest list ending in
 * the save function). The forward runs with the gradient tape off, so nothing it computes is
 * kept for backward except what it passes to `save`; the returned function takes the inputs
 * and gives gradients to every one of them (variables included).
 */
export function customOp(forward: (inputs: tf.Tensor[], save: tf.GradSaveFunc) => CustomOpResult): (...inputs: tf.Tensor[]) => tf.Tensor {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => forward(args.slice(0, -1) as tf.Tensor[], args[args.length - 1] as tf.GradSaveFunc));
  return (...inputs: tf.Tensor[]) => op(...inputs);
}
