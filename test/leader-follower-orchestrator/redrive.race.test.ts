import fc from 'fast-check';
import {
  curatedEvent, DeadLetterQueueClock, Deployment, deployWithRoutes, drainQueue, dynamoDb, flaky, LambdaSimulator, motoLeader, orchestrated,
  STAMPING_FOLLOWERS,
} from './moto-harness';

/**
 * Two copies of one parked message (SQS delivers at least once) redriven by two redrive
 * invocations at once, in the orders fast-check's scheduler picks. Each invocation may be
 * healthy, have its Invoke throttled, or run where the step's follower is not registered (a
 * deploy in flight: it parks the event again). DynamoDB and SQS calls go one at a time, so each
 * conditional write is atomic as in DynamoDB (moto's threaded server can accept two overlapping
 * ones). Invariant: once the operator has redriven until the queue is empty, the record was
 * delivered and nothing is left in the queue.
 */


type Mode = 'healthy' | 'throttled' | 'unregistered';

test('two copies of a parked message redriven concurrently: the event is never lost', async () => {
  await fc.assert(fc.asyncProperty(fc.scheduler(), fc.constantFrom<Mode>('healthy', 'throttled', 'unregistered'),
    fc.constantFrom<Mode>('healthy', 'throttled', 'unregistered'), async (s, modeA, modeB) => {
      const deployment: Deployment = await deployWithRoutes();
      const render = { down: true };
      const lambda = new LambdaSimulator({ ...STAMPING_FOLLOWERS, render: flaky('render', render) });
      const dlq = new DeadLetterQueueClock(deployment);
      const setup = motoLeader(deployment, lambda, { sqs: dlq.client });
      await setup.leader.handle(curatedEvent('c1', 'email', { steps: [] }));
      await lambda.settle(setup.leader);
      const [original] = dlq.sent;
      expect(original).toMatchObject({ reason: 'follower-failed', step: 2 });
      await dlq.requeue(original); // the second copy
      render.down = false;

      let chain: Promise<unknown> = Promise.resolve();
      const serial = (label: string, call: () => Promise<any>) => async () => {
        await s.schedule(Promise.resolve(), label);
        const next = chain.then(call);
        chain = next.catch(() => undefined);
        return next;
      };
      const redriver = (name: string, mode: Mode) => {
        let throttle = mode === 'throttled' ? 1 : 0;
        const { render: _r, ...withoutRender } = lambda.arns;
        return motoLeader(deployment, lambda, {
          clock: setup.clock,
          entry: 'redrive',
          followers: mode === 'unregistered' ? withoutRender : lambda.arns,
          dynamoDb: { send: (cmd: any) => serial(`${name}:${cmd.constructor.name}`, () => dynamoDb.send(cmd))() },
          sqs: { send: (cmd: any) => serial(`${name}:${cmd.constructor.name}`, () => dlq.client.send(cmd))() },
          lambda: {
            send: (cmd: any) => serial(`${name}:Invoke`, async () => {
              if (throttle > 0) {
                throttle--;
                throw Object.assign(new Error('Rate exceeded'), { name: 'TooManyRequestsException' });
              }
              return lambda.client.send(cmd);
            })(),
          },
        }).leader;
      };
      const race = Promise.all([
        redriver('A', modeA).handle({ redrive: { maxMessages: 1 } }),
        redriver('B', modeB).handle({ redrive: { maxMessages: 1 } }),
      ]);
      const reports = await s.waitFor(race);
      // Each copy ends in exactly one count.
      for (const report of reports) {
        const r = report.redrive!;
        expect(r.received).toBe(1);
        expect(r.resumed + r.reparked + r.dropped + r.failed).toBe(1);
      }

      // The operator: fixed config, redrive until the queue is empty (delayed reparks made visible).
      const operator = motoLeader(deployment, lambda, { sqs: dlq.client, clock: setup.clock, entry: 'redrive' }).leader;
      const events = motoLeader(deployment, lambda, { sqs: dlq.client, clock: setup.clock, entry: 'events' }).leader;
      await lambda.settle(events);
      let requeued = 1;
      for (let round = 0; round < 6; round++) {
        await dlq.visibilityTimeoutPasses();
        for (const m of dlq.sent.slice(requeued)) if (m.delaySeconds) await dlq.requeue(m);
        requeued = dlq.sent.length;
        setup.clock.now += 16 * 60_000;
        const r = await operator.handle({ redrive: {} });
        await lambda.settle(events);
        if (r.redrive!.received === 0) break;
      }
      const delivered = await orchestrated(deployment);
      const left = await drainQueue(deployment.dlqUrl);
      expect({ modes: [modeA, modeB], delivered: delivered.map((o) => o.payload.steps), left })
        .toEqual({ modes: [modeA, modeB], delivered: [['enrich', 'render', 'deliver']], left: [] });
    }), { numRuns: 30, endOnFailure: true });
}, 300_000);
