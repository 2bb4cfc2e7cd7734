import { existsSync, readdirSync, readFileSync, rmSync } from 'fs';
import * as path from 'path';
import { crashPointReportDir, CrashPointReport } from './crash-points';
import { motoServerProcess } from './moto-global-setup';

const STOP_TIMEOUT_MS = 5_000;

/** Jest global teardown: stops the moto server that the global setup started. */
export default async function motoGlobalTeardown(): Promise<void> {
  printCrashPointReports();
  const child = motoServerProcess();
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(true), STOP_TIMEOUT_MS); });
  if (await Promise.race([exited.then(() => false), timedOut])) {
    child.kill('SIGKILL');
    await exited;
  }
  clearTimeout(timer);
}

/** Prints the crash-point harness's reports of this run: one line per handler and input. */
function printCrashPointReports(): void {
  const dir = crashPointReportDir();
  if (!existsSync(dir)) return;
  const reports: CrashPointReport[] = readdirSync(dir).filter((f) => f.endsWith('.json')).sort()
    .map((f) => JSON.parse(readFileSync(path.join(dir, f), 'utf8')));
  rmSync(dir, { recursive: true, force: true });
  if (reports.length === 0) return;
  const lines = reports.map((r) => `  ${r.name}: ${r.cleanCalls.length} calls, ${r.crashPoints} crash points; `
    + `inputs delivered ${r.totals.delivered}, waiting ${r.totals.waiting}, parked ${r.totals.parked}, duplicates ${r.totals.duplicates}`);
  const total = reports.reduce((sum, r) => sum + r.crashPoints, 0);
  process.stdout.write(`\nCrash points (a lost request, a lost answer and a crash at every AWS call, a partial failure at every batch call; the invariant held after each):\n${lines.join('\n')}\n  total: ${total} crash points\n`);
}
