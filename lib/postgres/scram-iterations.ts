import crypto from 'node:crypto';

/**
 * The SCRAM iteration counts a server may name. Below PostgreSQL's default (4096, also RDS's) a proof an impostor
 * captured is cheap to guess the password from; far above it, postgres.js computes the proof synchronously, on the
 * event loop, for seconds to hours, and no timer (the invocation's deadline among them) fires meanwhile.
 * 1,000,000 costs about half a second.
 */
export const SCRAM_ITERATIONS = { min: 4096, max: 1_000_000 } as const;

/** Thrown instead of computing a SCRAM proof with an iteration count outside SCRAM_ITERATIONS. */
export class ScramIterationsRefused extends Error {
  readonly code = 'SCRAM_ITERATIONS_REFUSED';
  constructor(readonly iterations: number) {
    super(`refused to compute a SCRAM proof with ${iterations} iterations`);
  }
}

let installed = false;

/**
 * The gap in postgres.js 4 (4.2.0) this closes: it runs PBKDF2 with whatever iteration count the server's
 * server-first-message names (the last `i=` of it), without a bound. Rather than read the protocol a second time
 * (and risk reading it differently: a first `i=` within bounds, a last one far out), the guard sits where the
 * driver uses the number: `crypto.pbkdf2Sync(password, salt, iterations, 32, 'sha256')`, the call of its SCRAM
 * client, looked up on the module at each call. Only calls of that shape are checked (SCRAM-SHA-256's key length
 * and digest); nothing else in this function's process derives keys that way. The driver turns the throw into a
 * failed connection: no proof is computed or sent. test/integration/impostor.test.ts shows the gap.
 */
export function guardScramIterations(): void {
  if (installed) return;
  installed = true;
  const original = crypto.pbkdf2Sync;
  crypto.pbkdf2Sync = function guardedPbkdf2Sync(password, salt, iterations, keylen, digest) {
    if (
      keylen === 32 &&
      digest === 'sha256' &&
      !(iterations >= SCRAM_ITERATIONS.min && iterations <= SCRAM_ITERATIONS.max)
    )
      throw new ScramIterationsRefused(iterations);
    return original(password, salt, iterations, keylen, digest);
  };
}
