"""Fault injection: what can go wrong on a request, and which requests it hits.

A `Fault` is a frozen description; `FaultTable` decides which requests receive it, from
programmatic rules (`MockServer.inject`) and from the `x-mock-fault` request header.

Header grammar (one or more faults separated by `,`; options separated by `;`)::

    fault   := kind ["=" value] (";" option "=" value)*
    kind    := drop_after_bytes=N
             | status=CODE [;retry_after=S] [;retry_after_ms=MS] [;should_retry=true|false]
             | insufficient_quota
             | stall=S [;after_bytes=N]
             | malformed [;after_events=N]
             | error_event_after=N [;nested=true]
             | unsupported_parameter=PARAM
    common  := ;times=N ;key=K

With `times=N` the fault hits the first N requests carrying it (counted per `key`, which defaults
to the header value, so an SDK's retries of one logical request are counted together); without
`times` it hits every request carrying the header.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Literal

import attrs

from ._errors import InvalidFault

__all__ = ["Fault", "FaultKind", "FaultTable", "HeaderFault", "first", "parse_fault_header"]

FaultKind = Literal[
    "drop",
    "status",
    "insufficient_quota",
    "stall",
    "malformed",
    "error_event",
    "unsupported_parameter",
]

_PRE_RESPONSE: frozenset[str] = frozenset({"status", "insufficient_quota", "unsupported_parameter"})


@attrs.frozen(kw_only=True)
class Fault:
    """One injected failure. Build it with the class methods (`Fault.drop_after(300)`, ...)."""

    kind: FaultKind
    #: drop: body bytes sent before the connection is cut; stall: bytes sent before the pause.
    after_bytes: int | None = attrs.field(default=None)
    #: status: the HTTP status to answer with.
    status_code: int | None = None
    retry_after: float | None = None
    retry_after_ms: int | None = None
    should_retry: bool | None = None
    #: stall: how long to pause.
    seconds: float | None = None
    #: malformed / error_event: how many good frames go out first.
    after_events: int | None = None
    #: error_event: the `{"type":"error","error":{...}}` framing instead of the flat one.
    nested: bool = False
    #: unsupported_parameter: the parameter named in the 400.
    param: str | None = None

    @after_bytes.validator
    def _check_after_bytes(self, _attribute: object, value: int | None) -> None:
        if value is not None and value < 0:
            raise InvalidFault(f"after_bytes must be >= 0, got {value}")

    def __attrs_post_init__(self) -> None:
        if self.kind == "drop" and self.after_bytes is None:
            raise InvalidFault("a drop fault needs after_bytes")
        if self.kind == "status" and (
            self.status_code is None or not 400 <= self.status_code <= 599
        ):
            raise InvalidFault(f"status must be an HTTP error status, got {self.status_code!r}")
        if self.kind == "stall" and (self.seconds is None or self.seconds < 0):
            raise InvalidFault(f"stall needs seconds >= 0, got {self.seconds!r}")
        if self.kind in ("malformed", "error_event") and (
            self.after_events is None or self.after_events < 0
        ):
            raise InvalidFault(f"{self.kind} needs after_events >= 0")
        if self.kind == "unsupported_parameter" and not self.param:
            raise InvalidFault("unsupported_parameter needs the parameter name")

    @property
    def before_response(self) -> bool:
        """True for faults answered instead of the normal response (status, 400s)."""
        return self.kind in _PRE_RESPONSE or (self.kind == "stall" and self.after_bytes is None)

    @classmethod
    def drop_after(cls, n_bytes: int) -> Fault:
        """Cut the connection abruptly after `n_bytes` of response body (mid chunked body)."""
        return cls(kind="drop", after_bytes=n_bytes)

    @classmethod
    def status(
        cls,
        code: int,
        *,
        retry_after: float | None = None,
        retry_after_ms: int | None = None,
        should_retry: bool | None = None,
    ) -> Fault:
        """Answer with HTTP `code` (429 `rate_limit_exceeded`, 5xx `server_error`, ...)."""
        return cls(
            kind="status",
            status_code=code,
            retry_after=retry_after,
            retry_after_ms=retry_after_ms,
            should_retry=should_retry,
        )

    @classmethod
    def insufficient_quota(cls) -> Fault:
        """Answer 429 `insufficient_quota` (permanent: a client must not retry it)."""
        return cls(kind="insufficient_quota")

    @classmethod
    def stall(cls, seconds: float, *, after_bytes: int | None = None) -> Fault:
        """Pause `seconds` before the headers, or after `after_bytes` bytes of body."""
        return cls(kind="stall", seconds=seconds, after_bytes=after_bytes)

    @classmethod
    def malformed(cls, *, after_events: int = 1) -> Fault:
        """Insert a frame whose `data:` line is not valid JSON after `after_events` frames."""
        return cls(kind="malformed", after_events=after_events)

    @classmethod
    def error_event(cls, *, after_events: int = 1, nested: bool = False) -> Fault:
        """End the stream with an `error` event after `after_events` frames."""
        return cls(kind="error_event", after_events=after_events, nested=nested)

    @classmethod
    def unsupported_parameter(cls, param: str) -> Fault:
        """Answer 400 `unsupported_parameter` naming `param`."""
        return cls(kind="unsupported_parameter", param=param)


def _number(name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InvalidFault(f"{name} must be a number, got {text!r}") from None


def _integer(name: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InvalidFault(f"{name} must be an integer, got {text!r}") from None


def _boolean(name: str, text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise InvalidFault(f"{name} must be true or false, got {text!r}")


@attrs.frozen
class HeaderFault:
    """A fault parsed from the header, with its counting options."""

    fault: Fault
    times: int | None
    key: str


def _parse_one(spec: str) -> HeaderFault:
    parts = [p.strip() for p in spec.split(";") if p.strip()]
    if not parts:
        raise InvalidFault("empty fault spec")
    head, *options = parts
    kind, _, value = head.partition("=")
    opts: dict[str, str] = {}
    for option in options:
        name, sep, opt_value = option.partition("=")
        if not sep:
            raise InvalidFault(f"fault option {option!r} needs a value")
        opts[name.strip()] = opt_value.strip()
    times = _integer("times", opts.pop("times")) if "times" in opts else None
    if times is not None and times < 1:
        raise InvalidFault(f"times must be >= 1, got {times}")
    key = opts.pop("key", spec.strip())
    kind = kind.strip()
    fault: Fault
    if kind == "drop_after_bytes":
        fault = Fault.drop_after(_integer(kind, value))
    elif kind == "status":
        fault = Fault.status(
            _integer(kind, value),
            retry_after=_number("retry_after", opts.pop("retry_after"))
            if "retry_after" in opts
            else None,
            retry_after_ms=_integer("retry_after_ms", opts.pop("retry_after_ms"))
            if "retry_after_ms" in opts
            else None,
            should_retry=_boolean("should_retry", opts.pop("should_retry"))
            if "should_retry" in opts
            else None,
        )
    elif kind == "insufficient_quota":
        fault = Fault.insufficient_quota()
    elif kind == "stall":
        after = opts.pop("after_bytes", None)
        fault = Fault.stall(
            _number(kind, value), after_bytes=None if after is None else _integer("after", after)
        )
    elif kind == "malformed":
        fault = Fault.malformed(
            after_events=_integer("after_events", opts.pop("after_events", "1"))
        )
    elif kind == "error_event_after":
        nested = _boolean("nested", opts.pop("nested", "false"))
        fault = Fault.error_event(after_events=_integer(kind, value), nested=nested)
    elif kind == "unsupported_parameter":
        fault = Fault.unsupported_parameter(value)
    else:
        raise InvalidFault(f"unknown fault kind {kind!r}")
    if opts:
        raise InvalidFault(f"unknown options for {kind}: {sorted(opts)}")
    return HeaderFault(fault, times, key)


def parse_fault_header(value: str) -> list[HeaderFault]:
    """Parse an `x-mock-fault` header value. Raises `InvalidFault` if it does not parse."""
    return [_parse_one(spec) for spec in value.split(",") if spec.strip()]


@attrs.define
class _Rule:
    fault: Fault
    method: str | None
    path: str | None
    remaining: int | None

    def matches(self, method: str, path: str) -> bool:
        if self.remaining == 0:
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        if self.path is None:
            return True
        return self.path == path or fnmatch.fnmatchcase(path, self.path)


@attrs.define
class FaultTable:
    """Programmatic rules plus per-key counters for header faults."""

    _rules: list[_Rule] = attrs.field(factory=list)
    _header_counts: dict[str, int] = attrs.field(factory=dict)

    def add(self, fault: Fault, method: str | None, path: str | None, times: int | None) -> None:
        if times is not None and times < 1:
            raise InvalidFault(f"times must be >= 1 or None, got {times}")
        self._rules.append(_Rule(fault, method, path, times))

    def clear(self) -> None:
        self._rules.clear()
        self._header_counts.clear()

    def take(self, method: str, path: str, header: str | None) -> list[Fault]:
        """The faults for this request (consuming their counts). Raises `InvalidFault`."""
        taken: list[Fault] = []
        for rule in self._rules:
            if rule.matches(method, path):
                if rule.remaining is not None:
                    rule.remaining -= 1
                taken.append(rule.fault)
        if header:
            for parsed in parse_fault_header(header):
                if parsed.times is not None:
                    used = self._header_counts.get(parsed.key, 0)
                    if used >= parsed.times:
                        continue
                    self._header_counts[parsed.key] = used + 1
                taken.append(parsed.fault)
        return taken


def first(faults: Sequence[Fault], kind: str) -> Fault | None:
    """The first fault of `kind` in `faults`, or None."""
    return next((f for f in faults if f.kind == kind), None)
