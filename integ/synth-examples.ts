/**
 * The library's main job, with no AWS account: synthesize every example app
 * (`integ/integ.*.ts`) to CloudFormation under `cdk.out/examples/<app>/`, with the
 * cdk-nag AwsSolutions and Serverless packs, and print the result.
 * Exits non-zero when a pack reports an unacknowledged finding.
 */
import * as fs from 'fs';
import * as path from 'path';
import { App } from 'aws-cdk-lib';
import { integApps } from './snapshot';
import { formatFindings, synthNagFindings } from '../test/support/nag';

const outRoot = path.join(process.cwd(), 'cdk.out', 'examples');
let failed = false;

for (const appFile of integApps()) {
  const name = appFile.replace(/^integ\.|\.ts$/g, '');
  const outdir = path.join(outRoot, name);
  fs.rmSync(outdir, { recursive: true, force: true });
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { buildApp } = require(path.join(__dirname, appFile));
  const app = new App({ outdir });
  buildApp(app);
  const findings = synthNagFindings(app);
  console.log(`\n${name}`);
  for (const file of fs.readdirSync(outdir).filter((f) => f.endsWith('.template.json')).sort()) {
    const template = JSON.parse(fs.readFileSync(path.join(outdir, file), 'utf8'));
    const count = Object.keys(template.Resources ?? {}).length;
    console.log(`  ${path.relative(process.cwd(), path.join(outdir, file))}: ${count} resources`);
  }
  if (findings.length === 0) {
    console.log('  cdk-nag (AwsSolutions, Serverless): 0 unacknowledged findings');
  } else {
    failed = true;
    console.log(`  cdk-nag (AwsSolutions, Serverless): ${findings.length} unacknowledged findings`);
    console.log(formatFindings(findings).replace(/^/gm, '    '));
  }
}
process.exitCode = failed ? 1 : 0;
