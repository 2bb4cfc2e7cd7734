import { AsyncLocalStorage } from 'async_hooks';
import { mkdirSync, writeFileSync } from 'fs';
import * as path from 'path';

/**
 * The crash-point harness: every AWS call of a handler's clean run fails in turn, in each of
 * three ways, the platform redelivers as AWS does for the handler's trigger, and the
 * handler's invariant is asserted on the final state.
 *
 * - `lost-request`: the call throws and AWS never saw it.
 * - `lost-answer`: AWS applied the call (the moto server holds its effect), then the client
 *   throws, as a timeout does.
 * - `crash`: the process dies at that point: the call and everything after it never happen
 *   (a Lambda timeout, out of memory). Calls the handler had already sent, or sends in the
 *   same turn of the event loop (concurrently, e.g. in one `Promise.all`), still reach AWS,
 *   as requests on the wire do; their answers are never seen. The invocation's promise is
 *   abandoned, never settled.
 * - `partial-failure` (batch calls only: PutEvents, SQS's *Batch calls, Kinesis PutRecords): AWS
 *   applies every other entry and reports the rest failed (entries 0, 2, 4, ...; PutEvents
 *   `InternalFailure`, SQS `InternalError`, PutRecords `ProvisionedThroughputExceededException`):
 *   the documented way a batch call fails in part.
 *
 * Faults are injected by a middleware on the SDK clients the handler uses, at the
 * `initialize` step: outside the SDK's own retries, so a fault is what the handler sees
 * after them. Calls made outside `FaultInjector.invoke` (test setup, checks) pass untouched.
 */
export type FaultKind = 'lost-request' | 'lost-answer' | 'crash' | 'partial-failure';
export const FAULT_KINDS: readonly FaultKind[] = ['lost-request', 'lost-answer', 'crash', 'partial-failure'];

/**
 * Batch calls: which entries of a request fail (every other one, from the first: so a handler
 * that assumes the failed ones are first, or last, or only one, is caught), and how the
 * answer reports them. The others are sent to AWS and applied.
 */
const failsInPart = (index: number) => index % 2 === 0;
const PARTIAL_FAILURES: { [command: string]: { entries: string; fail: (output: any, entries: any[]) => any } } = {
  PutEventsCommand: {
    entries: 'Entries',
    fail: (output, entries) => {
      const applied = [...(output.Entries ?? [])];
      const results = entries.map((_, i) => (failsInPart(i)
        ? { ErrorCode: 'InternalFailure', ErrorMessage: `injected fault: entry ${i} failed` }
        : applied.shift()));
      return { ...output, FailedEntryCount: results.filter((r) => r.ErrorCode).length, Entries: results };
    },
  },
  // Kinesis: a record that failed has ErrorCode and ErrorMessage in place of its sequence number.
  PutRecordsCommand: {
    entries: 'Records',
    fail: (output, entries) => {
      const applied = [...(output.Records ?? [])];
      const results = entries.map((_, i) => (failsInPart(i)
        ? { ErrorCode: 'ProvisionedThroughputExceededException', ErrorMessage: `injected fault: record ${i} failed` }
        : applied.shift()));
      return { ...output, FailedRecordCount: results.filter((r) => r.ErrorCode).length, Records: results };
    },
  },
  ...Object.fromEntries(['DeleteMessageBatchCommand', 'ChangeMessageVisibilityBatchCommand', 'SendMessageBatchCommand'].map((command) => [command, {
    entries: 'Entries',
    fail: (output: any, entries: any[]) => ({
      ...output,
      Failed: [...(output.Failed ?? []), ...entries.filter((_, i) => failsInPart(i)).map((e) => (
        { Id: e.Id, Code: 'InternalError', SenderFault: false, Message: 'injected fault: entry failed' }))],
    }),
  }])),
};

/** Whether `command` (e.g. `PutEventsCommand`) can fail in part. */
export function canFailInPart(command: string): boolean {
  return command in PARTIAL_FAILURES;
}

/** One AWS call as the handler made it. */
export interface RecordedCall {
  /** e.g. `SQSClient` */
  readonly client: string;
  /** e.g. `ReceiveMessageCommand` */
  readonly command: string;
  readonly input: any;
  /** The answer, when the call returned to the handler or AWS applied it. */
  output?: any;
}

/** A fault to inject: call number `at` (0-based, in the invocation's call order) fails as `kind`. */
export interface Fault {
  readonly at: number;
  readonly kind: FaultKind;
}

/** How one invocation ended. */
export type InvocationOutcome<T = unknown> =
  | { readonly ended: 'returned'; readonly value: T; readonly calls: RecordedCall[] }
  | { readonly ended: 'threw'; readonly error: unknown; readonly calls: RecordedCall[] }
  | { readonly ended: 'crashed'; readonly calls: RecordedCall[] };

/** An error as the SDK throws it when a request or its answer is lost (a socket timeout). */
export class InjectedTimeoutError extends Error {
  public readonly $metadata = {};
  constructor(message: string) {
    super(message);
    this.name = 'TimeoutError';
  }
}

interface Invocation {
  readonly fault?: Fault;
  readonly calls: RecordedCall[];
  /** The crash happened: calls from now on never go out. */
  crashed: boolean;
  /** The crash is coming at the end of this turn of the event loop. */
  dying: boolean;
  /** Requests on the wire, which the crash does not stop. */
  readonly inFlight: Set<Promise<unknown>>;
  readonly onCrash: () => void;
}

/** Anything with an SDK v3 middleware stack (every `@aws-sdk/client-*` client). */
interface SdkClient {
  readonly middlewareStack: { add: (middleware: any, options: any) => void };
}

type Observer = (call: RecordedCall) => void | Promise<void>;

/**
 * Attach it to the clients a handler uses (once per client), then run each invocation with
 * `invoke(fn, fault?)`. `observe` sees every applied call and its answer (also those of a
 * lost answer), which is how the platform models learn, for example, which SQS messages a
 * crashed invocation had hidden.
 */
export class FaultInjector {
  private readonly storage = new AsyncLocalStorage<Invocation>();
  private readonly observers: Observer[] = [];

  constructor(...clients: SdkClient[]) {
    for (const client of clients) this.attach(client);
  }

  public attach(client: SdkClient): void {
    client.middlewareStack.add((next: (args: any) => Promise<any>, context: any) => async (args: any) => {
      const invocation = this.storage.getStore();
      if (!invocation) return next(args);
      // A dead process makes no more calls: whatever it still had scheduled never runs.
      if (invocation.crashed) return new Promise(() => undefined);
      const call: RecordedCall = { client: context.clientName, command: context.commandName, input: args.input };
      const index = invocation.calls.length;
      invocation.calls.push(call);
      const kind = invocation.fault?.at === index ? invocation.fault.kind : undefined;
      if (kind === 'lost-request') {
        throw new InjectedTimeoutError(`injected fault: ${call.command} was lost before AWS saw it`);
      }
      if (kind === 'crash') {
        invocation.dying = true;
        // Whatever else the handler sends in this turn is already on the wire; then it dies.
        setImmediate(() => {
          invocation.crashed = true;
          void Promise.allSettled([...invocation.inFlight]).then(() => invocation.onCrash());
        });
        return new Promise(() => undefined);
      }
      const partial = kind === 'partial-failure' ? PARTIAL_FAILURES[call.command] : undefined;
      const entries: any[] = args.input?.[partial?.entries ?? ''] ?? [];
      if (kind === 'partial-failure' && (!partial || entries.length === 0)) {
        throw new Error(`partial-failure injected into ${call.command}, which is not a batch call`);
      }
      const applied = entries.filter((_, i) => !failsInPart(i));
      const sent = partial ? { ...args, input: { ...args.input, [partial.entries]: applied } } : args;
      // A batch of one: its only entry fails, and nothing reaches AWS.
      const request = partial && applied.length === 0
        ? Promise.resolve({ output: call.command === 'PutEventsCommand' ? { Entries: [] } : { Successful: [] } })
        : next(sent);
      invocation.inFlight.add(request);
      let result: any;
      try {
        result = await request;
      } finally {
        invocation.inFlight.delete(request);
      }
      if (partial) result = { ...result, output: partial.fail(result.output, entries) };
      call.output = result.output;
      for (const observer of this.observers) await observer(call);
      // A dead process never sees an answer.
      if (invocation.crashed || invocation.dying) return new Promise(() => undefined);
      if (kind === 'lost-answer') {
        throw new InjectedTimeoutError(`injected fault: ${call.command} was applied, but its answer was lost`);
      }
      return result;
    }, { step: 'initialize', name: 'crashPointFaultInjector', priority: 'high' });
  }

  /** Calls `observer` with every call AWS applied during an invocation, with its answer. */
  public observe(observer: Observer): void {
    this.observers.push(observer);
  }

  /** Runs one invocation, with `fault` injected if given; never rejects. */
  public invoke<T>(fn: () => Promise<T>, fault?: Fault): Promise<InvocationOutcome<T>> {
    return new Promise((resolve) => {
      const calls: RecordedCall[] = [];
      const invocation: Invocation = {
        fault, calls, crashed: false, dying: false, inFlight: new Set(), onCrash: () => resolve({ ended: 'crashed', calls }),
      };
      this.storage.run(invocation, () => {
        fn().then(
          (value) => { if (!invocation.crashed && !invocation.dying) resolve({ ended: 'returned', value, calls }); },
          (error) => { if (!invocation.crashed && !invocation.dying) resolve({ ended: 'threw', error, calls }); },
        );
      });
    });
  }
}

/**
 * A fake clock for the platform models: time moves only when the harness says so, and
 * whatever is due then (an SQS visibility timeout, a retry) happens at that moment.
 */
export class FakeClock {
  private current: number;
  private readonly timers: { at: number; fire: () => Promise<void> }[] = [];

  constructor(start = Date.UTC(2026, 10, 30, 12)) {
    this.current = start;
  }

  public now(): number {
    return this.current;
  }

  /** Forgets every pending timer (a new trial starts from a fresh state). */
  public reset(): void {
    this.timers.length = 0;
  }

  /** Runs `fire` when the clock reaches `at` (ms). */
  public at(at: number, fire: () => Promise<void>): void {
    this.timers.push({ at, fire });
  }

  /** Moves the clock forward, firing every timer that falls due, in time order. */
  public async advance(ms: number): Promise<void> {
    const until = this.current + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at);
      const next = this.timers[0];
      if (!next || next.at > until) break;
      this.timers.shift();
      this.current = Math.max(this.current, next.at);
      await next.fire();
    }
    this.current = until;
  }
}

/** What became of each input of a trial, counted by the scenario's invariant check. */
export interface OutcomeCounts {
  /** Inputs delivered to their destination (at least once). */
  readonly delivered: number;
  /** Inputs still waiting where an operator finds them (a queue, a table). */
  readonly waiting: number;
  /** Inputs parked with a reason. */
  readonly parked: number;
  /** Extra deliveries beyond the first (allowed only where the docs say at least once). */
  readonly duplicates: number;
}

/** A handler, an input, the platform's redelivery and the invariant. */
export interface CrashPointScenario<S> {
  /** Names the handler and its input in the report. */
  readonly name: string;
  readonly injector: FaultInjector;
  /** Fault kinds to try. @default all three */
  readonly kinds?: readonly FaultKind[];
  /** A fresh start state for one trial (new queues, buses, tables): trials never share state. */
  setup(): Promise<S>;
  /** One invocation of the handler, as its trigger delivers it. */
  invoke(state: S): Promise<unknown>;
  /**
   * What the platform does after the first invocation ended (also when it returned), as AWS
   * does for the trigger; it may invoke again through `injector.invoke` without a fault.
   */
  redeliver(state: S, first: InvocationOutcome): Promise<void>;
  /** Asserts the invariant on the final state (throws if it does not hold) and counts the outcomes. */
  check(state: S): Promise<OutcomeCounts>;
}

/** One faulted trial: where the fault was, and what became of the inputs. */
export interface CrashPointTrial {
  readonly at: number;
  readonly call: string;
  readonly kind: FaultKind;
  readonly firstInvocation: InvocationOutcome['ended'];
  readonly outcomes: OutcomeCounts;
}

/** The harness's report for one scenario. */
export interface CrashPointReport {
  readonly name: string;
  /** The calls of the clean run, in order. */
  readonly cleanCalls: string[];
  /** Faulted trials run: each clean call × each fault kind (a partial failure only where the call is a batch). */
  readonly crashPoints: number;
  readonly trials: CrashPointTrial[];
  /** Outcome counts summed over the faulted trials. */
  readonly totals: OutcomeCounts;
}

/** Raised when the invariant does not hold after a fault; says which fault broke it. */
export class CrashPointViolation extends Error {
  constructor(public readonly scenario: string, public readonly fault: Fault | undefined, public readonly call: string | undefined, cause: unknown) {
    const where = fault ? `${fault.kind} at call ${fault.at} (${call})` : 'the clean run';
    super(`${scenario}: the invariant failed after ${where}: ${(cause as Error)?.message ?? String(cause)}`);
    this.name = 'CrashPointViolation';
  }
}

/**
 * Runs the scenario cleanly once to learn its calls, then once per call and fault kind from
 * a fresh start state, redelivers, and checks the invariant. Throws a `CrashPointViolation`
 * at the first trial whose final state breaks it; otherwise returns (and writes) the report.
 */
export async function exploreCrashPoints<S>(scenario: CrashPointScenario<S>): Promise<CrashPointReport> {
  const cleanState = await scenario.setup();
  const clean = await scenario.injector.invoke(() => scenario.invoke(cleanState) as Promise<unknown>);
  if (clean.ended !== 'returned') {
    throw new CrashPointViolation(scenario.name, undefined, undefined, clean.ended === 'threw' ? clean.error : 'the clean run crashed');
  }
  await scenario.redeliver(cleanState, clean);
  await checked(scenario, cleanState, undefined, undefined);
  const cleanCalls = clean.calls.map((c) => c.command.replace(/Command$/, ''));
  if (cleanCalls.length === 0) {
    throw new Error(`${scenario.name}: the clean run made no AWS call through the injector; attach it to the handler's clients`);
  }

  const trials: CrashPointTrial[] = [];
  for (let at = 0; at < cleanCalls.length; at++) {
    for (const kind of scenario.kinds ?? FAULT_KINDS) {
      if (kind === 'partial-failure' && !canFailInPart(`${cleanCalls[at]}Command`)) continue;
      const fault = { at, kind };
      const state = await scenario.setup();
      const first = await scenario.injector.invoke(() => scenario.invoke(state) as Promise<unknown>, fault);
      await scenario.redeliver(state, first);
      const outcomes = await checked(scenario, state, fault, cleanCalls[at]);
      trials.push({ at, call: cleanCalls[at], kind, firstInvocation: first.ended, outcomes });
    }
  }
  const totals = trials.reduce<OutcomeCounts>((sum, t) => ({
    delivered: sum.delivered + t.outcomes.delivered,
    waiting: sum.waiting + t.outcomes.waiting,
    parked: sum.parked + t.outcomes.parked,
    duplicates: sum.duplicates + t.outcomes.duplicates,
  }), { delivered: 0, waiting: 0, parked: 0, duplicates: 0 });
  const report = { name: scenario.name, cleanCalls, crashPoints: trials.length, trials, totals };
  writeReport(report);
  return report;
}

async function checked<S>(scenario: CrashPointScenario<S>, state: S, fault: Fault | undefined, call: string | undefined): Promise<OutcomeCounts> {
  try {
    return await scenario.check(state);
  } catch (err) {
    throw new CrashPointViolation(scenario.name, fault, call, err);
  }
}

/**
 * Where one jest run's reports go (the global setup names a folder per run, so two runs in
 * one checkout keep theirs apart); the global teardown prints them as one table.
 */
export function crashPointReportDir(): string {
  return process.env.CRASH_POINT_REPORT_DIR ?? path.resolve(__dirname, '..', '..', 'test-reports', 'crash-points', 'default');
}

function writeReport(report: CrashPointReport): void {
  const dir = crashPointReportDir();
  mkdirSync(dir, { recursive: true });
  const file = report.name.replace(/[^A-Za-z0-9._-]+/g, '-').toLowerCase();
  writeFileSync(path.join(dir, `${file}.json`), JSON.stringify(report, undefined, 2));
}

/** A test's own assertion, usable inside `check`: throws with `message` when `condition` is false. */
export function invariant(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(message);
}
