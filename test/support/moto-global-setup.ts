import { ChildProcess, spawn } from 'child_process';
import { existsSync, rmSync } from 'fs';
import { createServer } from 'net';
import * as path from 'path';

/** Key on globalThis under which the moto server's process is kept for the teardown. */
export const MOTO_SERVER_KEY = '__cdkEventFabricMotoServer__';

const MOTO_HOST = '127.0.0.1';
const MOTO_SERVER = path.resolve(__dirname, '..', '..', '.venv', 'bin', 'moto_server');
const STARTUP_TIMEOUT_MS = 30_000;
const POLL_INTERVAL_MS = 200;

/**
 * Jest global setup: starts the project's pinned moto server on a free loopback port and
 * points the tests at it through MOTO_ENDPOINT, with dummy credentials so nothing can
 * reach a real AWS account.
 */
export default async function motoGlobalSetup(): Promise<void> {
  if (!existsSync(MOTO_SERVER)) {
    throw new Error(`moto server not found at ${MOTO_SERVER}: run \`npx projen setup:python\` to create .venv from requirements-dev.lock`);
  }
  // The crash-point reports the teardown prints are this run's only.
  const reports = path.resolve(__dirname, '..', '..', 'test-reports', 'crash-points', `run-${process.pid}`);
  rmSync(reports, { recursive: true, force: true });
  process.env.CRASH_POINT_REPORT_DIR = reports;
  const port = await freePort();
  const endpoint = `http://${MOTO_HOST}:${port}`;

  const child = spawn(MOTO_SERVER, ['-H', MOTO_HOST, '-p', String(port)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PYTHONUNBUFFERED: '1' },
  });
  // Keep the tail of the server's output for error messages; draining also keeps it from blocking.
  let output = '';
  const keep = (chunk: Buffer) => { output = (output + chunk.toString('utf8')).slice(-4000); };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let exited: string | undefined;
  child.once('exit', (code, signal) => { exited = `exited with ${signal ?? `code ${code}`}`; });
  child.once('error', (err) => { exited = `failed to start: ${err.message}`; });
  (globalThis as Record<string, unknown>)[MOTO_SERVER_KEY] = child;
  // A jest run that dies without its teardown must not leave the server behind.
  process.once('exit', () => child.kill('SIGKILL'));

  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  for (;;) {
    if (exited) {
      throw new Error(`moto server ${exited} before answering on ${endpoint}; output:\n${output}`);
    }
    if (await answers(endpoint)) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`moto server did not answer on ${endpoint} within ${STARTUP_TIMEOUT_MS / 1000} s; output:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  }

  process.env.MOTO_ENDPOINT = endpoint;
  process.env.AWS_ACCESS_KEY_ID = 'testing';
  process.env.AWS_SECRET_ACCESS_KEY = 'testing';
  process.env.AWS_SESSION_TOKEN = 'testing';
  process.env.AWS_REGION = 'us-east-1';
  process.env.AWS_DEFAULT_REGION = 'us-east-1';
  delete process.env.AWS_PROFILE;
}

/** The moto server's process started by the global setup, if any. */
export function motoServerProcess(): ChildProcess | undefined {
  return (globalThis as Record<string, unknown>)[MOTO_SERVER_KEY] as ChildProcess | undefined;
}

/** A loopback port that was free a moment ago. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, MOTO_HOST, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : undefined;
      server.close(() => (port ? resolve(port) : reject(new Error('could not find a free port'))));
    });
  });
}

/** Whether anything answers HTTP at the endpoint (any status counts). */
async function answers(endpoint: string): Promise<boolean> {
  try {
    const response = await fetch(`${endpoint}/moto-api/`, { signal: AbortSignal.timeout(2_000) });
    await response.arrayBuffer();
    return true;
  } catch {
    return false;
  }
}
