import type { CoreLogger } from '../../src/runtime/core-logger';

/** One logged line, with the extra fields it was logged with. */
export interface LoggedLine {
  readonly level: string;
  readonly message: string;
  readonly fields: Record<string, unknown>;
}

/** A logger for the handler cores that keeps what was logged. */
export function captureLogger(): CoreLogger & { lines: LoggedLine[]; messages: (level: string) => string[] } {
  const lines: LoggedLine[] = [];
  const log = (level: string) => (message: string, fields: Record<string, unknown> = {}) => { lines.push({ level, message, fields }); };
  return {
    lines,
    messages: (level: string) => lines.filter((l) => l.level === level).map((l) => l.message),
    debug: log('debug'),
    info: log('info'),
    warn: log('warn'),
    error: log('error'),
    appendKeys: () => {},
    removeKeys: () => {},
  };
}
