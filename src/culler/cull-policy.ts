import type { HubServer } from '../hub/hub-client.js';

/**
 * When the service itself touched a server (listing its kernels through the proxy, running a
 * checkpoint in its kernels), the hub may later report that moment as the server's last activity.
 * A touch remembers the activity the server had before, so the service's own traffic never counts
 * as user activity (DESIGN invariant 4).
 */
export type ServiceTouch = { from: Date; to: Date; lastActivityBefore: Date | null };

export type CullDecision = { cull: boolean; idleS: number; reason: string };

/**
 * Activity reports lag behind the event that caused them (iopub idle after our last message, the
 * single-user server's activity post); anything this close after a touch is still ours.
 */
const TOUCH_SLACK_MS = 5_000;

/**
 * The last activity that belongs to the user: the hub's `last_activity`, unless it falls inside a
 * service touch, in which case the activity from before the touch.
 */
export function userLastActivity(server: HubServer, touch: ServiceTouch | undefined): Date | null {
  const reported = server.lastActivity ?? server.started;
  if (touch === undefined || reported === null) return reported;
  const t = reported.getTime();
  const ours = t >= touch.from.getTime() - TOUCH_SLACK_MS && t <= touch.to.getTime() + TOUCH_SLACK_MS;
  return ours ? (touch.lastActivityBefore ?? server.started) : reported;
}

/**
 * Decides whether a server is idle long enough to be checkpointed and stopped. Pure: the sweep
 * does the I/O (kernel busy checks, checkpoints, the stop) only for servers this says yes to.
 *
 * @param server the hub's model of the server.
 * @param now the current time (injected: tests travel in time instead of sleeping).
 * @param timeoutS seconds of inactivity after which a server is culled.
 * @param touch the service's last touch of this server, if any.
 */
export function shouldCull(server: HubServer, now: Date, timeoutS: number, touch?: ServiceTouch): CullDecision {
  if (server.pending !== null) {
    return { cull: false, idleS: 0, reason: `server is pending ${server.pending}` };
  }
  if (!server.ready) return { cull: false, idleS: 0, reason: 'server is not ready' };
  const last = userLastActivity(server, touch);
  if (last === null) return { cull: false, idleS: 0, reason: 'server has no activity or start time yet' };
  const idleS = Math.max(0, (now.getTime() - last.getTime()) / 1000);
  return idleS >= timeoutS
    ? { cull: true, idleS, reason: `inactive for ${formatSeconds(idleS)} (timeout ${formatSeconds(timeoutS)})` }
    : { cull: false, idleS, reason: `active ${formatSeconds(idleS)} ago` };
}

/** `3725` → `1:02:05`, as jupyterhub-idle-culler prints inactivity. */
export function formatSeconds(s: number): string {
  const total = Math.floor(s);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = total % 60;
  return `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}`;
}
