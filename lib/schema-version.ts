/** The schema version this code needs: the number of the newest file in migrations/ (a test checks it). */
export const SCHEMA_VERSION = 1;
