// ESLint flat config: typescript-eslint's type-aware recommended rules for every TypeScript file, and the
// rules that keep workflows/ deterministic (Temporal's sandbox replays workflow code, so it may import
// only deterministic code and must not reach Node, the network or the activities' implementations).
// `npm run lint` runs it with `prettier --check`; `npm test` runs lint after the type-check.
// Choices and the rules left off are explained in docs/tests.md ("Lint and format").
import js from '@eslint/js';
import globals from 'globals';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

/** Node's built-in modules, both spellings (`node:fs` and `fs`): none of them belongs in a workflow. */
const NODE_BUILTINS = ['node:*', ...(await import('node:module')).builtinModules.filter((m) => !m.startsWith('_'))];

export default defineConfig(
  {
    ignores: ['node_modules/', 'dist/', '.tools/', '.data/', 'test-artifacts/', 'scratch/', 'test/histories/'],
  },
  {
    linterOptions: { reportUnusedDisableDirectives: 'error' },
  },
  js.configs.recommended,

  // TypeScript: type-aware rules, typed through tsconfig.json (one program for the whole tree).
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // A `let` read in a closure before its one assignment (a timer cleared on release) cannot be a const.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      // `async` without `await` is deliberate where an interface wants a promise (PayloadCodec, fastify
      // handlers, fakes in tests), and it turns a synchronous throw into a rejection, which callers handle.
      '@typescript-eslint/require-await': 'off',
      // tsc's noFallthroughCasesInSwitch checks this with types (it knows a `never` call such as fail() ends a case).
      'no-fallthrough': 'off',
      // Unused names: `_`-prefixed arguments and caught errors are deliberate.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true }],
      // Temporal recommends this for workflows; it matters as much for the relay and the API (a lost rejection).
      // node:test's test()/describe() return promises the runner itself awaits.
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite', 'before', 'after', 'beforeEach', 'afterEach'] },
          ],
        },
      ],
    },
  },

  // Tests and benchmarks read JSON bodies (`await res.json()` is `any`) and assert on them: the assertion is
  // the check, so the no-unsafe-* family and template-literal typing stay off there; control characters
  // in regular expressions are what the CLI tests look for.
  {
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/restrict-template-expressions': 'off',
      'no-control-regex': 'off',
    },
  },

  // Processes and libraries log through pino (redaction, levels, JSON); console is for the places that
  // print for a person: the CLI, the simulator's command line, benchmarks (one JSON object on the last
  // line) and tests (figures). A process that fails before its logger exists says so with a disable comment.
  {
    files: ['workflows/**', 'activities/**', 'src/**'],
    ignores: ['src/cli.ts', 'src/runway-sim/main.ts', 'src/api/demo/**'],
    rules: { 'no-console': 'error' },
  },

  // Workflow determinism (Temporal's samples forbid Node built-ins in workflow files; we add the rest of
  // what the sandbox cannot replay). Date and Math.random are NOT restricted: the sandbox replaces them
  // with workflow-task time and a seeded generator, so Date.now() is deterministic there.
  {
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: NODE_BUILTINS, message: "Workflows run in Temporal's deterministic sandbox: no Node built-ins. Do the I/O in an activity." },
            {
              regex: '^(\\.\\./)+activities(/.*)?$',
              allowTypeImports: true,
              message: 'Workflows call activities through proxyActivities (workflows/session/activities.ts); import their types only.',
            },
            {
              regex: '^(\\.\\./)+src(/.*)?$',
              allowTypeImports: true,
              message: 'src/ holds processes, clients and I/O; a workflow may import only deterministic code (types are fine).',
            },
            {
              group: ['@temporalio/client', '@temporalio/worker', '@temporalio/activity', '@temporalio/testing', '@temporalio/envconfig'],
              message: 'Workflows import @temporalio/workflow and @temporalio/common only.',
            },
          ],
        },
      ],
      'no-restricted-globals': [
        'error',
        ...['process', 'require', 'Buffer', 'fetch', 'setInterval', 'setImmediate', 'WeakRef', 'FinalizationRegistry'].map((name) => ({
          name,
          message: `${name} is not deterministic in a Temporal workflow (or not in its sandbox): use an activity, wf.sleep or wf.condition.`,
        })),
        { name: 'console', message: 'Use log from @temporalio/workflow: it is replay-aware and carries the workflow ids.' },
      ],
    },
  },

  // Plain JavaScript: the CLI shim (Node, CommonJS) and the demo page (a browser script), without type information.
  {
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    extends: [tseslint.configs.disableTypeChecked],
  },
  { files: ['bin/**/*.js'], languageOptions: { sourceType: 'commonjs', globals: globals.node } },
  { files: ['src/api/demo/**/*.js'], languageOptions: { sourceType: 'script', globals: globals.browser } },
  { files: ['eslint.config.mjs'], languageOptions: { globals: globals.node } },
);
