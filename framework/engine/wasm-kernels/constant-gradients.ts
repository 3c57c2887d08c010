import * as tf from '@tensorflow/tfjs-core';

/**
 * Zero gradients for comparisons and logical ops. tfjs 4.22 registers none for them, so any
 * differentiated path through e.g. tf.where(tf.greater(x, 0), a(x), b(x)) fails with
 * "gradient function not found for Greater" on every backend, although the comparison is
 * piecewise constant (its gradient is zero almost everywhere, as TensorFlow and PyTorch treat it).
 */
const BINARY = ['Greater', 'GreaterEqual', 'Less', 'LessEqual', 'Equal', 'NotEqual', 'LogicalAnd', 'LogicalOr'] as const;

export const constantGradConfigs: tf.GradConfig[] = [
  ...BINARY.map((kernelName): tf.GradConfig => ({
    kernelName,
    inputsToSave: ['a', 'b'],
    gradFunc: (_dy, saved) => {
      const [a, b] = saved as [tf.Tensor, tf.Tensor];
      // float32 zeros whatever the input dtype: tfjs requires float gradients (bool inputs included).
      return { a: () => tf.zeros(a.shape), b: () => tf.zeros(b.shape) };
    },
  })),
  {
    kernelName: 'LogicalNot',
    inputsToSave: ['x'],
    gradFunc: (_dy, saved) => ({ x: () => tf.zeros((saved as [tf.Tensor])[0].shape) }),
  },
];
