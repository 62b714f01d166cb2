import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createLeaderElector, microTime, type LeaseRecord, type LeasePort } from '../../../src/operator/leader.ts';
import type { Logger } from '../../../src/log.ts';

/** One Lease in memory with the API server's optimistic concurrency (resourceVersion, 409 on a stale update). */
class MemoryLease {
  record: LeaseRecord | undefined;
  version = 0;
  writes: string[] = [];

  port(options: { down?: () => boolean } = {}): LeasePort {
    const check = () => {
      if (options.down?.() === true) return Promise.reject(new Error('connect ECONNREFUSED'));
      return Promise.resolve();
    };
    return {
      get: async () => {
        await check();
        return this.record;
      },
      create: async (record) => {
        await check();
        if (this.record !== undefined) throw new Error('409 AlreadyExists');
        this.version += 1;
        this.record = { ...record, resourceVersion: String(this.version) };
        this.writes.push(`create ${record.holderIdentity ?? ''}`);
      },
      update: async (record) => {
        await check();
        if (record.resourceVersion !== this.record?.resourceVersion) throw new Error('409 Conflict');
        this.version += 1;
        this.record = { ...record, resourceVersion: String(this.version) };
        this.writes.push(`update ${record.holderIdentity ?? ''}`);
      },
    };
  }
}

const quiet: Logger = () => undefined;

function candidate(lease: MemoryLease, identity: string, down?: () => boolean) {
  const log: string[] = [];
  const elector = createLeaderElector({
    port: lease.port(down === undefined ? {} : { down }),
    log: quiet,
    identity,
    now: () => Date.now(),
    onStartedLeading: () => log.push('started'),
    onStoppedLeading: () => log.push('stopped'),
  });
  return { elector, log };
}

describe('leader election on a Lease', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: new Date('2026-12-07T10:00:00Z') });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('writes MicroTime with six fractional digits', () => {
    expect(microTime(Date.parse('2026-12-07T10:00:00.123Z'))).toBe('2026-12-07T10:00:00.123000Z');
  });

  it('creates the Lease when there is none, leads at once and renews every retryPeriod', async () => {
    const lease = new MemoryLease();
    const a = candidate(lease, 'a');
    a.elector.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(a.elector.isLeader()).toBe(true);
    expect(a.log).toEqual(['started']);
    expect(lease.record).toMatchObject({ holderIdentity: 'a', leaseDurationSeconds: 15, leaseTransitions: 0 });
    await vi.advanceTimersByTimeAsync(10_000);
    expect(lease.writes).toEqual(['create a', ...Array.from({ length: 5 }, () => 'update a')]);
    await a.elector.stop();
  });

  it('a follower does not take a Lease that is being renewed', async () => {
    const lease = new MemoryLease();
    const a = candidate(lease, 'a');
    const b = candidate(lease, 'b');
    a.elector.start();
    await vi.advanceTimersByTimeAsync(0);
    b.elector.start();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(a.elector.isLeader()).toBe(true);
    expect(b.elector.isLeader()).toBe(false);
    expect(b.elector.holder()).toBe('a');
    expect(b.log).toEqual([]);
    await a.elector.stop();
    await b.elector.stop();
  });

  it.each([0, 400, 1_000, 1_999])(
    'a dead leader (killed %i ms after a renewal) is replaced within leaseDuration + observePeriod',
    async (after) => {
      const lease = new MemoryLease();
      let dead = false;
      const a = candidate(lease, 'a', () => dead);
      const b = candidate(lease, 'b');
      a.elector.start();
      await vi.advanceTimersByTimeAsync(0);
      b.elector.start();
      await vi.advanceTimersByTimeAsync(6_000 + after); // renewals at 0, 2, 4, 6 s
      const lastRenewal = Date.parse(lease.record?.renewTime ?? '');
      dead = true;
      const killedAt = Date.now();
      let takenAt: number | undefined;
      for (let t = 0; t < 20_000 && takenAt === undefined; t += 10) {
        await vi.advanceTimersByTimeAsync(10);
        if (b.elector.isLeader()) takenAt = Date.now();
      }
      expect(takenAt).toBeDefined();
      // Never before the Lease has gone leaseDuration without a renewal, and at most observePeriod later.
      expect((takenAt ?? 0) - lastRenewal).toBeGreaterThanOrEqual(15_000);
      expect((takenAt ?? 0) - lastRenewal).toBeLessThanOrEqual(15_500 + 20);
      expect((takenAt ?? 0) - killedAt).toBeLessThanOrEqual(17_000);
      expect(lease.record).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1 });
      // The dead leader stopped leading on its own after renewDeadline, before b took over.
      expect(a.elector.isLeader()).toBe(false);
      expect(a.log).toEqual(['started', 'stopped']);
      await b.elector.stop();
      await a.elector.stop();
    },
  );

  it('a leader that cannot renew stops leading after renewDeadline, before the Lease can expire', async () => {
    const lease = new MemoryLease();
    let down = false;
    const a = candidate(lease, 'a', () => down);
    a.elector.start();
    await vi.advanceTimersByTimeAsync(1_000);
    down = true;
    const lastRenewal = Date.parse(lease.record?.renewTime ?? '');
    await vi.advanceTimersByTimeAsync(9_000 - 1);
    expect(a.elector.isLeader()).toBe(true);
    await vi.advanceTimersByTimeAsync(1_000 + 1);
    expect(a.elector.isLeader()).toBe(false);
    expect(Date.now() - lastRenewal).toBeLessThan(15_000);
    // Back: it renews its own Lease and leads again.
    down = false;
    await vi.advanceTimersByTimeAsync(2_000);
    expect(a.elector.isLeader()).toBe(true);
    expect(a.log).toEqual(['started', 'stopped', 'started']);
    await a.elector.stop();
  });

  it('stop() releases the Lease and a follower takes it within observePeriod', async () => {
    const lease = new MemoryLease();
    const a = candidate(lease, 'a');
    const b = candidate(lease, 'b');
    a.elector.start();
    await vi.advanceTimersByTimeAsync(0);
    b.elector.start();
    await vi.advanceTimersByTimeAsync(3_000);
    await a.elector.stop();
    expect(lease.record?.holderIdentity).toBe('');
    expect(a.log).toEqual(['started', 'stopped']);
    await vi.advanceTimersByTimeAsync(501);
    expect(b.elector.isLeader()).toBe(true);
    await b.elector.stop();
  });

  it('a replica restarted under the same identity takes its own Lease back at once', async () => {
    const lease = new MemoryLease();
    let dead = false;
    const first = candidate(lease, 'pod-0', () => dead);
    first.elector.start();
    await vi.advanceTimersByTimeAsync(1_000);
    dead = true;
    const again = candidate(lease, 'pod-0');
    again.elector.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(again.elector.isLeader()).toBe(true);
    expect(lease.record?.leaseTransitions).toBe(0);
    await again.elector.stop();
    await first.elector.stop();
  });

  it('two candidates racing for an expired Lease: exactly one leads (the other gets a conflict)', async () => {
    const lease = new MemoryLease();
    lease.record = {
      holderIdentity: 'gone',
      leaseDurationSeconds: 15,
      acquireTime: microTime(Date.now()),
      renewTime: microTime(Date.now()),
      leaseTransitions: 3,
      resourceVersion: '7',
    };
    lease.version = 7;
    const b = candidate(lease, 'b');
    const c = candidate(lease, 'c');
    b.elector.start();
    c.elector.start();
    await vi.advanceTimersByTimeAsync(20_000);
    expect([b.elector.isLeader(), c.elector.isLeader()].filter(Boolean)).toHaveLength(1);
    expect(lease.record.leaseTransitions).toBe(4);
    await b.elector.stop();
    await c.elector.stop();
  });
});
