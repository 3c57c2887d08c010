// ESLint rule `rass/layers`: the import order inside framework/ (docs/architecture.md).
// Each framework/ folder (and the two base files) has a layer; a file may import only from its
// own folder or from a strictly lower layer, so arrows against the order and cycles between
// folders fail `npm run lint`. Outside framework/, plugin code (registry/, experiments/) may
// reach framework/ only through its public API (framework/api.ts or framework/index.ts, or
// framework/host.ts, its tfjs-free part for helper threads).
import { dirname, relative, resolve, sep } from 'node:path';

/** Lowest first. Folders on one layer may not import each other. */
export const FRAMEWORK_LAYERS = [
  ['errors.ts', 'paths.ts'],
  ['engine', 'image'],
  ['plugins'],
  ['contracts', 'config'],
  ['output', 'tracking'],
  ['runner'],
  ['sweep'],
  ['cli'],
  ['api.ts', 'host.ts'],
  ['index.ts'],
];

const rankOf = new Map(FRAMEWORK_LAYERS.flatMap((units, rank) => units.map((u) => [u, rank])));
const PUBLIC_API = new Set(['api.ts', 'host.ts', 'index.ts']);

/** `framework/<unit>/...` -> unit (a folder or a top-level file), or undefined outside framework/. */
function unitOf(repoRelative) {
  const parts = repoRelative.split(sep);
  if (parts[0] !== 'framework' || parts.length < 2) return undefined;
  return parts.length === 2 ? parts[1].replace(/\.js$/, '.ts') : parts[1];
}

export const layersRule = {
  meta: {
    type: 'problem',
    docs: { description: 'framework/ layer order; plugins use only the public API' },
    schema: [{ type: 'object', properties: { root: { type: 'string' } }, additionalProperties: false }],
  },
  create(context) {
    const root = context.options[0]?.root ?? context.cwd;
    const file = relative(root, context.filename);
    const top = file.split(sep)[0];
    const fromUnit = unitOf(file);
    const check = (node, source) => {
      if (typeof source !== 'string' || !source.startsWith('.')) return;
      const target = relative(root, resolve(dirname(context.filename), source));
      const toUnit = unitOf(target);
      if (toUnit === undefined) return;
      if (fromUnit === undefined) {
        if ((top === 'registry' || top === 'experiments') && !PUBLIC_API.has(toUnit)) {
          context.report({ node, message: `${top}/ reaches framework/ only through its public API (framework/api.js); ${source} is internal` });
        }
        return;
      }
      if (toUnit === fromUnit) return;
      const from = rankOf.get(fromUnit);
      const to = rankOf.get(toUnit);
      if (from === undefined) return context.report({ node, message: `framework/${fromUnit} has no layer: add it to FRAMEWORK_LAYERS (scripts/lint/layers.js) and docs/architecture.md` });
      if (to === undefined) return context.report({ node, message: `framework/${toUnit} has no layer: add it to FRAMEWORK_LAYERS (scripts/lint/layers.js) and docs/architecture.md` });
      if (to >= from) {
        context.report({ node, message: `framework/${fromUnit} (layer ${from}) may not import framework/${toUnit} (layer ${to}): imports go to lower layers only (docs/architecture.md)` });
      }
    };
    const literal = (n) => (n?.type === 'Literal' ? n.value : n?.type === 'TemplateLiteral' && n.expressions.length === 0 ? n.quasis[0].value.cooked : undefined);
    return {
      ImportDeclaration: (n) => check(n, n.source.value),
      // `type X = import('../x.js').Y`, `import x = require('../x.js')`, `require('../x.js')`
      TSImportType: (n) => check(n, literal(n.argument?.literal ?? n.argument)),
      TSExternalModuleReference: (n) => check(n, literal(n.expression)),
      'CallExpression[callee.name="require"]': (n) => check(n, literal(n.arguments[0])),
      ExportNamedDeclaration: (n) => n.source && check(n, n.source.value),
      ExportAllDeclaration: (n) => check(n, n.source.value),
      ImportExpression: (n) => check(n, literal(n.source)),
    };
  },
};

export default { rules: { layers: layersRule } };
