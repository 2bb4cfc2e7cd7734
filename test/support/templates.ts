import { Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';

/** Number of resources in a synthesized stack template. */
export function resourceCount(stack: Stack): number {
  return Object.keys(Template.fromStack(stack).toJSON().Resources ?? {}).length;
}

/** Count of resources per CloudFormation type in a stack. */
export function resourcesByType(stack: Stack): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of Object.values<any>(Template.fromStack(stack).toJSON().Resources ?? {})) {
    counts[r.Type] = (counts[r.Type] ?? 0) + 1;
  }
  return counts;
}

/**
 * Replaces asset hashes (64 hex chars) in a template with a placeholder, so templates can
 * be compared across builds whose bundled handler bytes differ.
 */
export function normalizeAssetHashes<T>(template: T): T {
  return JSON.parse(JSON.stringify(template).replace(/[0-9a-f]{64}/g, '<asset-hash>'));
}
