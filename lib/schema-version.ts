/**
 * The schema version this code needs: the number of the highest migration in migrations/. A database at a lower
 * version must be migrated before this code runs against it.
 */
export const SCHEMA_VERSION = 3;
