/** Applies schema.sql to the database and schema named by DB_* and DB_SCHEMA (npm run db:apply). Safe to repeat. */
import { loadConfig } from '../lib/config';
import { applySchema, createSql } from '../lib/db';
import { exitWithDiagnosis } from './script-errors';

async function main() {
  const config = loadConfig();
  const sql = createSql(config.db);
  try {
    await applySchema(sql, config.db.schema);
    console.log(`schema.sql applied to "${config.db.schema}" on ${config.db.host}:${config.db.port}/${config.db.database}`);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

main().catch(exitWithDiagnosis);
