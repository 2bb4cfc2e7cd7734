/**
 * Writes the JSON Schema files shipped in the package from their TypeScript source.
 * Run with `npx projen schemas`; tests (test/envelope/curated-envelope.test.ts,
 * test/leader-follower-orchestrator/follower-schemas.test.ts) fail when a committed file is stale.
 */
import { writeFileSync } from 'fs';
import * as path from 'path';
import { FOLLOWER_REQUEST_SCHEMA, FOLLOWER_RESULT_SCHEMA } from '../src/leader-follower-orchestrator/follower-contract-schema';
import { CURATED_ENVELOPE_SCHEMA } from '../src/runtime/curated-envelope-schema';

const schemas: Record<string, object> = {
  'curated-envelope.v1.schema.json': CURATED_ENVELOPE_SCHEMA,
  'follower-request.v1.schema.json': FOLLOWER_REQUEST_SCHEMA,
  'follower-result.v1.schema.json': FOLLOWER_RESULT_SCHEMA,
};
for (const [name, schema] of Object.entries(schemas)) {
  const file = path.join(__dirname, '..', 'schemas', name);
  writeFileSync(file, JSON.stringify(schema, null, 2) + '\n');
  console.log(`wrote ${path.relative(process.cwd(), file)}`);
}
