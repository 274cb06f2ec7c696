import type { TestProject } from 'vitest/node';
import { startLocalDatabase, type DatabaseEnv } from '../../scripts/local-db';
import { createRunTmp } from './run-tmp';

declare module 'vitest' {
  export interface ProvidedContext {
    database: DatabaseEnv;
  }
}

export default async function setup(project: TestProject) {
  // Before anything creates a temporary folder: the workers and every process they start inherit TMPDIR.
  const tmp = createRunTmp();
  // Autovacuum off on the embedded server: a worker's visit to a database counts two transactions in
  // pg_stat_database even when it vacuums nothing, and the model test counts a batch's transactions there.
  const db = await startLocalDatabase({ postgresFlags: ['-c', 'autovacuum=off'] }).catch((error: unknown) => {
    tmp.remove();
    throw error;
  });
  project.provide('database', db.env);
  return async () => {
    try {
      await db.destroy();
    } finally {
      tmp.remove();
    }
  };
}
