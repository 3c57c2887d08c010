/** Render a JSON Schema's properties as an indented option list (for `rass plugins show`). */
export function describeSchema(schema: unknown, indent = ''): string {
  const s = schema as { properties?: Record<string, any>; required?: string[] };
  if (!s || typeof s !== 'object' || !s.properties) return '';
  const req = new Set(s.required ?? []);
  const lines: string[] = [];
  for (const [key, prop] of Object.entries(s.properties)) {
    const type = prop.enum ? prop.enum.map((v: unknown) => JSON.stringify(v)).join(' | ') : prop.type ?? (prop.oneOf || prop.anyOf ? 'one of several' : 'any');
    const parts = [`${indent}${key}${req.has(key) ? ' (required)' : ''}: ${Array.isArray(type) ? type.join(' | ') : type}`];
    if (prop.default !== undefined) parts.push(`default ${JSON.stringify(prop.default)}`);
    if (prop.minimum !== undefined) parts.push(`>= ${prop.minimum}`);
    if (prop.maximum !== undefined) parts.push(`<= ${prop.maximum}`);
    let line = parts.join(', ');
    if (prop.description) line += `  -- ${prop.description}`;
    lines.push(line);
    if (prop.type === 'object' && prop.properties) lines.push(describeSchema(prop, indent + '  '));
  }
  return lines.filter(Boolean).join('\n');
}
