import { randomUUID } from 'node:crypto';
import type { Context } from 'aws-lambda';

/**
 * The context Lambda passes to one invocation, for running the handler in this process: a fresh request id, and
 * a clock that counts down from the function's timeout, so the consumer's time reserve behaves as in Lambda.
 */
export function lambdaContext(functionName: string, timeoutMs: number, now = Date.now): Context {
  const deadline = now() + timeoutMs;
  const fail = () => {
    throw new Error('the local event source mapping does not support the callback-style context methods');
  };
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:us-east-1:123456789012:function:${functionName}`,
    memoryLimitInMB: '1024',
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: 'local-esm',
    getRemainingTimeInMillis: () => Math.max(0, deadline - now()),
    done: fail,
    fail,
    succeed: fail,
  };
}
