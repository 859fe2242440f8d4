// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'dist-faults/', 'node_modules/', 'coverage/', '.local/', '.cache/', '.deploy/'] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
    },
  },
  {
    // Every argument takes a stack slot: `Math.min(...xs)` or `push(...xs)` throws RangeError beyond ~100k items,
    // which turned one hostile device into a stalled partition (issue 11). Production code, tools and benchmarks;
    // tests handle small fixed fixtures and forward rest parameters to contract suites.
    files: ['src/**/*.ts', 'tools/**/*.ts', 'tools/**/*.cts', 'bench/**/*.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector: 'CallExpression > SpreadElement, NewExpression > SpreadElement',
          message:
            'No spread into call arguments: it throws RangeError on large arrays. Use a loop, reduce or concat (a rest parameter forwarded as-is: disable this line with a reason).',
        },
        {
          selector: "CallExpression[callee.property.name='apply'][arguments.length=2]",
          message:
            'No Function.prototype.apply with an argument array: it throws RangeError on large arrays. Use a loop.',
        },
      ],
    },
  },
  {
    // Functions that fit on a screen (docs/adr/0010): blank lines and comments do not count, IIFEs do. Tests are
    // exempt: a describe block's length is its number of cases (ADR 0010 says why).
    files: ['src/**/*.ts', 'tools/**/*.ts', 'tools/**/*.cts', 'bench/**/*.ts'],
    rules: {
      'max-lines-per-function': ['error', { max: 80, skipBlankLines: true, skipComments: true, IIFEs: true }],
    },
  },
  {
    // Files under 500 lines of code (docs/adr/0010); benchmarks are one file per benchmark and not held to it.
    files: ['src/**/*.ts', 'tools/**/*.ts', 'tools/**/*.cts'],
    rules: {
      'max-lines': ['error', { max: 500, skipBlankLines: true, skipComments: true }],
    },
  },
  {
    files: ['**/*.js', '**/*.cjs'],
    ...tseslint.configs.disableTypeChecked,
  },
  {
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { module: 'writable', require: 'readonly' } },
  },
);
