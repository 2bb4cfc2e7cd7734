/** The logging the handler cores need; Powertools' Logger fits it. */
export interface CoreLogger {
  debug(message: string, ...extra: any[]): void;
  info(message: string, ...extra: any[]): void;
  warn(message: string, ...extra: any[]): void;
  error(message: string, ...extra: any[]): void;
  appendKeys?(keys: Record<string, unknown>): void;
  removeKeys?(keys: string[]): void;
}

/** A logger that drops everything (the default of the cores). */
export const SILENT_LOGGER: CoreLogger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };
