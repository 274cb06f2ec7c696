import { constants } from 'node:os';

/**
 * What a script does when it is told to stop (Ctrl-C, SIGTERM, a closed terminal): every registered step, newest
 * first, then exit.
 *
 * One Ctrl-C reaches a script more than once: the terminal signals every process of its group, and npm and tsx,
 * above the script, forward the signal again. A handler registered with `process.once` is gone for the second one,
 * and then tsx ends the process at once, before the clean-up has run (the broker's and the embedded PostgreSQL's
 * folders stayed behind). So the handlers stay registered, later signals only wait for the first one's work, and the
 * work is asynchronous: tsx kills a script that does not answer its relayed signal within a few tens of
 * milliseconds, which a synchronous removal of a data folder in an `exit` handler did not.
 */
type Step = { stop: () => Promise<void>; exitCode?: number };

const steps = new Set<Step>();
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
/** A step that hangs (a server that ignores its stop) does not keep the script alive for ever. */
const GIVE_UP_MS = 30_000;
let stopping: Promise<void> | null = null;

function onSignal(signal: (typeof SIGNALS)[number]) {
  if (stopping) return; // the same Ctrl-C forwarded again: the first one's work is under way
  stopping = (async () => {
    const giveUp = setTimeout(() => {
      console.error(`${signal}: clean-up still running after ${GIVE_UP_MS / 1000} s; exiting without it.`);
      process.exit(1);
    }, GIVE_UP_MS);
    const pending = [...steps].reverse();
    const exitCode = pending.find((s) => s.exitCode !== undefined)?.exitCode ?? 128 + constants.signals[signal];
    for (const step of pending) {
      await step.stop().catch((error: unknown) => console.error(`${signal}: clean-up failed:`, error));
    }
    clearTimeout(giveUp);
    process.exit(exitCode);
  })();
}

/**
 * Runs `stop` when the process gets SIGINT, SIGTERM or SIGHUP, then ends it with `exitCode` (by default 128 plus the
 * signal's number, as a shell reports a process that a signal ended). Returns a function that takes it back, for
 * work that ended by itself.
 */
export function onStopSignal(stop: () => Promise<void>, exitCode?: number): () => void {
  if (steps.size === 0) for (const signal of SIGNALS) process.on(signal, onSignal);
  const step = { stop, exitCode };
  steps.add(step);
  return () => {
    steps.delete(step);
    if (steps.size === 0 && !stopping) for (const signal of SIGNALS) process.removeListener(signal, onSignal);
  };
}

/** True once a stop signal has arrived: work in progress should end instead of starting its next step. */
export const stopRequested = (): boolean => stopping !== null;
