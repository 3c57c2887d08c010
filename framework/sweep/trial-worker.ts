/**
 * The trial worker (`rass _trial-worker`, started by the local executor): runs the trials it
 * is sent one at a time, in-process, exactly as `rass run` would, and reports each result.
 *
 * Why a long-lived worker: starting `rass` costs ~0.5 s of CPU (module loading, tfjs), more
 * than a tiny trial itself. Isolation is kept where it matters: each trial gets a fresh
 * plugin registry and its own log file; a trial that crashes the process (native abort, out of
 * memory) takes only its worker down and the executor starts another; and the executor
 * replaces a worker after any failed trial or one that left tensors allocated.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import type { PluginRegistry } from '../plugins/registry.js';
import { runExperiment, type RunnerOptions } from '../runner/runner.js';
import { isPipelineConfig, runPipeline } from '../runner/pipeline.js';
import { UserError, reportError } from '../errors.js';
import type { FromWorker, ToWorker } from './trial-protocol.js';

export interface TrialWorkerOptions {
  /** a registry with the built-in packages only: every trial gets its own */
  newRegistry: () => PluginRegistry;
  cwd: string;
}

type Write = typeof process.stdout.write;

/** Serve trials until the executor says `exit` or goes away; resolves when the worker may exit. */
export function serveTrials(opts: TrialWorkerOptions): Promise<void> {
  const send = process.send?.bind(process);
  if (!send) throw new UserError('rass _trial-worker is started by `rass sweep` (it needs the IPC channel of its parent)');
  const post = (m: FromWorker) => send(m);
  let busy = false;
  let exitWhenIdle = false;
  /** stops the running trial (its runner journals KILLED and keeps a checkpoint) */
  let stopTrial: AbortController | undefined;

  // SIGINT is ignored: a terminal's Ctrl-C reaches the whole process group, and the executor,
  // which got it too, stops each running trial by message. SIGTERM (sent to this process
  // alone, e.g. by an administrator) stops the trial, or ends an idle worker.
  process.on('SIGINT', () => {});
  process.on('SIGTERM', () => {
    if (busy) stopTrial?.abort('SIGTERM');
    else process.exit(143);
  });

  return new Promise<void>((finished) => {
    const finish = () => {
      process.off('message', onMessage);
      process.channel?.unref();
      finished();
    };
    const onMessage = (m: ToWorker) => {
      if (m.type === 'exit') {
        if (busy) exitWhenIdle = true;
        else finish();
        return;
      }
      if (m.type === 'stop') {
        stopTrial?.abort(m.signal);
        return;
      }
      busy = true;
      stopTrial = new AbortController();
      void runTrial(m, opts, stopTrial.signal).then((result) => {
        busy = false;
        stopTrial = undefined;
        if (process.connected) post(result);
        if (exitWhenIdle || !process.connected) finish();
      });
    };
    process.on('message', onMessage);
    // The executor died (e.g. SIGKILL): stop the running trial like SIGTERM would (it is
    // journaled KILLED with a checkpoint, and the next `rass sweep` resumes it), then exit.
    process.on('disconnect', () => {
      if (busy) stopTrial?.abort('SIGTERM');
      else finish();
    });
    post({ type: 'ready', pid: process.pid });
  });
}

async function runTrial(m: Extract<ToWorker, { type: 'trial' }>, opts: TrialWorkerOptions, signal: AbortSignal): Promise<FromWorker> {
  const tensorsBefore = tf.engine().state.numTensors;
  // Everything the trial prints (runner, plugins, console.*) goes to its log file, written
  // synchronously so it is complete before the result is reported.
  const fd = openSync(m.logFile, 'a');
  const toLog = ((chunk: string | Uint8Array, enc?: unknown, cb?: unknown): boolean => {
    writeSync(fd, chunk as Uint8Array);
    const callback = typeof enc === 'function' ? enc : cb;
    if (typeof callback === 'function') (callback as () => void)();
    return true;
  }) as Write;
  const saved = { out: process.stdout.write, err: process.stderr.write };
  process.stdout.write = toLog;
  process.stderr.write = toLog;
  let exitCode: number;
  let error: string | undefined;
  try {
    const r = m.request;
    const base: RunnerOptions = {
      registry: opts.newRegistry(),
      configFile: r.configFile,
      sets: r.sets,
      resume: r.resume,
      runsDir: r.runsDir,
      runId: r.runId,
      parentRunId: r.parentRunId,
      name: r.name,
      tags: r.tags,
      cwd: opts.cwd,
      env: process.env,
      stdout: process.stdout,
      stderr: process.stderr,
      signal,
      // the worker owns its process: an error a trial throws outside its promise (a stray
      // timer) fails that trial's run with the message, as `rass run` does, instead of killing
      // the worker with the run left RUNNING; a failed trial retires its worker
      handleUncaught: true,
    };
    // a staged config runs as `rass run` runs it: the whole pipeline (a sweep over a pipeline)
    const pipeline = r.configFile !== undefined && r.resume === undefined && (await isPipelineConfig(r.configFile, { env: process.env, cwd: opts.cwd, sets: r.sets }));
    const outcome = pipeline ? await runPipeline({ ...base, configFile: r.configFile!, retryFailed: r.retryFailed }) : await runExperiment(base);
    exitCode = outcome.exitCode;
  } catch (e) {
    error = e instanceof Error ? e.message : String(e);
    exitCode = reportError(e, process.stderr);
  } finally {
    process.stdout.write = saved.out;
    process.stderr.write = saved.err;
    closeSync(fd);
  }
  return {
    type: 'done',
    trialId: m.trialId,
    exitCode,
    ...(error !== undefined ? { error } : {}),
    leakedTensors: tf.engine().state.numTensors - tensorsBefore,
  };
}
