"""Smoke test of the cdk-event-fabric Python distribution (the jsii-pacmak wheel).

Run by test/python/run-smoke.sh in a fresh virtualenv with the pinned aws-cdk-lib and
constructs (test/python/requirements.txt). It proves the public API is usable from Python:
every exported construct is instantiated from Python in a stack, synthesized, and key
resources are asserted with aws_cdk.assertions.Template.

Each exported construct has its own test function named ``test_<construct_in_snake_case>``;
``test_every_exported_construct_has_a_smoke_test`` fails when a new construct is exported
without one.
"""

import json
import re

import pytest
from jsii.errors import JSIIError
from aws_cdk import App, Duration, RemovalPolicy, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk.assertions import Match, Template
from constructs import Construct

import cdk_event_fabric
from aws_cdk import Size
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_events_targets as targets
from cdk_event_fabric import (
    AggregationRequirement,
    ApiDestinationChannel,
    ChannelAuthorization,
    CuratedEnvelope,
    CuratedEnvelopePaths,
    EventAggregator,
    FastRoute,
    FollowerDefinition,
    HydratingDlq,
    IngestLane,
    LeaderFollowerOrchestrator,
    PipeLogLevel,
    PipeStartingPosition,
    PipeTarget,
    RouteDefinition,
    RouteStep,
    TieredEventIngest,
)

DYNAMIC_REFERENCE = "{{resolve:secretsmanager:"


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _new_stack() -> Stack:
    return Stack(App(), "SmokeStack")


def _resources(template: Template, resource_type: str) -> dict:
    return template.find_resources(resource_type)


def _rendered(value) -> str:
    """A CloudFormation value as the JSON string the template would carry."""
    return json.dumps(value, sort_keys=True)


SECRET_VERSION_ID = "EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE"


def _assert_dynamic_reference(value, json_field=None) -> None:
    """`value` (a secret-carrying template value) must be a Secrets Manager dynamic reference.

    A created secret renders as {"Fn::Join": ["", ["{{resolve:secretsmanager:", {"Ref": ...},
    ":SecretString:<field>::}}"]]}; an imported one as a plain "{{resolve:...}}" string.
    """
    rendered = _rendered(value)
    if isinstance(value, str):
        assert value.startswith(DYNAMIC_REFERENCE), f"not a dynamic reference: {rendered}"
    else:
        assert set(value) == {"Fn::Join"}, f"not a dynamic reference: {rendered}"
        delimiter, parts = value["Fn::Join"]
        assert delimiter == "" and parts[0] == DYNAMIC_REFERENCE, f"not a dynamic reference: {rendered}"
        assert isinstance(parts[-1], str) and parts[-1].endswith("}}"), f"not a dynamic reference: {rendered}"
    if json_field is not None:
        assert f":SecretString:{json_field}::" in rendered, rendered


def _channel_rule(template: Template, channel_logical_prefix: str) -> dict:
    """The channel's rule on the source bus (not its replay rule)."""
    rules = {
        logical_id: resource
        for logical_id, resource in _resources(template, "AWS::Events::Rule").items()
        if logical_id.startswith(f"{channel_logical_prefix}Rule")
    }
    assert len(rules) == 1, f"expected one {channel_logical_prefix}Rule*, got {sorted(rules)}"
    return next(iter(rules.values()))


def test_every_exported_construct_has_a_smoke_test():
    constructs_exported = sorted(
        name
        for name in cdk_event_fabric.__all__
        if isinstance(getattr(cdk_event_fabric, name), type)
        and issubclass(getattr(cdk_event_fabric, name), Construct)
    )
    assert constructs_exported, "the module exports no construct"
    missing = [name for name in constructs_exported if f"test_{_snake(name)}" not in globals()]
    assert not missing, f"exported constructs without a smoke test function: {missing}"


def test_api_destination_channel():
    stack = _new_stack()
    bus = events.EventBus(stack, "Bus")
    api_key_secret = secretsmanager.Secret(stack, "PartnerApiKey")
    password_secret = secretsmanager.Secret(stack, "PartnerPassword")
    key = kms.Key(stack, "DlqKey", enable_key_rotation=True)

    orders = ApiDestinationChannel(
        stack,
        "Orders",
        event_bus=bus,
        event_pattern=events.EventPattern(source=["shop.orders"], detail_type=["OrderPlaced"]),
        endpoint="https://api.partner.example/orders/*",
        http_method=events.HttpMethod.PUT,
        authorization=ChannelAuthorization.api_key(
            header_name="x-api-key",
            secret=api_key_secret,
            json_field="apiKey",
            secret_version_id=SECRET_VERSION_ID,
        ),
        input=events.RuleTargetInput.from_object(
            {
                "orderId": events.EventField.from_path("$.detail.orderId"),
                "origin": "cdk-event-fabric",
            }
        ),
        header_parameters={"x-tenant": "$.detail.tenant", "x-client": "smoke"},
        query_string_parameters={"region": "$.region"},
        path_parameter_values=["$.detail.orderId"],
        max_retry_attempts=10,
        max_event_age=Duration.hours(2),
        encryption_key=key,
        rate_limit_per_second=20,
    )

    shared = events.Connection(
        stack,
        "SharedConnection",
        authorization=ChannelAuthorization.basic(username="fabric", secret=password_secret).to_events_authorization(),
    )
    refunds = ApiDestinationChannel(
        stack,
        "Refunds",
        event_bus=bus,
        event_pattern=events.EventPattern(source=["shop.orders"], detail_type=["RefundIssued"]),
        endpoint="https://api.partner.example/refunds",
        connection=shared,
        dead_letter_queue_removal_policy=RemovalPolicy.DESTROY,
    )

    # The public attributes are reachable from Python.
    assert orders.connection is not None and refunds.connection is not None
    assert orders.replay_function is not None and orders.replay_bus is not None
    assert isinstance(orders.replay_payload, str)
    assert orders.metric_failed_invocations().metric_name == "FailedInvocations"
    assert orders.metric_replay_failed_invocations().metric_name == "FailedInvocations"
    assert orders.replay_failed_invocations_alarm.node.path.endswith("/ReplayFailedInvocationsAlarm")
    assert orders.replay_invocations_failed_to_be_sent_to_dlq_alarm is not orders.invocations_failed_to_be_sent_to_dlq_alarm
    assert ApiDestinationChannel.RESOURCES_PER_CHANNEL > 0

    template = Template.from_stack(stack)

    # Two API destinations; connections: the api-key channel's own plus the shared basic one.
    template.resource_count_is("AWS::Events::ApiDestination", 2)
    template.resource_count_is("AWS::Events::Connection", 2)
    template.has_resource_properties(
        "AWS::Events::ApiDestination",
        {
            "HttpMethod": "PUT",
            "InvocationEndpoint": "https://api.partner.example/orders/*",
            "InvocationRateLimitPerSecond": 20,
        },
    )
    template.has_resource_properties(
        "AWS::Events::ApiDestination",
        {"HttpMethod": "POST", "InvocationEndpoint": "https://api.partner.example/refunds"},
    )

    # One dead-letter queue per channel; the orders one encrypted with the customer key.
    template.resource_count_is("AWS::SQS::Queue", 2)
    template.has_resource_properties(
        "AWS::SQS::Queue",
        {"KmsMasterKeyId": {"Fn::GetAtt": [stack.get_logical_id(key.node.default_child), "Arn"]}},
    )
    template.has_resource_properties("AWS::SQS::Queue", {"SqsManagedSseEnabled": True})
    # Parked events outlive the stack by default; the refunds channel opted out.
    queues = _resources(template, "AWS::SQS::Queue").values()
    assert sorted(q["DeletionPolicy"] for q in queues) == ["Delete", "Retain"]

    # A rule and a replay rule per channel; the orders rule's target carries the retry
    # policy, the DLQ, the input transformation and the HTTP parameters incl. idempotency key.
    template.resource_count_is("AWS::Events::Rule", 4)
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {"source": ["shop.orders"], "detail-type": ["OrderPlaced"]},
            "Targets": [
                Match.object_like(
                    {
                        "RetryPolicy": {"MaximumRetryAttempts": 10, "MaximumEventAgeInSeconds": 7200},
                        "DeadLetterConfig": {"Arn": Match.any_value()},
                        "HttpParameters": {
                            "HeaderParameters": {
                                "Idempotency-Key": "$.id",
                                "x-tenant": "$.detail.tenant",
                                "x-client": "smoke",
                            },
                            "QueryStringParameters": {"region": "$.region"},
                            "PathParameterValues": ["$.detail.orderId"],
                        },
                        "InputTransformer": Match.object_like(
                            {"InputPathsMap": Match.object_like({"detail-orderId": "$.detail.orderId"})}
                        ),
                    }
                )
            ],
        },
    )
    # Defaults: 185 retries over 24 hours, and only the idempotency-key header.
    refunds_target = _channel_rule(template, "Refunds")["Properties"]["Targets"][0]
    assert refunds_target["RetryPolicy"] == {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}
    assert refunds_target["HttpParameters"] == {"HeaderParameters": {"Idempotency-Key": "$.id"}}

    # Six alarms per channel: DLQ depth, three on the rule, two on the replay rule.
    template.resource_count_is("AWS::CloudWatch::Alarm", 12)

    # EventBridge may use the customer key for the dead-letter queue.
    template.has_resource_properties(
        "AWS::KMS::Key",
        {
            "KeyPolicy": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                                "Principal": {"Service": "events.amazonaws.com"},
                            }
                        )
                    ]
                )
            }
        },
    )

    # No plaintext secret: every secret value is a {{resolve:secretsmanager:...}} reference.
    connections = _resources(template, "AWS::Events::Connection").values()
    by_type = {c["Properties"]["AuthorizationType"]: c["Properties"]["AuthParameters"] for c in connections}
    assert set(by_type) == {"API_KEY", "BASIC"}
    assert by_type["API_KEY"]["ApiKeyAuthParameters"]["ApiKeyName"] == "x-api-key"
    _assert_dynamic_reference(by_type["API_KEY"]["ApiKeyAuthParameters"]["ApiKeyValue"], json_field="apiKey")
    # The pinned version: bumping it changes the template, so a deploy re-reads the secret.
    assert f":SecretString:apiKey::{SECRET_VERSION_ID}}}}}" in _rendered(by_type["API_KEY"]["ApiKeyAuthParameters"]["ApiKeyValue"])
    assert by_type["BASIC"]["BasicAuthParameters"]["Username"] == "fabric"
    _assert_dynamic_reference(by_type["BASIC"]["BasicAuthParameters"]["Password"])
    rendered = json.dumps(template.to_json())
    assert rendered.count(DYNAMIC_REFERENCE) == 2


def test_channel_authorization_oauth_client_credentials():
    stack = _new_stack()
    bus = events.EventBus(stack, "Bus")
    client_secret = secretsmanager.Secret(stack, "ClientSecret")
    ApiDestinationChannel(
        stack,
        "Invoices",
        event_bus=bus,
        event_pattern=events.EventPattern(source=["billing"]),
        endpoint="https://api.partner.example/invoices",
        authorization=ChannelAuthorization.oauth_client_credentials(
            authorization_endpoint="https://auth.partner.example/oauth2/token",
            client_id="fabric-client",
            client_secret=client_secret,
            client_secret_json_field="secret",
            body_parameters={"scope": "invoices:write"},
        ),
    )

    template = Template.from_stack(stack)
    template.resource_count_is("AWS::Events::Connection", 1)
    connection = next(iter(_resources(template, "AWS::Events::Connection").values()))["Properties"]
    assert connection["AuthorizationType"] == "OAUTH_CLIENT_CREDENTIALS"
    oauth = connection["AuthParameters"]["OAuthParameters"]
    assert oauth["AuthorizationEndpoint"] == "https://auth.partner.example/oauth2/token"
    assert oauth["HttpMethod"] == "POST"
    assert oauth["ClientParameters"]["ClientID"] == "fabric-client"
    _assert_dynamic_reference(oauth["ClientParameters"]["ClientSecret"], json_field="secret")
    assert "invoices:write" in _rendered(oauth["OAuthHttpParameters"])


def test_validation_error_surfaces_in_python():
    stack = _new_stack()
    bus = events.EventBus(stack, "Bus")
    secret = secretsmanager.Secret(stack, "ApiKey")
    # jsii re-raises the JavaScript error in Python as a RuntimeError (JSIIError in older
    # jsii runtimes); its class (PropValidationError) does not cross, its message does.
    with pytest.raises((RuntimeError, JSIIError)) as excinfo:
        ApiDestinationChannel(
            stack,
            "TooManyRetries",
            event_bus=bus,
            event_pattern=events.EventPattern(source=["shop.orders"]),
            endpoint="https://api.partner.example/orders",
            authorization=ChannelAuthorization.api_key(header_name="x-api-key", secret=secret),
            max_retry_attempts=500,
        )
    message = str(excinfo.value)
    assert "maxRetryAttempts" in message, message
    assert "0 to 185" in message, message
    assert "TooManyRetries" in message, message


def test_tiered_event_ingest():
    stack = _new_stack()
    key = kms.Key(stack, "Key", enable_key_rotation=True)
    orders = sqs.Queue(stack, "Orders", enforce_ssl=True)
    ingest = TieredEventIngest(
        stack,
        "Ingest",
        encryption_key=key,
        envelope_paths=CuratedEnvelopePaths(tenant_id_path="$.detail.account"),
        fast_routes=[FastRoute(id="Sms", event_pattern=events.EventPattern(source=["journeys"]))],
        buffering_size=Size.mebibytes(64),
        max_records_per_event=500,
        archive_retention=Duration.days(7),
        publisher_max_concurrency=20,
    )
    # A route added from Python, to a target of the user's choosing.
    ingest.add_fast_route("Orders", event_pattern=events.EventPattern(source=["shop"]), target=targets.SqsQueue(orders))
    template = Template.from_stack(stack)

    template.resource_count_is("AWS::Events::EventBus", 3)
    template.has_resource_properties("AWS::Events::Archive", {"RetentionDays": 7})
    template.has_resource_properties("AWS::KinesisFirehose::DeliveryStream", {
        "ExtendedS3DestinationConfiguration": Match.object_like({
            "BufferingHints": {"IntervalInSeconds": 60, "SizeInMBs": 64},
            "DynamicPartitioningConfiguration": Match.object_like({"Enabled": True}),
        }),
    })
    publisher_env = [
        f["Properties"]["Environment"]["Variables"]
        for f in _resources(template, "AWS::Lambda::Function").values()
        if "MAX_RECORDS_PER_EVENT" in f["Properties"].get("Environment", {}).get("Variables", {})
    ]
    assert publisher_env and publisher_env[0]["MAX_RECORDS_PER_EVENT"] == "500"

    # Both fast routes carry the curated envelope built by an input transformer, with the
    # tenant path given from Python, the lane's retry policy and its dead-letter queue.
    fast_rules = [
        r["Properties"] for r in _resources(template, "AWS::Events::Rule").values()
        if "fast" in _rendered([t.get("InputTransformer", {}) for t in r["Properties"].get("Targets", [])])
    ]
    assert len(fast_rules) == 2, _rendered(fast_rules)
    for rule in fast_rules:
        target = rule["Targets"][0]
        assert target["InputTransformer"]["InputPathsMap"]["tenant"] == "$.detail.account"
        # The ids are quoted in the template, so numeric and missing ids arrive as strings.
        assert '"tenant":"<tenant>"' in target["InputTransformer"]["InputTemplate"]
        assert target["RetryPolicy"] == {"MaximumRetryAttempts": 8, "MaximumEventAgeInSeconds": 3600}
        assert "DeadLetterConfig" in target
    assert ingest.curated_bus is not None and ingest.ledger_table is not None
    assert len(ingest.fast_routes) == 2
    template.has_resource_properties("AWS::Lambda::EventSourceMapping", {"ScalingConfig": {"MaximumConcurrency": 20}})
    # The way back from every dead end, and the alarms, are reachable from Python.
    assert ingest.redrive_function.function_arn is not None
    assert len(ingest.rule_delivery_alarms) == 2 * 4  # slow-lane rule, object-created rule, two fast routes
    assert len(ingest.dead_letter_expiry_alarms) == 3
    assert ingest.object_queue_age_alarm is not None and ingest.publisher_errors_alarm is not None
    assert ingest.firehose_throttling_alarm is not None


def test_curated_envelope_from_python():
    # recordJson/validateJson are exact: jsii drops None values from objects crossing over.
    record = json.loads(CuratedEnvelope.record_json(id="evt-1", payload={"text": "hi"}, lane=IngestLane.FAST, tenant="acme"))
    assert record["kind"] == "record" and record["lane"] == "fast" and record["channel"] is None
    assert CuratedEnvelope.validate_json(json.dumps(record)).valid
    bad = CuratedEnvelope.validate_json(json.dumps({**record, "lane": "medium"}))
    assert not bad.valid and bad.errors == ['/lane must be equal to one of the allowed values (["fast","slow"])']
    assert CuratedEnvelope.record(id="evt-2", payload=1, lane=IngestLane.SLOW, tenant="acme")["tenant"] == "acme"
    with open(CuratedEnvelope.schema_file_path(), encoding="utf-8") as handle:
        shipped = handle.read()
    assert json.loads(shipped) == CuratedEnvelope.json_schema()
    # The path is in the jsii runtime's temporary copy of the package; the content outlives it.
    assert CuratedEnvelope.schema_json() == shipped
    assert CuratedEnvelope.BATCH_DETAIL_TYPE == "CuratedBatch" and CuratedEnvelope.SOURCE == "cdk-event-fabric"


def test_event_aggregator():
    stack = _new_stack()
    orders = events.EventBus(stack, "Orders")
    invoices = sqs.Queue(stack, "Invoices", enforce_ssl=True)
    aggregator = EventAggregator(
        stack,
        "Aggregator",
        required_events=["Account Check", "In Stock"],
        deadline=Duration.minutes(15),
        item_ttl=Duration.days(2),
    )
    # A source added from Python: the struct's fields are keyword arguments.
    source_rule = aggregator.add_source(
        "Orders",
        event_bus=orders,
        event_pattern=events.EventPattern(source=["shop.orders"]),
        correlation_id_path="$.detail.orderId",
        event_name_path="$.detail-type",
    )
    completion_rule = aggregator.on_complete("Invoice", targets.SqsQueue(invoices))
    aggregator.on_incomplete("Escalation", targets.SqsQueue(invoices))
    # An operator who may redrive the failed-batch bucket.
    redrive_grant = aggregator.grant_redrive_failed_batches(iam.Role(stack, "Operator", assumed_by=iam.AccountRootPrincipal()))
    template = Template.from_stack(stack)

    # The table: correlation id and event name keys, TTL, stream for the aggregator.
    template.has_resource_properties("AWS::DynamoDB::Table", {
        "KeySchema": [
            {"AttributeName": "correlationId", "KeyType": "HASH"},
            {"AttributeName": "eventName", "KeyType": "RANGE"},
        ],
        "TimeToLiveSpecification": {"AttributeName": "expiresAt", "Enabled": True},
        "StreamSpecification": {"StreamViewType": "NEW_IMAGE"},
    })
    template.resource_count_is("AWS::Scheduler::ScheduleGroup", 1)

    rules = [r["Properties"] for r in _resources(template, "AWS::Events::Rule").values()]
    # The completion rule: the aggregator's source and the Completed detail-type.
    completed = [r for r in rules if r["EventPattern"].get("detail-type") == ["Aggregation Completed"]]
    assert len(completed) == 1, _rendered(rules)
    assert completed[0]["EventPattern"] == {"source": ["cdk-event-fabric.aggregator"], "detail-type": ["Aggregation Completed"]}
    assert "DeadLetterConfig" in completed[0]["Targets"][0]
    # The source rule: the recorder's input built from the paths given in Python.
    source = [r for r in rules if r["EventPattern"] == {"source": ["shop.orders"]}]
    assert len(source) == 1, _rendered(rules)
    paths = source[0]["Targets"][0]["InputTransformer"]["InputPathsMap"]
    assert paths["detail-orderId"] == "$.detail.orderId" and paths["detail-type"] == "$.detail-type"

    aggregator_env = [
        f["Properties"]["Environment"]["Variables"]
        for f in _resources(template, "AWS::Lambda::Function").values()
        if "REQUIRED_EVENTS" in f["Properties"].get("Environment", {}).get("Variables", {})
    ]
    assert len(aggregator_env) == 1
    assert json.loads(aggregator_env[0]["REQUIRED_EVENTS"]) == ["Account Check", "In Stock"]
    assert aggregator_env[0]["DEADLINE_SECONDS"] == "900" and aggregator_env[0]["ITEM_TTL_SECONDS"] == "172800"

    assert len(aggregator.sources) == 1 and source_rule is not None and completion_rule is not None
    assert aggregator.table is not None and aggregator.schedule_group is not None
    # Failed stream batches are kept whole in S3, with alarms on arrival and on a failed write.
    assert aggregator.failed_batch_bucket is not None
    assert aggregator.failed_batch_alarm is not None and aggregator.failed_batch_delivery_alarm is not None
    assert redrive_grant.success
    template.has_resource_properties("AWS::S3::Bucket", {"MetricsConfigurations": [{"Id": "FailedBatches", "Prefix": "aws/lambda/"}]})
    assert aggregator.metric_aggregations_completed().metric_name == "AggregationsCompleted"
    assert EventAggregator.RESOURCES_PER_AGGREGATOR > 0
    assert EventAggregator.COMPLETED_DETAIL_TYPE == "Aggregation Completed"


def test_event_aggregator_completion_rules():
    """The seed's rule from Python: an approved check (a corrected one replaces a failed one), stock, either payment, two signatures."""
    stack = _new_stack()
    rejections = sqs.Queue(stack, "Rejections", enforce_ssl=True)
    aggregator = EventAggregator(
        stack,
        "Aggregator",
        requirements=[
            AggregationRequirement(any_of=["Account Check"], condition={"status": ["APPROVED"], "score": [{"numeric": [">=", 600]}]},
                                   fail_on_mismatch=True),
            AggregationRequirement(any_of=["In Stock"]),
            AggregationRequirement(any_of=["Card Payment", "Bank Transfer"], label="Payment"),
            AggregationRequirement(any_of=["Signature"], count=2),
        ],
        newest_replaces=True,
    )
    failed_rule = aggregator.on_failed("Rejected", targets.SqsQueue(rejections))
    template = Template.from_stack(stack)

    env = [
        f["Properties"]["Environment"]["Variables"]
        for f in _resources(template, "AWS::Lambda::Function").values()
        if "REQUIREMENTS" in f["Properties"].get("Environment", {}).get("Variables", {})
    ]
    assert len(env) == 1
    assert json.loads(env[0]["REQUIREMENTS"]) == [
        {"label": "Account Check", "anyOf": ["Account Check"], "count": 1, "failOnMismatch": True,
         "condition": {"status": ["APPROVED"], "score": [{"numeric": [">=", 600]}]}},
        {"label": "In Stock", "anyOf": ["In Stock"], "count": 1, "failOnMismatch": False},
        {"label": "Payment", "anyOf": ["Card Payment", "Bank Transfer"], "count": 1, "failOnMismatch": False},
        {"label": "Signature", "anyOf": ["Signature"], "count": 2, "failOnMismatch": False},
    ]
    assert env[0]["NEWEST_REPLACES"] == "true"
    rules = [r["Properties"] for r in _resources(template, "AWS::Events::Rule").values()]
    assert {"source": ["cdk-event-fabric.aggregator"], "detail-type": ["Aggregation Failed"]} in [r["EventPattern"] for r in rules]
    assert failed_rule is not None and EventAggregator.FAILED_DETAIL_TYPE == "Aggregation Failed"
    assert [r.label for r in aggregator.requirements] == ["Account Check", "In Stock", "Payment", "Signature"]
    assert aggregator.metric_aggregations_failed().metric_name == "AggregationsFailed"

    # A condition the aggregator cannot evaluate is refused at synth, with what is allowed.
    with pytest.raises(Exception, match=r"uses the filter \"wildcard\"; allowed: prefix, suffix, anything-but, numeric, exists"):
        EventAggregator(stack, "Bad", requirements=[AggregationRequirement(any_of=["A"], condition={"s": [{"wildcard": "x*"}]})])


def _follower_function(stack: Stack, construct_id: str) -> lambda_.Function:
    """A follower as a Python user would register one: any function returning {"event": ...}."""
    return lambda_.Function(
        stack,
        construct_id,
        runtime=lambda_.Runtime.NODEJS_24_X,
        handler="index.handler",
        code=lambda_.Code.from_inline("exports.handler = async (request) => ({ event: request.event });"),
    )


def test_leader_follower_orchestrator():
    stack = _new_stack()
    curated = events.EventBus(stack, "Curated")
    fast = events.EventBus(stack, "Fast")
    enrich = _follower_function(stack, "Enrich")
    render = _follower_function(stack, "Render")
    deliver = _follower_function(stack, "Deliver")
    orchestrator = LeaderFollowerOrchestrator(
        stack,
        "Orchestrator",
        curated_bus=curated,
        # Lists of structs: each item a struct instance (a plain dict works too).
        followers=[FollowerDefinition(name="enrich", function=enrich), FollowerDefinition(name="render", function=render)],
        routes=[RouteDefinition(channel="email", followers=["enrich", "render", "deliver"], description="enrich, render, deliver")],
        max_hops=5,
        route_cache_ttl=Duration.seconds(30),
        follower_retry_attempts=1,
    )
    # A follower and a route added from Python; routes are checked against the followers at synth.
    # The delivery step must not repeat: no retries, and a 10-minute event age (FollowerOptions as keywords).
    orchestrator.add_follower("deliver", deliver, retry_attempts=0, max_event_age=Duration.minutes(10))
    orchestrator.add_route("sms", ["enrich", "deliver"])
    # One generic follower serves another channel by configuration: step parameters (any JSON) from Python.
    orchestrator.add_route_definition(channel="push", steps=[
        RouteStep(follower="render", parameters={"template": "push-short", "locale": "fr-FR", "maxLength": 120}),
        RouteStep(follower="deliver"),
    ])
    # Routes matching more than the channel: the most specific one of a record's tenant and event type wins.
    orchestrator.add_route_definition(channel="email", tenant="acme", event_type="OrderShipped", followers=["deliver"])
    # A source added from Python: the struct's fields are keyword arguments.
    source_rule = orchestrator.add_source("Curated", event_bus=curated)
    # The leader as the target of a rule made elsewhere (such as a TieredEventIngest fast route).
    events.Rule(stack, "Urgent", event_bus=fast, event_pattern=events.EventPattern(source=["journeys"]),
                targets=[orchestrator.rule_target()])
    operator = iam.Role(stack, "Operator", assumed_by=iam.AccountRootPrincipal())
    orchestrator.grant_redrive(operator)
    orchestrator.grant_write_routes(operator)
    template = Template.from_stack(stack)

    # The routes custom resource carries the routes of the props and of add_route, as JSON.
    routes_resources = list(_resources(template, "Custom::OrchestratorRoutes").values())
    assert len(routes_resources) == 1
    assert json.loads(routes_resources[0]["Properties"]["Routes"]) == [
        {"channel": "email", "followers": ["enrich", "render", "deliver"], "description": "enrich, render, deliver"},
        {"channel": "sms", "followers": ["enrich", "deliver"]},
        {"channel": "push", "followers": [
            {"follower": "render", "parameters": {"template": "push-short", "locale": "fr-FR", "maxLength": 120}}, "deliver",
        ]},
        {"channel": "email", "tenant": "acme", "eventType": "OrderShipped", "followers": ["deliver"]},
    ]
    # The follower ARNs travel in the routes custom resource (written as the routes table's followers
    # item), not in the leader's environment.
    followers_json = _rendered(routes_resources[0]["Properties"]["Followers"])
    assert all(name in followers_json for name in ("enrich", "render", "deliver")), followers_json
    assert "FOLLOWERS" not in json.dumps(_resources(template, "AWS::Lambda::Function"))

    # Each follower's asynchronous invocation configuration: the leader is its success and
    # failure destination, with the retries given from Python.
    leader_id = stack.get_logical_id(orchestrator.leader_function.node.default_child)
    follower_ids = {stack.get_logical_id(fn.node.default_child) for fn in (enrich, render, deliver)}
    configs = [
        c["Properties"] for c in _resources(template, "AWS::Lambda::EventInvokeConfig").values()
        if c["Properties"]["FunctionName"] != {"Ref": leader_id}
    ]
    assert {_rendered(c["FunctionName"]) for c in configs} == {_rendered({"Ref": i}) for i in follower_ids}
    deliver_id = stack.get_logical_id(deliver.node.default_child)
    for config in configs:
        destinations = config["DestinationConfig"]
        assert destinations["OnSuccess"] == destinations["OnFailure"], _rendered(destinations)
        assert "-leader" in _rendered(destinations["OnSuccess"]), _rendered(destinations)
        if config["FunctionName"] == {"Ref": deliver_id}:
            assert config["MaximumRetryAttempts"] == 0 and config["MaximumEventAgeInSeconds"] == 600, _rendered(config)
        else:
            assert config["MaximumRetryAttempts"] == 1 and config["MaximumEventAgeInSeconds"] == 21600, _rendered(config)
    # The sweep that parks stalled steps, from Python.
    assert orchestrator.stalled_steps_sweep is not None

    # The source rule: curated records and batches not yet orchestrated, with the retry
    # policy and the dead-letter queue; the rule_target() rule gets the same delivery.
    dlq_arn = {"Fn::GetAtt": [stack.get_logical_id(orchestrator.dead_letter_queue.node.default_child), "Arn"]}
    rules = [r["Properties"] for r in _resources(template, "AWS::Events::Rule").values()]
    # (The stalled-steps sweep is a schedule: no event pattern.)
    source = [r for r in rules if r.get("EventPattern", {}).get("detail-type")]
    assert len(source) == 1, _rendered(rules)
    assert source[0]["EventPattern"] == {
        "source": ["cdk-event-fabric"],
        "detail-type": ["CuratedRecord", "CuratedBatch"],
        "detail": {"orchestration": [{"exists": False}]},
    }
    urgent = [r for r in rules if r.get("EventPattern") == {"source": ["journeys"]}]
    assert len(urgent) == 1, _rendered(rules)
    for rule in (source[0], urgent[0]):
        target = rule["Targets"][0]
        assert target["Arn"] == {"Fn::GetAtt": [leader_id, "Arn"]}
        assert target["RetryPolicy"] == {"MaximumRetryAttempts": 8, "MaximumEventAgeInSeconds": 3600}
        assert target["DeadLetterConfig"] == {"Arn": dlq_arn}

    # The leader's settings from Python.
    leader_env = template.to_json()["Resources"][leader_id]["Properties"]["Environment"]["Variables"]
    assert leader_env["MAX_HOPS"] == "5" and leader_env["ROUTE_CACHE_TTL_SECONDS"] == "30"

    # grant_redrive and grant_write_routes: the operator may invoke the redrive function (not
    # the leader) and the route writer, each by its own ARN only (no version wildcard cdk-nag
    # would report on the role).
    redrive_id = stack.get_logical_id(orchestrator.redrive_function.node.default_child)
    operator_statements = [
        statement
        for policy in _resources(template, "AWS::IAM::Policy").values()
        if policy["Properties"]["Roles"] == [{"Ref": stack.get_logical_id(operator.node.default_child)}]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    invoked = [s["Resource"] for s in operator_statements if s["Action"] == "lambda:InvokeFunction"]
    assert {"Fn::GetAtt": [redrive_id, "Arn"]} in invoked, _rendered(invoked)
    assert {"Fn::GetAtt": [leader_id, "Arn"]} not in invoked, _rendered(invoked)
    redrive_env = template.to_json()["Resources"][redrive_id]["Properties"]["Environment"]["Variables"]
    assert redrive_env["LEADER_ENTRY"] == "redrive" and leader_env["LEADER_ENTRY"] == "events"
    # The route writer the operator may invoke takes run-time writes only; the routes custom resource has its
    # own function (the only writer of the followers), which the operator may not invoke.
    writer_id = stack.get_logical_id(orchestrator.route_writer_function.node.default_child)
    resource_fn_id = stack.get_logical_id(orchestrator.routes_resource_function.node.default_child)
    assert {"Fn::GetAtt": [writer_id, "Arn"]} in invoked, _rendered(invoked)
    assert {"Fn::GetAtt": [resource_fn_id, "Arn"]} not in invoked, _rendered(invoked)
    functions = template.to_json()["Resources"]
    assert functions[writer_id]["Properties"]["Environment"]["Variables"]["ROUTE_WRITER_ENTRY"] == "api"
    assert functions[resource_fn_id]["Properties"]["Environment"]["Variables"]["ROUTE_WRITER_ENTRY"] == "deploy"

    assert orchestrator.follower_names == ["enrich", "render", "deliver"]
    assert [(r.channel, r.tenant) for r in orchestrator.deployed_routes] == [("email", None), ("sms", None), ("push", None), ("email", "acme")]
    push_step = orchestrator.deployed_routes[2].steps[0]
    assert push_step.follower == "render" and push_step.parameters["locale"] == "fr-FR", push_step
    assert orchestrator.max_hops == 5 and len(orchestrator.sources) == 1 and source_rule is not None
    assert len(orchestrator.follower_delivery_failures_alarms) == 3
    steps = orchestrator.metric_steps("email")
    assert steps.metric_name == "Steps" and steps.namespace == "cdk-event-fabric"
    assert steps.dimensions["channel"] == "email"
    assert LeaderFollowerOrchestrator.MAX_ROUTE_LENGTH == 15
    assert LeaderFollowerOrchestrator.RESOURCES_PER_ORCHESTRATOR > 0

    # A route longer than Lambda's recursion detection allows (16 followers) is refused at synth, with the limit and why.
    other = _new_stack()
    other_follower = _follower_function(other, "Enrich")
    with pytest.raises((RuntimeError, JSIIError)) as excinfo:
        LeaderFollowerOrchestrator(
            other,
            "TooLong",
            followers=[FollowerDefinition(name="enrich", function=other_follower)],
            routes=[RouteDefinition(channel="long", followers=["enrich"] * 16)],
        )
    message = str(excinfo.value)
    assert "TooLong" in message and "long" in message, message
    assert "1 to 15" in message and "recursive loop detection" in message, message


def test_hydrating_dlq():
    """The default API destination target, then a bus target with a replay bus, from Python."""
    stack = _new_stack()
    secret = secretsmanager.Secret(stack, "CrmKey")
    orders = HydratingDlq(
        stack,
        "Orders",
        endpoint="https://crm.example.com/v1/orders",
        authorization=ChannelAuthorization.api_key(header_name="x-api-key", secret=secret),
        input_template='{"order": <$.data>}',
        stream_retention=Duration.days(2),
        maximum_record_age=Duration.hours(2),
    )
    bus = events.EventBus(stack, "Bus")
    to_bus = HydratingDlq(
        stack,
        "OrdersToBus",
        target=PipeTarget.event_bus(bus, detail_type="Order", source="orders.stream"),
        pipe_name="orders-to-bus",
        batch_size=10,
        starting_position=PipeStartingPosition.LATEST,
        log_level=PipeLogLevel.INFO,
        filter_patterns=['{"data":{"type":["order"]}}'],
        replay_event_bus=bus,
    )
    operator = iam.Role(stack, "Operator", assumed_by=iam.AccountRootPrincipal())
    assert to_bus.grant_replay(operator).success
    assert orders.grant_read_hydrated(operator).success
    template = Template.from_stack(stack)

    pipes = {p["Properties"]["Name"]: p["Properties"] for p in _resources(template, "AWS::Pipes::Pipe").values()}
    assert sorted(pipes) == sorted([orders.pipe_name, f"{orders.pipe_name}-replay", "orders-to-bus", "orders-to-bus-replay"])
    default = pipes[orders.pipe_name]["SourceParameters"]["KinesisStreamParameters"]
    # Never the Pipes defaults (infinite retries, no record age); the DLQ from the first deploy.
    assert default["MaximumRetryAttempts"] == 3 and default["MaximumRecordAgeInSeconds"] == 7200
    assert "DeadLetterConfig" in default and default["BatchSize"] == 1
    assert pipes[orders.pipe_name]["TargetParameters"] == {"InputTemplate": '{"order": <$.data>}'}
    bus_pipe = pipes["orders-to-bus"]
    assert bus_pipe["SourceParameters"]["KinesisStreamParameters"]["StartingPosition"] == "LATEST"
    assert bus_pipe["SourceParameters"]["FilterCriteria"] == {"Filters": [{"Pattern": '{"data":{"type":["order"]}}'}]}
    assert bus_pipe["TargetParameters"]["EventBridgeEventBusParameters"] == {"DetailType": "Order", "Source": "orders.stream"}
    assert bus_pipe["LogConfiguration"]["Level"] == "INFO"
    # The replay pipe reads the replay stream from its oldest record.
    assert pipes["orders-to-bus-replay"]["SourceParameters"]["KinesisStreamParameters"]["StartingPosition"] == "TRIM_HORIZON"
    # The connection's API key is a Secrets Manager dynamic reference.
    connection = next(iter(_resources(template, "AWS::Events::Connection").values()))
    _assert_dynamic_reference(connection["Properties"]["AuthParameters"]["ApiKeyAuthParameters"]["ApiKeyValue"])

    for construct in (orders, to_bus):
        assert construct.stream is not None and construct.replay_stream is not None and construct.bucket is not None
        assert construct.hydrator_function is not None and construct.replayer_function is not None
        assert construct.dead_letter_queue is not None and construct.hydrator_dead_letter_queue is not None
        assert construct.hydration_deadline_alarm is not None and construct.unrecoverable_records_alarm is not None
    assert orders.api_destination is not None and to_bus.api_destination is None
    assert orders.metric_pipe("TargetStageFailed").metric_name == "TargetStageFailed"
    assert orders.metric_hydrator("RecordsHydrated").namespace == "cdk-event-fabric"

    # A prop error surfaces in Python with the prop, the value and what is allowed.
    with pytest.raises((RuntimeError, JSIIError), match=r"invalid maximumRetryAttempts -1; allowed: an integer from 0 to 10000"):
        HydratingDlq(_new_stack(), "Bad", target=PipeTarget.event_bus(events.EventBus.from_event_bus_name(stack, "Other", "other")),
                     maximum_retry_attempts=-1)

