import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as pipes from 'aws-cdk-lib/aws-pipes';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';

/** What a target gives its pipe: the ARN, and the target parameters besides the input template. */
export interface PipeTargetConfig {
  /** The target's ARN. */
  readonly targetArn: string;
  /**
   * Parameters of the target (the pipe sets `inputTemplate` itself).
   * @default - none
   */
  readonly targetParameters?: pipes.CfnPipe.PipeTargetParametersProperty;
}

/** Options of `PipeTarget.apiDestination`. */
export interface ApiDestinationPipeTargetOptions {
  /**
   * Headers to send; a value may be a JSON path into the record, such as `$.partitionKey`.
   * @default - none
   */
  readonly headerParameters?: { [name: string]: string };
  /**
   * Query string parameters; a value may be a JSON path into the record.
   * @default - none
   */
  readonly queryStringParameters?: { [name: string]: string };
  /**
   * Values of the `*` wildcards in the API destination's endpoint, in order.
   * @default - none
   */
  readonly pathParameterValues?: string[];
}

/** Options of `PipeTarget.eventBus`. */
export interface EventBusPipeTargetOptions {
  /**
   * The events' detail-type.
   * @default - EventBridge Pipes' default ("Event from aws:kinesis")
   */
  readonly detailType?: string;
  /**
   * The events' source.
   * @default - EventBridge Pipes' default (the pipe's source ARN)
   */
  readonly source?: string;
}

/** Options of `PipeTarget.queue`. */
export interface QueuePipeTargetOptions {
  /**
   * Message group id, for a FIFO queue (a JSON path into the record, such as `$.partitionKey`, keeps a key's order).
   * @default - none (a standard queue)
   */
  readonly messageGroupId?: string;
}

/**
 * Where a pipe delivers the stream's records. The pipe's role is granted exactly what the
 * target needs (invoke, put, send); nothing else.
 */
export class PipeTarget {
  /** An EventBridge API destination (HTTPS endpoint with a connection's authorization). */
  public static apiDestination(destination: events.IApiDestination, options: ApiDestinationPipeTargetOptions = {}): PipeTarget {
    return new PipeTarget('api-destination', (role) => {
      role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['events:InvokeApiDestination'], resources: [destination.apiDestinationArn] }));
      const http = options.headerParameters || options.queryStringParameters || options.pathParameterValues;
      return {
        targetArn: destination.apiDestinationArn,
        targetParameters: http ? {
          httpParameters: {
            headerParameters: options.headerParameters,
            queryStringParameters: options.queryStringParameters,
            pathParameterValues: options.pathParameterValues,
          },
        } : undefined,
      };
    });
  }

  /** An event bus: each record becomes one event. */
  public static eventBus(bus: events.IEventBus, options: EventBusPipeTargetOptions = {}): PipeTarget {
    return new PipeTarget('event-bus', (role) => {
      bus.grantPutEventsTo(role);
      const params = options.detailType || options.source;
      return {
        targetArn: bus.eventBusArn,
        targetParameters: params ? { eventBridgeEventBusParameters: { detailType: options.detailType, source: options.source } } : undefined,
      };
    });
  }

  /** A Lambda function, invoked synchronously with each batch (its errors are the pipe's target failures). */
  public static lambdaFunction(fn: lambda.IFunction): PipeTarget {
    return new PipeTarget('lambda', (role) => {
      role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: [fn.functionArn] }));
      return { targetArn: fn.functionArn, targetParameters: { lambdaFunctionParameters: { invocationType: 'REQUEST_RESPONSE' } } };
    });
  }

  /**
   * A Step Functions state machine. A standard workflow is started (FIRE_AND_FORGET: its own
   * failures are not the pipe's); an express one may run synchronously (REQUEST_RESPONSE).
   */
  public static stateMachine(stateMachine: sfn.IStateMachine, synchronous = false): PipeTarget {
    return new PipeTarget('state-machine', (role) => {
      if (synchronous) {
        role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['states:StartSyncExecution'], resources: [stateMachine.stateMachineArn] }));
      } else {
        stateMachine.grantStartExecution(role);
      }
      return {
        targetArn: stateMachine.stateMachineArn,
        targetParameters: { stepFunctionStateMachineParameters: { invocationType: synchronous ? 'REQUEST_RESPONSE' : 'FIRE_AND_FORGET' } },
      };
    });
  }

  /** An SQS queue: each record becomes one message. */
  public static queue(queue: sqs.IQueue, options: QueuePipeTargetOptions = {}): PipeTarget {
    return new PipeTarget('queue', (role) => {
      queue.grantSendMessages(role);
      return {
        targetArn: queue.queueArn,
        targetParameters: options.messageGroupId ? { sqsQueueParameters: { messageGroupId: options.messageGroupId } } : undefined,
      };
    });
  }

  /** The kind of target: `api-destination`, `event-bus`, `lambda`, `state-machine` or `queue`. */
  public readonly kind: string;
  private readonly render: (role: iam.IRole) => PipeTargetConfig;

  private constructor(kind: string, render: (role: iam.IRole) => PipeTargetConfig) {
    this.kind = kind;
    this.render = render;
  }

  /** Grants the pipe's role what the target needs and returns the target's configuration. */
  public bind(role: iam.IRole): PipeTargetConfig {
    return this.render(role);
  }
}
