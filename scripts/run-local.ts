/**
 * The consumer on sample events, end to end (npm start): a PostgreSQL server (the one DB_HOST names, else an
 * embedded one), the migrations applied, `serverless invoke local` on each event, then what was stored.
 *   npm start                          # every events/*.json sample
 *   npm start -- events/my-event.json  # your own events (see npm run build-event)
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { loadConfig } from '../lib/config';
import { createSql, qualifiedTables } from '../lib/db';
import { applySchema } from '../lib/migrations';
import { startLocalDatabase } from './local-db';

const root = join(__dirname, '..');

async function main() {
  const files = process.argv.slice(2).length
    ? process.argv.slice(2)
    : readdirSync(join(root, 'events'))
        .filter((f) => f.endsWith('.json') && !f.startsWith('health'))
        .sort()
        .map((f) => join('events', f));

  const db = await startLocalDatabase();
  const env = { ...process.env, ...db.env };
  const config = loadConfig(env);
  console.log(
    db.embedded
      ? `Started an embedded PostgreSQL on port ${db.env.DB_PORT}.`
      : `Using the configured PostgreSQL at ${db.env.DB_HOST}:${db.env.DB_PORT}.`,
  );
  const sql = createSql(config.db);
  try {
    const { to } = await applySchema(sql, config.db.schema);
    console.log(`Schema "${config.db.schema}" migrated to version ${to}.\n`);
    // The local server has no TLS; the deployed default (DB_SSL=verify-full) is overridden like the connection.
    for (const file of files) invokeLocal(file, { ...db.env, DB_SCHEMA: config.db.schema, DB_SSL: process.env.DB_SSL || 'disable' });
    await showStored(sql, config.db.schema);
  } finally {
    await sql.end({ timeout: 5 });
    await db.destroy();
  }
}

function invokeLocal(file: string, dbEnv: Record<string, string>) {
  console.log(`$ serverless invoke local -f consumer -p ${relative(root, join(root, file))}`);
  const args = ['serverless', 'invoke', 'local', '-f', 'consumer', '-p', file];
  for (const [k, v] of Object.entries(dbEnv)) args.push('--env', `${k}=${v}`);
  const run = spawnSync('npx', args, {
    cwd: root,
    stdio: 'inherit',
    timeout: 120_000,
    env: { ...process.env, SLS_TELEMETRY_DISABLED: '1', AWS_EC2_METADATA_DISABLED: 'true' },
  });
  if (run.status !== 0) console.log(`(exit code ${run.status}: the batch was not accepted; see above)`);
  console.log();
}

async function showStored(sql: ReturnType<typeof createSql>, schema: string) {
  const t = qualifiedTables(schema);
  console.log('Rows per table:');
  for (const [table, name] of Object.entries(t)) {
    const [row] = await sql<{ n: number }[]>`select count(*)::int as n from ${sql(name)}`;
    console.log(`  ${table.padEnd(20)} ${row?.n}`);
  }
  const statuses = await sql`select status, count(*)::int as traces from ${sql(t.processed_traces)} group by status order by status`;
  console.log('\nprocessed_traces by status:');
  console.table(statuses);
  const dead = await sql`
    select kafka_partition as partition, kafka_offset as offset, reason, left(detail, 60) as detail
    from ${sql(t.dead_letters)} order by kafka_partition, kafka_offset`;
  console.log('dead_letters:');
  console.table(dead);
  const courses = await sql`
    select c.course_id, i.name as instructor, ci.trace_id,
      (select count(*)::int from ${sql(t.ratings)} r where r.course_id = c.id and r.instructor_id = i.id) as ratings,
      (select count(*)::int from ${sql(t.comments)} m where m.course_id = c.id and m.instructor_id = i.id) as comments
    from ${sql(t.course_instructors)} ci
    join ${sql(t.courses)} c on c.id = ci.course_id
    join ${sql(t.instructors)} i on i.id = ci.instructor_id
    order by c.course_id, i.name limit 20`;
  console.log('Courses and instructors stored (first 20):');
  console.table(courses);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
