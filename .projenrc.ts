import { awscdk, DependencyType, javascript } from 'projen';

/** Lowest aws-cdk-lib the library supports (the peer dependency floor). */
const CDK_MIN_VERSION = '2.258.0';
/** The aws-cdk-lib the test suite runs against (npm and Python). */
const CDK_TESTED_VERSION = '2.276.0';
const CONSTRUCTS_VERSION = '10.8.1';

const project = new awscdk.AwsCdkConstructLibrary({
  name: 'cdk-event-fabric',
  description: 'L3 AWS CDK constructs for proven event-driven architectures: API destination channels, tiered ingest, orchestrators, aggregators.',
  author: 'cdk-event-fabric maintainers',
  authorAddress: 'maintainers@cdk-event-fabric.dev',
  repositoryUrl: 'https://github.com/cdk-event-fabric/cdk-event-fabric.git',
  keywords: ['cdk', 'aws-cdk', 'eventbridge', 'api-destination', 'event-driven', 'jsii'],
  license: 'Apache-2.0',
  defaultReleaseBranch: 'main',
  packageManager: javascript.NodePackageManager.NPM,
  projenrcTs: true,
  projenVersion: '0.103.25',
  jsiiVersion: '6.0.16',
  typescriptVersion: '6.0.3',

  cdkVersion: CDK_MIN_VERSION,
  peerDependencyOptions: { pinnedDevDependency: false },
  constructsVersion: '10.5.1',
  // 2.258.0 is the first aws-cdk-lib whose policy-validation context carries the
  // construct tree that cdk-nag 3's plugins need.

  // The repository is CI-driven by .ci/run; no hosted workflows or release automation.
  github: false,
  release: false,
  buildWorkflow: false,
  depsUpgrade: false,
  pullRequestTemplate: false,
  docgen: true,

  publishToPypi: {
    distName: 'cdk-event-fabric',
    module: 'cdk_event_fabric',
  },

  // Handlers are bundled by esbuild at build time into assets that ship in the package.
  lambdaAutoDiscover: true,
  lambdaOptions: {
    runtime: awscdk.LambdaRuntime.NODEJS_24_X,
    bundlingOptions: {
      // The Lambda runtime provides the SDK's clients; its helper libraries (lib-storage) are bundled.
      externals: ['@aws-sdk/client-*'],
      sourcemap: false,
    },
  },
  integrationTestAutoDiscover: false,

  devDeps: [
    'cdk-nag@3.0.2',
    '@aws-cdk/integ-tests-alpha@2.245.0-alpha.0',
    'aws-sdk-client-mock@4.1.0',
    'aws-sdk-client-mock-jest@4.1.0',
    '@aws-sdk/client-sqs@3.1169.0',
    '@aws-sdk/client-eventbridge@3.1169.0',
    '@aws-sdk/client-s3@3.1169.0',
    '@aws-sdk/lib-storage@3.1169.0',
    '@aws-sdk/client-dynamodb@3.1164.0',
    '@aws-sdk/util-dynamodb@3.996.9',
    '@aws-sdk/client-scheduler@3.1169.0',
    '@aws-sdk/client-lambda@3.1164.0',
    '@aws-sdk/client-kinesis@3.1143.0',
    // Tests reach moto's Kinesis over HTTP/1.1 (the client's default is HTTP/2).
    '@smithy/node-http-handler@4.14.2',
    // De-aggregates KPL-aggregated Kinesis records in the hydrator (bundled by esbuild).
    'aws-kinesis-agg@4.2.8',
    '@aws-lambda-powertools/metrics@2.36.0',
    '@aws-lambda-powertools/logger@2.36.0',
    '@types/aws-lambda@8.10.164',
    'esbuild@0.28.2',
    'jest@30.5.2',
    'ts-node@10.9.2',
    'jsii-docgen@10.12.6',
    'aws-cdk@2.1148.1',
    'fast-check@4.11.0',
    'lossless-json@4.3.3',
    // jq 1.6 (Firehose's JQ) compiled to WebAssembly: renders partition-key queries in tests.
    'jq-web@0.5.1',
  ],

  // JSON Schema validation of the curated envelope, used by CuratedEnvelope.validate at
  // synth/test time and bundled into the handlers.
  bundledDeps: ['ajv@8.17.1'],

  eslintOptions: {
    dirs: ['src'],
    devdirs: ['test', 'integ', 'bench', 'projenrc'],
  },
  jestOptions: {
    updateSnapshot: javascript.UpdateSnapshot.NEVER,
    passWithNoTests: false,
    jestConfig: {
      globalSetup: '<rootDir>/test/support/moto-global-setup.ts',
      globalTeardown: '<rootDir>/test/support/moto-global-teardown.ts',
      testTimeout: 120_000,
    },
  },
  tsconfigDev: {
    compilerOptions: {},
    include: ['../integ/**/*.ts', '../bench/**/*.ts', '../rosetta/**/*.ts', '../projenrc/**/*.ts'],
  },
  gitignore: ['/.venv/', '/cdk.out/', '/.smoke-venv/', '*.snapshot.tmp/', '.jsii.tabl.json', '/rosetta-cache.tabl.json'],
});

// Exact pins for every tool, in projen's dependency model (projen rewrites package.json
// from it after installing). The peers get these dev versions instead of their floors.
const PINNED_DEV_DEPS: Record<string, string> = {
  'aws-cdk-lib': CDK_TESTED_VERSION,
  'constructs': CONSTRUCTS_VERSION,
  '@types/jest': '30.0.0',
  '@types/node': '24.19.2',
  'ts-jest': '29.4.15',
  'jsii-pacmak': '1.140.0',
  'jsii-diff': '1.134.0',
  'eslint': '9.39.1',
  'jsii-rosetta': '6.0.17',
  'jest-junit': '17.0.0',
  '@stylistic/eslint-plugin': '2.8.0',
  '@typescript-eslint/eslint-plugin': '8.73.0',
  '@typescript-eslint/parser': '8.73.0',
  'eslint-import-resolver-typescript': '4.4.5',
  'eslint-plugin-import': '2.32.0',
};
for (const [name, version] of Object.entries(PINNED_DEV_DEPS)) {
  project.deps.addDependency(`${name}@${version}`, DependencyType.BUILD);
}

// Handler code is bundled by esbuild; the AWS SDK comes from the Lambda runtime.
project.eslint?.addOverride({
  files: ['src/**/*.lambda.ts', 'src/runtime/**/*.ts', 'src/**/replay-core.ts', 'src/**/*-core.ts',
    'src/hydrating-dlq/shard-range-reader.ts', 'src/hydrating-dlq/user-records.ts'],
  rules: { 'import/no-extraneous-dependencies': ['error', { devDependencies: true, optionalDependencies: false, peerDependencies: true }] },
});

// ---------------------------------------------------------------------------
// Python tooling: a project-local virtualenv with pinned moto server (handler
// tests) and pytest. Created from requirements-dev.txt, never by hand.
// ---------------------------------------------------------------------------
const setupPython = project.addTask('setup:python', {
  description: 'Create .venv with the pinned Python test tools (moto server, pytest)',
  exec: 'test -x .venv/bin/moto_server && .venv/bin/pip freeze | diff -q - requirements-dev.lock >/dev/null || (python3 -m venv .venv && .venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.lock)',
});
project.testTask.prependSpawn(setupPython);

// ---------------------------------------------------------------------------
// Integ snapshots: synth each integ app and compare with the committed snapshot.
// The comparison itself runs inside jest (test/integ-snapshots.test.ts).
// ---------------------------------------------------------------------------
project.addTask('integ:snapshot', {
  description: 'Re-synthesize every integ/integ.*.ts app and overwrite its committed snapshot',
  exec: 'ts-node --project test/tsconfig.json integ/snapshot.ts --update',
});

// ---------------------------------------------------------------------------
// Docs examples: jsii-rosetta compiles every TypeScript example in strict mode.
// ---------------------------------------------------------------------------
const rosetta = project.addTask('rosetta', {
  description: 'Compile every TypeScript example in README.md and docs/ with jsii-rosetta (strict)',
  exec: 'bash rosetta/compile-examples.sh',
});
project.postCompileTask.spawn(rosetta);

// ---------------------------------------------------------------------------
// Python package smoke test: jsii-pacmak wheel installed into a fresh venv.
// ---------------------------------------------------------------------------
const pythonSmoke = project.addTask('test:python', {
  description: 'Install the jsii-pacmak wheel into a fresh virtualenv and run the pytest smoke test',
  exec: 'bash test/python/run-smoke.sh',
});

// ---------------------------------------------------------------------------
// The library's main job: synth the example apps and print the cdk-nag report.
// ---------------------------------------------------------------------------
const examples = project.addTask('examples', {
  description: 'Synthesize the example apps to CloudFormation and print the cdk-nag result',
});
examples.spawn(project.tasks.tryFind('bundle')!);
examples.exec('ts-node --project test/tsconfig.json integ/synth-examples.ts');

// Always build the Python wheel too (projen packages only JS when CI is set).
project.packageTask.reset();
project.packageTask.spawn(project.tasks.tryFind('package-all')!);

const testAll = project.addTask('test:all', {
  description: 'The whole suite: build (compile, bundle, jest incl. nag/integ/moto, rosetta, docs), python wheel and its smoke test',
});
testAll.spawn(project.buildTask);
testAll.spawn(pythonSmoke);

project.addTask('schemas', {
  description: 'Write schemas/*.schema.json (shipped in the package) from their TypeScript source',
  exec: 'ts-node --project test/tsconfig.json projenrc/write-schemas.ts',
});

project.addTask('bench', {
  description: 'Benchmarks against a naive baseline: resources and synth time, replay throughput, batch publisher throughput/memory/billing, aggregator Query vs Scan, orchestrator leader per-step overhead and route reads, HydratingDlq hydration of a 10,000-record range vs a single GetRecords',
  exec: 'ts-node --project test/tsconfig.json bench/run.ts',
});

// The package ships lib/, assets/, schemas/, the bundled ajv, README, API.md and LICENSE;
// never the Python virtualenvs the tests create (a test asserts the tarball's contents).
project.npmignore?.addPatterns('/integ/', '/rosetta/', '/bench/', '/docs/', '/.ci/', 'requirements-dev.lock', 'requirements-dev.txt',
  '/cdk.out/', '/.venv/', '/.smoke-venv/', '/test-reports/');

project.synth();
