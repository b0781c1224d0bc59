// typescript-eslint's type-checked rules over src/, test/ and bench/; formatting is Prettier's.
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.tap/**', 'bench/results/**', 'coverage/**'] },
  ...tseslint.configs.recommendedTypeChecked,
  prettier,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // A forgotten promise in a daemon is a lost error: both stay errors, as the recommended set has them.
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      // A parameter a signature requires but this implementation does not use says so with _.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['test/**/*.ts'],
    rules: {
      // tap's t.test() returns a promise the runner itself awaits: subtests are queued, not lost.
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafePromises: [{ from: 'package', name: 'PromiseWithSubtest', package: '@tapjs/core' }] },
      ],
      // A subtest's callback is async by tap's convention whether or not it awaits.
      '@typescript-eslint/require-await': 'off',
    },
  },
  // Plain JavaScript fixtures and scripts: no type information for them.
  { files: ['**/*.js', '**/*.mjs', '**/*.cjs'], ...tseslint.configs.disableTypeChecked },
);
