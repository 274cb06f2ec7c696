import { loadConfig } from '../lib/config';
import { environmentCredentials } from '../lib/credentials';
import { Database } from '../lib/database';
import { applySchema, createSql } from '../lib/db';
import { createLogger } from '../lib/log';
import { processBatch } from '../lib/process-batch';
import { decodeEvent } from '../lib/kafka';
import { parseMessage } from '../lib/message';
import { buildKafkaEvent } from '../scripts/event-builder';
import { startLocalDatabase } from '../scripts/local-db';
import { benchMessage } from './generate';

async function main() {
  const server = await startLocalDatabase();
  const config = loadConfig({ ...server.env, DB_SCHEMA: 'prof', LOG_LEVEL: 'error' });
  const admin = createSql(config.db);
  await admin.unsafe('drop schema if exists prof cascade');
  await applySchema(admin, 'prof');
  let last = 0;
  const marks: string[] = [];
  const db = new Database(config.db, environmentCredentials(config.db), {
    debug: (_c, q) => { const now = performance.now(); marks.push(`${(now - last).toFixed(1)}ms before: ${q.trim().slice(0, 50).replace(/\s+/g, ' ')}`); last = now; },
  });
  for (let r = 0; r < 4; r++) {
    const event = buildKafkaEvent(Array.from({ length: 1000 }, (_, n) => ({ value: benchMessage(`r${r}`, n) })), { partitions: 4 });
    let t = performance.now();
    for (const rec of decodeEvent(event)) parseMessage(rec.value);
    const tDecode = performance.now() - t;
    marks.length = 0;
    t = performance.now(); last = t;
    await processBatch(event, { database: db, config, logger: createLogger('error'), remainingMs: () => 900000 });
    console.log(`round ${r}: total ${(performance.now() - t).toFixed(0)} ms (decode+validate alone ${tDecode.toFixed(0)} ms), end ${(performance.now() - last).toFixed(1)}ms after last`);
    if (r === 3) console.log(marks.join('\n'));
  }
  await db.end(); await admin.end(); await server.destroy();
}
main();
