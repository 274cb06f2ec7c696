-- compatible: true
-- Dead letters keep Kafka headers byte-exact and in order: two bytea arrays of the same length, the UTF-8 bytes of
-- each key and each value. The headers jsonb column could not hold binary values (0x00, bytes that are not UTF-8)
-- nor repeated keys, so a record with such headers could not be dead-lettered at all. It stays, nullable and no
-- longer written, so that code built for version 1 (which writes it) still runs on this version; existing rows are
-- converted to the arrays. Read headers back with:
--   select d.id, h.n, convert_from(h.key, 'UTF8') as key, h.value
--   from dead_letters d, unnest(d.header_keys, d.header_values) with ordinality as h(key, value, n) order by d.id, h.n;
ALTER TABLE dead_letters
  ADD COLUMN IF NOT EXISTS header_keys bytea[] NOT NULL DEFAULT '{}',
  ADD COLUMN IF NOT EXISTS header_values bytea[] NOT NULL DEFAULT '{}',
  ALTER COLUMN headers DROP NOT NULL,
  ALTER COLUMN headers DROP DEFAULT;

-- Version 1 kept each value as UTF-8 text under its name, in jsonb's own key order (Kafka's order was not kept).
UPDATE dead_letters d
SET header_keys = h.keys, header_values = h.vals
FROM (
  SELECT id,
    array_agg(convert_to(e.key, 'UTF8') ORDER BY e.n) AS keys,
    array_agg(convert_to(coalesce(e.value #>> '{}', ''), 'UTF8') ORDER BY e.n) AS vals
  FROM dead_letters, jsonb_each(headers) WITH ORDINALITY AS e(key, value, n)
  WHERE jsonb_typeof(headers) = 'object'
  GROUP BY id
) h
WHERE d.id = h.id AND d.header_keys = '{}';

COMMENT ON COLUMN dead_letters.headers IS 'Unused since schema version 2: see header_keys and header_values.';
