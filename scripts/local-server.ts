/**
 * An embedded PostgreSQL that stays up until Ctrl-C (npm run db:local), for trying things by hand against a
 * database that outlives one command: export the printed variables in another terminal, then `npm start`,
 * `npm run dead-letters`, `serverless invoke local` all use it. The data is removed when it stops.
 *   npm run db:local              # port 54329
 *   npm run db:local -- 55000     # another port
 */
import { startLocalDatabase } from './local-db';

async function main() {
  const port = Number(process.argv[2] ?? 54329);
  const db = await startLocalDatabase({ useConfigured: false, port });
  const e = db.env;
  console.log(`Embedded PostgreSQL listening on ${e.DB_HOST}:${e.DB_PORT}. In another terminal:\n`);
  console.log(`  export DB_HOST=${e.DB_HOST} DB_PORT=${e.DB_PORT} DB_NAME=${e.DB_NAME} DB_USER=${e.DB_USER} DB_PASSWORD=${e.DB_PASSWORD} DB_SSL=disable\n`);
  console.log('Ctrl-C stops it and removes its data.');
  const stop = () => void db.destroy().finally(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
