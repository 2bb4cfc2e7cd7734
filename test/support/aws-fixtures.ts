/**
 * AWS payloads as AWS documents them, for handler tests. Each names its source; a test
 * changes only the fields it needs (ids, ARNs) and keeps the shape.
 */

/**
 * The example event of the EventBridge input-transformation page ("Input transform
 * examples", an EC2 instance state-change notification):
 * https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-transform-target-input.html
 */
export function ec2StateChangeEvent(overrides: { id?: string; account?: string } = {}): Record<string, unknown> {
  return {
    'version': '0',
    'id': overrides.id ?? '7bf73129-1428-4cd3-a780-95db273d1602',
    'detail-type': 'EC2 Instance State-change Notification',
    'source': 'aws.ec2',
    'account': overrides.account ?? '123456789012',
    'time': '2015-11-11T21:29:54Z',
    'region': 'us-east-1',
    'resources': ['arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111'],
    'detail': {
      'instance-id': 'i-0123456789',
      'state': 'RUNNING',
    },
  };
}

/**
 * The custom message attributes EventBridge sets on every message it writes to a target's
 * dead-letter queue: RULE_ARN, TARGET_ARN, ERROR_CODE, ERROR_MESSAGE,
 * EXHAUSTED_RETRY_CONDITION and RETRY_ATTEMPTS ("Using dead-letter queues to process
 * undelivered events", https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html).
 * The body of the message is the event, as the rule matched it.
 *
 * The page lists sample error codes (CONNECTION_FAILURE, SDK_CLIENT_ERROR, TIMEOUT, ...) and the
 * two exhausted-retry conditions (MaximumRetryAttempts, MaximumEventAgeInSeconds). It gives no
 * sample ERROR_MESSAGE text; the default below only illustrates one.
 */
export function eventBridgeDeadLetterAttributes(ruleArn: string, targetArn: string, options: {
  errorCode?: string;
  errorMessage?: string;
  exhaustedRetryCondition?: 'MaximumRetryAttempts' | 'MaximumEventAgeInSeconds';
  retryAttempts?: number;
} = {}): Record<string, { DataType: 'String'; StringValue: string }> {
  const attribute = (value: string) => ({ DataType: 'String' as const, StringValue: value });
  return {
    RULE_ARN: attribute(ruleArn),
    TARGET_ARN: attribute(targetArn),
    ERROR_CODE: attribute(options.errorCode ?? 'SDK_CLIENT_ERROR'),
    ERROR_MESSAGE: attribute(options.errorMessage ?? 'Unable to invoke ApiDestination endpoint: The request failed because the endpoint responded with 400.'),
    EXHAUSTED_RETRY_CONDITION: attribute(options.exhaustedRetryCondition ?? 'MaximumRetryAttempts'),
    RETRY_ATTEMPTS: attribute(String(options.retryAttempts ?? 0)),
  };
}
