import { createServer, type Server } from 'node:http';

/**
 * A stand-in for the Secrets Manager endpoint on loopback, so that tests drive the real AWS SDK client (signing,
 * HTTP, the JSON 1.1 protocol, error parsing) with only the far end replaced. Point the SDK at it with
 * AWS_ENDPOINT_URL_SECRETS_MANAGER (see env()).
 */
export class FakeSecretsManager {
  private readonly secrets = new Map<string, string>();
  private server: Server | undefined;
  private port = 0;
  /** GetSecretValue requests received, by secret id. */
  readonly requests: string[] = [];

  setSecret(arn: string, value: Record<string, unknown>): void {
    this.secrets.set(arn, JSON.stringify(value));
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk) => (body += chunk));
      req.on('end', () => {
        const reply = (status: number, payload: unknown) => {
          res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': 'fake-request' });
          res.end(JSON.stringify(payload));
        };
        if (
          req.headers['x-amz-target'] !== 'secretsmanager.GetSecretValue' ||
          !req.headers.authorization?.startsWith('AWS4-HMAC-SHA256')
        ) {
          return reply(400, {
            __type: 'InvalidRequestException',
            message: 'only signed GetSecretValue is supported here',
          });
        }
        const { SecretId } = JSON.parse(body) as { SecretId: string };
        this.requests.push(SecretId);
        const secret = this.secrets.get(SecretId);
        if (secret === undefined) {
          return reply(400, {
            __type: 'ResourceNotFoundException',
            message: "Secrets Manager can't find the specified secret.",
          });
        }
        reply(200, {
          ARN: SecretId,
          Name: SecretId.split(':').pop(),
          SecretString: secret,
          VersionId: 'v1',
          VersionStages: ['AWSCURRENT'],
          CreatedDate: Date.now() / 1000,
        });
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
  }

  /** Stops answering: requests are refused, as when Secrets Manager cannot be reached. */
  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server = undefined;
  }

  /** The environment that makes the SDK use this endpoint with dummy credentials. */
  env(): Record<string, string> {
    return {
      AWS_ENDPOINT_URL_SECRETS_MANAGER: `http://127.0.0.1:${this.port}`,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
      AWS_SECRET_ACCESS_KEY: 'fake-secret-access-key',
      AWS_EC2_METADATA_DISABLED: 'true',
    };
  }
}
