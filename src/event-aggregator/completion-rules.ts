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

/** One stored event, as the aggregator sees it. */
export interface RecordedEvent {
  /** The item's sort key. */
  readonly key: string;
  readonly name: string;
  readonly eventId?: string;
  /** Event time in epoch milliseconds; NaN when unknown (such events sort last). */
  readonly timeMs: number;
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

/** Oldest first; events of the same time by event id, so every reader picks the same ones. */
export function byEventTime(a: RecordedEvent, b: RecordedEvent): number {
  const ta = Number.isNaN(a.timeMs) ? Infinity : a.timeMs;
  const tb = Number.isNaN(b.timeMs) ? Infinity : b.timeMs;
  if (ta !== tb) return ta < tb ? -1 : 1;
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/** Evaluates the requirements over a correlation id's events. */
export function evaluate(requirements: Requirement[], events: RecordedEvent[], newestReplaces: boolean): Evaluation {
  const sorted = [...events].sort(byEventTime);
  const pick = (list: RecordedEvent[], n: number) => (newestReplaces ? list.slice(Math.max(0, list.length - n)) : list.slice(0, n));
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
    counted.set(event.name, pick(sameName, 1));
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
      const values = Array.isArray(operand) ? operand : [operand];
      return values.length > 0 && values.every((v) => v === null || ['string', 'number', 'boolean'].includes(typeof v))
        ? undefined : `${path}: anything-but takes a value or a non-empty list of values`;
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
      return undefined;
    }
    default:
      return `${path} uses the filter "${kind}"; allowed: prefix, suffix, anything-but, numeric, exists`;
  }
}

/** Whether `detail` matches the (valid) condition. */
export function matchesCondition(condition: Record<string, unknown>, detail: unknown): boolean {
  return Object.entries(condition).every(([field, expected]) => {
    const present = detail !== null && typeof detail === 'object' && !Array.isArray(detail)
      && Object.prototype.hasOwnProperty.call(detail, field);
    const value = present ? (detail as Record<string, unknown>)[field] : undefined;
    if (Array.isArray(expected)) {
      const leaves = present ? (Array.isArray(value) ? value : [value]) : [];
      return expected.some((allowed) => (isFilter(allowed, 'exists') ? present === allowed.exists : leaves.some((leaf) => leafMatches(allowed, leaf))));
    }
    // A nested pattern: the field must be an object (or an array of objects, any of which matches).
    const nested = Array.isArray(value) ? value : [value];
    return present && nested.some((v) => matchesCondition(expected as Record<string, unknown>, v));
  });
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
