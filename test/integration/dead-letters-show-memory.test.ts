import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { READ_BYTES } from '../../lib/dead-letters/show';
import { testDatabase, type TestDatabase } from '../helpers/db';
import { runAction } from '../helpers/dead-letters';

// A file of its own: the process's peak memory (maxRSS) is the measure, and other tests would have raised it first.
let db: TestDatabase;
beforeAll(async () => {
  db = await testDatabase();
});
afterAll(() => db.close());

describe('show of many large dead letters', () => {
  it('should read the letters of a page in parts, so that its memory does not grow with the page size', async () => {
    // 120 letters of 4 MB (values over Kafka's default limit are kept whole as too_large): 480 MB stored. Read at
    // once for `limit: 100`, the function's peak memory grew by more than the 400 MB read; it shows two of them.
    const letters = 120;
    const size = 4_000_000;
    await db.sql`
      insert into ${db.sql(`${db.config.db.schema}.dead_letters`)} (kafka_topic, kafka_partition, kafka_offset,
        reason, detail, value)
      select 'large', 0, g, 'too_large', 'value over the limit', convert_to(repeat('a', ${size}), 'UTF8')
        from generate_series(1, ${letters}) as g`;
    const before = process.resourceUsage().maxRSS * 1024;
    const page = await runAction(db, { action: 'show', topic: 'large', limit: 100 });
    const grewBy = process.resourceUsage().maxRSS * 1024 - before;
    expect(page.error).toBeUndefined();
    expect(page.response!.letters.length).toBeGreaterThan(0);
    expect(page.response!.letters[0]!.value).toMatchObject({ bytes: size, truncated: true });
    expect(page.response!.nextAfter).toBe(page.response!.letters.at(-1)!.id);
    // Bounded by a few parts of READ_BYTES and their copies, not by 100 letters: far below the 400 MB selected.
    expect(grewBy).toBeLessThan(25 * READ_BYTES);
  });
});
