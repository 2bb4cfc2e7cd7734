/**
 * Writes the JSON Schema files shipped in the package from their TypeScript source.
 * Run with `npx projen schemas`; test/envelope/curated-envelope.test.ts fails when the
 * committed file is stale.
 */
import { writeFileSync } from 'fs';
import * as path from 'path';
import { CURATED_ENVELOPE_SCHEMA } from '../src/runtime/curated-envelope-schema';

const file = path.join(__dirname, '..', 'schemas', 'curated-envelope.v1.schema.json');
writeFileSync(file, JSON.stringify(CURATED_ENVELOPE_SCHEMA, null, 2) + '\n');
console.log(`wrote ${path.relative(process.cwd(), file)}`);
