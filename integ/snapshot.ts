/**
 * Integ snapshots, compared offline: every `integ/integ.<name>.ts` app is synthesized and
 * each stack template (asset hashes normalized) is compared with the committed copy in
 * `integ/integ.<name>.snapshot/`. `--update` rewrites the snapshots; review the diff.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App } from 'aws-cdk-lib';

export const INTEG_DIR = __dirname;

/** The integ apps: `integ.<name>.ts` files that export `buildApp(app)`. */
export function integApps(): string[] {
  return fs.readdirSync(INTEG_DIR).filter((f) => /^integ\..+\.ts$/.test(f) && !f.endsWith('.d.ts')).sort();
}

export function snapshotDir(appFile: string): string {
  return path.join(INTEG_DIR, appFile.replace(/\.ts$/, '.snapshot'));
}

/**
 * Replaces asset hashes (64 hex characters), which churn with bundle bytes, and the
 * integ-tests assertion salts (a timestamp per synth).
 */
export function normalize(text: string): string {
  return text.replace(/[0-9a-f]{64}/g, '<asset-hash>').replace(/"salt": "\d+"/g, '"salt": "<salt>"');
}

/** Synthesizes one integ app and returns its normalized templates by file name. */
export function synthTemplates(appFile: string): Map<string, string> {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'integ-snapshot-'));
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require(path.join(INTEG_DIR, appFile));
    const app = new App({ outdir });
    mod.buildApp(app);
    const assembly = app.synth();
    const templates = new Map<string, string>();
    for (const stack of assembly.stacks) {
      templates.set(stack.templateFile, normalize(JSON.stringify(stack.template, undefined, 1)) + '\n');
    }
    for (const nested of fs.readdirSync(outdir).filter((f) => f.endsWith('.nested.template.json'))) {
      templates.set(nested, normalize(JSON.stringify(JSON.parse(fs.readFileSync(path.join(outdir, nested), 'utf8')), undefined, 1)) + '\n');
    }
    return templates;
  } finally {
    fs.rmSync(outdir, { recursive: true, force: true });
  }
}

/** The committed snapshot of one integ app, by file name. */
export function readSnapshot(appFile: string): Map<string, string> {
  const dir = snapshotDir(appFile);
  const files = new Map<string, string>();
  if (!fs.existsSync(dir)) return files;
  for (const f of fs.readdirSync(dir).sort()) files.set(f, fs.readFileSync(path.join(dir, f), 'utf8'));
  return files;
}

function update(): void {
  for (const appFile of integApps()) {
    const dir = snapshotDir(appFile);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    for (const [file, text] of synthTemplates(appFile)) fs.writeFileSync(path.join(dir, file), text);
    console.log(`updated ${path.relative(process.cwd(), dir)}`);
  }
}

if (require.main === module) {
  if (process.argv.includes('--update')) update();
  else console.error('usage: snapshot.ts --update   (the comparison runs in jest: test/integ-snapshots.test.ts)');
}
