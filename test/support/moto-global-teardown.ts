import { motoServerProcess } from './moto-global-setup';

const STOP_TIMEOUT_MS = 5_000;

/** Jest global teardown: stops the moto server that the global setup started. */
export default async function motoGlobalTeardown(): Promise<void> {
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
