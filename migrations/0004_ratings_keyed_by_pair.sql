-- compatible: true
-- Ratings and comments keyed by their pair: the primary key (course_id, instructor_id, id) replaces both the key on
-- id and the pair index, so that each row the consumer copies in updates one index instead of two. Replacing a
-- pair's rows still finds them by the key's prefix; code built for version 3 writes and deletes the same way.
ALTER TABLE ratings DROP CONSTRAINT ratings_pkey;
ALTER TABLE ratings ADD CONSTRAINT ratings_pkey PRIMARY KEY (course_id, instructor_id, id);
DROP INDEX IF EXISTS ratings_pair_idx;

ALTER TABLE comments DROP CONSTRAINT comments_pkey;
ALTER TABLE comments ADD CONSTRAINT comments_pkey PRIMARY KEY (course_id, instructor_id, id);
DROP INDEX IF EXISTS comments_pair_idx;
