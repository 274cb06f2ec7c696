-- compatible: false
-- A dead letter's identity becomes its coordinates AND its bytes (issue: dead-letter identity). Before, dead_letters
-- was unique on (kafka_topic, kafka_partition, kafka_offset) and the consumer inserted ON CONFLICT DO NOTHING: a
-- replay was a no-op, but a DIFFERENT invalid record at the same coordinates (topic recreated, mapping moved to
-- another cluster with the same topic name) was reported dead-lettered and stored nowhere. Now the unique key adds
-- record_digest, a SHA-256 of key, value and headers computed by PostgreSQL itself for every row (whoever writes it):
-- an identical replay still changes nothing, a different record at the same coordinates gets its own row.
-- Not compatible: code built for version 4 names (kafka_topic, kafka_partition, kafka_offset) as its ON CONFLICT
-- target, which needs a unique index on exactly those columns; one cannot exist while two rows share coordinates.
-- Adding the stored generated column rewrites dead_letters once (existing rows get their digest).
-- Run by the migration runner inside one transaction with search_path set to the target schema.

-- Each part is length-prefixed (-1 for null), so that no two different records encode to the same bytes: a null key
-- differs from an empty one, and bytes cannot move between key, value and headers. Header keys and values are taken
-- in Kafka order, pairwise. Built-in functions only: PostgreSQL finds them in pg_catalog before the search_path.
CREATE OR REPLACE FUNCTION dead_letter_digest(key bytea, value bytea, header_keys bytea[], header_values bytea[])
RETURNS bytea LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT sha256(
    coalesce(int4send(length(key)) || key, '\xffffffff'::bytea)
    || coalesce(int4send(length(value)) || value, '\xffffffff'::bytea)
    || int4send(coalesce(cardinality(header_keys), -1))
    || coalesce((
      SELECT string_agg(
        coalesce(int4send(length(k)) || k, '\xffffffff'::bytea)
        || coalesce(int4send(length(v)) || v, '\xffffffff'::bytea), ''::bytea ORDER BY n)
      FROM unnest(header_keys, header_values) WITH ORDINALITY AS h(k, v, n)), ''::bytea))
$$;

ALTER TABLE dead_letters
  ADD COLUMN record_digest bytea NOT NULL
    GENERATED ALWAYS AS (dead_letter_digest(key, value, header_keys, header_values)) STORED;

ALTER TABLE dead_letters DROP CONSTRAINT dead_letters_kafka_topic_kafka_partition_kafka_offset_key;
ALTER TABLE dead_letters ADD CONSTRAINT dead_letters_identity_key
  UNIQUE (kafka_topic, kafka_partition, kafka_offset, record_digest);
