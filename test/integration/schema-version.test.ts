import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../lib/log';
import { applySchema } from '../../scripts/db/migrations';
import { SchemaGate } from '../../lib/postgres/schema-version-gate';
import { VERSION_TABLE } from '../../lib/postgres/table-names';
import { consumerDatabase, testDatabase, type TestDatabase } from '../helpers/db';
import { lambdaContext } from '../helpers/factories';
import { captureLogs, coldStart } from '../helpers/handler';
import { NEWEST, schemaAtVersion, schemaWorkspace } from '../helpers/schemas';
import { schemaSql } from '../helpers/schema-file';

/** The message for a database behind the code; version 0 (no version table) may also be a wrong DB_SCHEMA. */
const behindMessage = (version: number) =>
  `schema version ${version}, needs ${NEWEST}: run npm run db:apply` +
  (version === 0 ? ' (or set DB_SCHEMA to the schema that holds the tables)' : '');

/*
 * The consumer and the health function against databases at the wrong schema version: behind (never migrated,
 * from before versioned migrations, one migration short) or ahead (a newer migration, compatible or not).
 */

let db: TestDatabase;
let workspace: ReturnType<typeof schemaWorkspace>;
const event = JSON.parse(readFileSync(join(__dirname, '../../events/msk-batch.json'), 'utf8'));
const healthRequest = JSON.parse(readFileSync(join(__dirname, '../../events/health-ready.json'), 'utf8'));
const oldSchemaFile = readFileSync(join(__dirname, '../fixtures/pre-migration-schema.sql'), 'utf8');
const pad = (n: number) => String(n).padStart(4, '0');

beforeAll(async () => {
  db = await testDatabase();
  workspace = schemaWorkspace(db.sql);
});
afterAll(async () => {
  await workspace.cleanUp();
  await db.close();
});

/** Schemas behind the code, each with the version it is at. */
async function behindSchemas(): Promise<{ label: string; schema: string; version: number }[]> {
  const preMigration = workspace.name();
  await db.sql.unsafe(schemaSql(preMigration, oldSchemaFile));
  const cases = [
    { label: 'no schema at all', schema: workspace.name(), version: 0 },
    { label: 'tables from before versioned migrations', schema: preMigration, version: 0 },
  ];
  if (NEWEST > 1)
    cases.push({
      label: 'one migration short',
      schema: await schemaAtVersion(db.sql, workspace, NEWEST - 1),
      version: NEWEST - 1,
    });
  return cases;
}

/** A schema at the newest version plus one more migration from "newer code", marked compatible or not. */
async function aheadSchema(compatible: boolean): Promise<string> {
  const schema = workspace.name();
  const header = compatible ? '-- compatible: true\n' : '-- a breaking change\n';
  await applySchema(
    db.sql,
    schema,
    workspace.folder(NEWEST, {
      [`${pad(NEWEST + 1)}_newer.sql`]: `${header}CREATE INDEX newer_idx ON courses (year);\n`,
    }),
  );
  return schema;
}

/** Traces stored in `schema`; 0 when it has no such table. */
async function storedTraces(schema: string): Promise<number> {
  const table = `${schema}.processed_traces`;
  const [found] = await db.sql<{ exists: boolean }[]>`select to_regclass(${table}) is not null as exists`;
  if (!found?.exists) return 0;
  const [row] = await db.sql<{ n: number }[]>`select count(*)::int as n from ${db.sql(table)}`;
  return row?.n ?? 0;
}

describe('the consumer', () => {
  it('should fail fast on a database behind the code, write nothing, and work once npm run db:apply ran', async () => {
    for (const { label, schema, version } of await behindSchemas()) {
      const handler = await coldStart('consumer', db, { DB_SCHEMA: schema });
      // a schema at an earlier version holds the fixture rows of that version
      const before = await storedTraces(schema);
      const failed = await captureLogs(() => handler(event, lambdaContext()));
      expect(failed.error, label).toMatchObject({ code: 'SCHEMA_VERSION_MISMATCH', message: behindMessage(version) });
      expect(
        failed.logs.map((l) => l.message),
        label,
      ).toEqual(['schema version mismatch; the batch is left for Lambda to retry']);
      expect(await storedTraces(schema), label).toBe(before);

      await applySchema(db.sql, schema); // what the message says to do
      const retried = await captureLogs(() => handler(event, lambdaContext())); // the same environment checks again
      expect(retried.error, label).toBeUndefined();
      expect(retried.value, label).toEqual({ batchItemFailures: [] });
      expect(await storedTraces(schema), label).toBeGreaterThan(before);
    }
  });

  it(
    'should run on a database ahead of it through compatible migrations, and refuse one with an incompatible ' + 'one',
    async () => {
      const compatible = await aheadSchema(true);
      const ok = await captureLogs(async () =>
        (await coldStart('consumer', db, { DB_SCHEMA: compatible }))(event, lambdaContext()),
      );
      expect(ok.value).toEqual({ batchItemFailures: [] });
      expect(
        ok.logs.find((l) => l.message === 'database schema is ahead of the code, and compatible with it'),
      ).toMatchObject({ current: NEWEST + 1, required: NEWEST });

      const incompatible = await aheadSchema(false);
      const refused = await captureLogs(async () =>
        (await coldStart('consumer', db, { DB_SCHEMA: incompatible }))(event, lambdaContext()),
      );
      expect(refused.error).toMatchObject({
        code: 'SCHEMA_VERSION_MISMATCH',
        message:
          `schema version ${NEWEST + 1}, needs ${NEWEST}: migration ${NEWEST + 1} is not marked compatible ` +
          `with older code; deploy code built for schema version ${NEWEST + 1}`,
      });
      expect(await storedTraces(incompatible)).toBe(0);
    },
  );

  it('should check once per execution environment after a success, and again in a new one', async () => {
    const schema = workspace.name();
    await applySchema(db.sql, schema);
    const handler = await coldStart('consumer', db, { DB_SCHEMA: schema });
    expect((await captureLogs(() => handler(event, lambdaContext()))).value).toEqual({ batchItemFailures: [] });

    await db.sql`delete from ${db.sql(`${schema}.${VERSION_TABLE}`)} where version = ${NEWEST}`; // now "behind"
    const cached = await captureLogs(() => handler(event, lambdaContext()));
    expect(cached.error).toBeUndefined();
    const fresh = await captureLogs(async () =>
      (await coldStart('consumer', db, { DB_SCHEMA: schema }))(event, lambdaContext()),
    );
    expect(fresh.error).toMatchObject({
      message: `schema version ${NEWEST - 1}, needs ${NEWEST}: run npm run db:apply`,
    });
  });

  it('should let a batch go on when the version cannot be read, and check again next time', async () => {
    const logs: Record<string, unknown>[] = [];
    const logger = createLogger('debug', {}, (line) => logs.push(JSON.parse(line)));
    const gate = new SchemaGate(workspace.name());
    const unreachable = consumerDatabase({ ...db.config, db: { ...db.config.db, port: 1 } });
    try {
      await expect(gate.ensure(unreachable, logger, Date.now() + 5_000)).resolves.toBeUndefined();
      expect(logs.map((l) => l.message)).toEqual([
        'schema version could not be read; checked again on the next invocation',
      ]);
      await expect(gate.ensure(db.database, logger, Date.now() + 5_000)).rejects.toMatchObject({
        code: 'SCHEMA_VERSION_MISMATCH',
      });
    } finally {
      await unreachable.end();
    }
  });
});

describe('GET /healthz/ready', () => {
  const ready = async (schema: string) => {
    const handler = await coldStart('health', db, { DB_SCHEMA: schema });
    const answer = (await handler(healthRequest, lambdaContext())) as { statusCode: number; body: string };
    const body = JSON.parse(answer.body) as { checks: { name: string; ok: boolean; error?: string }[] };
    return { statusCode: answer.statusCode, schemaCheck: body.checks.find((c) => c.name === 'schema') };
  };

  it('should answer 503 with the version and the command when the database is behind', async () => {
    for (const { label, schema, version } of await behindSchemas()) {
      expect(await ready(schema), label).toEqual({
        statusCode: 503,
        schemaCheck: { name: 'schema', ok: false, durationMs: expect.any(Number), error: behindMessage(version) },
      });
    }
  });

  it('should answer 200 ahead through compatible migrations, and 503 naming an incompatible one', async () => {
    expect(await ready(await aheadSchema(true))).toMatchObject({ statusCode: 200, schemaCheck: { ok: true } });
    expect(await ready(await aheadSchema(false))).toMatchObject({
      statusCode: 503,
      schemaCheck: {
        ok: false,
        error: expect.stringMatching(
          new RegExp(
            `^schema version ${NEWEST + 1}, needs ${NEWEST}: migration ${NEWEST + 1} is not marked compatible`,
          ),
        ),
      },
    });
  });
});
