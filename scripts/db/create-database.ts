import type { Config } from '../../lib/config';
import { errorCode } from '../../lib/postgres/failure-kind';
import { type Sql, createSql } from '../../lib/postgres/client';

/**
 * Connects to the `postgres` maintenance database and creates the target database when it is missing, so that a
 * new server needs no step before this one. Returns true when it created it. A concurrent creator is no error.
 */
export async function createDatabaseIfMissing(settings: Config['db']): Promise<boolean> {
  const probe = createSql(settings, { max: 1 });
  try {
    await probe`select 1`;
    return false;
  } catch (error) {
    if (errorCode(error) !== '3D000') throw error; // 3D000: the database does not exist
  } finally {
    await probe.end({ timeout: 5 });
  }
  const admin: Sql = createSql({ ...settings, database: 'postgres' }, { max: 1 });
  try {
    await admin`create database ${admin(settings.database)}`;
    return true;
  } catch (error) {
    if (errorCode(error) === '42P04') return false; // created meanwhile by another applier
    if (errorCode(error) === '42501') {
      throw new Error(
        `Database "${settings.database}" does not exist and user "${settings.user}" may not create it. ` +
          `Create it as an administrator (CREATE DATABASE "${settings.database}"), or set DB_NAME to an ` +
          `existing database, then run npm run db:apply again.`,
      );
    }
    throw error;
  } finally {
    await admin.end({ timeout: 5 });
  }
}
