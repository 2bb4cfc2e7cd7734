import { App, Duration, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { defaultAggregator } from './fixtures';

/**
 * Found by review. itemTtl is accepted up to Number.MAX_SAFE_INTEGER seconds, and the failed-batch alarm tells the
 * operator to redrive "before the items expire (itemTtl)". The bucket's lifecycle deletes every
 * failed batch after a fixed 90 days — the batch being the only trace of which ids were never
 * aggregated. With itemTtl = 180 days, the batch is gone while its items (and the documented
 * window) still have 90 days to run.
 */
test('a failed batch is kept at least as long as the items it points at (itemTtl 180 days)', () => {
  const stack = new Stack(new App(), 'Test', { env: { account: '111111111111', region: 'eu-west-1' } });
  defaultAggregator(stack, { itemTtl: Duration.days(180) });
  const buckets = Object.values<any>(Template.fromStack(stack).findResources('AWS::S3::Bucket'));
  const rule = buckets.flatMap((b) => b.Properties.LifecycleConfiguration?.Rules ?? []).find((r: any) => r.Prefix === 'aws/lambda/');
  expect(rule.ExpirationInDays).toBeGreaterThanOrEqual(180);
});
