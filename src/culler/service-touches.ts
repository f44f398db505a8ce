import type { ServiceTouch } from './cull-policy.js';

/**
 * The service's own recent touches of each user server (a culling round's checkpoints, a
 * background checkpoint), shared by everything that touches servers, so the culler never takes
 * the activity they cause for the user's (DESIGN invariant 4). Keyed `user/server`.
 */
export class ServiceTouches {
  private readonly byServer = new Map<string, ServiceTouch>();

  get(user: string, server: string): ServiceTouch | undefined {
    return this.byServer.get(`${user}/${server}`);
  }

  set(user: string, server: string, touch: ServiceTouch): void {
    this.byServer.set(`${user}/${server}`, touch);
  }

  delete(user: string, server: string): void {
    this.byServer.delete(`${user}/${server}`);
  }
}
