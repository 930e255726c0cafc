"""The errors of the actors layer.

The tree (each leaf also subclasses the builtin it specialises, so ``except ValueError`` and
``except OSError`` keep working)::

    ActorsLayerError                      root: anything the domain actors reject or fail at
    └── FileInputError                    a file or input part that cannot be sent; .path, .rule
        ├── FileAccessError (OSError)     the file could not be read as asked
        │   ├── OutsideAllowedRoots (PermissionError)   .roots: the path resolves outside them
        │   ├── MissingFile (FileNotFoundError)
        │   ├── NotARegularFile                         .kind: "fifo", "socket", "device", ...
        │   │   └── PathIsADirectory (IsADirectoryError)
        │   └── UnreadableFile                          .reason: the OS's explanation
        └── FileRejected (ValueError)     the bytes or the request break a rule of the API
            ├── EmptyFile
            ├── FileTooLarge              .size, .limit, .purpose (None for an inline part)
            ├── UnsupportedFileType       .mime_type, .purpose, .allowed
            ├── AnimatedGifNotAllowed     .frames
            ├── MalformedFile             .mime_type, .reason
            ├── UnknownPurpose            .purpose, .allowed
            └── InvalidInputPart          .reason: a hand-built input part is wrong
                ├── AssistantsShapeNotAllowed   an Assistants ``image_file`` part
                ├── InvalidDataURL              bad header, bad base64, MIME mismatch
                └── RequestLimitExceeded        .total, .limit: too many images or image bytes

    ActorsLayerError
    └── AgentError                        agents and their tools (``_agent.py``, ``_tools.py``)
        ├── ToolDefinitionError (ValueError)   a tool that cannot be offered; .function, .parameter
        │   ├── InvalidToolName                .name breaks ``^[A-Za-z0-9_-]{1,64}$``
        │   ├── DuplicateToolName              .name is already in the registry
        │   └── UnsupportedToolParameter (TypeError)   a hint with no JSON schema; .hint
        ├── ToolArgumentsError (ValueError)    the model's arguments do not fit; .tool, .problems
        ├── InvalidAgentConfig (ValueError)    a bad agent id, api, model or option
        ├── AgentBusy (RuntimeError)           the agent's queue of asks is full; .agent_id
        ├── MaxTurnsExceeded (RuntimeError)    no final answer within max_turns; .max_turns
        └── ModelResponseFailed (RuntimeError) the model's response ended failed/cancelled;
                                               .status, .code, .response_id

    ActorsLayerError
    └── SessionError                      a session refused or lost a stream (``_session*.py``);
        │                                 .session_id
        ├── InvalidSessionRequest (openai.InvalidRequestError, so ValueError)
        │                                 rejected at the call, before any network I/O; .field
        ├── InvalidSessionId (ValueError) not usable as one topic segment / registered name
        ├── TooManyStreams (RuntimeError) the session already runs .limit streams
        ├── UnknownStream (LookupError)   no running or remembered stream with .stream_id
        ├── StreamStopped                 the stream was stopped before its first event
        └── StreamLost                    a foreground stream died with its worker (a crash)

    ActorsLayerError
    ├── FileUploadFailed                  a good file the API failed to take (``_files.py``);
    │                                     .path, .purpose, .upload_id; __cause__: the wire error
    ├── InvalidFileId (ValueError)        a file id that cannot name a file; .file_id
    └── InvalidFileName (ValueError)      an upload name the API cannot carry; .filename

    ActorsLayerError
    └── BackgroundError                   the background poller (``_background.py``)
        ├── InvalidBackgroundRequest (ValueError)   a create/track rejected before any I/O
        ├── ResponseGone (LookupError)    404: unknown id, or deleted after retention; .response_id
        └── NotRegistered                 created server-side, the registry write failed;
                                          .response_id, .response

    StoreError                            the registry store (``_store.py``): a root of its own,
    │                                     not under ActorsLayerError
    ├── UnknownResponse (KeyError)        no record with that .response_id
    ├── DuplicateResponse (ValueError)    add() of a .response_id that is already tracked
    ├── IllegalTransition (ValueError)    a terminal status replaced by a different one;
    │                                     .response_id, .current, .requested
    ├── CorruptStore                      not a database, damaged pages, or a row that fails
    │   │                                 validation (named in the message)
    │   └── UnsupportedSchema             written by a newer streamvisor (schema too new)
    └── StoreClosed (trio.ClosedResourceError)   used after its ``async with`` block ended

Every ``FileInputError`` names what it concerns in ``.path`` (a filesystem path, the caller's name
for in-memory bytes, or ``parts[i]`` for a hand-built input part) and the rule broken in ``.rule``
(a stable short string such as ``"max_bytes"``, for mapping to HTTP statuses and metrics).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import trio

from streamvisor.openai import InvalidRequestError

__all__ = [
    "ActorsLayerError",
    "AgentBusy",
    "AgentError",
    "AnimatedGifNotAllowed",
    "AssistantsShapeNotAllowed",
    "BackgroundError",
    "CorruptStore",
    "DuplicateResponse",
    "DuplicateToolName",
    "EmptyFile",
    "FileAccessError",
    "FileInputError",
    "FileRejected",
    "FileTooLarge",
    "FileUploadFailed",
    "IllegalTransition",
    "InvalidAgentConfig",
    "InvalidBackgroundRequest",
    "InvalidDataURL",
    "InvalidFileId",
    "InvalidFileName",
    "InvalidInputPart",
    "InvalidSessionId",
    "InvalidSessionRequest",
    "InvalidToolName",
    "MalformedFile",
    "MaxTurnsExceeded",
    "MissingFile",
    "ModelResponseFailed",
    "NotARegularFile",
    "NotRegistered",
    "OutsideAllowedRoots",
    "PathIsADirectory",
    "RequestLimitExceeded",
    "ResponseGone",
    "SessionError",
    "StoreClosed",
    "StoreError",
    "StreamLost",
    "StreamStopped",
    "TooManyStreams",
    "ToolArgumentsError",
    "ToolDefinitionError",
    "UnknownPurpose",
    "UnknownResponse",
    "UnknownStream",
    "UnreadableFile",
    "UnsupportedFileType",
    "UnsupportedSchema",
    "UnsupportedToolParameter",
]


class ActorsLayerError(Exception):
    """Root of the errors raised by ``streamvisor.actors`` itself."""


class FileInputError(ActorsLayerError):
    """A file, or an input part, that cannot be sent to the API.

    ``path`` names the file (or ``parts[i]``), ``rule`` the rule it broke.
    """

    rule: str = "file_input"

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


class FileAccessError(FileInputError, OSError):
    """The file could not be read as asked (missing, outside the roots, not a file, I/O error)."""

    rule = "readable"


class OutsideAllowedRoots(FileAccessError, PermissionError):
    """The path, once ``..`` and symlinks are resolved, lies outside every readable root."""

    rule = "allowed_roots"

    def __init__(self, path: str, roots: Iterable[str], resolved: str | None = None) -> None:
        self.roots = tuple(roots)
        self.resolved = resolved
        where = f" (resolves to {resolved})" if resolved is not None else ""
        super().__init__(
            path, f"is outside the readable roots{where}; allowed: {', '.join(self.roots)}"
        )


class MissingFile(FileAccessError, FileNotFoundError):
    """Nothing exists at the path (or a symlink on the way is dangling)."""

    rule = "exists"

    def __init__(self, path: str) -> None:
        super().__init__(path, "no such file")


class NotARegularFile(FileAccessError):
    """The path is not a regular file: ``kind`` says what it is instead."""

    rule = "regular_file"

    def __init__(self, path: str, kind: str) -> None:
        self.kind = kind
        super().__init__(path, f"is a {kind}, not a regular file")


class PathIsADirectory(NotARegularFile, IsADirectoryError):
    """The path is a directory."""

    def __init__(self, path: str) -> None:
        super().__init__(path, "directory")


class UnreadableFile(FileAccessError):
    """The OS refused or failed the read (permissions, I/O error); ``reason`` is its explanation."""

    rule = "readable"

    def __init__(self, path: str, reason: str) -> None:
        self.reason = reason
        super().__init__(path, f"cannot be read: {reason}")


class FileRejected(FileInputError, ValueError):
    """The content, or the request around it, breaks a rule of the API."""

    rule = "content"


class EmptyFile(FileRejected):
    """The file has no bytes (the API rejects empty uploads)."""

    rule = "non_empty"

    def __init__(self, path: str) -> None:
        super().__init__(path, "is empty")


def _fmt_size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n} bytes ({n / (1024 * 1024):.1f} MiB)"
    return f"{n} bytes"


class FileTooLarge(FileRejected):
    """The content is over the size limit for its purpose (``purpose`` None: an inline part).

    ``size`` is at least ``limit + 1`` when the file grew past the limit while being read.
    """

    rule = "max_bytes"

    def __init__(self, path: str, size: int, limit: int, purpose: str | None) -> None:
        self.size = size
        self.limit = limit
        self.purpose = purpose
        scope = f"purpose {purpose!r}" if purpose is not None else "an inline input"
        super().__init__(
            path, f"is {_fmt_size(size)}, over the {_fmt_size(limit)} limit for {scope}"
        )


class UnsupportedFileType(FileRejected):
    """The sniffed MIME type is not accepted for the purpose (or input kind)."""

    rule = "allowed_types"

    def __init__(self, path: str, mime_type: str, purpose: str, allowed: Iterable[str]) -> None:
        self.mime_type = mime_type
        self.purpose = purpose
        self.allowed = tuple(sorted(allowed))
        super().__init__(
            path,
            f"content is {mime_type}, which {purpose!r} does not accept; "
            f"allowed: {', '.join(self.allowed)}",
        )


class AnimatedGifNotAllowed(FileRejected):
    """The GIF has more than one frame: the API accepts only non-animated GIFs."""

    rule = "non_animated_gif"

    def __init__(self, path: str, frames: int) -> None:
        self.frames = frames
        super().__init__(
            path, f"is an animated GIF ({frames}+ frames); only non-animated GIFs are accepted"
        )


class MalformedFile(FileRejected):
    """The content claims a format (by its signature) but its structure is broken."""

    rule = "well_formed"

    def __init__(self, path: str, mime_type: str, reason: str) -> None:
        self.mime_type = mime_type
        self.reason = reason
        super().__init__(path, f"is a malformed {mime_type}: {reason}")


class UnknownPurpose(FileRejected):
    """The purpose is not one the Files API accepts at upload."""

    rule = "purpose"

    def __init__(self, path: str, purpose: str, allowed: Iterable[str]) -> None:
        self.purpose = purpose
        self.allowed = tuple(allowed)
        super().__init__(
            path, f"unknown purpose {purpose!r}; expected one of {', '.join(self.allowed)}"
        )


class InvalidInputPart(FileRejected):
    """A hand-built input part is not a valid part for the API it is meant for."""

    rule = "input_part"

    def __init__(self, path: str, reason: str) -> None:
        self.reason = reason
        super().__init__(path, reason)


class AssistantsShapeNotAllowed(InvalidInputPart):
    """An Assistants-API ``image_file`` part, which the Responses API does not accept."""

    rule = "responses_shape"


class InvalidDataURL(InvalidInputPart):
    """A ``data:`` URL with a bad header, bad base64, or a MIME type its bytes contradict."""

    rule = "data_url"


class RequestLimitExceeded(InvalidInputPart):
    """The parts of one request together exceed a per-request limit (image count or bytes)."""

    def __init__(self, path: str, rule: str, total: int, limit: int, what: str) -> None:
        self.rule = rule
        self.total = total
        self.limit = limit
        super().__init__(path, f"{what}: {total} exceeds the per-request limit of {limit}")


# --------------------------------------------------------------------------------------------
# FileActor (``_files.py``, ``_files_handle.py``)
#
#     ActorsLayerError
#     ├── FileUploadFailed                  the API refused or failed an upload of a good file;
#                                           .path, .purpose, .upload_id; __cause__: the wire error
#     ├── InvalidFileId (ValueError)        a file id that cannot name a file; .file_id
#     └── InvalidFileName (ValueError)      an upload name the API cannot carry; .filename


class FileUploadFailed(ActorsLayerError):
    """An upload of a file that passed every local check failed at the API.

    ``path`` names the file (or the caller's name for in-memory bytes), ``purpose`` the upload
    purpose, ``upload_id`` the Uploads-API upload (cancelled server-side before this is raised)
    or None for a single ``POST /files``. The wire error (``streamvisor.openai.OpenAIError``) is
    chained as ``__cause__`` and kept in ``.cause``.
    """

    rule = "upload"

    def __init__(
        self, path: str, purpose: str, cause: BaseException, upload_id: str | None = None
    ) -> None:
        self.path = path
        self.purpose = purpose
        self.cause = cause
        self.upload_id = upload_id
        via = f"upload {upload_id} (cancelled)" if upload_id is not None else "POST /files"
        super().__init__(f"{path}: upload for purpose {purpose!r} failed via {via}: {cause}")


class InvalidFileId(ActorsLayerError, ValueError):
    """A file id that cannot name a file (empty, not a string, or holding URL syntax)."""

    def __init__(self, file_id: object) -> None:
        self.file_id = file_id
        super().__init__(f"not a file id: {file_id!r}")


class InvalidFileName(ActorsLayerError, ValueError):
    """An upload name that is empty, not a string, or holds control characters or a ``/``."""

    def __init__(self, filename: object) -> None:
        self.filename = filename
        super().__init__(f"not a usable upload file name: {filename!r}")


# ---------------------------------------------------------------------------------------------
# Agents and tools (``_agent.py``, ``_agent_handle.py``, ``_tools.py``)


class AgentError(ActorsLayerError):
    """Root of the errors of agents and their tools."""


class ToolDefinitionError(AgentError, ValueError):
    """A tool that cannot be offered to the model. ``function`` names the Python function (or the
    tool), ``parameter`` the offending parameter (None when the tool as a whole is wrong)."""

    def __init__(self, function: str, message: str, parameter: str | None = None) -> None:
        self.function = function
        self.parameter = parameter
        where = f"parameter {parameter!r} of " if parameter is not None else ""
        super().__init__(f"{where}tool function {function!r}: {message}")


class InvalidToolName(ToolDefinitionError):
    """The tool's name is not 1-64 characters of letters, digits, ``_`` and ``-``."""

    def __init__(self, function: str, name: object) -> None:
        self.name = name
        super().__init__(
            function, f"tool name {name!r} must match ^[A-Za-z0-9_-]{{1,64}}$ (the API's rule)"
        )


class DuplicateToolName(ToolDefinitionError):
    """A registry already holds a tool of that name."""

    def __init__(self, function: str, name: str) -> None:
        self.name = name
        super().__init__(function, f"a tool named {name!r} is already registered")


class UnsupportedToolParameter(ToolDefinitionError, TypeError):
    """A parameter whose kind or type hint has no JSON-schema equivalent (or has no hint)."""

    def __init__(self, function: str, parameter: str, hint: object, why: str) -> None:
        self.hint = hint
        super().__init__(function, why, parameter)


class ToolArgumentsError(AgentError, ValueError):
    """The model's arguments for ``tool`` do not fit its parameters; ``problems`` lists each."""

    def __init__(self, tool: str, problems: Iterable[str]) -> None:
        self.tool = tool
        self.problems = tuple(problems)
        super().__init__(f"invalid arguments for {tool}: " + "; ".join(self.problems))


class InvalidAgentConfig(AgentError, ValueError):
    """An agent constructed with a bad id, api, model or option."""


class AgentBusy(AgentError, RuntimeError):
    """The agent already runs a turn and its queue of waiting asks is full."""

    def __init__(self, agent_id: str, queued: int) -> None:
        self.agent_id = agent_id
        self.queued = queued
        super().__init__(f"agent {agent_id!r} is busy: a turn runs and {queued} asks wait")


class MaxTurnsExceeded(AgentError, RuntimeError):
    """The model still asked for tools after ``max_turns`` requests in one ``ask``.

    ``tool_calls`` holds every call the turn made; the agent's history is left as it was.
    """

    def __init__(self, agent_id: str, max_turns: int, tool_calls: Iterable[object] = ()) -> None:
        self.agent_id = agent_id
        self.max_turns = max_turns
        self.tool_calls = tuple(tool_calls)
        super().__init__(
            f"agent {agent_id!r} got no final answer within max_turns={max_turns} model "
            f"requests ({len(self.tool_calls)} tool calls made)"
        )


class ModelResponseFailed(AgentError, RuntimeError):
    """The model's response ended ``failed`` or ``cancelled`` instead of answering."""

    def __init__(
        self,
        agent_id: str,
        status: str,
        *,
        code: str | None = None,
        message: str | None = None,
        response_id: str | None = None,
    ) -> None:
        self.agent_id = agent_id
        self.status = status
        self.code = code
        self.response_id = response_id
        detail = f": {code or 'error'}: {message}" if message else ""
        super().__init__(f"agent {agent_id!r}: response {response_id} ended {status}{detail}")


# ---------------------------------------------------------------------------------------------
# Streaming sessions (``_session.py``, ``_session_requests.py``)


class SessionError(ActorsLayerError):
    """A streaming session refused a request or lost a stream. ``session_id`` names it."""

    def __init__(self, session_id: str | None, message: str) -> None:
        super().__init__(message if session_id is None else f"session {session_id}: {message}")
        self.session_id = session_id
        self.message = message


class InvalidSessionRequest(SessionError, InvalidRequestError):
    """A chat/respond request rejected before any network I/O; ``field`` names the culprit."""

    def __init__(self, session_id: str | None, field: str, message: str) -> None:
        super().__init__(session_id, f"{field}: {message}")
        self.field = field


class InvalidSessionId(SessionError, ValueError):
    """A session id that cannot be a topic segment (``session.<id>``) or a registered name."""

    def __init__(self, session_id: object, reason: str) -> None:
        super().__init__(None, f"invalid session id {session_id!r}: {reason}")
        self.reason = reason


class TooManyStreams(SessionError, RuntimeError):
    """The session already runs ``limit`` streams; stop or wait for one first."""

    def __init__(self, session_id: str, limit: int) -> None:
        super().__init__(session_id, f"already running {limit} streams (the limit)")
        self.limit = limit


class UnknownStream(SessionError, LookupError):
    """No running or remembered stream has this ``stream_id``."""

    def __init__(self, session_id: str, stream_id: str) -> None:
        super().__init__(session_id, f"no stream {stream_id!r}")
        self.stream_id = stream_id


class StreamStopped(SessionError):
    """The stream was stopped (by a caller or the session's shutdown) before its first event."""

    def __init__(self, session_id: str, stream_id: str, why: str) -> None:
        super().__init__(session_id, f"stream {stream_id} was stopped before it started ({why})")
        self.stream_id = stream_id
        self.why = why


class StreamLost(SessionError):
    """A foreground stream ended with its worker (a crash); only durable streams survive that."""

    def __init__(self, session_id: str, stream_id: str) -> None:
        super().__init__(
            session_id,
            f"stream {stream_id} was lost when the session worker restarted "
            "(only durable Responses streams are resumed)",
        )
        self.stream_id = stream_id


# ------------------------------------------------------------------------------------------------
# background (BackgroundPoller, actors/_background.py)::
#
#     ActorsLayerError
#     └── BackgroundError                     anything the background poller rejects or fails at
#         ├── InvalidBackgroundRequest (ValueError)   a create/track rejected before any I/O
#         ├── ResponseGone (LookupError)      the server no longer knows the id (404: unknown, or
#         │                                   deleted after its retention window); .response_id
#         └── NotRegistered                   created server-side, but the registry write failed:
#                                             .response_id, .response (cancel it, or track it)
#
# The registry store's own errors (``UnknownResponse(KeyError)``, ``StoreError``, ...) and the
# wire layer's (``OutcomeUnknownError``, ``CancelRejected``, ...) pass through unchanged.


class BackgroundError(ActorsLayerError):
    """Root of the errors raised by the background poller itself."""


class InvalidBackgroundRequest(BackgroundError, ValueError):
    """A background create or track rejected before any I/O; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ResponseGone(BackgroundError, LookupError):
    """The server answered 404 for this response: an unknown id, or one deleted after its
    retention window. A tracked response is marked ``failed`` (``last_error`` starts with
    ``response_gone:``) when this is seen."""

    def __init__(self, response_id: str, detail: str | None = None) -> None:
        message = f"response {response_id!r} is gone from the server (404)"
        super().__init__(f"{message}: {detail}" if detail else message)
        self.response_id = response_id
        self.detail = detail


class NotRegistered(BackgroundError):
    """The server created the response, but recording it in the registry failed.

    The response runs server-side untracked: ``response`` is what the server answered, so the
    caller can cancel it (or retry the tracking). ``__cause__`` is the store's error.
    """

    def __init__(self, response_id: str, response: Mapping[str, Any]) -> None:
        super().__init__(
            f"response {response_id!r} was created but could not be recorded in the registry; "
            "it is not being polled"
        )
        self.response_id = response_id
        self.response = response


# ---------------------------------------------------------------------------------------------
# The registry store (``_store.py``)


class StoreError(Exception):
    """Root of every error raised by the registry store."""


class UnknownResponse(StoreError, KeyError):
    """No record with this response id is tracked."""

    def __init__(self, response_id: str) -> None:
        super().__init__(response_id)
        self.response_id = response_id

    def __str__(self) -> str:  # KeyError would print the repr of its argument
        return f"response {self.response_id!r} is not tracked by the registry"


class DuplicateResponse(StoreError, ValueError):
    """``add()`` of a response id that is already tracked."""

    def __init__(self, response_id: str) -> None:
        super().__init__(f"response {response_id!r} is already tracked by the registry")
        self.response_id = response_id


class IllegalTransition(StoreError, ValueError):
    """A terminal status cannot become a different status."""

    def __init__(self, response_id: str, current: str, requested: str) -> None:
        super().__init__(
            f"response {response_id!r} is already {current!r} (terminal); "
            f"it cannot become {requested!r}"
        )
        self.response_id = response_id
        self.current = current
        self.requested = requested


class CorruptStore(StoreError):
    """The file is not a registry database, is damaged, or holds a row that fails validation."""


class UnsupportedSchema(CorruptStore):
    """The database was written by a newer streamvisor: its schema version is too high."""


class StoreClosed(StoreError, trio.ClosedResourceError):
    """The store was used after its ``async with`` block ended (you closed it)."""
