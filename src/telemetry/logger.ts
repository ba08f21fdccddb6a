/**
 * The one logger factory. JSON lines in production (and in tests, which parse
 * them back); pino-pretty on a terminal. The service is quiet by default:
 * per-message events log at debug.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(opts: { level: string; format: 'json' | 'pretty' }): Logger {
  if (opts.format === 'pretty') {
    return pino({
      level: opts.level,
      transport: {
        target: 'pino-pretty',
        options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' },
      },
    });
  }
  return pino({ level: opts.level, base: { service: 'taihu' } });
}
