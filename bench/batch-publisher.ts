import { spawnSync } from 'child_process';
import { mkdtempSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import * as path from 'path';
import { buildSync } from 'esbuild';
import { BILLING_CHUNK_BYTES } from '../src/tiered-event-ingest/batch-packer';

interface Run {
  which: string;
  inputBytes: number;
  inputRecords: number;
  seconds: number;
  calls: number;
  entries: number;
  acceptedBytes: number;
  billedChunks: number;
  rejectedRecords: number;
  publishedRecords: number;
  peakRssMiB: number;
}

/**
 * The batch publisher's core against the naive baseline on generated NDJSON, each run in
 * a fresh node process (bundled with esbuild, no ts-node) so peak RSS is the run's own.
 * Each input also gets a ceiling row: the same bytes split into lines and JSON.parse'd,
 * nothing else, in the same kind of process; "of ceiling" is each throughput over it.
 */
export function benchBatchPublisher(table: (title: string, header: string[], rows: (string | number)[][]) => void): void {
  const dir = mkdtempSync(path.join(tmpdir(), 'bench-publisher-'));
  try {
    const worker = path.join(dir, 'worker.js');
    buildSync({ entryPoints: [path.join(__dirname, 'batch-publisher-worker.ts')], bundle: true, platform: 'node', target: 'node20', outfile: worker, logLevel: 'error' });
    const rows: (string | number)[][] = [];
    for (const [mib, payloadBytes] of [[100, 1024], [100, 200], [1024, 1024], [1024, 200]]) {
      const input = `${mib === 1024 ? '1 GiB' : `${mib} MiB`}, ${payloadBytes} B payloads`;
      const ceiling = runWorker(worker, 'ceiling', [], mib, payloadBytes);
      const ceilingMiBps = ceiling.inputBytes / 1048576 / ceiling.seconds;
      const parsedAll = ceiling.publishedRecords === ceiling.inputRecords ? '' : ` (parsed ${ceiling.publishedRecords} of ${ceiling.inputRecords} lines)`;
      rows.push([input, `ceiling (split lines + JSON.parse)${parsedAll}`, ceilingMiBps.toFixed(1), '1.00', ceiling.peakRssMiB.toFixed(0),
        '-', '-', '-', '-', '-', '-', '-']);
      for (const [which, nodeFlags, label] of RUNS) {
        const run = runWorker(worker, which, nodeFlags, mib, payloadBytes);
        const minimum = Math.ceil(run.acceptedBytes / BILLING_CHUNK_BYTES);
        const mibps = run.inputBytes / 1048576 / run.seconds;
        rows.push([
          input, label, mibps.toFixed(1), (mibps / ceilingMiBps).toFixed(2), run.peakRssMiB.toFixed(0), run.calls, run.entries,
          run.billedChunks, minimum, minimum ? (run.billedChunks / minimum).toFixed(3) : '-', run.publishedRecords, run.rejectedRecords,
        ]);
      }
    }
    table('Batch publisher on generated NDJSON (in-memory EventBridge stub rejecting entries over 1 MiB; one fresh process per run)',
      ['input', 'implementation', 'MiB/s', 'of ceiling', 'peak RSS MiB', 'PutEvents calls', 'entries', 'billed chunks', 'minimum', 'ratio', 'published', 'rejected'],
      rows);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Each implementation with default node flags, and ours again with a 48 MiB old-space cap:
 * that run shows the live set (default V8 lets garbage grow the heap before collecting).
 * The naive baseline gets a big heap, as it holds the whole object.
 */
const RUNS: [string, string[], string][] = [
  ['ours', [], 'batch publisher'],
  ['ours', ['--max-old-space-size=48'], 'batch publisher, 48 MiB heap cap'],
  ['naive', ['--max-old-space-size=8192'], 'naive (whole object, 1000/event)'],
];

function runWorker(worker: string, which: string, nodeFlags: string[], mib: number, payloadBytes: number): Run {
  const result = spawnSync(process.execPath, [...nodeFlags, worker, which, String(mib), String(payloadBytes)], { encoding: 'utf8', maxBuffer: 1_048_576 });
  if (result.status !== 0) {
    return {
      which,
      inputBytes: mib * 1048576,
      inputRecords: 0,
      seconds: NaN,
      calls: 0,
      entries: 0,
      acceptedBytes: 0,
      billedChunks: 0,
      rejectedRecords: 0,
      publishedRecords: 0,
      peakRssMiB: NaN,
      ...{ error: (result.stderr || '').split('\n')[0] },
    } as Run;
  }
  return JSON.parse(result.stdout.trim().split('\n').pop()!);
}
