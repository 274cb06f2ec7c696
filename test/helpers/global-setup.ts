import type { TestProject } from 'vitest/node';
import { startLocalDatabase, type DatabaseEnv } from '../../scripts/local-db';

declare module 'vitest' {
  export interface ProvidedContext {
    database: DatabaseEnv;
  }
}

export default async function setup(project: TestProject) {
  // Autovacuum off on the embedded server: a worker's visit to a database counts two transactions in
  // pg_stat_database even when it vacuums nothing, and the model test counts a batch's transactions there.
  const db = await startLocalDatabase({ postgresFlags: ['-c', 'autovacuum=off'] });
  project.provide('database', db.env);
  return () => db.destroy();
}
