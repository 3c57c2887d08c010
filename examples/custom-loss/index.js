// An external rass plugin package. The default export is a function of the host's public
// API (`rass`), so this package needs no copy of rass or tfjs of its own: it uses
// `rass.definePlugin`, `rass.pluginPackage` and the host's tfjs as `rass.tf`.

/** @param {typeof import('rass')} rass  the host's public plugin API (framework/api.ts) */
export default (rass) => {
  const { tf } = rass;

  const labelSmoothingCe = rass.definePlugin({
    kind: 'loss',
    name: 'label-smoothing-ce',
    version: '0.1.0',
    description: 'softmax cross-entropy against label-smoothed targets, with its analytic logit gradient',
    docs: 'Targets become (1 - smoothing) * onehot + smoothing / classes. '
      + 'loss = -mean_b sum_k q log softmax(z); d loss / d z = (softmax(z) - q) / batch. '
      + 'Implements the toy classifier loss contract: compute(logits, onehot) -> { loss, dLogits }.',
    schema: {
      type: 'object',
      additionalProperties: false,
      properties: {
        smoothing: { type: 'number', minimum: 0, exclusiveMaximum: 1, default: 0.1, description: 'probability mass spread over all classes' },
      },
    },
    create(options) {
      const eps = options.smoothing;
      return {
        compute(logits, onehot) {
          const [batch, classes] = logits.shape;
          const q = tf.add(tf.mul(onehot, 1 - eps), eps / classes);
          const logp = tf.logSoftmax(logits);
          const loss = tf.div(tf.neg(tf.sum(tf.mul(logp, q))), batch);
          const dLogits = tf.div(tf.sub(tf.exp(logp), q), batch);
          return { loss, dLogits };
        },
      };
    },
  });

  return rass.pluginPackage({ name: 'rass-example-custom-loss', plugins: [labelSmoothingCe] });
};
