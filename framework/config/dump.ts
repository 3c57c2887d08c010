import { Document, isMap, isSeq, isPair, isScalar, type Node } from 'yaml';
import type { OriginMap } from './origins.js';
import { formatOrigin } from './origins.js';

/** YAML text of a config; with `origins`, every value carries a `# file:line:col` comment. */
export function dumpValue(value: unknown, origins?: OriginMap): string {
  const doc = new Document(value);
  if (origins) {
    const visit = (node: Node | null | undefined, path: (string | number)[]): void => {
      if (isMap(node)) {
        for (const pair of node.items) {
          if (!isPair(pair)) continue;
          const k = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
          const p = [...path, k];
          const o = formatOrigin(origins.nearest(p));
          const v = pair.value as Node | null;
          if (isScalar(v) || (v && (isSeq(v) || isMap(v)) && v.items.length === 0)) {
            if (o && v) v.comment = ` ${o}`;
          } else if (o && isScalar(pair.key)) {
            pair.key.commentBefore = undefined;
            (pair.key as Node).comment = undefined;
            if (v) v.commentBefore = ` ${o}`;
          }
          visit(v, p);
        }
      } else if (isSeq(node)) {
        node.items.forEach((item, i) => {
          const p = [...path, i];
          if (isScalar(item)) {
            const o = formatOrigin(origins.nearest(p));
            if (o) item.comment = ` ${o}`;
          }
          visit(item as Node, p);
        });
      }
    };
    visit(doc.contents as Node, []);
  }
  return doc.toString({ lineWidth: 0 });
}
