import { describe, expect, it } from 'vitest';
import { loadConfig, SCRIPT_CONFIG_FIX } from '../../lib/config';
import { ConfigError } from '../../lib/errors';

describe('loadConfig', () => {
  it('should apply the documented defaults when nothing is set', () => {
    const config = loadConfig({});
    expect(config).toEqual({
      db: {
        host: 'localhost',
        port: 5432,
        database: 'trace',
        schema: 'trace',
        user: 'postgres',
        password: '',
        connectTimeoutSeconds: 5,
        secretArn: null,
        secretTtlSeconds: 300,
        poolMax: 1,
        idleTimeoutSeconds: 60,
        maxLifetimeSeconds: 1800,
        prepare: true,
        ssl: 'disable',
        sslCa: '/var/runtime/ca-cert.pem',
        channelBinding: 'prefer',
        sslNegotiation: 'postgres',
      },
      retry: { maxRetries: 3, backoffMs: 1000 },
      limits: { recordBytes: 1_048_576, textChars: 65_536 },
      logLevel: 'info',
      reportBatchItemFailures: true,
      timeReserveMs: 5000,
      setupFailureHoldMs: 60_000,
      metricsNamespace: 'TraceConsumer',
      health: { checkIntervalSeconds: 60, timeoutMs: 2000, staleAfterSeconds: null },
    });
  });

  it('should read every variable', () => {
    const config = loadConfig({
      DB_HOST: 'db.internal',
      DB_PORT: '6543',
      DB_NAME: 'surveys',
      DB_SCHEMA: 'trace_v2',
      DB_USER: 'writer',
      DB_PASSWORD: 's3cret',
      MAX_RETRIES: '5',
      RETRY_BACKOFF_MS: '250',
      LOG_LEVEL: 'WARN',
      REPORT_BATCH_ITEM_FAILURES: 'false',
    });
    expect(config.db).toMatchObject({
      host: 'db.internal',
      port: 6543,
      database: 'surveys',
      schema: 'trace_v2',
      user: 'writer',
      password: 's3cret',
    });
    expect(config.retry).toEqual({ maxRetries: 5, backoffMs: 250 });
    expect(config.logLevel).toBe('warn');
    expect(config.reportBatchItemFailures).toBe(false);
  });

  it('should read the input caps up to 6 MiB and refuse them beyond, naming the variable', () => {
    const ceiling = 6 * 1024 * 1024;
    for (const [name, key] of [
      ['MAX_RECORD_BYTES', 'recordBytes'],
      ['MAX_TEXT_CHARS', 'textChars'],
    ] as const) {
      for (const value of [1024, 100_000, ceiling])
        expect(loadConfig({ [name]: String(value) }).limits[key]).toBe(value);
      for (const value of ['1023', String(ceiling + 1), '1.5', 'big']) {
        expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(`${name} must be`));
      }
    }
  });

  it('should read the connection settings for Lambda and RDS Proxy', () => {
    const config = loadConfig({
      DB_SECRET_ARN: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:trace-db-AbCdEf',
      DB_SECRET_TTL_SECONDS: '60',
      DB_POOL_MAX: '2',
      DB_IDLE_TIMEOUT: '30',
      DB_MAX_LIFETIME: '600',
      DB_PREPARE: 'false',
      DB_SSL: 'verify-full',
      DB_SSL_CA: '/opt/rds.pem',
    });
    expect(config.db).toMatchObject({
      secretArn: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:trace-db-AbCdEf',
      secretTtlSeconds: 60,
      poolMax: 2,
      idleTimeoutSeconds: 30,
      maxLifetimeSeconds: 600,
      prepare: false,
      ssl: 'verify-full',
      sslCa: '/opt/rds.pem',
    });
    expect(() => loadConfig({ DB_SECRET_ARN: 'my-secret' })).toThrow(
      /DB_SECRET_ARN must be a Secrets Manager secret ARN/,
    );
    expect(() => loadConfig({ DB_SSL: 'on' })).toThrow(/DB_SSL must be disable, require or verify-full/);
  });

  it('should read the health settings, with staleness as seconds or never', () => {
    const config = loadConfig({
      HEALTH_CHECK_INTERVAL: '0',
      HEALTH_TIMEOUT_MS: '500',
      HEALTH_STALE_AFTER_SECONDS: '3600',
    });
    expect(config.health).toEqual({ checkIntervalSeconds: 0, timeoutMs: 500, staleAfterSeconds: 3600 });
    expect(loadConfig({ HEALTH_STALE_AFTER_SECONDS: 'never' }).health.staleAfterSeconds).toBeNull();
    expect(() => loadConfig({ HEALTH_STALE_AFTER_SECONDS: 'soon' })).toThrow(
      /HEALTH_STALE_AFTER_SECONDS must be a number of seconds or "never"/,
    );
  });

  it('should name every invalid variable in one error', () => {
    const env = {
      DB_PORT: 'abc',
      MAX_RETRIES: '-1',
      LOG_LEVEL: 'verbose',
      DB_SCHEMA: 'trace; drop table x',
      REPORT_BATCH_ITEM_FAILURES: 'maybe',
    };
    let error: unknown;
    try {
      loadConfig(env);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const configError = error as ConfigError;
    expect(configError.code).toBe('CONFIG_INVALID');
    expect(configError.problems.map((p) => p.variable).sort()).toEqual([
      'DB_PORT',
      'DB_SCHEMA',
      'LOG_LEVEL',
      'MAX_RETRIES',
      'REPORT_BATCH_ITEM_FAILURES',
    ]);
    expect(configError.message).toContain('DB_PORT must be a whole number');
    expect(configError.message).toContain('LOG_LEVEL must be one of debug, info, warn, error, fatal');
  });

  it('should never echo a password in an error', () => {
    // DB_PASSWORD accepts any string, so provoke an error elsewhere and check the message stays clean.
    expect(() => loadConfig({ DB_PASSWORD: 'hunter2', DB_PORT: '0' })).toThrow(/DB_PORT must be at least 1/);
    try {
      loadConfig({ DB_PASSWORD: 'hunter2', DB_PORT: '0' });
    } catch (e) {
      expect(String((e as Error).message)).not.toContain('hunter2');
    }
  });

  it('should tell a function to redeploy and a local script to run again', () => {
    const bad = { DB_PORT: 'abc' };
    expect(() => loadConfig(bad)).toThrow(
      /DB_PORT must be a whole number.*Fix the function's environment and redeploy\./,
    );
    let fromScript: unknown;
    try {
      loadConfig(bad, SCRIPT_CONFIG_FIX);
    } catch (error) {
      fromScript = error;
    }
    expect(fromScript).toBeInstanceOf(ConfigError);
    expect((fromScript as ConfigError).code).toBe('CONFIG_INVALID');
    expect((fromScript as ConfigError).message).toContain('run the command again');
    expect((fromScript as ConfigError).message).not.toContain('redeploy');
  });
});
