import type { TestProject } from 'vitest/node';
import { startLocalDatabase, type DatabaseEnv } from '../../scripts/local-db';

declare module 'vitest' {
  export interface ProvidedContext {
    database: DatabaseEnv;
  }
}

export default async function setup(project: TestProject) {
  const db = await startLocalDatabase();
  project.provide('database', db.env);
  return () => db.destroy();
}
