/** The schema version this code needs: the number of the highest migration in migrations/. */
export const SCHEMA_VERSION = 6;
