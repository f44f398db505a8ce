import cron, { type ScheduledTask } from 'node-cron';

/**
 * A round of work repeated every few seconds or minutes (culling, background checkpoints,
 * retention and garbage collection), scheduled with node-cron. Rounds never overlap: a round asked
 * for while one is in progress joins it.
 */
export class PeriodicTask<T> {
  private readonly name: string;
  private readonly everyS: number;
  private readonly work: () => Promise<T>;
  private task: ScheduledTask | null = null;
  private running: Promise<T> | null = null;

  /**
   * @param options.work one round; its failures are its own to log (a rejected round is dropped).
   */
  constructor(options: { name: string; everyS: number; work: () => Promise<T> }) {
    this.name = options.name;
    this.everyS = options.everyS;
    this.work = options.work;
  }

  /** Schedules rounds every `everyS` seconds; with `runNow`, the first one right away. */
  start(options: { runNow?: boolean } = {}): void {
    if (this.task !== null) return;
    this.task = cron.schedule(cronExpression(this.everyS), () => this.runNow().then(() => undefined, () => undefined), {
      name: this.name,
      noOverlap: true,
    });
    if (options.runNow === true) void this.runNow().catch(() => undefined);
  }

  /** Runs a round now, or joins the round in progress. */
  runNow(): Promise<T> {
    if (this.running === null) {
      this.running = this.work().finally(() => {
        this.running = null;
      });
    }
    return this.running;
  }

  /** Stops scheduling and waits for a round in progress. Idempotent. */
  async stop(): Promise<void> {
    if (this.task !== null) {
      await this.task.destroy();
      this.task = null;
    }
    if (this.running !== null) await this.running.catch(() => undefined);
  }
}

/**
 * node-cron has a seconds field, and a step that does not divide its unit restarts at every unit
 * (`*\/45` seconds fires at :00 and :45). So a period is rounded down to the nearest one that
 * divides the minute, the hour or the day, and rounds stay evenly spaced.
 */
export function cronExpression(everyS: number): string {
  const largestDivisor = (value: number, of: number) => {
    for (let d = Math.max(1, Math.min(Math.floor(value), of)); d > 1; d -= 1) if (of % d === 0) return d;
    return 1;
  };
  const s = Math.max(1, Math.round(everyS));
  if (s < 60) return `*/${largestDivisor(s, 60)} * * * * *`;
  if (s < 3600) return `0 */${largestDivisor(s / 60, 60)} * * * *`;
  return `0 0 */${largestDivisor(s / 3600, 24)} * * *`;
}
