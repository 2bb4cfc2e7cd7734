/** Reads an environment variable that must be set; the error names it. */
export function requiredEnv(env: NodeJS.ProcessEnv, name: string): string {
  const value = env[name];
  if (!value) throw new Error(`environment variable ${name} is not set`);
  return value;
}

/** Reads an environment variable holding a positive integer (or `fallback` when absent); the error names it. */
export function positiveIntegerEnv(env: NodeJS.ProcessEnv, name: string, fallback?: number): number {
  const text = env[name];
  if ((text === undefined || text === '') && fallback !== undefined) return fallback;
  const value = Number(requiredEnv(env, name));
  if (!Number.isInteger(value) || value <= 0) throw new Error(`environment variable ${name} must be a positive integer, got ${text}`);
  return value;
}
