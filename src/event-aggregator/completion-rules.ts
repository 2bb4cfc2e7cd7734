/**
 * What completes a correlation id's set, shared by the construct (validation at synth) and
 * the aggregator (evaluation at run time).
 *
 * A set is a list of requirements. Each requirement counts `count` events whose names are
 * among `anyOf`: the first ones by event time, or the newest when newer events replace
 * older ones. A counted event whose detail does not match the requirement's `condition`
 * keeps the requirement unmet, or, with `failOnMismatch`, fails the whole set.
 */

/** A requirement in the form the aggregator reads from its environment. */
export interface Requirement {
  /** How `missing` and `failed` name it. */
  readonly label: string;
  /** Events of any of these names count. */
  readonly anyOf: string[];
  /** How many events complete it. */
  readonly count: number;
  /** Pattern the counted events' detail must match. */
  readonly condition?: Record<string, unknown>;
  /** A counted event that does not match ends the set as Aggregation Failed. */
  readonly failOnMismatch: boolean;
}

/** The requirements of plain `requiredEvents`: one event of each name, no condition. */
export function oneOfEach(names: string[]): Requirement[] {
  return names.map((name) => ({ label: name, anyOf: [name], count: 1, failOnMismatch: false }));
}

/** One stored event, as the aggregator sees it. */
export interface RecordedEvent {
  /** The item's sort key. */
  readonly key: string;
  readonly name: string;
  readonly eventId?: string;
  /** Event time in epoch milliseconds; NaN when unknown (such events are never preferred). */
  readonly timeMs: number;
  /** When the recorder stored it, epoch milliseconds: breaks ties of event time (EventBridge's is in whole seconds). NaN when unknown. */
  readonly recordedMs?: number;
  /** The item's TTL, epoch seconds. */
  readonly expiresAt?: number;
  /** What the aggregated event carries for it: the item without its keys and TTL. */
  readonly payload: Record<string, unknown>;
  /** What a condition is matched against: the source event's detail. */
  readonly detail: unknown;
}

/** A counted event that did not match its requirement's condition. */
export interface Mismatch {
  readonly requirement: string;
  readonly eventName: string;
  readonly eventId?: string;
}

export interface Evaluation {
  readonly state: 'complete' | 'failed' | 'waiting';
  /** Labels of the requirements not met. */
  readonly missing: string[];
  /** Counted events that failed a condition: those of `failOnMismatch` requirements end the set. */
  readonly mismatches: Mismatch[];
  /** Per event name, the events the set counts for it (or, for names no requirement counts, the one kept). */
  readonly counted: Map<string, RecordedEvent[]>;
}

/** Oldest first by event time, then by the time recorded, then by key, so every reader orders them alike. */
export function byEventTime(a: RecordedEvent, b: RecordedEvent): number {
  const order = <T extends number | string>(x: T, y: T) => (x === y ? 0 : x < y ? -1 : 1);
  const recorded = (e: RecordedEvent) => (e.recordedMs === undefined || Number.isNaN(e.recordedMs) ? -Infinity : e.recordedMs);
  return order(a.timeMs, b.timeMs) || order(recorded(a), recorded(b)) || order(a.key, b.key);
}

/**
 * Evaluates the requirements over a correlation id's events. Events without a time are
 * the least preferred: last when the first events count, oldest when the newest do.
 */
export function evaluate(requirements: Requirement[], events: RecordedEvent[], newestReplaces: boolean): Evaluation {
  const timed = events.filter((e) => !Number.isNaN(e.timeMs)).sort(byEventTime);
  const timeless = events.filter((e) => Number.isNaN(e.timeMs)).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const sorted = newestReplaces ? [...timeless, ...timed] : [...timed, ...timeless];
  // One event recorded under two names (two sources matched it) counts once, for the first
  // requirement that counts it.
  const used = new Set<string>();
  const pick = (list: RecordedEvent[], n: number) => {
    const preferred = newestReplaces ? [...list].reverse() : list;
    const chosen: RecordedEvent[] = [];
    for (const event of preferred) {
      if (chosen.length === n) break;
      if (event.eventId !== undefined && used.has(event.eventId)) continue;
      chosen.push(event);
      if (event.eventId !== undefined) used.add(event.eventId);
    }
    return newestReplaces ? chosen.reverse() : chosen;
  };
  const counted = new Map<string, RecordedEvent[]>();
  const missing: string[] = [];
  const mismatches: Mismatch[] = [];
  let failed = false;
  for (const requirement of requirements) {
    const chosen = pick(sorted.filter((e) => requirement.anyOf.includes(e.name)), requirement.count);
    for (const event of chosen) counted.set(event.name, [...counted.get(event.name) ?? [], event]);
    const wrong = requirement.condition ? chosen.filter((e) => !matchesCondition(requirement.condition!, e.detail)) : [];
    for (const event of wrong) {
      mismatches.push({ requirement: requirement.label, eventName: event.name, ...(event.eventId ? { eventId: event.eventId } : {}) });
    }
    if (wrong.length > 0 && requirement.failOnMismatch) failed = true;
    if (chosen.length < requirement.count || wrong.length > 0) missing.push(requirement.label);
  }
  // Names no requirement counted (an any-of group's other names, names not required) keep one event.
  for (const event of sorted) {
    if (counted.has(event.name)) continue;
    const sameName = sorted.filter((e) => e.name === event.name);
    counted.set(event.name, [newestReplaces ? sameName[sameName.length - 1] : sameName[0]]);
  }
  return { state: failed ? 'failed' : missing.length === 0 ? 'complete' : 'waiting', missing, mismatches, counted };
}

/**
 * The subset of EventBridge's event-pattern syntax a condition may use, matched against an
 * event's detail: nested objects; arrays of allowed values (strings, numbers, booleans,
 * null); and the filters `prefix`, `suffix`, `anything-but` (a value or a list of values),
 * `numeric` (comparisons `<`, `<=`, `=`, `>=`, `>` and bounds) and `exists`. A field whose
 * value is an array matches when any element matches, as in EventBridge.
 */
export const CONDITION_SYNTAX = 'a JSON object of nested objects whose leaves are non-empty arrays of strings, numbers, booleans, null, '
  + 'or filters {"prefix": s}, {"suffix": s}, {"anything-but": value or [values]}, {"numeric": [op, n, ...]}, {"exists": boolean}';

const NUMERIC_OPERATORS = ['<', '<=', '=', '>=', '>'];

/** Why a condition is not valid, or undefined when it is. `path` names the place in error messages. */
export function conditionProblem(condition: unknown, path = 'condition'): string | undefined {
  if (condition === null || typeof condition !== 'object' || Array.isArray(condition)) return `${path} must be an object`;
  const entries = Object.entries(condition);
  if (entries.length === 0) return `${path} must name at least one field`;
  for (const [field, value] of entries) {
    const here = `${path}.${field}`;
    if (Array.isArray(value)) {
      if (value.length === 0) return `${here} must list at least one allowed value`;
      for (const allowed of value) {
        const problem = allowedValueProblem(allowed, here);
        if (problem) return problem;
      }
    } else {
      const problem = conditionProblem(value, here);
      if (problem) return problem;
    }
  }
  return undefined;
}

function allowedValueProblem(allowed: unknown, path: string): string | undefined {
  if (allowed === null || ['string', 'number', 'boolean'].includes(typeof allowed)) return undefined;
  if (typeof allowed !== 'object' || Array.isArray(allowed)) return `${path} lists ${JSON.stringify(allowed)}; values must be scalars or filter objects`;
  const keys = Object.keys(allowed);
  const [kind] = keys;
  const operand = (allowed as Record<string, unknown>)[kind];
  if (keys.length !== 1) return `${path} has a filter with ${keys.length} keys (${keys.join(', ')}); a filter has exactly one`;
  switch (kind) {
    case 'prefix':
    case 'suffix':
      return typeof operand === 'string' ? undefined : `${path}: ${kind} takes a string`;
    case 'exists':
      return typeof operand === 'boolean' ? undefined : `${path}: exists takes true or false`;
    case 'anything-but': {
      // As EventBridge: a string or a number, or a non-empty list of only strings or only numbers.
      const values = Array.isArray(operand) ? operand : [operand];
      const type = typeof values[0];
      return values.length > 0 && (type === 'string' || type === 'number') && values.every((v) => typeof v === type)
        ? undefined : `${path}: anything-but takes a string or a number, or a non-empty list of only strings or only numbers`;
    }
    case 'numeric': {
      if (!Array.isArray(operand) || operand.length === 0 || operand.length % 2 !== 0) {
        return `${path}: numeric takes pairs of an operator and a number, such as [">", 0, "<=", 5]`;
      }
      for (let i = 0; i < operand.length; i += 2) {
        if (!NUMERIC_OPERATORS.includes(operand[i]) || typeof operand[i + 1] !== 'number' || !Number.isFinite(operand[i + 1])) {
          return `${path}: numeric takes pairs of an operator (${NUMERIC_OPERATORS.join(' ')}) and a finite number`;
        }
      }
      // As EventBridge: one comparison, or a lower bound (> or >=) then an upper bound (< or <=).
      const range = operand.length === 4 && ['>', '>='].includes(operand[0]) && ['<', '<='].includes(operand[2]);
      return operand.length === 2 || range ? undefined
        : `${path}: numeric takes one comparison, or a lower bound (> or >=) followed by an upper bound (< or <=)`;
    }
    default:
      return `${path} uses the filter "${kind}"; allowed: prefix, suffix, anything-but, numeric, exists`;
  }
}

/**
 * Whether `detail` matches the (valid) condition. As in EventBridge, the event is seen as its
 * leaves (scalars, with arrays at any depth crushed out; an object is not a leaf), so `exists`
 * tests for a leaf and a field under an absent parent does not exist.
 */
export function matchesCondition(condition: Record<string, unknown>, detail: unknown): boolean {
  return matchesAt(condition, [detail]);
}

function matchesAt(condition: Record<string, unknown>, containers: unknown[]): boolean {
  const objects = containers.flatMap(objectsOf);
  return Object.entries(condition).every(([field, expected]) => {
    const children = objects.filter((o) => Object.prototype.hasOwnProperty.call(o, field)).map((o) => o[field]);
    if (!Array.isArray(expected)) return matchesAt(expected as Record<string, unknown>, children);
    const leaves = children.flatMap(leavesOf);
    return expected.some((allowed) => (isFilter(allowed, 'exists') ? (leaves.length > 0) === allowed.exists : leaves.some((leaf) => leafMatches(allowed, leaf))));
  });
}

/** The scalars of a value, arrays crushed out. */
function leavesOf(value: unknown): unknown[] {
  if (Array.isArray(value)) return value.flatMap(leavesOf);
  return value !== null && typeof value === 'object' ? [] : [value];
}

/** The objects of a value, arrays crushed out. */
function objectsOf(value: unknown): Record<string, unknown>[] {
  if (Array.isArray(value)) return value.flatMap(objectsOf);
  return value !== null && typeof value === 'object' ? [value as Record<string, unknown>] : [];
}

function isFilter<K extends string>(allowed: unknown, kind: K): allowed is Record<K, any> {
  return allowed !== null && typeof allowed === 'object' && kind in (allowed as object);
}

function leafMatches(allowed: unknown, leaf: unknown): boolean {
  if (allowed === null || typeof allowed !== 'object') return leaf === allowed;
  if (isFilter(allowed, 'prefix')) return typeof leaf === 'string' && leaf.startsWith(allowed.prefix);
  if (isFilter(allowed, 'suffix')) return typeof leaf === 'string' && leaf.endsWith(allowed.suffix);
  if (isFilter(allowed, 'anything-but')) {
    const excluded: unknown[] = Array.isArray(allowed['anything-but']) ? allowed['anything-but'] : [allowed['anything-but']];
    return leaf !== undefined && !excluded.includes(leaf);
  }
  if (isFilter(allowed, 'numeric')) {
    if (typeof leaf !== 'number') return false;
    const terms: unknown[] = allowed.numeric;
    for (let i = 0; i < terms.length; i += 2) {
      const bound = terms[i + 1] as number;
      const ok = { '<': leaf < bound, '<=': leaf <= bound, '=': leaf === bound, '>=': leaf >= bound, '>': leaf > bound }[terms[i] as string];
      if (!ok) return false;
    }
    return true;
  }
  return false;
}
