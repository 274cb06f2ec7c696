-- compatible: true
-- Dead-letter redrive (issue 15): what became of a dead letter when it was sent through the consumer's path again.
-- Only adds nullable or defaulted columns and an index, so code built for version 2 keeps working on version 3.
-- Run by the migration runner inside one transaction with search_path set to the target schema.

ALTER TABLE dead_letters
  -- When the dead letter was last redriven; null while it never was.
  ADD COLUMN IF NOT EXISTS redriven_at    timestamptz,
  -- The outcome of that redrive: the state the record reached, as the consumer would have reported it.
  ADD COLUMN IF NOT EXISTS redrive_result text
    CHECK (redrive_result IN ('stored', 'duplicate', 'superseded', 'upstream_error', 'dead_lettered')),
  -- When the redrive dead-lettered the record again: the new reason code and detail (reason/detail keep the first).
  ADD COLUMN IF NOT EXISTS redrive_reason text,
  ADD COLUMN IF NOT EXISTS redrive_detail text,
  -- How many times the dead letter was redriven.
  ADD COLUMN IF NOT EXISTS redrive_count  integer NOT NULL DEFAULT 0;

-- Redrive, show and purge select by reason and walk by id (their resume cursor).
CREATE INDEX IF NOT EXISTS dead_letters_reason_id_idx ON dead_letters (reason, id);
