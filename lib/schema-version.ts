/** The schema version this code needs: the number of the highest file in migrations/. */
export const SCHEMA_VERSION = 2;
