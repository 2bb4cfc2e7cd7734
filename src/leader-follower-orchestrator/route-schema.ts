import Ajv2020 from 'ajv/dist/2020';
import type { ValidateFunction } from 'ajv/dist/2020';
import {
  CHANNEL_NAME_PATTERN, FOLLOWER_NAME_PATTERN, LAMBDA_RECURSION_LIMIT, MAX_CHANNEL_LENGTH, MAX_ROUTE_KEY_BYTES, MAX_ROUTE_LENGTH, RouteItem,
  routeKey,
} from './orchestrator-contract';

/**
 * JSON Schema (draft 2020-12) of a route item. The same schema checks routes in construct
 * props (synth), in the route writer (deploy and run time) and in the leader (every read), so
 * a route a user writes straight into the table by hand is refused with the same message.
 */
export const ROUTE_SCHEMA = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  $id: 'https://cdk-event-fabric.dev/schemas/orchestrator-route.v1.schema.json',
  title: 'cdk-event-fabric LeaderFollowerOrchestrator route',
  type: 'object',
  required: ['channel', 'followers'],
  additionalProperties: false,
  properties: {
    channel: { type: 'string', minLength: 1, maxLength: MAX_CHANNEL_LENGTH, pattern: CHANNEL_NAME_PATTERN },
    tenant: { type: 'string', minLength: 1, maxLength: 256 },
    eventType: { type: 'string', minLength: 1, maxLength: 256 },
    followers: {
      type: 'array',
      minItems: 1,
      maxItems: MAX_ROUTE_LENGTH,
      items: {
        anyOf: [
          { type: 'string', pattern: FOLLOWER_NAME_PATTERN },
          {
            type: 'object',
            required: ['follower'],
            additionalProperties: false,
            properties: { follower: { type: 'string', pattern: FOLLOWER_NAME_PATTERN }, parameters: {} },
          },
        ],
      },
    },
    description: { type: 'string', maxLength: 1024 },
    updatedAt: { type: 'string', maxLength: 64 },
    updatedBy: { type: 'string', maxLength: 256 },
  },
} as const;

/** Outcome of a route check: `errors` say what is wrong and what is allowed. */
export interface RouteCheck {
  readonly valid: boolean;
  readonly errors: string[];
}

let compiled: ValidateFunction | undefined;

/**
 * Checks a route item against the schema and the hop limit: a route may not have more
 * followers than `maxHops` (itself at most MAX_ROUTE_LENGTH, for Lambda's recursion detection).
 */
export function checkRoute(value: unknown, maxHops: number = MAX_ROUTE_LENGTH): RouteCheck {
  compiled ??= new Ajv2020({ strict: true, allErrors: false }).compile(ROUTE_SCHEMA);
  if (!compiled(value)) {
    // A step matching neither form fails each of them: one message says both.
    return { valid: false, errors: [...new Set((compiled.errors ?? []).map(describe))] };
  }
  const route = value as RouteItem;
  const unstorable = route.followers.map((step, i) => (typeof step === 'object' && step.parameters !== undefined
    ? unstorableJson(step.parameters, `/followers/${i}/parameters`, 1) : undefined)).find((problem) => problem !== undefined);
  if (unstorable) return { valid: false, errors: [unstorable] };
  const itemBytes = dynamoDbBytes(route);
  if (itemBytes > MAX_ROUTE_ITEM_BYTES) {
    return {
      valid: false,
      errors: [`the route is ${itemBytes} bytes as DynamoDB sizes items; allowed: at most ${MAX_ROUTE_ITEM_BYTES} `
      + '(a DynamoDB item is at most 400 KB)'],
    };
  }
  const keyBytes = Buffer.byteLength(routeKey(route), 'utf8');
  if (keyBytes > MAX_ROUTE_KEY_BYTES) {
    return {
      valid: false,
      errors: [`the route key ${JSON.stringify(routeKey(route).slice(0, 80))}… is ${keyBytes} bytes; allowed: at most `
      + `${MAX_ROUTE_KEY_BYTES} (DynamoDB's partition key limit): shorten the channel, tenant or event type`],
    };
  }
  if (route.followers.length > maxHops) {
    return {
      valid: false,
      errors: [`/followers has ${route.followers.length} followers; allowed: at most ${maxHops} (the orchestrator's hop limit)`],
    };
  }
  return { valid: true, errors: [] };
}

/**
 * A value's size as DynamoDB counts it (developer guide, "Capacity unit consumption": a
 * string is its UTF-8 bytes; a number 1 byte per two significant digits, plus 1; a boolean or
 * null 1 byte; a list or map 3 bytes, plus 1 byte and its size for each element, and for a map
 * each key's UTF-8 bytes). An item's attribute names count like map keys.
 */
export function dynamoDbBytes(value: unknown): number {
  if (typeof value === 'string') return Buffer.byteLength(value, 'utf8');
  if (typeof value === 'number') {
    const mantissa = Math.abs(value).toExponential().split('e')[0].replace('.', '');
    return Math.ceil(mantissa.replace(/0+$/, '').length / 2) + 1;
  }
  if (Array.isArray(value)) return 3 + value.reduce((sum: number, item) => sum + 1 + dynamoDbBytes(item), 0);
  if (typeof value === 'object' && value !== null) {
    return 3 + Object.entries(value).reduce((sum, [key, item]) => sum + 1 + Buffer.byteLength(key, 'utf8') + dynamoDbBytes(item), 0);
  }
  return 1;
}

/** Largest route item, as DynamoDB sizes it: a DynamoDB item is at most 400 KB. */
export const MAX_ROUTE_ITEM_BYTES = 350_000;
/** Deepest nesting of a step's parameters (DynamoDB nests at most 32 levels in an item). */
export const MAX_PARAMETER_DEPTH = 16;

/**
 * What in a step's parameters DynamoDB cannot store, or undefined: numbers are stored as
 * numbers (at most 38 digits, magnitudes from 1e-130 to under 1e126), so an integer beyond
 * 2^53 (which JSON.parse has rounded already) or a number out of that range is refused, and so
 * is nesting deeper than MAX_PARAMETER_DEPTH. Pass such values as strings.
 */
function unstorableJson(value: unknown, where: string, depth: number): string | undefined {
  if (depth > MAX_PARAMETER_DEPTH) return `${where} nests deeper than ${MAX_PARAMETER_DEPTH} levels; allowed: at most ${MAX_PARAMETER_DEPTH}`;
  if (typeof value === 'number') {
    const magnitude = Math.abs(value);
    const storable = Number.isFinite(value) && (Number.isInteger(value) ? Number.isSafeInteger(value)
      : magnitude === 0 || (magnitude >= 1e-130 && magnitude < 1e126));
    return storable ? undefined : `${where} is the number ${value}; allowed: integers from -(2^53 - 1) to 2^53 - 1 and decimals from `
      + '1e-130 to under 1e126 in magnitude (DynamoDB numbers); pass larger ids as strings';
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const problem = unstorableJson(value[i], `${where}/${i}`, depth + 1);
      if (problem) return problem;
    }
  } else if (typeof value === 'object' && value !== null) {
    for (const [key, item] of Object.entries(value)) {
      const problem = unstorableJson(item, `${where}/${key}`, depth + 1);
      if (problem) return problem;
    }
  }
  return undefined;
}

/** Names in the route that are not registered followers, in route order. */
export function unregisteredFollowers(route: RouteItem, registered: Iterable<string>): string[] {
  const known = new Set(registered);
  return followerNames(route).filter((name) => !known.has(name));
}

/** The follower name of each step of a (checked) route. */
export function followerNames(route: RouteItem): string[] {
  return route.followers.map((step) => (typeof step === 'string' ? step : step.follower));
}

/** Each step's parameters (null for a step without), or undefined when no step has any. */
export function routeParameters(route: RouteItem): unknown[] | undefined {
  const parameters = route.followers.map((step) => (typeof step === 'string' || step.parameters === undefined ? null : step.parameters));
  return parameters.some((p) => p !== null) ? parameters : undefined;
}

function describe(error: NonNullable<ValidateFunction['errors']>[number]): string {
  const where = error.instancePath || '/';
  if (error.keyword === 'maxItems' && error.instancePath === '/followers') {
    return `/followers has more than ${MAX_ROUTE_LENGTH} followers; allowed: 1 to ${MAX_ROUTE_LENGTH}, so the leader, invoked once `
      + `for the record and once per step's result (1 + ${MAX_ROUTE_LENGTH} = ${MAX_ROUTE_LENGTH + 1}), stays within Lambda's `
      + `recursive loop detection, which stops a function invoked more than ${LAMBDA_RECURSION_LIMIT} times by one event`;
  }
  if (error.instancePath.startsWith('/followers/')) {
    const step = error.instancePath.split('/')[2];
    return `/followers/${step} must be a follower name of 1 to 64 letters, digits, "_" or "-", or { "follower": <such a name>, `
      + '"parameters"?: <any JSON> } and nothing else';
  }
  if (error.keyword === 'pattern' && error.instancePath === '/channel') {
    return '/channel must be printable ASCII with at least one non-space character (it is a CloudWatch dimension value of the metrics)';
  }
  const params = error.params as { additionalProperty?: string };
  const extra = params.additionalProperty !== undefined ? ` (${JSON.stringify(params.additionalProperty)}; allowed: channel, `
    + 'tenant, eventType, followers, description, updatedAt, updatedBy)' : '';
  return `${where} ${error.message ?? 'is invalid'}${extra}`;
}
