#!/usr/bin/env python3
"""The local paybridge stack: moto server (DynamoDB, SQS, Secrets Manager) and localstripe.

    stack.py up        --state-dir DIR [--moto-port N] [--stripe-port N]
    stack.py provision --state-dir DIR            (or --moto-url URL --stripe-url URL)
    stack.py reset     --state-dir DIR            (wipe moto + localstripe, provision again)
    stack.py down      --state-dir DIR
    stack.py status    --state-dir DIR

`up` starts both servers in the background on 127.0.0.1 (port 0 or omitted: a free port), waits
until they answer, provisions, and writes DIR/env. `provision` creates every
AWS::DynamoDB::Table, AWS::SQS::Queue and AWS::SecretsManager::Secret of template.yaml in moto,
from the same properties, and writes DIR/env: the functions' environment variables resolved
against those local resources, plus what a local run needs (endpoint, region, dummy
credentials, localstripe URL). It is idempotent: run it again against a running moto at will.
`down` stops what `up` started (process groups; safe to call twice). `status` tells what runs.

DIR holds: moto.pid / moto.port / moto.log, localstripe.pid / localstripe.port /
localstripe.log, resources.json (what was provisioned) and env (`export NAME=value` lines,
readable by a POSIX shell and by `cargo lambda watch --env-file`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

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

SERVICES = ("moto", "localstripe")
SERVER_SCRIPTS = {"moto": SCRIPTS / "moto_server.py", "localstripe": SCRIPTS / "localstripe_server.py"}

TABLE = "AWS::DynamoDB::Table"
QUEUE = "AWS::SQS::Queue"
SECRET = "AWS::SecretsManager::Secret"
FUNCTION = "AWS::Serverless::Function"


class StackError(Exception):
    """A failure with a message meant for the person at the terminal."""


def log(msg: str) -> None:
    print(f"stack: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- template loading


class CfnLoader(yaml.SafeLoader):
    """YAML loader that accepts CloudFormation short tags (!Ref, !GetAtt, !Sub, ...)."""


def _cfn_tag(loader: CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
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


CfnLoader.add_multi_constructor("!", _cfn_tag)


def load_template(path: Path) -> dict[str, Any]:
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
        self.created: dict[str, dict[str, str]] = {}

    def run(self) -> dict[str, dict[str, str]]:
        for logical_id, resource in self.template["Resources"].items():
            if resource.get("Type") in (TABLE, QUEUE, SECRET):
                self.resolver.resource(logical_id)
        return self.created

    def provide(self, logical_id: str) -> dict[str, str]:
        resource = self.template["Resources"][logical_id]
        rtype = resource.get("Type")
        handlers = {TABLE: self.table, QUEUE: self.queue, SECRET: self.secret}
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


def provision(state_dir: Path, moto_url: str, stripe_url: str, template_path: Path, secrets_path: Path) -> Path:
    template = load_template(template_path)
    provisioner = Provisioner(template, moto_url, secrets_path)
    created = provisioner.run()
    env = function_environment(template, provisioner.resolver)
    env.update(
        {
            "AWS_ENDPOINT_URL": moto_url,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "PAYBRIDGE_STRIPE_API_BASE": stripe_url,
            "PAYBRIDGE_LOCALSTRIPE_URL": stripe_url,
            "PAYBRIDGE_MOTO_URL": moto_url,
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


def is_ours(pid: int, service: str) -> bool:
    """True if `pid` is alive and still runs our server script (guards against pid reuse)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return False
        return True  # no /proc (not Linux): trust the pid file
    script = SERVER_SCRIPTS[service].name.encode()
    return any(arg.endswith(script) for arg in cmdline)


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


def answers(service: str, port: int) -> bool:
    url = f"http://{HOST}:{port}/v1/customers?limit=1" if service == "localstripe" else f"http://{HOST}:{port}/moto-api/"
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


def start(state_dir: Path, service: str, port: int) -> subprocess.Popen[bytes]:
    log_path = state_dir / f"{service}.log"
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(  # noqa: S603 - fixed argv
            [sys.executable, "-u", str(SERVER_SCRIPTS[service]), str(port)],
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


def kill_group(pid: int, service: str) -> None:
    """SIGTERM the process group led by `pid`, then SIGKILL if it lingers."""
    for sig, grace in ((signal.SIGTERM, STOP_TIMEOUT_SECS), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        end = time.monotonic() + grace
        while time.monotonic() < end and pid_alive(pid):
            time.sleep(0.1)
        if not pid_alive(pid):
            log(f"{service} stopped (pid {pid})")
            return
    raise StackError(f"{service} (pid {pid}) did not stop")


def forget(state_dir: Path, service: str) -> None:
    (state_dir / f"{service}.pid").unlink(missing_ok=True)
    (state_dir / f"{service}.port").unlink(missing_ok=True)


def stop(state_dir: Path, service: str) -> bool:
    """Stop one server started from this state dir (its whole process group).

    True if something was running. The pid is only signalled while it still runs our server
    script, so a stale pid file never hits an unrelated process that got the same pid.
    """
    pid = read_int(state_dir / f"{service}.pid")
    was_running = pid is not None and is_ours(pid, service)
    if was_running:
        assert pid is not None
        kill_group(pid, service)
    forget(state_dir, service)
    return was_running


def pid_alive(pid: int) -> bool:
    try:
        # Reap it if it is our child (only when `up` fails and cleans up in the same process).
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        return state != "Z"
    except OSError:
        return True


# --------------------------------------------------------------------------- commands


def urls(ports: dict[str, int]) -> tuple[str, str]:
    return f"http://{HOST}:{ports['moto']}", f"http://{HOST}:{ports['localstripe']}"


def cmd_up(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    wanted = {"moto": args.moto_port or 0, "localstripe": args.stripe_port or 0}
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
                process = start(state_dir, service, port)
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
        moto_url, stripe_url = urls(ports)
        env_path = provision(state_dir, moto_url, stripe_url, args.template, args.secrets)
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
    print(f"env file:    {env_path}")
    return 0


def cmd_provision(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir
    moto_url, stripe_url = args.moto_url, args.stripe_url
    if not (moto_url and stripe_url):
        ports = {}
        for service in SERVICES:
            live = running(state_dir, service)
            if not live:
                raise StackError(f"{service} is not running from {state_dir}; run `up` (or pass --moto-url/--stripe-url)")
            ports[service] = live[1]
        default_moto, default_stripe = urls(ports)
        moto_url, stripe_url = moto_url or default_moto, stripe_url or default_stripe
    provision(state_dir, moto_url, stripe_url, args.template, args.secrets)
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir
    ports = {}
    for service in SERVICES:
        live = running(state_dir, service)
        if not live:
            raise StackError(f"{service} is not running from {state_dir}; nothing to reset (use `up`)")
        ports[service] = live[1]
    moto_url, stripe_url = urls(ports)
    for method, url in (("POST", f"{moto_url}/moto-api/reset"), ("DELETE", f"{stripe_url}/_config/data")):
        request = urllib.request.Request(url, method=method)
        request.add_header("Authorization", "Bearer sk_test_stackreset")
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - loopback only
            pass
    log("moto and localstripe data wiped (localstripe webhook registrations survive a wipe)")
    provision(state_dir, moto_url, stripe_url, args.template, args.secrets)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir
    if not state_dir.is_dir():
        log(f"nothing to stop ({state_dir} does not exist)")
        return 0
    stopped = [service for service in reversed(SERVICES) if stop(state_dir, service)]
    if not stopped:
        log(f"nothing was running from {state_dir}")
    (state_dir / "env").unlink(missing_ok=True)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir
    all_up = True
    for service in SERVICES:
        live = running(state_dir, service)
        if live:
            pid, port = live
            health = "answering" if answers(service, port) else "NOT answering"
            print(f"{service:12} running  pid {pid:<7} http://{HOST}:{port}  {health}")
            all_up = all_up and health == "answering"
        else:
            print(f"{service:12} stopped")
            all_up = False
    env_path = state_dir / "env"
    print(f"{'env file':12} {env_path if env_path.exists() else '(none)'}")
    return 0 if all_up else 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--state-dir", type=Path, required=True, help="where pids, logs and the env file live")

    def provisioning(p: argparse.ArgumentParser) -> None:
        p.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE, help="SAM template (default: template.yaml)")
        p.add_argument("--secrets", type=Path, default=DEFAULT_SECRETS, help="local secret value (default: local/secrets.json)")

    p_up = sub.add_parser("up", help="start moto + localstripe, provision, write DIR/env")
    common(p_up)
    provisioning(p_up)
    p_up.add_argument("--moto-port", type=int, default=0, help="0 or omitted: a free port")
    p_up.add_argument("--stripe-port", type=int, default=0, help="0 or omitted: a free port")
    p_up.set_defaults(func=cmd_up)

    p_prov = sub.add_parser("provision", help="(re)create the template's resources in moto, write DIR/env")
    common(p_prov)
    provisioning(p_prov)
    p_prov.add_argument("--moto-url", help="default: the moto that `up` started in DIR")
    p_prov.add_argument("--stripe-url", help="default: the localstripe that `up` started in DIR")
    p_prov.set_defaults(func=cmd_provision)

    p_reset = sub.add_parser("reset", help="wipe all data in moto and localstripe, then provision again")
    common(p_reset)
    provisioning(p_reset)
    p_reset.set_defaults(func=cmd_reset)

    p_down = sub.add_parser("down", help="stop what `up` started in DIR")
    common(p_down)
    p_down.set_defaults(func=cmd_down)

    p_status = sub.add_parser("status", help="show what runs from DIR (exit 3 unless all is up)")
    common(p_status)
    p_status.set_defaults(func=cmd_status)

    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except StackError as exc:
        log(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
