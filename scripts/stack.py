#!/usr/bin/env python3
"""The local paybridge stack, and the one owner of its processes.

    stack.py up        --state-dir DIR [--moto-port N] [--stripe-port N] [--adyen-port N]
    stack.py provision --state-dir DIR            (or --moto-url URL --stripe-url URL --adyen-url URL)
    stack.py reset     --state-dir DIR            (wipe moto, localstripe and the local Adyen, provision again)
    stack.py down      --state-dir DIR            (stop everything started in DIR)
    stack.py status    --state-dir DIR
    stack.py dev       --state-dir DIR [--moto-port 4566] [--stripe-port 8420] [--adyen-port 8430] [--lambda-port 9000]
                       [--gateway-port 3000] [--receiver-port N] [--no-receiver] [--iam]      (make dev)
    stack.py run       --state-dir DIR [--functions] -- COMMAND [ARGS...]           (make test)
    stack.py clean     [--root .stack]            (stop every stack under ROOT, delete ROOT)

`up` starts moto server (DynamoDB, SQS, Secrets Manager), localstripe and the local Adyen
(scripts/adyen_fake.py) in the background on 127.0.0.1 (port 0 or omitted: a free port), waits
until they answer, provisions, and writes
DIR/env. `provision` creates every AWS::DynamoDB::Table, AWS::SQS::Queue and
AWS::SecretsManager::Secret of template.yaml in moto, from the same properties, and writes DIR/env:
the functions' environment variables resolved against those local resources, plus what a local
run needs (endpoint, region, dummy credentials, the localstripe and local Adyen URLs: no function
of a local stack calls a gateway on the internet). It is idempotent: run it again
against a running moto at will. `down` stops what `up`, `dev` or `run` started in DIR (process
groups; safe to call twice), `status` tells what runs.

`dev` is `make dev`: `up` on the fixed ports, the functions built, then the billing receiver,
`cargo lambda watch` and the local gateway (the local Adyen's notifications then go to its
/webhooks/adyen; with `--iam`, `make dev LOCAL_IAM=1`, it checks SigV4 on the billing routes),
output to this terminal, until Ctrl-C or until one of
them ends; then everything is stopped. `run` is `make test`: `up` on free ports (with
`--functions` also the functions' own localstripe, the receiver, cargo lambda watch and the
gateway, logs in DIR), COMMAND with DIR/env (and PAYBRIDGE_GATEWAY_URL, PAYBRIDGE_RECEIVER_URL,
PAYBRIDGE_FUNCTIONS_STRIPE_URL, PAYBRIDGE_LAMBDA_URL - cargo lambda watch, for a second gateway
such as scripts/fuzz_api.py's - and PAYBRIDGE_STACK_DIR, DIR itself) in its environment, then everything stopped whatever happened;
exits with COMMAND's status, DIR removed if it is 0 and kept with the logs otherwise. `clean`
also stops leftovers of hard-killed runs whose pid files are gone.

DIR holds: moto.pid / moto.port / moto.log, localstripe.pid / localstripe.port /
localstripe.log, adyen.pid / adyen.port / adyen.log, the NAME.pid of every other process started there (gateway, receiver,
cargo-lambda, localstripe-functions) with its log, resources.json (what was provisioned) and env
(`export NAME=value` lines, readable by a POSIX shell and by `cargo lambda watch --env-file`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

try:
    import yaml
except ImportError:  # `down`, `clean` and `status` need only the standard library
    yaml = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent
HOST = "127.0.0.1"
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account
LOCAL_STACK_NAME = "paybridge-local"
NAME_PREFIX = "paybridge-local-"
DEFAULT_TEMPLATE = ROOT / "template.yaml"
DEFAULT_SECRETS = ROOT / "local" / "secrets.json"
START_TIMEOUT_SECS = 30.0
STOP_TIMEOUT_SECS = 10.0

SERVICES = ("moto", "localstripe", "adyen")
SERVER_SCRIPTS = {
    "moto": SCRIPTS / "moto_server.py",
    "localstripe": SCRIPTS / "localstripe_server.py",
    "adyen": SCRIPTS / "adyen_fake.py",
}
# The Checkout API version paybridge's Adyen adapter speaks (the path prefix of AdyenApiBase).
ADYEN_API_VERSION = "v72"

TABLE = "AWS::DynamoDB::Table"
QUEUE = "AWS::SQS::Queue"
SECRET = "AWS::SecretsManager::Secret"
FUNCTION = "AWS::Serverless::Function"
EVENT_BUS = "AWS::Events::EventBus"
# Locally, billing is also subscribed to the notification bus: a rule (source "paybridge") to this
# queue, which tests read back (PAYBRIDGE_LOCAL_BILLING_EVENTS_URL). In AWS, billing makes its own.
BILLING_EVENTS_QUEUE = "paybridge-local-billing-events"
BILLING_EVENTS_RULE = "billing-notifications"
LOCAL_STRIPE_EVENT_SOURCE = "aws.partner/stripe.com/ed_local_paybridge"


class StackError(Exception):
    """A failure with a message meant for the person at the terminal."""


def log(msg: str) -> None:
    print(f"stack: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- template loading


def _cfn_tag(loader: Any, tag_suffix: str, node: Any) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        logical_id, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [logical_id, attribute]}
    return {f"Fn::{tag_suffix}": value}


if yaml is not None:

    class CfnLoader(yaml.SafeLoader):
        """YAML loader that accepts CloudFormation short tags (!Ref, !GetAtt, !Sub, ...)."""

    CfnLoader.add_multi_constructor("!", _cfn_tag)


def load_template(path: Path) -> dict[str, Any]:
    if yaml is None:
        raise StackError("PyYAML is missing: run this with the project's .venv/bin/python (make venv)")
    try:
        with path.open(encoding="utf-8") as f:
            template = yaml.load(f, Loader=CfnLoader)  # noqa: S506 - SafeLoader subclass
    except (OSError, yaml.YAMLError) as exc:
        raise StackError(f"cannot read template {path.name}: {exc}") from exc
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise StackError(f"{path.name} has no Resources section")
    return template


# --------------------------------------------------------------------------- intrinsic resolution


@dataclass
class Resolver:
    """Resolves CloudFormation intrinsics against local values.

    `provide(logical_id)` is called for a resource the first time something refers to it; it
    must create the resource (if the local stack supports its type) and return
    {"Ref": value, "<Attribute>": value, ...}.
    """

    template: dict[str, Any]
    provide: Callable[[str], dict[str, str]]
    resolved: dict[str, dict[str, str]] = field(default_factory=dict)
    in_progress: set[str] = field(default_factory=set)

    def pseudo(self, name: str) -> str | None:
        return {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::StackName": LOCAL_STACK_NAME,
            "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{LOCAL_STACK_NAME}/local",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": None,
        }.get(name, "")

    def resource(self, logical_id: str) -> dict[str, str]:
        if logical_id in self.resolved:
            return self.resolved[logical_id]
        if logical_id not in self.template["Resources"]:
            raise StackError(f"template refers to {logical_id!r}, which is neither a parameter nor a resource")
        if logical_id in self.in_progress:
            raise StackError(f"circular reference through {logical_id!r}")
        self.in_progress.add(logical_id)
        try:
            self.resolved[logical_id] = self.provide(logical_id)
        finally:
            self.in_progress.discard(logical_id)
        return self.resolved[logical_id]

    def ref(self, name: str) -> Any:
        if name.startswith("AWS::"):
            value = self.pseudo(name)
            if value == "":
                raise StackError(f"unsupported pseudo parameter {name}")
            return value
        params = self.template.get("Parameters") or {}
        if name in params:
            if "Default" not in params[name]:
                raise StackError(f"parameter {name} has no Default; the local stack uses parameter defaults")
            default = params[name]["Default"]
            return ",".join(map(str, default)) if isinstance(default, list) else default
        return self.resource(name)["Ref"]

    def get_att(self, logical_id: str, attribute: str) -> str:
        attrs = self.resource(logical_id)
        if attribute not in attrs:
            rtype = self.template["Resources"][logical_id].get("Type")
            raise StackError(f"the local stack has no attribute {attribute!r} for {logical_id} ({rtype})")
        return attrs[attribute]

    def sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            pattern, variables = arg[0], {k: self.resolve(v) for k, v in (arg[1] or {}).items()}
        else:
            pattern, variables = arg, {}

        def one(match: re.Match[str]) -> str:
            expr = match.group(1)
            if expr.startswith("!"):
                return "${" + expr[1:] + "}"
            if expr in variables:
                return str(variables[expr])
            if "." in expr and not expr.startswith("AWS::"):
                logical_id, attribute = expr.split(".", 1)
                return str(self.get_att(logical_id, attribute))
            return str(self.ref(expr))

        return re.sub(r"\$\{([^}]+)\}", one, pattern)

    def resolve(self, value: Any) -> Any:
        """Return `value` with every intrinsic function replaced by its local value."""
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(logical_id, self.resolve(attribute))
            if key == "Fn::Sub":
                return self.sub(arg)
            if key == "Fn::Join":
                delimiter, items = arg
                return delimiter.join(str(v) for v in self.resolve(items))
            if key == "Fn::Select":
                index, items = self.resolve(arg)
                return items[int(index)]
            if key == "Fn::Split":
                delimiter, source = arg
                return str(self.resolve(source)).split(delimiter)
            if key == "Fn::ToJsonString":
                return json.dumps(self.resolve(arg), separators=(",", ":"))
            if key.startswith("Fn::") or key == "Condition":
                raise StackError(f"the local stack cannot resolve {key} (used with {arg!r})")
        return {k: self.resolve(v) for k, v in value.items()}


# --------------------------------------------------------------------------- provisioning


def aws_client(service: str, moto_url: str) -> Any:
    import boto3  # imported here so `status` / `down` work without it

    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION)
    return session.client(service, endpoint_url=moto_url)


def local_name(logical_id: str) -> str:
    return f"{NAME_PREFIX}{logical_id}"


def cfn_tags(props: dict[str, Any]) -> list[dict[str, str]]:
    return [{"Key": str(t["Key"]), "Value": str(t["Value"])} for t in props.get("Tags") or []]


def flag(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


class Provisioner:
    def __init__(self, template: dict[str, Any], moto_url: str, secrets_path: Path) -> None:
        self.template = template
        self.moto_url = moto_url
        self.secrets_path = secrets_path
        self.resolver = Resolver(template, self.provide)
        self.ddb = aws_client("dynamodb", moto_url)
        self.sqs = aws_client("sqs", moto_url)
        self.sm = aws_client("secretsmanager", moto_url)
        self.events = aws_client("events", moto_url)
        self.created: dict[str, dict[str, str]] = {}

    def run(self) -> dict[str, dict[str, str]]:
        for logical_id, resource in self.template["Resources"].items():
            if resource.get("Type") in (TABLE, QUEUE, SECRET, EVENT_BUS):
                self.resolver.resource(logical_id)
        return self.created

    def provide(self, logical_id: str) -> dict[str, str]:
        resource = self.template["Resources"][logical_id]
        rtype = resource.get("Type")
        handlers = {TABLE: self.table, QUEUE: self.queue, SECRET: self.secret, EVENT_BUS: self.event_bus}
        if rtype not in handlers:
            raise StackError(
                f"{logical_id} ({rtype}) is referred to, but the local stack only provides "
                f"{', '.join(handlers)}; extend scripts/stack.py or avoid the reference"
            )
        props = self.resolver.resolve(resource.get("Properties") or {})
        attrs = handlers[rtype](logical_id, props)
        self.created[logical_id] = {"Type": rtype, **attrs}
        return attrs

    # -- DynamoDB

    def table(self, logical_id: str, props: dict[str, Any]) -> dict[str, str]:
        name = local_name(logical_id)
        billing = props.get("BillingMode", "PROVISIONED")
        params: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": billing,
        }
        if billing == "PROVISIONED":
            params["ProvisionedThroughput"] = props.get(
                "ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
            )
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if props.get(key):
                params[key] = [{k: v for k, v in ix.items() if k != "ContributorInsightsSpecification"} for ix in props[key]]
        if props.get("StreamSpecification"):
            params["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
        sse = props.get("SSESpecification")
        if sse:
            params["SSESpecification"] = {
                "Enabled": flag(sse.get("SSEEnabled")),
                **{k: sse[k] for k in ("SSEType", "KMSMasterKeyId") if k in sse},
            }
        if props.get("TableClass"):
            params["TableClass"] = props["TableClass"]
        if cfn_tags(props):
            params["Tags"] = cfn_tags(props)
        # DeletionProtectionEnabled is left out on purpose: a local table must stay deletable.

        try:
            desc = self.ddb.describe_table(TableName=name)["Table"]
            log(f"table {name} exists")
            want = {ix["IndexName"] for ix in params.get("GlobalSecondaryIndexes", [])}
            have = {ix["IndexName"] for ix in desc.get("GlobalSecondaryIndexes", [])}
            if want != have or desc["KeySchema"] != params["KeySchema"]:
                raise StackError(
                    f"table {name} exists with another key schema or other GSIs than template.yaml; "
                    "stop the stack and start it again (or POST /moto-api/reset) to recreate it"
                )
        except self.ddb.exceptions.ResourceNotFoundException:
            desc = self.ddb.create_table(**params)["TableDescription"]
            log(f"table {name} created")

        ttl = props.get("TimeToLiveSpecification")
        if ttl and flag(ttl.get("Enabled")):
            current = self.ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
            if current.get("TimeToLiveStatus") != "ENABLED" or current.get("AttributeName") != ttl["AttributeName"]:
                self.ddb.update_time_to_live(
                    TableName=name,
                    TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
                )
        pitr = props.get("PointInTimeRecoverySpecification")
        if pitr and flag(pitr.get("PointInTimeRecoveryEnabled")):
            self.ddb.update_continuous_backups(
                TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
            )
        return {"Ref": name, "Arn": desc["TableArn"], "StreamArn": desc.get("LatestStreamArn", "")}

    # -- SQS

    QUEUE_ATTRIBUTES = (
        "DelaySeconds",
        "MaximumMessageSize",
        "MessageRetentionPeriod",
        "ReceiveMessageWaitTimeSeconds",
        "VisibilityTimeout",
        "RedrivePolicy",
        "RedriveAllowPolicy",
        "SqsManagedSseEnabled",
        "KmsMasterKeyId",
        "KmsDataKeyReusePeriodSeconds",
        "FifoQueue",
        "ContentBasedDeduplication",
        "DeduplicationScope",
        "FifoThroughputLimit",
    )

    def queue(self, logical_id: str, props: dict[str, Any]) -> dict[str, str]:
        fifo = flag(props.get("FifoQueue", False))
        name = local_name(logical_id) + (".fifo" if fifo else "")
        attributes: dict[str, str] = {}
        for key in self.QUEUE_ATTRIBUTES:
            if key not in props:
                continue
            value = props[key]
            if isinstance(value, (dict, list)):
                value = json.dumps(value, separators=(",", ":"))
            elif isinstance(value, bool):
                value = "true" if value else "false"
            attributes[key] = str(value)
        try:
            url = self.sqs.get_queue_url(QueueName=name)["QueueUrl"]
            settable = {k: v for k, v in attributes.items() if k != "FifoQueue"}
            if settable:
                self.sqs.set_queue_attributes(QueueUrl=url, Attributes=settable)
            log(f"queue {name} exists (attributes re-applied)")
        except self.sqs.exceptions.QueueDoesNotExist:
            params: dict[str, Any] = {"QueueName": name, "Attributes": attributes}
            if cfn_tags(props):
                params["tags"] = {t["Key"]: t["Value"] for t in cfn_tags(props)}
            url = self.sqs.create_queue(**params)["QueueUrl"]
            log(f"queue {name} created")
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return {"Ref": url, "Arn": arn, "QueueName": name, "QueueUrl": url}

    # -- EventBridge

    def event_bus(self, logical_id: str, props: dict[str, Any]) -> dict[str, str]:
        name = str(props.get("Name") or local_name(logical_id))
        try:
            arn = self.events.describe_event_bus(Name=name)["Arn"]
            log(f"event bus {name} exists")
        except self.events.exceptions.ResourceNotFoundException:
            arn = self.events.create_event_bus(Name=name)["EventBusArn"]
            log(f"event bus {name} created")
        return {"Ref": name, "Arn": arn, "Name": name}

    def subscribe_billing(self, bus: str) -> str:
        """Billing's local subscription to the notification bus: a rule to a queue; its URL."""
        url = self.sqs.create_queue(QueueName=BILLING_EVENTS_QUEUE)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        pattern = json.dumps({"source": ["paybridge"]})
        self.events.put_rule(Name=BILLING_EVENTS_RULE, EventBusName=bus, EventPattern=pattern)
        self.events.put_targets(Rule=BILLING_EVENTS_RULE, EventBusName=bus, Targets=[{"Id": "billing", "Arn": arn}])
        log(f"billing's rule on {bus} delivers to queue {BILLING_EVENTS_QUEUE}")
        return url

    # -- Secrets Manager

    def secret(self, logical_id: str, props: dict[str, Any]) -> dict[str, str]:
        name = local_name(logical_id)
        try:
            value = self.secrets_path.read_text(encoding="utf-8")
            json.loads(value)
        except OSError as exc:
            raise StackError(f"cannot read the local secret value {self.secrets_path.name}: {exc}") from exc
        except ValueError as exc:
            raise StackError(f"{self.secrets_path.name} is not valid JSON: {exc}") from exc
        description = str(props.get("Description", ""))[:2048]
        try:
            arn = self.sm.describe_secret(SecretId=name)["ARN"]
            self.sm.put_secret_value(SecretId=name, SecretString=value)
            log(f"secret {name} exists (value reloaded from {self.secrets_path.name})")
        except self.sm.exceptions.ResourceNotFoundException:
            params: dict[str, Any] = {"Name": name, "Description": description, "SecretString": value}
            if cfn_tags(props):
                params["Tags"] = cfn_tags(props)
            arn = self.sm.create_secret(**params)["ARN"]
            log(f"secret {name} created from {self.secrets_path.name}")
        # In AWS, Ref of a secret is its ARN; locally the functions get the (shorter) name, which
        # GetSecretValue accepts just the same. Fn::GetAtt <Secret>.Id is the ARN in both.
        return {"Ref": name, "Id": arn, "Arn": arn}


# --------------------------------------------------------------------------- environment


def function_environment(template: dict[str, Any], resolver: Resolver) -> dict[str, str]:
    """Globals.Function + every function's Environment.Variables, resolved locally."""
    globals_vars = (((template.get("Globals") or {}).get("Function") or {}).get("Environment") or {}).get("Variables") or {}
    env: dict[str, str] = {}
    origin: dict[str, str] = {}
    for name, value in globals_vars.items():
        env[name] = env_string(resolver.resolve(value))
        origin[name] = "Globals"
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != FUNCTION:
            continue
        variables = (((resource.get("Properties") or {}).get("Environment") or {}).get("Variables")) or {}
        for name, value in variables.items():
            resolved = env_string(resolver.resolve(value))
            if name in env and origin[name] != "Globals" and env[name] != resolved:
                raise StackError(
                    f"{name} is {env[name]!r} in {origin[name]} but {resolved!r} in {logical_id}; "
                    "the local functions share one env file, so give the variables distinct names"
                )
            env[name] = resolved
            origin[name] = logical_id
    return env


def env_string(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_PLAIN = re.compile(r"[A-Za-z0-9_@%+:,./-]*")


def env_line(name: str, value: str) -> str:
    """`export NAME=value`, quoted so both sh and cargo-lambda's env-file reader read `value`."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise StackError(f"invalid environment variable name {name!r}")
    if _PLAIN.fullmatch(value) and value:
        return f"export {name}={value}"
    if "'" in value or "\\" in value or "\n" in value:
        raise StackError(f"{name}: value {value!r} needs escaping that the env file format does not offer")
    return f"export {name}='{value}'"


def write_env(path: Path, env: dict[str, str]) -> None:
    lines = [
        "# Generated by scripts/stack.py - local paybridge stack. Do not edit; re-run provisioning.",
        "# Source it (`. FILE`) or pass it to `cargo lambda watch --env-file FILE`.",
    ]
    lines += [env_line(k, v) for k, v in env.items()]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)


def provision(state_dir: Path, moto_url: str, stripe_url: str, adyen_url: str, template_path: Path, secrets_path: Path) -> Path:
    template = load_template(template_path)
    provisioner = Provisioner(template, moto_url, secrets_path)
    created = provisioner.run()
    env = function_environment(template, provisioner.resolver)
    if env.get("PAYBRIDGE_EVENT_BUS"):
        env["PAYBRIDGE_LOCAL_BILLING_EVENTS_URL"] = provisioner.subscribe_billing(env["PAYBRIDGE_EVENT_BUS"])
    env.update(
        {
            "AWS_ENDPOINT_URL": moto_url,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "PAYBRIDGE_STRIPE_API_BASE": stripe_url,
            "PAYBRIDGE_LOCALSTRIPE_URL": stripe_url,
            # The local Adyen, in place of the template's AdyenApiBase (Adyen's test endpoint).
            "PAYBRIDGE_ADYEN_API_BASE": f"{adyen_url}/{ADYEN_API_VERSION}",
            "PAYBRIDGE_ADYEN_FAKE_URL": adyen_url,
            "PAYBRIDGE_MOTO_URL": moto_url,
            # Both targets locally (the template's default is http): every notification of the
            # local stack also goes to the bus, so the HTTP tests run with the bus beside them.
            "PAYBRIDGE_NOTIFY_TARGETS": os.environ.get("PAYBRIDGE_NOTIFY_TARGETS", "http,eventbridge"),
            # Stripe through EventBridge is on locally, for a partner event source of this name
            # (in AWS: StripeEventBridgeSource, the source Stripe created; off when empty).
            "PAYBRIDGE_STRIPE_EVENT_SOURCE": LOCAL_STRIPE_EVENT_SOURCE,
            # moto serialises every DynamoDB request (see moto_server.py), so under the
            # concurrency tests a call can queue for seconds; AWS itself needs no such patience.
            "PAYBRIDGE_AWS_OPERATION_TIMEOUT_SECS": "30",
        }
    )
    if os.environ.get("PAYBRIDGE_BILLING_URL"):
        env["PAYBRIDGE_BILLING_URL"] = os.environ["PAYBRIDGE_BILLING_URL"]
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "resources.json").write_text(json.dumps(created, indent=2) + "\n", encoding="utf-8")
    env_path = state_dir / "env"
    write_env(env_path, env)
    log(f"wrote {len(env)} variables to {env_path}")
    return env_path


# --------------------------------------------------------------------------- processes
#
# Every process of a stack runs in its own process group (a new session, like setsid) and is
# recorded in the state dir as NAME.pid; it is stopped as a group (SIGTERM, SIGKILL after 10 s),
# and only while the recorded pid still runs the program named here, so a stale pid file never
# hits an unrelated process that got the same pid. A group whose leader is gone but whose members
# live on (a hard-killed `cargo lambda watch` leaves its function processes) is stopped too: Linux
# does not hand out a pid again while a process group of that number exists.

PROGRAMS = {
    "moto": "moto_server.py",
    "localstripe": "localstripe_server.py",
    "localstripe-functions": "localstripe_server.py",
    "adyen": "adyen_fake.py",
    "receiver": "billing_receiver.py",
    "cargo-lambda": "lambda watch",
    "gateway": "local_gateway.py",
}
# The order things are stopped in: callers before what they call.
STOP_ORDER = ("gateway", "cargo-lambda", "receiver", "localstripe-functions", "adyen", "localstripe", "moto")
HELPERS = ("gateway", "cargo-lambda", "receiver", "localstripe-functions")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((HOST, port)) == 0


def read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def cmdline(pid: int) -> list[str] | None:
    """The arguments of process `pid`; None if it is gone or unreadable, [] for a zombie."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [arg.decode(errors="replace") for arg in raw.split(b"\0") if arg]


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, process group) of `pid` from /proc, or None."""
    stat = proc_stat3(pid)
    return None if stat is None else (stat[0], stat[2])


def proc_stat3(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, process group) of `pid` from /proc, or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1]), int(fields[2])


def all_stats() -> dict[int, tuple[str, int, int]]:
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = proc_stat3(int(entry.name))
            if stat:
                out[int(entry.name)] = stat
    return out


def groups_of_tree(pgid: int) -> set[int]:
    """Group `pgid` and the groups of every descendant of its members.

    cargo lambda watch starts each function in a session of its own; they are stopped with it.
    """
    if not have_proc():
        return {pgid}
    stats = all_stats()
    children: dict[int, list[int]] = {}
    for pid, (_, ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    todo = [pid for pid, (_, _, group) in stats.items() if group == pgid]
    groups, seen = {pgid}, set()
    own = os.getpgrp()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        group = stats[pid][2] if pid in stats else pgid
        if group != own:
            groups.add(group)
        todo += children.get(pid, [])
    return groups


def have_proc() -> bool:
    return Path("/proc/self/stat").exists()


def is_ours(pid: int, name: str) -> bool:
    """True if `pid` is alive and still runs the program recorded as `name` (guards against pid reuse)."""
    args = cmdline(pid)
    if args is None:
        if have_proc():
            return False
        try:  # no /proc (not Linux): trust the pid file
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    return PROGRAMS[name] in " ".join(args)


def pid_alive(pid: int) -> bool:
    try:
        # Reap it if it is our child (a process this stack.py started and now stops).
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = proc_stat(pid)
    return stat is None or stat[0] != "Z"


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group `pgid`."""
    if not have_proc():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = proc_stat(int(entry.name))
            if stat and stat[1] == pgid and stat[0] != "Z":
                members.append(int(entry.name))
    return members


def group_alive(pgid: int) -> bool:
    pid_alive(pgid)  # reaps the leader if it is our child
    return bool(group_members(pgid))


def recorded_group(state_dir: Path, name: str) -> int | None:
    """The process group recorded in DIR/NAME.pid, if it still runs (see above), else None."""
    pid = read_int(state_dir / f"{name}.pid")
    if pid is None:
        return None
    if is_ours(pid, name):
        return pid
    if not pid_alive(pid) and group_members(pid):
        return pid  # the leader is gone, its group lives on
    return None


def kill_group(pgid: int, name: str) -> None:
    """SIGTERM process group `pgid` (and the groups its members started), then SIGKILL what
    lingers after 10 s."""
    groups = groups_of_tree(pgid)

    def alive() -> bool:
        return any(group_alive(g) for g in groups)

    for sig, grace in ((signal.SIGTERM, STOP_TIMEOUT_SECS), (signal.SIGKILL, 5.0)):
        groups |= groups_of_tree(pgid)
        for group in groups:
            try:
                os.killpg(group, sig)
            except (ProcessLookupError, PermissionError):
                pass
        end = time.monotonic() + grace
        while time.monotonic() < end and alive():
            time.sleep(0.1)
        if not alive():
            log(f"{name} stopped (pid {pgid})")
            return
        if sig == signal.SIGTERM:
            log(f"{name} (pid {pgid}) did not stop within {STOP_TIMEOUT_SECS:.0f} s; killing it")
    raise StackError(f"{name} (pid {pgid}) did not stop")


def forget(state_dir: Path, name: str) -> None:
    (state_dir / f"{name}.pid").unlink(missing_ok=True)
    (state_dir / f"{name}.port").unlink(missing_ok=True)


def stop(state_dir: Path, name: str) -> bool:
    """Stop one process recorded in this state dir (its whole process group); True if it ran."""
    pgid = recorded_group(state_dir, name)
    if pgid is not None:
        kill_group(pgid, name)
    forget(state_dir, name)
    return pgid is not None


def inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def stragglers(root: Path) -> dict[int, str]:
    """Process groups of our programs that belong to a state dir under `root` and no pid file names.

    A process belongs to it when its working directory or one of its path arguments lies under
    `root` (moto and localstripe run in their state dir; the gateway, receiver and cargo lambda
    watch are given files there). Their groups are stopped whole, so the functions that cargo
    lambda watch runs go with it.
    """
    if not have_proc():
        return {}
    top = os.path.realpath(root)
    own = os.getpgrp()
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        args = cmdline(pid)
        if not args:
            continue
        joined = " ".join(args)
        name = next((n for n, marker in PROGRAMS.items() if marker in joined), None)
        if name is None:
            continue
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue  # another user's process
        paths = [cwd] + [os.path.realpath(os.path.join(cwd, a)) for a in args[1:] if os.sep in a and "://" not in a]
        stat = proc_stat(pid)
        if stat and stat[1] != own and any(inside(p, top) for p in paths):
            found.setdefault(stat[1], name)
    return found


def orphaned_functions(lambda_port: int | None = None) -> dict[int, str]:
    """Functions of this checkout that a `cargo lambda watch` ran and that outlived it (it was
    killed hard); with `lambda_port`, only those it served on that port. {process group: name}."""
    if not have_proc():
        return {}
    stats = all_stats()
    root = os.path.realpath(ROOT)
    found: dict[int, str] = {}
    for pid, (_, ppid, group) in stats.items():
        parent = cmdline(ppid) if ppid > 1 else None
        if parent and PROGRAMS["cargo-lambda"] in " ".join(parent):
            continue  # its cargo lambda watch still runs: stopped with it
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        env = dict(item.decode(errors="replace").partition("=")[::2] for item in environ if b"=" in item)
        runtime = env.get("AWS_LAMBDA_RUNTIME_API", "")
        manifest = env.get("CARGO_MANIFEST_DIR", "")
        if not (runtime and manifest and inside(os.path.realpath(manifest), root)):
            continue
        port = urllib.parse.urlsplit(runtime if "://" in runtime else f"http://{runtime}").port
        if lambda_port is None or port == lambda_port:
            found.setdefault(group, f"function {env.get('AWS_LAMBDA_FUNCTION_NAME', '?')}")
    return found


def stop_stack(state_dir: Path) -> list[str]:
    """Stop everything recorded in `state_dir` (and stragglers that refer to it); the names stopped."""
    lambda_port = read_int(state_dir / "cargo-lambda.port")
    stopped = [name for name in STOP_ORDER if stop(state_dir, name)]
    leftovers = stragglers(state_dir)
    if lambda_port:
        leftovers.update(orphaned_functions(lambda_port))
    for pgid, name in leftovers.items():
        log(f"stopping a leftover {name} (process group {pgid}) of {state_dir}")
        kill_group(pgid, name)
        stopped.append(name)
    return stopped


def running(state_dir: Path, service: str) -> tuple[int, int] | None:
    """(pid, port) of a live server started by `up` in this state dir, else None."""
    pid = read_int(state_dir / f"{service}.pid")
    port = read_int(state_dir / f"{service}.port")
    if pid is None or port is None or not is_ours(pid, service):
        return None
    return pid, port


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text[-lines:]) or "    (empty log)"


HEALTH_PATHS = {"localstripe": "/v1/customers?limit=1", "adyen": "/_paybridge/health", "moto": "/moto-api/"}


def answers(service: str, port: int) -> bool:
    url = f"http://{HOST}:{port}{HEALTH_PATHS[service]}"
    request = urllib.request.Request(url)
    if service == "localstripe":
        request.add_header("Authorization", "Bearer sk_test_stackcheck")
    try:
        with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310 - loopback only
            return response.status < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except (urllib.error.URLError, OSError):
        return False


def start(state_dir: Path, service: str, port: int, secrets: Path) -> subprocess.Popen[bytes]:
    log_path = state_dir / f"{service}.log"
    # The local Adyen reads its API key, merchant account and HMAC key from the local secret.
    extra = ["--secrets", str(secrets.resolve())] if service == "adyen" else []
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(  # noqa: S603 - fixed argv
            [sys.executable, "-u", str(SERVER_SCRIPTS[service]), str(port), *extra],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=state_dir,
            start_new_session=True,  # own process group: `down` signals the whole group
        )
    (state_dir / f"{service}.pid").write_text(f"{process.pid}\n")
    (state_dir / f"{service}.port").write_text(f"{port}\n")
    return process


def wait_until_up(state_dir: Path, service: str, process: subprocess.Popen[bytes], port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(
                f"{service} exited during start-up (port {port}, exit code {process.returncode}); "
                f"last lines of {service}.log:\n" + log_tail(state_dir / f"{service}.log")
            )
        if answers(service, port):
            return
        time.sleep(0.2)
    raise StackError(
        f"{service} did not answer on {HOST}:{port} within {START_TIMEOUT_SECS:.0f}s; "
        f"last lines of {service}.log:\n" + log_tail(state_dir / f"{service}.log")
    )


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived (raised in the main thread by Signals)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Signals:
    """SIGINT/SIGTERM handling of `dev` and `run`.

    While they start or watch their processes, a signal raises Interrupted, so that everything
    started so far is stopped again. While `run` waits for its command, the signal is passed on to
    the command instead (SIGTERM: killed after 10 s) and its end awaited, as a shell would. While
    stopping, further signals are only acknowledged, so a second Ctrl-C cannot leave half a stack.
    """

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.child: subprocess.Popen[bytes] | None = None
        self.received: int | None = None
        self.term_at: float | None = None
        self.stopping = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self.handle)

    def handle(self, signum: int, _frame: Any) -> None:
        if self.stopping:
            self.say("stopping everything; one moment")
            return
        self.received = self.received or signum
        child = self.child
        if child is not None and child.poll() is None:
            try:
                child.send_signal(signum)
            except ProcessLookupError:
                pass
            if signum == signal.SIGTERM and self.term_at is None:
                self.term_at = time.monotonic()
            return
        raise Interrupted(signum)


class Supervisor:
    """The helper processes of `dev` and `run`: started in their own process groups, recorded in
    the state dir, watched, and stopped again (last started, first stopped)."""

    def __init__(self, state_dir: Path, say: Callable[[str], None]) -> None:
        self.state_dir = state_dir
        self.say = say
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str], log_path: Path | None = None, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start `argv` in a new session (its own process group); output to `log_path`, or to this terminal."""
        out = log_path.open("ab") if log_path else None
        try:
            process = subprocess.Popen(  # noqa: S603 - fixed argv
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT if out else None,
                cwd=ROOT,
                env=env,
                start_new_session=True,
            )
        finally:
            if out:
                out.close()
        self.processes.append((name, process))
        (self.state_dir / f"{name}.pid").write_text(f"{process.pid}\n")
        return process

    def ended(self) -> str | None:
        """The name of a process that is no longer running (helpers, then the stack's servers)."""
        for name, process in self.processes:
            if process.poll() is not None:
                return name
        for service in SERVICES:
            if running(self.state_dir, service) is None:
                return service
        return None

    def wait_for(self, what: str, name: str, ready: Callable[[], bool], seconds: float | None, log_path: Path | None) -> None:
        """Wait until `ready()`; fail if one of the processes ends first, or after `seconds`."""
        deadline = None if seconds is None else time.monotonic() + seconds

        def tail() -> str:
            return f"; last lines of {log_path}:\n{log_tail(log_path, 30)}" if log_path else " (see above)"

        while not ready():
            gone = self.ended()
            if gone is not None:
                if gone == name:
                    raise StackError(f"{what} ended during start-up{tail()}")
                raise StackError(f"{gone} ended during start-up ({'see above' if log_path is None else f'see {gone}.log'})")
            if deadline is not None and time.monotonic() > deadline:
                raise StackError(f"{what} was not ready within {seconds:.0f} s{tail()}")
            time.sleep(0.2)

    def stop_all(self) -> None:
        for name, process in reversed(self.processes):
            try:
                if group_alive(process.pid):
                    kill_group(process.pid, name)
            except StackError as exc:
                log(str(exc))
            (self.state_dir / f"{name}.pid").unlink(missing_ok=True)
        self.processes.clear()


def sayer(prefix: str) -> Callable[[str], None]:
    def say(msg: str) -> None:
        print(f"{prefix}: {msg}", file=sys.stderr, flush=True)

    return say


def cargo_lambda_on_path() -> bool:
    """True if cargo-lambda is on PATH, or next to this interpreter (.venv/bin; then put there)."""
    if shutil.which("cargo-lambda"):
        return True
    bin_dir = Path(sys.executable).parent
    if (bin_dir / "cargo-lambda").exists():
        os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
        return True
    return False


def served_functions() -> list[str]:
    """The functions the local gateway serves (from template.yaml): what dev and run build."""
    out = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, str(SCRIPTS / "local_gateway.py"), "--functions"], check=True, capture_output=True, text=True
    ).stdout
    served = [line.strip() for line in out.splitlines() if line.strip()]
    if not served:
        raise StackError("template.yaml gives the local gateway no function to serve")
    return served


def build_functions(served: list[str]) -> int:
    """`cargo build --bin …` of the served functions: the same selection as cargo lambda watch's
    `cargo run --bin <function>`, so it finds them fresh and the first request is quick."""
    argv = ["cargo", "build"]
    for function in served:
        argv += ["--bin", function]
    return subprocess.run(argv, cwd=ROOT, check=False).returncode  # noqa: S603 - fixed argv


def read_env(path: Path) -> dict[str, str]:
    """The variables of an env file written by write_env (`export NAME=value`, maybe single-quoted)."""
    env = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.removeprefix("export ").partition("=")
        if sep:
            if len(value) >= 2 and value[0] == value[-1] == "'":
                value = value[1:-1]
            env[name.strip()] = value
    return env


def billing_port(secrets_path: Path) -> int:
    """The port of billing.endpoint in the local secret when it is on this machine, else 3900."""
    try:
        endpoint = urllib.parse.urlsplit(json.loads(secrets_path.read_text(encoding="utf-8"))["billing"]["endpoint"])
        if endpoint.hostname in ("127.0.0.1", "localhost") and endpoint.port:
            return int(endpoint.port)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return 3900


def file_ready(path: Path) -> Callable[[], bool]:
    return lambda: path.exists() and path.stat().st_size > 0


# --------------------------------------------------------------------------- commands


def urls(ports: dict[str, int]) -> tuple[str, str, str]:
    """(moto URL, localstripe URL, local Adyen URL) of these ports."""
    return tuple(f"http://{HOST}:{ports[service]}" for service in SERVICES)  # type: ignore[return-value]


def up(state_dir: Path, moto_port: int, stripe_port: int, adyen_port: int, template: Path, secrets: Path) -> tuple[str, str, str, Path]:
    """Start moto, localstripe and the local Adyen (port 0: a free one), provision;
    (moto URL, localstripe URL, local Adyen URL, env file)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    wanted = {"moto": moto_port or 0, "localstripe": stripe_port or 0, "adyen": adyen_port or 0}
    ports: dict[str, int] = {}
    started: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        for service in SERVICES:
            live = running(state_dir, service)
            if live:
                pid, port = live
                if wanted[service] and wanted[service] != port:
                    raise StackError(
                        f"{service} already runs from {state_dir} on port {port}, not {wanted[service]}; "
                        "run `down` first"
                    )
                log(f"{service} already running (pid {pid}, port {port})")
                ports[service] = port
                continue
            forget(state_dir, service)  # stale pid/port files of a stack that died
            deadline = time.monotonic() + START_TIMEOUT_SECS
            for attempt in range(3):
                port = wanted[service] or free_port()
                if port_in_use(port):
                    raise StackError(f"port {HOST}:{port} for {service} is already taken by another process")
                process = start(state_dir, service, port, secrets)
                started.append((service, process))
                try:
                    wait_until_up(state_dir, service, process, port, deadline)
                    break
                except StackError:
                    started.pop()
                    kill_group(process.pid, service)
                    process.wait()
                    forget(state_dir, service)
                    # A free port picked by us may have been taken in between: try another one.
                    if wanted[service] or attempt == 2 or time.monotonic() >= deadline:
                        raise
                    log(f"{service} did not start on port {port}; trying another port")
            log(f"{service} up on {HOST}:{port} (pid {process.pid})")
            ports[service] = port
        moto_url, stripe_url, adyen_url = urls(ports)
        env_path = provision(state_dir, moto_url, stripe_url, adyen_url, template, secrets)
    except BaseException:
        # Leave nothing half-started behind.
        for service, process in started:
            try:
                kill_group(process.pid, service)
                process.wait()
            except StackError as exc:
                log(str(exc))
            forget(state_dir, service)
        raise
    print(f"moto:        {moto_url}")
    print(f"localstripe: {stripe_url}")
    print(f"adyen:       {adyen_url}/{ADYEN_API_VERSION}  (control: {adyen_url}/_paybridge/)")
    print(f"env file:    {env_path}", flush=True)
    return moto_url, stripe_url, adyen_url, env_path


def point_adyen_at(adyen_url: str, webhook_url: str) -> None:
    """Sends the local Adyen's notifications to `webhook_url` (the local gateway's /webhooks/adyen)."""
    request = urllib.request.Request(
        f"{adyen_url}/_paybridge/config", data=json.dumps({"webhook_url": webhook_url}).encode(), method="POST"
    )
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - loopback only
            pass
    except (urllib.error.URLError, OSError) as exc:
        raise StackError(f"cannot point the local Adyen at {webhook_url}: {exc}") from exc


def cmd_up(args: argparse.Namespace) -> int:
    up(args.state_dir, args.moto_port, args.stripe_port, args.adyen_port, args.template, args.secrets)
    return 0


def cmd_provision(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir
    moto_url, stripe_url, adyen_url = args.moto_url, args.stripe_url, args.adyen_url
    if not (moto_url and stripe_url and adyen_url):
        ports = {}
        for service in SERVICES:
            live = running(state_dir, service)
            if not live:
                raise StackError(f"{service} is not running from {state_dir}; run `up` (or pass --moto-url/--stripe-url/--adyen-url)")
            ports[service] = live[1]
        default_moto, default_stripe, default_adyen = urls(ports)
        moto_url, stripe_url, adyen_url = moto_url or default_moto, stripe_url or default_stripe, adyen_url or default_adyen
    provision(state_dir, moto_url, stripe_url, adyen_url, args.template, args.secrets)
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir
    ports = {}
    for service in SERVICES:
        live = running(state_dir, service)
        if not live:
            raise StackError(f"{service} is not running from {state_dir}; nothing to reset (use `up`)")
        ports[service] = live[1]
    moto_url, stripe_url, adyen_url = urls(ports)
    wipes = (("POST", f"{moto_url}/moto-api/reset"), ("DELETE", f"{stripe_url}/_config/data"), ("POST", f"{adyen_url}/_paybridge/reset"))
    for method, url in wipes:
        request = urllib.request.Request(url, method=method)
        request.add_header("Authorization", "Bearer sk_test_stackreset")
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - loopback only
            pass
    log("moto, localstripe and local Adyen data wiped (localstripe's webhook registrations and the local Adyen's webhook URL survive a wipe)")
    provision(state_dir, moto_url, stripe_url, adyen_url, args.template, args.secrets)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir
    if not state_dir.is_dir():
        log(f"nothing to stop ({state_dir} does not exist)")
        return 0
    if not stop_stack(state_dir):
        log(f"nothing was running from {state_dir}")
    (state_dir / "env").unlink(missing_ok=True)
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    root: Path = args.root
    if root.is_dir():
        for state_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            stop_stack(state_dir)
        # Anything of a stack under root whose state dir (or pid file) is already gone.
        for pgid, name in {**stragglers(root), **orphaned_functions()}.items():
            log(f"stopping a leftover {name} (process group {pgid}) of a stack under {root}")
            kill_group(pgid, name)
        shutil.rmtree(root)
        log(f"removed {root}")
    else:
        log(f"nothing to clean ({root} does not exist)")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir
    all_up = True
    for service in SERVICES:
        live = running(state_dir, service)
        if live:
            pid, port = live
            health = "answering" if answers(service, port) else "NOT answering"
            path = f"/{ADYEN_API_VERSION}" if service == "adyen" else ""
            print(f"{service:12} running  pid {pid:<7} http://{HOST}:{port}{path}  {health}")
            all_up = all_up and health == "answering"
        else:
            print(f"{service:12} stopped")
            all_up = False
    for name in HELPERS:
        pgid = recorded_group(state_dir, name)
        if pgid is not None:
            print(f"{name:12} running  pid {pgid}")
    env_path = state_dir / "env"
    print(f"{'env file':12} {env_path if env_path.exists() else '(none)'}")
    return 0 if all_up else 3


DEV_BANNER = """
paybridge local stack (state in {state}/, env file {state}/env)
  gateway           http://127.0.0.1:{gateway}        template.yaml's routes; retry-worker fed from the work queue
                                                {iam}
  billing receiver  {billing}
  localstripe       http://127.0.0.1:{stripe}        its webhooks go to http://127.0.0.1:{gateway}/webhooks/stripe
  local Adyen       http://127.0.0.1:{adyen}/v72    Checkout v72; notifications to http://127.0.0.1:{gateway}/webhooks/adyen; control: /_paybridge/
  moto (AWS APIs)   http://127.0.0.1:{moto}        DynamoDB, SQS, Secrets Manager
  functions         http://127.0.0.1:{lam}        cargo lambda watch: {served} (rebuilt when you save)
Logs: this terminal; also {state}/gateway.log, receiver.log, moto.log, localstripe.log, adyen.log.
Try it: {demo}   (or curl, e.g.:)
  curl -s http://127.0.0.1:{gateway}/charges{sign} -H 'content-type: application/json' -H 'Idempotency-Key: try-1' \\
    -d '{{"invoice_id":"inv_1","amount":1999,"currency":"eur","gateway":"stripe","payment_method":"pm_card_visa"}}'
  curl -s http://127.0.0.1:{gateway}/charges{sign} -H 'content-type: application/json' -H 'Idempotency-Key: try-2' \\
    -d '{{"invoice_id":"inv_2","amount":1999,"currency":"eur","gateway":"adyen","payment_method":"stored_ok","customer":"shopper_1"}}'
Ctrl-C stops everything.
"""


def iam_banner(iam: bool, env: dict[str, str]) -> dict[str, str]:
    """The banner's IAM line, the demo command and the curl signing options (empty without --iam)."""
    if not iam:
        return {"iam": "billing routes open to any caller (make dev LOCAL_IAM=1 checks SigV4)", "demo": "make demo", "sign": ""}
    region = env.get("AWS_REGION", REGION)
    user = f"{env.get('AWS_ACCESS_KEY_ID', '')}:{env.get('AWS_SECRET_ACCESS_KEY', '')}"
    return {
        "iam": f"billing routes check SigV4 (LOCAL_IAM=1): the env file's AWS credentials, {region}, execute-api",
        "demo": "make demo LOCAL_IAM=1",
        "sign": f' --aws-sigv4 "aws:amz:{region}:execute-api" --user "{user}"',
    }


def cmd_dev(args: argparse.Namespace) -> int:
    """`make dev`: the whole stack in the foreground until Ctrl-C (or until one of its processes ends)."""
    say = sayer("dev")
    state_dir: Path = args.state_dir
    state = state_dir.resolve()
    if not cargo_lambda_on_path():
        raise StackError("cargo-lambda not on PATH; run 'make dev' (it puts .venv/bin on PATH)")
    again = "Stop it with 'make stack-down' (or end the other 'make dev' with Ctrl-C), then run 'make dev' again."
    if any(running(state_dir, service) for service in SERVICES):
        raise StackError(f"a dev stack is already running from {state_dir} (see 'make stack-status').\n     {again}")
    for name in HELPERS:
        pgid = recorded_group(state_dir, name)
        if pgid is not None:
            raise StackError(f"the {name} of an earlier 'make dev' still runs (pid {pgid}).\n     {again}")

    receiver_port = args.receiver_port or billing_port(args.secrets)
    if args.receiver and args.receiver_port and not os.environ.get("PAYBRIDGE_BILLING_URL"):
        os.environ["PAYBRIDGE_BILLING_URL"] = f"http://{HOST}:{receiver_port}/paybridge"
    ports = [
        ("moto", args.moto_port), ("localstripe", args.stripe_port), ("the local Adyen", args.adyen_port),
        ("cargo-lambda", args.lambda_port), ("gateway", args.gateway_port),
    ]
    if args.receiver:
        ports.append(("billing receiver", receiver_port))
    for what, port in ports:
        if port_in_use(port):
            raise StackError(
                f"port {HOST}:{port} (for {what}) is already in use by another process.\n"
                f"     Find it with 'ss -ltnp | grep :{port}' and stop it, or, if it is an old dev stack, run 'make stack-down'."
            )

    signals = Signals(say)
    supervisor = Supervisor(state, say)
    status = 1
    try:
        _, stripe_url, adyen_url, env_path = up(state_dir, args.moto_port, args.stripe_port, args.adyen_port, args.template, args.secrets)
        served = served_functions()
        say(f"building {' '.join(served)} (a few minutes the first time; later only what changed)")
        build_started = time.monotonic()
        if build_functions(served) == 0:
            say(f"functions built in {time.monotonic() - build_started:.0f} s")
        else:
            say("the functions do not build (see above); starting anyway: cargo lambda watch rebuilds when you save a fix")

        python = [sys.executable, "-u"]
        if args.receiver:
            supervisor.start(
                "receiver",
                python + [str(SCRIPTS / "billing_receiver.py"), "--port", str(receiver_port), "--log-file", str(state / "receiver.log")],
            )
        supervisor.start(
            "cargo-lambda", ["cargo", "lambda", "watch", "-A", HOST, "-P", str(args.lambda_port), "--env-file", str(env_path.resolve())]
        )
        (state / "cargo-lambda.port").write_text(f"{args.lambda_port}\n")
        ready_file = state / "gateway.url"
        ready_file.unlink(missing_ok=True)
        supervisor.start(
            "gateway",
            python
            + [
                str(SCRIPTS / "local_gateway.py"),
                "--port", str(args.gateway_port),
                "--lambda-url", f"http://{HOST}:{args.lambda_port}",
                "--env-file", str(env_path.resolve()),
                "--register-stripe-webhook", stripe_url,
                "--ready-file", str(ready_file),
                "--log-file", str(state / "gateway.log"),
            ]
            + (["--iam"] if args.iam else []),
        )
        # Until the gateway serves, has registered with localstripe and reaches cargo lambda watch
        # (the gateway itself gives up after 120 s and ends).
        supervisor.wait_for("the gateway", "gateway", file_ready(ready_file), None, None)
        point_adyen_at(adyen_url, f"http://{HOST}:{args.gateway_port}/webhooks/adyen")

        if args.receiver:
            billing = f"http://127.0.0.1:{receiver_port}        verifies and prints notifications; curl -s http://127.0.0.1:{receiver_port}/received"
        else:
            target = os.environ.get("PAYBRIDGE_BILLING_URL") or "billing.endpoint of local/secrets.json"
            billing = f"not started (BILLING_RECEIVER=0); notifications go to {target}"
        print(
            DEV_BANNER.format(
                state=state_dir, gateway=args.gateway_port, billing=billing, stripe=args.stripe_port, adyen=args.adyen_port,
                moto=args.moto_port, lam=args.lambda_port, served=" ".join(served), **iam_banner(args.iam, read_env(env_path)),
            ),
            flush=True,
        )
        # Run until Ctrl-C or until one of the processes ends (then stop the rest).
        while True:
            gone = supervisor.ended()
            if gone is not None:
                raise StackError(f"{gone} ended; stopping everything")
            time.sleep(0.5)
    except Interrupted as exc:
        status = 0 if exc.signum == signal.SIGINT else 128 + exc.signum  # Ctrl-C is how make dev is meant to end
    except StackError as exc:
        say(str(exc))
        status = 1
    finally:
        signals.stopping = True
        print(file=sys.stderr)
        supervisor.stop_all()
        say("stopping the local stack")
        stop_stack(state_dir)
        (state_dir / "env").unlink(missing_ok=True)
    return status


def cmd_run(args: argparse.Namespace) -> int:
    """`make test`: COMMAND against a fresh stack on free ports, then the stack stopped whatever happened."""
    say = sayer("with-stack")
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        say("usage: stack.py run [--functions] --state-dir DIR -- COMMAND [ARGS...]")
        return 2
    state_dir: Path = args.state_dir
    state = state_dir.resolve()
    if args.functions and not cargo_lambda_on_path():
        say("cargo-lambda not on PATH (make puts .venv/bin there)")
        return 2

    signals = Signals(say)
    supervisor = Supervisor(state, say)
    status = 0
    child: subprocess.Popen[bytes] | None = None
    try:
        _, _, adyen_url, env_path = up(state_dir, 0, 0, 0, args.template, args.secrets)
        extra: dict[str, str] = {}
        if args.functions:
            python = [sys.executable, "-u"]
            # The functions' own localstripe: its webhooks then concern only the end-to-end
            # tests' charges, never the charges other tests make on the stack's localstripe.
            stripe_port = free_port()
            stripe_url = f"http://{HOST}:{stripe_port}"
            stripe_log = state / "localstripe-functions.log"
            supervisor.start("localstripe-functions", python + [str(SERVER_SCRIPTS["localstripe"]), str(stripe_port)], stripe_log)
            supervisor.wait_for(
                "the functions' localstripe", "localstripe-functions", lambda: answers("localstripe", stripe_port), 30, stripe_log
            )

            receiver_file, receiver_log = state / "receiver.port", state / "receiver.log"
            receiver_file.unlink(missing_ok=True)
            supervisor.start(
                "receiver", python + [str(SCRIPTS / "billing_receiver.py"), "--port", "0", "--port-file", str(receiver_file)], receiver_log
            )
            supervisor.wait_for("the billing receiver", "receiver", file_ready(receiver_file), 30, receiver_log)
            receiver_url = f"http://{HOST}:{receiver_file.read_text().strip()}"

            # The functions' environment: the stack's, with their localstripe and the receiver.
            replaced = ("PAYBRIDGE_STRIPE_API_BASE", "PAYBRIDGE_LOCALSTRIPE_URL", "PAYBRIDGE_BILLING_URL")
            lines = [line for line in env_path.read_text(encoding="utf-8").splitlines() if not line.startswith(tuple(f"export {n}=" for n in replaced))]
            lines += [
                f"export PAYBRIDGE_STRIPE_API_BASE={stripe_url}",
                f"export PAYBRIDGE_LOCALSTRIPE_URL={stripe_url}",
                f"export PAYBRIDGE_BILLING_URL={receiver_url}/paybridge",
            ]
            functions_env = state / "functions.env"
            functions_env.write_text("\n".join(lines) + "\n", encoding="utf-8")

            # Built now, where a compile error is plain to see, rather than inside cargo lambda
            # watch on the first request.
            served = served_functions()
            say(f"building the functions the local gateway serves ({' '.join(served)})")
            build_started = time.monotonic()
            built = build_functions(served)
            if built != 0:
                status = built
                raise StackError(f"the functions do not build (cargo build exit status {built})")
            say(f"functions built in {time.monotonic() - build_started:.0f} s")

            lambda_port = free_port()
            supervisor.start(
                "cargo-lambda",
                ["cargo", "lambda", "watch", "-A", HOST, "-P", str(lambda_port), "--env-file", str(functions_env)],
                state / "cargo-lambda.log",
            )
            (state / "cargo-lambda.port").write_text(f"{lambda_port}\n")
            ready_file, gateway_log = state / "gateway.url", state / "gateway.log"
            ready_file.unlink(missing_ok=True)
            supervisor.start(
                "gateway",
                python
                + [
                    str(SCRIPTS / "local_gateway.py"),
                    "--port", "0",
                    "--lambda-url", f"http://{HOST}:{lambda_port}",
                    "--env-file", str(env_path.resolve()),
                    "--register-stripe-webhook", stripe_url,
                    "--ready-file", str(ready_file),
                ],
                gateway_log,
            )
            supervisor.wait_for("the local gateway", "gateway", file_ready(ready_file), 180, gateway_log)
            gateway_url = ready_file.read_text().strip()
            point_adyen_at(adyen_url, f"{gateway_url}/webhooks/adyen")
            say(
                f"local gateway {gateway_url} (cargo lambda watch on :{lambda_port}), billing receiver {receiver_url}, "
                f"functions' localstripe {stripe_url}, local Adyen {adyen_url} (notifications to the gateway)"
            )
            extra = {
                "PAYBRIDGE_GATEWAY_URL": gateway_url,
                "PAYBRIDGE_RECEIVER_URL": receiver_url,
                "PAYBRIDGE_FUNCTIONS_STRIPE_URL": stripe_url,
                # cargo lambda watch itself: direct invocations (tests/tests/direct_invocation.rs).
                "PAYBRIDGE_LAMBDA_URL": f"http://{HOST}:{lambda_port}",
            }

        env = {**os.environ, **read_env(env_path), **extra, "PAYBRIDGE_STACK_DIR": str(state)}
        # In the foreground, in this process group: Ctrl-C reaches it as it reaches us.
        child = subprocess.Popen(command, env=env)  # noqa: S603 - the caller's command
        signals.child = child
        while True:
            try:
                status = child.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if signals.term_at is not None and time.monotonic() - signals.term_at > STOP_TIMEOUT_SECS:
                    say(f"{command[0]} did not end within {STOP_TIMEOUT_SECS:.0f} s of SIGTERM; killing it")
                    child.kill()
        signals.child = None
        if signals.received:
            status = 128 + signals.received
    except FileNotFoundError as exc:
        say(f"cannot run {command[0]}: {exc.strerror}")
        status = 127
    except Interrupted as exc:
        status = 128 + exc.signum
    except StackError as exc:
        say(str(exc))
        status = status or 1
    finally:
        signals.stopping = True
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()
        supervisor.stop_all()
        try:
            stop_stack(state_dir)
        except StackError as exc:
            say(str(exc))
            status = status or 1
        if status == 0:
            shutil.rmtree(state_dir, ignore_errors=True)
        else:
            say(f"exit status {status}; stack logs kept in {state_dir}/")
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command_name", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--state-dir", type=Path, required=True, help="where pids, logs and the env file live")

    def provisioning(p: argparse.ArgumentParser) -> None:
        p.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE, help="SAM template (default: template.yaml)")
        p.add_argument("--secrets", type=Path, default=DEFAULT_SECRETS, help="local secret value (default: local/secrets.json)")

    p_up = sub.add_parser("up", help="start moto, localstripe and the local Adyen, provision, write DIR/env")
    common(p_up)
    provisioning(p_up)
    p_up.add_argument("--moto-port", type=int, default=0, help="0 or omitted: a free port")
    p_up.add_argument("--stripe-port", type=int, default=0, help="0 or omitted: a free port")
    p_up.add_argument("--adyen-port", type=int, default=0, help="0 or omitted: a free port")
    p_up.set_defaults(func=cmd_up)

    p_prov = sub.add_parser("provision", help="(re)create the template's resources in moto, write DIR/env")
    common(p_prov)
    provisioning(p_prov)
    p_prov.add_argument("--moto-url", help="default: the moto that `up` started in DIR")
    p_prov.add_argument("--stripe-url", help="default: the localstripe that `up` started in DIR")
    p_prov.add_argument("--adyen-url", help="default: the local Adyen that `up` started in DIR")
    p_prov.set_defaults(func=cmd_provision)

    p_reset = sub.add_parser("reset", help="wipe all data in moto, localstripe and the local Adyen, then provision again")
    common(p_reset)
    provisioning(p_reset)
    p_reset.set_defaults(func=cmd_reset)

    p_down = sub.add_parser("down", help="stop everything started in DIR (servers, gateway, receiver, cargo lambda watch)")
    common(p_down)
    p_down.set_defaults(func=cmd_down)

    p_status = sub.add_parser("status", help="show what runs from DIR (exit 3 unless moto, localstripe and the local Adyen answer)")
    common(p_status)
    p_status.set_defaults(func=cmd_status)

    p_clean = sub.add_parser("clean", help="stop every stack under ROOT (and leftovers that refer to it), delete ROOT")
    p_clean.add_argument("--root", type=Path, default=ROOT / ".stack", help="default: .stack of the checkout")
    p_clean.set_defaults(func=cmd_clean)

    p_dev = sub.add_parser("dev", help="the whole stack with the functions, in the foreground until Ctrl-C (make dev)")
    common(p_dev)
    provisioning(p_dev)
    p_dev.add_argument("--moto-port", type=int, default=4566)
    p_dev.add_argument("--stripe-port", type=int, default=8420)
    p_dev.add_argument("--adyen-port", type=int, default=8430, help="the local Adyen (default %(default)s)")
    p_dev.add_argument("--lambda-port", type=int, default=9000, help="cargo lambda watch (default %(default)s)")
    p_dev.add_argument("--gateway-port", type=int, default=3000)
    p_dev.add_argument(
        "--receiver-port", type=int, help="default: the port of billing.endpoint in local/secrets.json (3900); "
        "when given, the functions deliver there (PAYBRIDGE_BILLING_URL) unless that is set"
    )
    p_dev.add_argument(
        "--no-receiver", dest="receiver", action="store_false", default=os.environ.get("BILLING_RECEIVER", "1") != "0",
        help="do not start the billing receiver (also BILLING_RECEIVER=0)",
    )
    p_dev.add_argument(
        "--iam", action="store_true",
        help="the gateway checks SigV4 on the AWS_IAM (billing) routes with the env file's credentials (make dev LOCAL_IAM=1)",
    )
    p_dev.set_defaults(func=cmd_dev)

    p_run = sub.add_parser("run", help="COMMAND against a fresh stack on free ports, stopped afterwards (make test)")
    common(p_run)
    provisioning(p_run)
    p_run.add_argument("--functions", action="store_true", help="also the functions, gateway, receiver and their localstripe")
    p_run.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    p_run.set_defaults(func=cmd_run)

    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except StackError as exc:
        if args.command_name in ("dev", "run"):
            sayer("dev" if args.command_name == "dev" else "with-stack")(str(exc))
        else:
            log(f"error: {exc}")
        return 1
    except (KeyboardInterrupt, Interrupted):
        return 130


if __name__ == "__main__":
    sys.exit(main())
