"""The audit log: one JSON line per request stage, as kube-apiserver's ``audit.k8s.io/v1``.

Every request the API server authenticates is matched against an audit policy
(``audit.k8s.io/v1`` ``Policy``, ``--audit-policy-file``): its rules are tried in order and
the first that matches the request's user, groups, verb, resource, namespace or
non-resource URL decides its level — ``None`` (not logged), ``Metadata`` (who did what to
which object, and the answer's status), ``Request`` (the request body too) or
``RequestResponse`` (and the response body). A request logged at all is logged at its
stages: ``RequestReceived`` as it arrives, ``ResponseStarted`` when a long-running
request's (a watch's, a log stream's) headers go out, ``ResponseComplete`` when its answer
has been sent, ``Panic`` when serving it failed (an internal error); a rule's or the
policy's ``omitStages`` leaves stages out. A request whose credentials prove nothing is
logged as kube-apiserver logs it: stage ``ResponseStarted``, an empty ``user``, a 401
``responseStatus`` whose message names the credentials tried.

Without a policy file setpoint uses :data:`DEFAULT_POLICY_RULES`: ``Metadata`` for every
request that changes something and every request refused with 401 or 403, nothing for reads
(kube-apiserver logs nothing without a policy; setpoint's default is there so that a log
given with ``--audit-log-path`` says who changed what out of the box).

Secret data never reaches the log: a request about Secrets, a ServiceAccount's token
(TokenRequest) or a TokenReview is logged at ``Metadata`` at most, whatever the policy says
(upstream only recommends such a rule; setpoint enforces it).

Writing is off the request path: an event is serialised into a buffer, and a background
task hands the buffer to a thread that appends it to the file, rotating it once it would
grow past ``--audit-log-maxsize`` megabytes (``<name>-<time>.<ext>`` backups, the oldest
beyond ``--audit-log-maxbackup`` removed, as kube-apiserver's lumberjack does). A log that
cannot be written is reported once in the server's log and does not stop the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import random
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import yaml
from aiohttp import web

from setpoint.api import negotiation
from setpoint.api.auth.attributes import RequestAttributes, request_attributes
from setpoint.api.auth.user import UserInfo
from setpoint.api.bodies import RAW_BODY_KEY
from setpoint.meta.timestamps import micro_time

log = logging.getLogger(__name__)

API_VERSION = "audit.k8s.io/v1"
HEADER_AUDIT_ID = "Audit-ID"

RECEIVED = "RequestReceived"
STARTED = "ResponseStarted"
COMPLETE = "ResponseComplete"
PANIC = "Panic"
STAGES = (RECEIVED, STARTED, COMPLETE, PANIC)
MUTATING_VERBS = ("create", "update", "patch", "delete", "deletecollection")
FLUSH_INTERVAL = 0.2  # seconds between flushes of the buffer to the file
FLUSH_BYTES = 256 * 1024  # or sooner, once this much is waiting
MAX_BUFFER_BYTES = 64 * 1024 * 1024  # past this (a stuck disk) events are dropped and counted


class Level(enum.IntEnum):
    NONE = 0
    METADATA = 1
    REQUEST = 2
    REQUEST_RESPONSE = 3

    @property
    def text(self) -> str:
        return _LEVEL_TEXT[self]

    @classmethod
    def parse(cls, text: str) -> Level:
        for level, name in _LEVEL_TEXT.items():
            if name == text:
                return level
        raise PolicyError(f"unknown level {text!r} (None, Metadata, Request or RequestResponse)")


_LEVEL_TEXT = {
    Level.NONE: "None",
    Level.METADATA: "Metadata",
    Level.REQUEST: "Request",
    Level.REQUEST_RESPONSE: "RequestResponse",
}

# resources whose bodies carry secrets: never logged above Metadata (group, resource,
# subresource; "*" any)
_SECRET_BEARING = (
    ("", "secrets", "*"),
    ("", "serviceaccounts", "token"),  # TokenRequest: the response is a token
    ("authentication.k8s.io", "tokenreviews", "*"),  # the request is a token
)


class PolicyError(Exception):
    """An audit policy that cannot be used; the message says where and why."""


@dataclass(frozen=True)
class GroupResources:
    group: str = ""
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()

    def matches(self, attrs: RequestAttributes) -> bool:
        if self.group != attrs.api_group:
            return False
        if self.resource_names and attrs.name not in self.resource_names:
            return False
        if not self.resources:
            return True
        combined = attrs.resource_and_subresource
        for res in self.resources:
            if res in (combined, "*", "*/*"):
                return True
            if res.startswith("*/") and attrs.subresource == res[2:]:
                return True
            if res.endswith("/*") and attrs.subresource and attrs.resource == res[:-2]:
                return True
        return False


@dataclass(frozen=True)
class PolicyRule:
    level: Level
    users: tuple[str, ...] = ()
    user_groups: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    resources: tuple[GroupResources, ...] = ()
    namespaces: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()
    omit_stages: frozenset[str] = frozenset()
    # setpoint's default policy only: matches only requests refused with these codes,
    # which is known once the answer is
    codes: tuple[int, ...] = ()

    def matches(self, attrs: RequestAttributes) -> bool:
        if self.users and attrs.user.name not in self.users:
            return False
        if self.user_groups and not any(g in self.user_groups for g in attrs.user.groups):
            return False
        if self.verbs and attrs.verb not in self.verbs:
            return False
        if self.resources or self.namespaces or self.non_resource_urls:
            if attrs.resource_request:
                return self._matches_resource(attrs)
            return self._matches_non_resource(attrs)
        return True

    def _matches_resource(self, attrs: RequestAttributes) -> bool:
        if not self.resources and not self.namespaces:
            return False  # a rule only about non-resource URLs
        if self.namespaces and attrs.namespace not in self.namespaces:
            return False
        if not self.resources:
            return True
        return any(gr.matches(attrs) for gr in self.resources)

    def _matches_non_resource(self, attrs: RequestAttributes) -> bool:
        for pattern in self.non_resource_urls:
            if pattern == "*" or pattern == attrs.path:
                return True
            if pattern.endswith("*") and attrs.path.startswith(pattern[:-1]):
                return True
        return False


@dataclass(frozen=True)
class Policy:
    rules: tuple[PolicyRule, ...]
    omit_stages: frozenset[str] = frozenset()

    def level_of(self, attrs: RequestAttributes) -> tuple[Level, frozenset[str]]:
        """The level of a request (before its answer) and the stages to leave out."""
        for rule in self.rules:
            if not rule.codes and rule.matches(attrs):
                return rule.level, rule.omit_stages | self.omit_stages
        return Level.NONE, self.omit_stages

    def level_of_refused(
        self, attrs: RequestAttributes, code: int
    ) -> tuple[Level, frozenset[str]] | None:
        """A rule that logs a request once it was answered ``code`` (the default policy's
        "every denied request"), else None."""
        for rule in self.rules:
            if rule.codes and code in rule.codes and rule.matches(attrs):
                return rule.level, rule.omit_stages | self.omit_stages
        return None

    @classmethod
    def load(cls, path: Path) -> Policy:
        try:
            doc = yaml.safe_load(path.read_text())
        except OSError as exc:
            raise PolicyError(f"cannot read audit policy {path}: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise PolicyError(f"audit policy {path} is not YAML: {exc}") from None
        try:
            return cls.parse(doc)
        except PolicyError as exc:
            raise PolicyError(f"audit policy {path}: {exc}") from None

    @classmethod
    def parse(cls, doc: Any) -> Policy:
        if not isinstance(doc, dict):
            raise PolicyError("not a mapping")
        if doc.get("kind") != "Policy" or doc.get("apiVersion") != API_VERSION:
            raise PolicyError(f"want kind Policy of apiVersion {API_VERSION}")
        rules = [_rule(r, f"rules[{i}]") for i, r in enumerate(_list(doc.get("rules"), "rules"))]
        if not rules:
            raise PolicyError("a policy needs at least one rule")
        return cls(tuple(rules), _stages(doc.get("omitStages"), "omitStages"))


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PolicyError(f"{where} is not a list")
    return value


def _strings(value: Any, where: str) -> tuple[str, ...]:
    items = _list(value, where)
    if not all(isinstance(i, str) for i in items):
        raise PolicyError(f"{where} must be a list of strings")
    return tuple(items)


def _stages(value: Any, where: str) -> frozenset[str]:
    stages = _strings(value, where)
    for stage in stages:
        if stage not in STAGES:
            raise PolicyError(f"{where}: unknown stage {stage!r}")
    return frozenset(stages)


def _rule(spec: Any, where: str) -> PolicyRule:
    if not isinstance(spec, dict):
        raise PolicyError(f"{where} is not a mapping")
    if "level" not in spec:
        raise PolicyError(f"{where}.level is required")
    level = Level.parse(str(spec["level"]))
    resources = []
    for j, gr in enumerate(_list(spec.get("resources"), f"{where}.resources")):
        if not isinstance(gr, dict):
            raise PolicyError(f"{where}.resources[{j}] is not a mapping")
        resources.append(
            GroupResources(
                str(gr.get("group") or ""),
                _strings(gr.get("resources"), f"{where}.resources[{j}].resources"),
                _strings(gr.get("resourceNames"), f"{where}.resources[{j}].resourceNames"),
            )
        )
    urls = _strings(spec.get("nonResourceURLs"), f"{where}.nonResourceURLs")
    if urls and (resources or spec.get("namespaces")):
        raise PolicyError(f"{where}: rules cannot apply to both regular and non-resource URLs")
    return PolicyRule(
        level,
        users=_strings(spec.get("users"), f"{where}.users"),
        user_groups=_strings(spec.get("userGroups"), f"{where}.userGroups"),
        verbs=_strings(spec.get("verbs"), f"{where}.verbs"),
        resources=tuple(resources),
        namespaces=_strings(spec.get("namespaces"), f"{where}.namespaces"),
        non_resource_urls=urls,
        omit_stages=_stages(spec.get("omitStages"), f"{where}.omitStages"),
    )


DEFAULT_POLICY_RULES = (
    PolicyRule(Level.METADATA, verbs=MUTATING_VERBS, omit_stages=frozenset({RECEIVED})),
    PolicyRule(Level.METADATA, codes=(401, 403), omit_stages=frozenset({RECEIVED})),
)
DEFAULT_POLICY = Policy(DEFAULT_POLICY_RULES)


def _secret_bearing(attrs: RequestAttributes) -> bool:
    return any(
        attrs.api_group == group
        and attrs.resource == resource
        and subresource in ("*", attrs.subresource)
        for group, resource, subresource in _SECRET_BEARING
    )


def capped(level: Level, attrs: RequestAttributes) -> Level:
    """``level``, but never above Metadata for a request whose bodies may hold a secret."""
    if level > Level.METADATA and attrs.resource_request and _secret_bearing(attrs):
        return Level.METADATA
    return level


_VERSION_BITS = ~((0xF << 76) | (0x3 << 62))
_V4 = (0x4 << 76) | (0x2 << 62)


def new_audit_id() -> str:
    """A random (version 4) UUID's text. An audit ID must be unique, not unpredictable, so
    it comes from Python's PRNG: ``uuid.uuid4()`` asks the kernel for randomness, ~8x the
    cost, on every request."""
    h = f"{random.getrandbits(128) & _VERSION_BITS | _V4:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# ------------------------------------------------------------------- the log file


class AuditLog:
    """A JSON-lines file written from a buffer by a background task, rotated by size."""

    def __init__(self, path: Path, *, max_size_mb: int = 0, max_backups: int = 0) -> None:
        self.path = path
        self.max_bytes = max_size_mb * 1024 * 1024
        self.max_backups = max_backups
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._size = -1  # of the file now; -1 until first looked at
        self._failed = False
        self._closing = False
        self.dropped = 0

    def write(self, line: bytes) -> None:
        if self._buffered > MAX_BUFFER_BYTES:
            self.dropped += 1
            return
        self._buffer.append(line)
        self._buffered += len(line)
        if self._buffered >= FLUSH_BYTES:
            self._wake.set()

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # the log names users and objects: only its owner reads it
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.close(fd)
        self._task = asyncio.create_task(self._run(), name="audit-log")

    async def _run(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FLUSH_INTERVAL)
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        if not self._buffer:
            return
        chunk = b"".join(self._buffer)
        self._buffer, self._buffered = [], 0
        await asyncio.to_thread(self._append, chunk)

    async def close(self) -> None:
        """Write what is buffered and stop (the writer finishes its flush, never cut off
        half-way: a cancelled flush would lose the events it had taken)."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.flush()

    def _append(self, chunk: bytes) -> None:
        try:
            if self._size < 0:
                self._size = self.path.stat().st_size if self.path.exists() else 0
            start = 0
            while start < len(chunk):
                piece = chunk[start:]
                if self.max_bytes:
                    room = self.max_bytes - self._size
                    if room < len(piece):
                        # rotate at a line boundary: as many whole lines as fit
                        cut = piece.rfind(b"\n", 0, max(room, 0)) + 1
                        if cut == 0 and self._size == 0:
                            cut = piece.find(b"\n") + 1 or len(piece)  # one huge line
                        if cut == 0:
                            self._rotate()
                            continue
                        piece = piece[:cut]
                with open(self.path, "ab") as out:
                    out.write(piece)
                self._size += len(piece)
                start += len(piece)
            self._failed = False
        except OSError as exc:
            if not self._failed:
                log.error("cannot write the audit log %s: %s", self.path, exc)
            self._failed = True

    def _rotate(self) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H-%M-%S.%f")[:-3]
        backup = self.path.with_name(f"{self.path.stem}-{stamp}{self.path.suffix}")
        n = 1
        while backup.exists():  # two rotations within a millisecond
            backup = self.path.with_name(f"{self.path.stem}-{stamp}.{n}{self.path.suffix}")
            n += 1
        os.replace(self.path, backup)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.close(fd)
        self._size = 0
        if self.max_backups:
            backups = sorted(self.backups(), key=_written_last)
            for old in backups[: max(len(backups) - self.max_backups, 0)]:
                with contextlib.suppress(OSError):
                    old.unlink()

    def backups(self) -> list[Path]:
        return list(self.path.parent.glob(f"{self.path.stem}-*{self.path.suffix}"))


def _written_last(path: Path) -> tuple[int, str]:
    try:
        return path.stat().st_mtime_ns, path.name
    except OSError:
        return 0, path.name


# --------------------------------------------------------------------- events


@dataclass(slots=True)
class AuditContext:
    """One request being audited: what its events share."""

    level: Level
    omit: frozenset[str]
    attrs: RequestAttributes
    audit_id: str
    received: float
    request: web.BaseRequest  # its URI, addresses and agent are read only if it is logged
    long_running: bool
    decision: str = ""  # the authorizers' answer, once they gave one
    reason: str = ""
    started: bool = False
    panicked: bool = False
    response: web.StreamResponse | None = None  # once its headers went out
    # who authenticated, when the request acts as ``attrs.user`` (impersonation)
    impersonator: UserInfo | None = None
    # what admission plugins annotated (PodSecurity's enforce policy and audit violations)
    annotations: dict[str, str] = field(default_factory=dict)


# where the API server keeps a request's audit context
AUDIT_CONTEXT_KEY: web.RequestKey[AuditContext] = web.RequestKey("setpoint.audit", AuditContext)


class Auditor:
    """Turns requests into audit events by a policy and writes them to a log."""

    def __init__(self, policy: Policy, sink: AuditLog) -> None:
        self.policy = policy
        self.sink = sink

    async def start(self) -> None:
        self.sink.start()

    async def stop(self) -> None:
        await self.sink.close()

    def begin(
        self,
        request: web.BaseRequest,
        attrs: RequestAttributes,
        *,
        long_running: bool,
        impersonator: UserInfo | None = None,
    ) -> AuditContext:
        """A request past authentication: its level by the policy; RequestReceived.
        ``impersonator`` is who authenticated when ``attrs.user`` is whom it impersonates:
        the event's ``user``, and ``attrs.user`` its ``impersonatedUser``, as upstream (the
        policy is evaluated on the impersonated user, as upstream's runs after
        impersonation)."""
        level, omit = self.policy.level_of(attrs)
        context = AuditContext(
            capped(level, attrs),
            omit,
            attrs,
            request.headers.get(HEADER_AUDIT_ID) or new_audit_id(),
            time.time(),
            request,
            long_running,
            impersonator=impersonator,
        )
        if context.level is not Level.NONE and RECEIVED not in omit:
            self._emit(context, RECEIVED, context.received)
        return context

    def started(self, context: AuditContext, response: web.StreamResponse) -> None:
        """A long-running request's headers are going out: ResponseStarted."""
        if context.started:
            return
        context.started = True
        context.response = response
        if context.level is Level.NONE or not context.long_running:
            return
        if STARTED not in context.omit:
            self._emit(context, STARTED, time.time(), status=_response_status(response))

    def complete(
        self,
        context: AuditContext,
        request: web.BaseRequest,
        response: web.StreamResponse,
    ) -> None:
        """The answer has been sent: ResponseComplete (or Panic). A long-running request
        answered without streaming (a refusal) starts its response here."""
        level, omit = context.level, context.omit
        if level is Level.NONE and response.status in (401, 403):
            refused = self.policy.level_of_refused(context.attrs, response.status)
            if refused is not None:
                level, omit = capped(refused[0], context.attrs), refused[1]
                context.level, context.omit = level, omit
        if not context.started and not response.prepared:
            self.started(context, response)
        context.started = True  # the answer aiohttp writes next is not a new start
        if level is Level.NONE:
            return
        stage = PANIC if context.panicked else COMPLETE
        if stage in omit:
            return
        request_object = response_object = None
        attrs = context.attrs
        if attrs.resource_request and (
            level >= Level.REQUEST or (attrs.verb == "create" and not attrs.name)
        ):
            request_object = _request_object(request)
            if not attrs.name and isinstance(request_object, dict):
                # a create names its object in the body, as upstream's LogRequestObject
                # fills objectRef.name from it
                name = (request_object.get("metadata") or {}).get("name")
                if isinstance(name, str) and name:
                    context.attrs = attrs = replace(attrs, name=name)
            if level < Level.REQUEST:
                request_object = None
        if level >= Level.REQUEST_RESPONSE and context.attrs.resource_request:
            response_object = _response_object(response)
        self._emit(
            context,
            stage,
            time.time(),
            status=_response_status(response),
            request_object=request_object,
            response_object=response_object,
        )

    def unauthenticated(self, request: web.BaseRequest, response: web.StreamResponse) -> None:
        """A request whose credentials proved nothing, logged as kube-apiserver's
        WithFailedAuthenticationAudit does: ResponseStarted, no user, a 401 status."""
        attrs = request_attributes(UserInfo(""), request.method, request.path, request.query)
        level, omit = self.policy.level_of(attrs)
        if level is Level.NONE:
            refused = self.policy.level_of_refused(attrs, 401)
            if refused is None:
                return
            level, omit = refused
        if STARTED in omit:
            return
        context = AuditContext(
            Level.METADATA,
            omit,
            attrs,
            request.headers.get(HEADER_AUDIT_ID) or new_audit_id(),
            time.time(),
            request,
            False,
        )
        status = {"metadata": {}, "message": _auth_methods(request), "code": 401}
        self._emit(context, STARTED, time.time(), status=status, user={})

    def _emit(
        self,
        context: AuditContext,
        stage: str,
        when: float,
        *,
        status: dict[str, Any] | None = None,
        request_object: Any = None,
        response_object: Any = None,
        user: dict[str, Any] | None = None,
    ) -> None:
        attrs = context.attrs
        event: dict[str, Any] = {
            "kind": "Event",
            "apiVersion": API_VERSION,
            "level": context.level.text,
            "auditID": context.audit_id,
            "stage": stage,
            "requestURI": context.request.path_qs,
            "verb": attrs.verb,
            "user": attrs.user.as_user_info() if user is None else user,
        }
        if context.impersonator is not None and user is None:
            event["user"] = context.impersonator.as_user_info()
            event["impersonatedUser"] = attrs.user.as_user_info()
        event["sourceIPs"] = _source_ips(context.request)
        user_agent = context.request.headers.get("User-Agent", "")
        if user_agent:
            event["userAgent"] = user_agent
        if attrs.resource_request:
            ref: dict[str, str] = {"resource": attrs.resource}
            if attrs.namespace:
                ref["namespace"] = attrs.namespace
            if attrs.name:
                ref["name"] = attrs.name
            if attrs.api_group:
                ref["apiGroup"] = attrs.api_group
            ref["apiVersion"] = attrs.api_version
            if attrs.subresource:
                ref["subresource"] = attrs.subresource
            event["objectRef"] = ref
        if status is not None:
            event["responseStatus"] = status
        if request_object is not None:
            event["requestObject"] = request_object
        if response_object is not None:
            event["responseObject"] = response_object
        event["requestReceivedTimestamp"] = micro_time(context.received)
        event["stageTimestamp"] = micro_time(when)
        if context.decision and stage != RECEIVED:
            event["annotations"] = {
                "authorization.k8s.io/decision": context.decision,
                "authorization.k8s.io/reason": context.reason,
                **context.annotations,
            }
        self.sink.write(orjson.dumps(event) + b"\n")


def _source_ips(request: web.BaseRequest) -> list[str]:
    """X-Forwarded-For's addresses, then the peer's, as upstream's ``utilnet.SourceIPs``."""
    ips = [ip.strip() for ip in request.headers.get("X-Forwarded-For", "").split(",") if ip]
    peer = request.remote or ""
    if peer and peer not in ips:
        ips.append(peer)
    return ips


def _auth_methods(request: web.BaseRequest) -> str:
    methods = []
    auth = request.headers.get("Authorization", "").strip()
    if auth.lower().startswith("basic "):
        methods.append("basic")
    parts = auth.split(" ")
    if len(parts) > 1 and parts[0].lower() == "bearer":
        methods.append("bearer")
    if request.query.get("access_token", "").strip():
        methods.append("access_token")
    transport = request.transport
    if transport is not None and transport.get_extra_info("peercert"):
        methods.append("x509")
    if methods:
        return "Authentication failed, attempted: " + ", ".join(methods)
    return "Authentication failed, no credentials provided"


def _response_status(response: web.StreamResponse) -> dict[str, Any]:
    """``responseStatus``: the code, and for a Status body its bounded fields."""
    status: dict[str, Any] = {"metadata": {}, "code": response.status}
    if response.status < 300:
        return status
    body = _body_json(response)
    if isinstance(body, dict) and body.get("kind") == "Status":
        for key in ("status", "message", "reason", "details"):
            if key in body:
                status[key] = body[key]
    return status


def _body_json(response: web.StreamResponse) -> Any:
    if not isinstance(response, web.Response):
        return None
    body = response.body
    if not isinstance(body, bytes | bytearray) or not body:
        return None
    if "json" not in (response.content_type or ""):
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _response_object(response: web.StreamResponse) -> Any:
    return _body_json(response)


def _request_object(request: web.BaseRequest) -> Any:
    """The body the request's handler read, decoded (JSON, YAML or protobuf; a patch as
    the patch) as it was; nothing if it read none or it does not decode."""
    raw = request.get(RAW_BODY_KEY)
    if not raw:
        return None
    content_type = request.headers.get("Content-Type", "")
    try:
        if "json" in content_type:  # objects, JSON, merge and strategic merge patches
            return orjson.loads(raw)
        return negotiation.decode_body(raw, content_type)  # YAML, protobuf, apply patches
    except Exception:  # a body the handler refused (it was answered so) is not logged
        return None


def auditor_from_flags(
    log_path: Path | None,
    policy_path: Path | None,
    *,
    max_size_mb: int,
    max_backups: int,
) -> Auditor | None:
    """The auditor ``--audit-log-path`` and friends describe (None: no audit log)."""
    if log_path is None:
        return None
    policy = Policy.load(policy_path) if policy_path is not None else DEFAULT_POLICY
    return Auditor(policy, AuditLog(log_path, max_size_mb=max_size_mb, max_backups=max_backups))
