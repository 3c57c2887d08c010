/**
 * A benchmark peer that runs one training step per request (scripts/bench/lockstep.py), so a
 * bench can alternate its own steps with the peer's. On a shared host the speed available to a
 * process moves 1.3-1.9x within minutes (other tenants, CPU steal); a peer measured after ours
 * compares two different machines. Alternating step by step puts each slow spell on both sides.
 *
 * Each side pauses before its step (`settle`, which the peer announces): thread pools spin on
 * the cores for a while after their work (PyTorch's libgomp for milliseconds), and a step
 * started at once would share the cores with the other side's spinning threads.
 */
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export interface PeerStep {
  step_s: number;
  /** process CPU seconds over the step, all threads (NaN where the side does not report it) */
  cpu_s: number;
  loss: number;
}

export class LockstepPeer {
  private readonly waiting: { resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void }[] = [];
  private exited: Error | null = null;
  private stderr = '';
  /** seconds each side waits before its step (the peer's ready line says) */
  settleS = 0.03;

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    createInterface({ input: child.stdout }).on('line', (line) => {
      const t = line.trim();
      if (!t.startsWith('{')) return; // a library's own printing
      const next = this.waiting.shift();
      if (!next) return;
      try {
        const msg = JSON.parse(t) as Record<string, unknown>;
        if (typeof msg.error === 'string') next.reject(new Error(`bench peer: ${msg.error}`));
        else next.resolve(msg);
      } catch (e) {
        next.reject(new Error(`bench peer printed a line that is not JSON: ${t.slice(0, 200)} (${(e as Error).message})`));
      }
    });
    child.stderr.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-4000);
    });
    child.on('exit', (code, signal) => {
      this.exited = new Error(`bench peer exited (${signal ?? `code ${code}`}) before answering; its last output:\n${this.stderr.trim()}`);
      for (const w of this.waiting.splice(0)) w.reject(this.exited);
    });
    child.on('error', (e) => {
      this.exited = e;
      for (const w of this.waiting.splice(0)) w.reject(e);
    });
  }

  /** Start `command args` and wait until it has set up (its `ready` line, returned as info). */
  static async start(command: string, args: string[], env?: NodeJS.ProcessEnv): Promise<{ peer: LockstepPeer; info: Record<string, unknown> }> {
    const peer = new LockstepPeer(spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], env: env ?? process.env }));
    const info = await peer.next();
    if (info.ready !== true) throw new Error(`bench peer: expected a ready line, got ${JSON.stringify(info).slice(0, 200)}`);
    if (typeof info.settle_s === 'number') peer.settleS = info.settle_s;
    return { peer, info };
  }

  private next(): Promise<Record<string, unknown>> {
    if (this.exited) return Promise.reject(this.exited);
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  /** Wait out the peer's spinning threads before a step of ours (call it right before timing one). */
  settle(): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, this.settleS * 1000));
  }

  /**
   * One measured unit on the peer: `request` is "step" or another name the peer serves (a
   * forward pass, ...). Resolves with the time the peer measured around the unit alone.
   */
  async step(request = 'step'): Promise<PeerStep> {
    const reply = this.next();
    this.child.stdin.write(`${request}\n`);
    const r = await reply;
    if (typeof r.step_s !== 'number') throw new Error(`bench peer: a reply to "${request}" without step_s: ${JSON.stringify(r).slice(0, 200)}`);
    return { step_s: r.step_s, cpu_s: typeof r.cpu_s === 'number' ? r.cpu_s : NaN, loss: r.loss === null || r.loss === undefined ? NaN : Number(r.loss) };
  }

  /** The peer process's peak RSS so far (MB), with whatever else its stats callback adds. */
  async stats(): Promise<{ peak_rss_mb: number } & Record<string, unknown>> {
    const reply = this.next();
    this.child.stdin.write('stats\n');
    const r = await reply;
    if (typeof r.peak_rss_mb !== 'number') throw new Error(`bench peer: a stats reply without peak_rss_mb: ${JSON.stringify(r).slice(0, 200)}`);
    return r as { peak_rss_mb: number } & Record<string, unknown>;
  }

  /** Ask the peer to exit and wait for it. */
  async close(): Promise<void> {
    if (this.exited) return;
    const done = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.stdin.end('quit\n');
    await done;
  }
}

/**
 * A Python peer from a venv the bench makes (scripts/py-venv.sh NAME REQUIREMENTS, reused when
 * its requirements are unchanged), started with `script args`; null, after one line naming the
 * peer (`what`) and why, where it cannot run, so the bench reports our side alone.
 */
export async function startPythonPeer(
  what: string,
  p: { venv: string; requirements: string; script: string; args: string[]; env?: NodeJS.ProcessEnv },
): Promise<{ peer: LockstepPeer; info: Record<string, unknown> } | null> {
  const root = process.cwd();
  try {
    const venv = execFileSync(join(root, 'scripts/py-venv.sh'), [p.venv, p.requirements], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
    return await LockstepPeer.start(join(venv, 'bin/python'), [p.script, ...p.args], p.env);
  } catch (e) {
    console.log(`peer (${what}) unavailable: ${(e as Error).message.split('\n')[0]}`);
    return null;
  }
}

/** The median of `xs` (the upper middle one for an even count, as the benches' medians). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/**
 * `rounds` rounds of: our unit, then the peer's `request` (timed by the peer), each after the
 * settle pause; medians over the rounds after the first `skip` (warm-up, recordings). `ours(i)`
 * runs in this process (timed here), or is a request to another served process (returns its
 * reply, timed there). Without a peer only ours run.
 */
export async function alternate(
  rounds: number,
  skip: number,
  ours: (round: number) => void | Promise<PeerStep>,
  peer: LockstepPeer | null,
  request = 'step',
): Promise<{ ours: number; peer: number | null; oursSteps: PeerStep[]; peerSteps: PeerStep[] }> {
  const oursSteps: PeerStep[] = [];
  const peerSteps: PeerStep[] = [];
  for (let i = 0; i < rounds; i++) {
    if (peer) await peer.settle();
    const t0 = performance.now();
    const remote = ours(i);
    oursSteps.push(remote ? await remote : { step_s: (performance.now() - t0) / 1000, cpu_s: NaN, loss: NaN });
    if (peer) peerSteps.push(await peer.step(request));
  }
  const med = (xs: PeerStep[]) => median(xs.slice(skip).map((p) => p.step_s));
  return { ours: med(oursSteps), peer: peer ? med(peerSteps) : null, oursSteps, peerSteps };
}

/**
 * The serving side in a Node process (bench children such as _rass-step.ts), the protocol of
 * scripts/bench/lockstep.py: a ready line with `info`, then one JSON reply per stdin request.
 * A handler returns the unit's loss; its time and process CPU time are taken here, after the
 * settle pause. "stats" answers the peak RSS plus `opts.stats()`. Resolves when asked to quit
 * or stdin ends.
 */
export async function serveSteps(
  handlers: Record<string, () => number | Promise<number>>,
  info: Record<string, unknown> = {},
  opts: { settleS?: number; stats?: () => Record<string, unknown> } = {},
): Promise<void> {
  const settleS = opts.settleS ?? 0.03;
  const say = (o: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(o)}\n`);
  say({ ready: true, settle_s: settleS, serves: Object.keys(handlers).sort(), ...info });
  for await (const line of createInterface({ input: process.stdin })) {
    const cmd = line.trim();
    if (cmd === 'quit') break;
    if (cmd === 'stats') {
      say({ peak_rss_mb: process.resourceUsage().maxRSS / 1024, ...opts.stats?.() }); // maxRSS: KiB
      continue;
    }
    const handler = handlers[cmd];
    if (!handler) {
      say({ error: `unknown request '${cmd}' (serves ${Object.keys(handlers).sort().join(', ')})` });
      continue;
    }
    await new Promise((resolve) => setTimeout(resolve, settleS * 1000));
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    let loss: number;
    try {
      loss = await handler();
    } catch (e) {
      say({ error: `${cmd} failed: ${(e as Error).stack ?? String(e)}`.slice(0, 4000) });
      continue;
    }
    const stepS = (performance.now() - t0) / 1000;
    const c = process.cpuUsage(c0);
    say({ step_s: stepS, cpu_s: (c.user + c.system) / 1e6, loss });
  }
}
