// Third-party plugins an SCR run can use in place of the built-in ones (see README.md).
// Each implements a contract of framework/contracts: the image-loss contract
// (compute(pred, target) -> { total, terms }), the attention-loss contract
// (layers + compute(attention, samples)) and the tagger contract.

/** @param {typeof import('rass')} rass  the host's public plugin API */
export default (rass) => {
  const { tf } = rass;

  const charbonnier = rass.definePlugin({
    kind: 'loss',
    name: 'charbonnier',
    description: 'Charbonnier restoration loss mean(sqrt((pred - target)^2 + eps^2))',
    schema: { type: 'object', additionalProperties: false, properties: { eps: { type: 'number', exclusiveMinimum: 0, default: 1e-3 } } },
    create(o) {
      return {
        type: 'charbonnier',
        compute(pred, target) {
          const total = tf.mean(tf.sqrt(tf.add(tf.square(tf.sub(pred, target)), o.eps * o.eps)));
          return { total, terms: { charbonnier: total } };
        },
      };
    },
  });

  // The simplest attention constraint: 1 - (attention mass inside the tag's mask), averaged.
  const attentionMass = rass.definePlugin({
    kind: 'loss',
    name: 'attention-mass',
    description: 'attention loss: 1 - share of each matched tag\'s attention inside its (nearest-resized) mask',
    schema: { type: 'object', additionalProperties: false, properties: { layers: { type: 'array', items: { type: 'string' }, default: ['.*attn2'] } } },
    create(o) {
      return {
        type: 'attention-mass',
        layers: o.layers,
        compute(attention, samples) {
          let matched = 0;
          let unmatched = 0;
          for (const s of samples) {
            matched += s.targets.length;
            unmatched += s.unmatched.length;
          }
          const parts = [];
          for (const map of attention.values()) {
            const [, nq] = map.shape;
            samples.forEach((s, i) => {
              const h = Math.round(Math.sqrt((nq * s.height) / s.width));
              const w = nq / h;
              for (const t of s.targets) {
                const m = new Float32Array(nq);
                for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) m[y * w + x] = t.mask[Math.floor(((y + 0.5) * s.height) / h) * s.width + Math.floor(((x + 0.5) * s.width) / w)];
                const a = tf.sum(tf.gather(tf.reshape(tf.slice(map, [i, 0, 0], [1, nq, map.shape[2]]), [nq, map.shape[2]]), t.tokens, 1), 1);
                parts.push(tf.sub(1, tf.div(tf.sum(tf.mul(a, tf.tensor1d(m))), tf.add(tf.sum(a), 1e-8))));
              }
            });
          }
          const total = parts.length ? tf.mean(tf.stack(parts)) : tf.scalar(0);
          return { total, terms: { attention_mass: total }, matched, unmatched };
        },
      };
    },
  });

  // Tags = the dataset classes present, but only from a fixed vocabulary (the rest are dropped).
  const vocabularyTagger = rass.definePlugin({
    kind: 'tagger',
    name: 'vocabulary',
    description: 'tags = ground-truth classes that are in `vocabulary`; a tag\'s mask is its class',
    schema: { type: 'object', additionalProperties: false, required: ['vocabulary'], properties: { vocabulary: { type: 'array', items: { type: 'string' }, minItems: 1 } } },
    create(o) {
      const classesForTag = (tag, classNames) => {
        const i = classNames.indexOf(tag);
        return i >= 0 ? [i] : [];
      };
      return {
        type: 'vocabulary',
        tagsFor(sample, classNames) {
          if (!sample.label) return [];
          const present = new Set(sample.label);
          return classNames.filter((n, c) => present.has(c) && o.vocabulary.includes(n));
        },
        classesForTag,
        maskForTag(tag, label, classNames) {
          const cls = classesForTag(tag, classNames);
          if (!cls.length) return null;
          return Uint8Array.from(label, (v) => (cls.includes(v) ? 1 : 0));
        },
      };
    },
  });

  return rass.pluginPackage({ name: 'rass-example-scr-plugins', plugins: [charbonnier, attentionMass, vocabularyTagger] });
};
