import { Token } from 'aws-cdk-lib';
import { IConstruct } from 'constructs';

/**
 * Raised when a construct prop has a value the construct cannot accept.
 * The message names the construct, the prop, the value given and what is allowed.
 */
export class PropValidationError extends Error {
  constructor(scope: IConstruct, prop: string, value: unknown, allowed: string) {
    super(`${scope.node.path}: invalid ${prop} ${JSON.stringify(value)}; ${allowed}`);
    this.name = 'PropValidationError';
  }
}

/** Checks that a number prop is an integer in [min, max]. Unresolved tokens are skipped. */
export function validateIntegerRange(scope: IConstruct, prop: string, value: number | undefined, min: number, max: number, unit = ''): void {
  if (value === undefined || Token.isUnresolved(value)) return;
  if (!Number.isInteger(value) || value < min || value > max) {
    const suffix = unit ? ` ${unit}` : '';
    throw new PropValidationError(scope, prop, value, `allowed: an integer from ${min} to ${max}${suffix}`);
  }
}

/** Checks that a string prop is an https:// URL with a host. Unresolved tokens are skipped. */
export function validateHttpsUrl(scope: IConstruct, prop: string, value: string): void {
  if (Token.isUnresolved(value)) return;
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (!url || url.protocol !== 'https:' || !url.hostname) {
    throw new PropValidationError(scope, prop, value, 'allowed: an absolute https:// URL (EventBridge API destinations only call HTTPS endpoints)');
  }
}

/** Checks that an event pattern constrains at least one field (EventBridge rejects an empty one). */
export function validateEventPattern(scope: IConstruct, prop: string, pattern: object | undefined, hint = ''): void {
  const empty = Object.values(pattern ?? {}).every((v) => v === undefined || (Array.isArray(v) && v.length === 0) ||
    (typeof v === 'object' && !Array.isArray(v) && !Token.isUnresolved(v) && Object.keys(v).length === 0));
  if (empty) {
    throw new PropValidationError(scope, prop, pattern, `allowed: a pattern that constrains at least one field (source, detailType, detail, ...)${hint}`);
  }
}

export { EVENT_JSON_PATH } from '../runtime/envelope-paths';
