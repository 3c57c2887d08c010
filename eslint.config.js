// Lint configuration: typescript-eslint's recommended rules over the TypeScript sources.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { fileURLToPath } from 'node:url';
import { dirname } from 'node:path';
import rassLint from './scripts/lint/layers.js';

const root = dirname(fileURLToPath(import.meta.url));

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'runs/**', '.venv*/**', '.cache/**', 'native/**', 'tests/fixtures/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', URL: 'readonly', fetch: 'readonly', performance: 'readonly', AbortController: 'readonly', AbortSignal: 'readonly', TextEncoder: 'readonly', TextDecoder: 'readonly', queueMicrotask: 'readonly', structuredClone: 'readonly', Response: 'readonly', Request: 'readonly', Headers: 'readonly', FormData: 'readonly', Blob: 'readonly', setImmediate: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'off',
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    // framework/ never imports registry/ or experiments/ (docs/architecture.md).
    files: ['framework/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['**/registry/**', '**/experiments/**'], message: 'framework/ must not import registry/ or experiments/ (docs/architecture.md).' }] }],
    },
  },
  {
    // The layer order inside framework/, and plugins reaching framework/ only through its
    // public API (scripts/lint/layers.js; the order is documented in docs/architecture.md).
    files: ['framework/**/*.ts', 'registry/**/*.ts', 'experiments/**/*.ts'],
    plugins: { rass: rassLint },
    rules: { 'rass/layers': ['error', { root }] },
  },
  {
    // Plugins do not reach into the binary, tests or benchmarks.
    files: ['registry/**/*.ts', 'experiments/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['**/bin/**', '**/tests/**', '**/bench/**'], message: 'plugins must not import bin/, tests/ or bench/.' }] }],
    },
  },
);
