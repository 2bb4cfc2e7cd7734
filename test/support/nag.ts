import * as fs from 'fs';
import * as path from 'path';
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks, ServerlessChecks } from 'cdk-nag';

/** One unacknowledged cdk-nag finding. */
export interface NagFinding {
  readonly rule: string;
  readonly path: string;
  readonly description: string;
}

/** Adds the AwsSolutions and Serverless packs to the app as policy-validation plugins. */
export function addNagPacks(app: App): void {
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app), new ServerlessChecks(app));
}

/**
 * Synthesizes the app with the AwsSolutions and Serverless packs and returns every
 * unacknowledged finding. Acknowledged findings are not returned. Synth errors other
 * than a failed validation are rethrown.
 */
export function synthNagFindings(app: App): NagFinding[] {
  addNagPacks(app);
  try {
    app.synth();
    return [];
  } catch (err) {
    const report = path.join(app.outdir, 'validation-report.json');
    if (!fs.existsSync(report)) throw err;
    return readNagReport(report);
  }
}

/** Reads the unacknowledged findings of a CDK policy-validation report. */
export function readNagReport(file: string): NagFinding[] {
  const report = JSON.parse(fs.readFileSync(file, 'utf8'));
  const findings: NagFinding[] = [];
  for (const plugin of report.pluginReports ?? []) {
    for (const violation of plugin.violations ?? []) {
      for (const c of violation.violatingConstructs ?? []) {
        findings.push({ rule: violation.ruleName, path: c.constructPath, description: violation.description });
      }
    }
  }
  return findings;
}

/** Renders findings one per line, for readable test failures. */
export function formatFindings(findings: NagFinding[]): string {
  return findings.map((f) => `${f.rule} at ${f.path}: ${f.description}`).join('\n');
}
