/**
 * A kernel's heartbeat socket: the kernel echoes whatever it receives from a thread of its own, so
 * it answers even while a cell runs. Silence means the process is gone (or unreachable).
 */
import { randomBytes } from 'node:crypto';
import { Dealer } from 'zeromq';

/** Pings one kernel's heartbeat; watches it while the owner has requests pending. */
export class KernelHeartbeat {
  // A Dealer, not a Request socket: an unanswered ping must not wedge a REQ state machine.
  private readonly socket = new Dealer({ linger: 0 });
  private lastPongAt = 0;
  private readonly pongWaiters = new Set<(alive: boolean) => void>();
  private watchTimer: NodeJS.Timeout | null = null;
  private sending: Promise<void> = Promise.resolve();
  private closed = false;

  /**
   * @param endpoint the `hb` endpoint, e.g. `tcp://127.0.0.1:50123`.
   * @param options.intervalMs how often `watch` pings; default 1 s.
   * @param options.timeoutMs silence longer than this is death; default 5 s.
   */
  constructor(
    endpoint: string,
    private readonly options: { intervalMs?: number; timeoutMs?: number } = {},
  ) {
    this.socket.connect(endpoint);
    void this.receivePongs();
  }

  /** How long a silence `watch` tolerates. */
  get timeoutMs(): number {
    return this.options.timeoutMs ?? 5_000;
  }

  /**
   * Pings once.
   * @param timeoutMs how long to wait for the echo.
   * @returns whether the kernel answered in time.
   */
  isAlive(timeoutMs = 2_000): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    const since = Date.now();
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.pongWaiters.delete(onPong);
        resolve(this.lastPongAt >= since);
      }, timeoutMs);
      const onPong = (alive: boolean) => {
        clearTimeout(timer);
        this.pongWaiters.delete(onPong);
        resolve(alive);
      };
      this.pongWaiters.add(onPong);
      this.ping();
    });
  }

  /**
   * Pings every interval until `unwatch()`; calls `onDead` once if the kernel stays silent
   * longer than the timeout. Watching while already watching does nothing.
   */
  watch(onDead: () => void): void {
    if (this.watchTimer || this.closed) return;
    this.lastPongAt = Date.now();
    this.watchTimer = setInterval(() => {
      if (Date.now() - this.lastPongAt > this.timeoutMs) {
        this.unwatch();
        onDead();
        return;
      }
      this.ping();
    }, this.options.intervalMs ?? 1_000);
    // Watching alone must not keep a process alive.
    this.watchTimer.unref();
  }

  /** Stops watching. */
  unwatch(): void {
    if (this.watchTimer) clearInterval(this.watchTimer);
    this.watchTimer = null;
  }

  /** Stops watching, answers pending `isAlive` calls and closes the socket. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unwatch();
    for (const waiter of [...this.pongWaiters]) waiter(false);
    this.socket.close();
  }

  private ping(): void {
    // zeromq allows one blocked send per socket: queue pings behind each other.
    this.sending = this.sending.then(() => this.socket.send(randomBytes(8))).catch(() => undefined);
  }

  private async receivePongs(): Promise<void> {
    try {
      for await (const _echo of this.socket) {
        this.lastPongAt = Date.now();
        for (const waiter of [...this.pongWaiters]) waiter(true);
      }
    } catch {
      // Closing the socket ends the loop with an error; that is the normal way out.
    }
  }
}
