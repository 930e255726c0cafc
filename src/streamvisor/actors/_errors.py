"""The errors of the actors layer: the root here, each actor package's subtree in its own
``_errors.py`` (``sessions/``, ``background/``, ``files/``, ``agents/``).

The tree (each leaf also subclasses the builtin it specialises, so ``except ValueError`` and
``except OSError`` keep working)::

    ActorsLayerError                      root: anything the domain actors reject or fail at
    └── FileInputError                    a file or input part that cannot be sent; .path, .rule
        ├── FileAccessError (OSError)     the file could not be read as asked
        │   ├── OutsideAllowedRoots (PermissionError)   .roots: not under them without symlinks
        │   │                                           or '..' (one message for every way out)
        │   ├── MissingFile (FileNotFoundError)
        │   ├── NotARegularFile                         .kind: "fifo", "socket", "device", ...
        │   │   └── PathIsADirectory (IsADirectoryError)
        │   └── UnreadableFile                          .reason: the OS's explanation
        └── FileRejected (ValueError)     the bytes or the request break a rule of the API
            ├── EmptyFile
            ├── FileTooLarge              .size, .limit, .purpose (None for an inline part)
            ├── UnsupportedFileType       .mime_type, .purpose, .allowed
            ├── DeclaredTypeMismatch      .mime_type, .declared: an upload's signature disagrees
            ├── AnimatedImageNotAllowed   .mime_type, .frames: an animated PNG or WEBP
            │   └── AnimatedGifNotAllowed       an animated GIF (the API's own rule)
            ├── MalformedFile             .mime_type, .reason: truncated or corrupt
            ├── TooManyPixels             .mime_type, .pixels, .limit: refused before decoding
            ├── UnknownPurpose            .purpose, .allowed
            └── InvalidInputPart          .reason: a hand-built input part is wrong
                ├── AssistantsShapeNotAllowed   an Assistants ``image_file`` part
                ├── InvalidDataURL              bad header, bad base64, MIME mismatch
                └── RequestLimitExceeded        .total, .limit: too many images or image bytes

    ActorsLayerError
    └── AgentError                        agents and their tools (``agents/``)
        ├── ToolDefinitionError (ValueError)   a tool that cannot be offered; .function, .parameter
        │   ├── InvalidToolName                .name is not ``[A-Za-z0-9_-]{1,64}`` in full
        │   ├── DuplicateToolName              .name is already in the registry
        │   └── UnsupportedToolParameter (TypeError)   a hint with no JSON schema; .hint
        ├── ToolArgumentsError (ValueError)    the model's arguments do not fit; .tool, .problems
        ├── InvalidAgentConfig (ValueError)    a bad agent id, api, model or option
        │   └── InvalidAgentId                 .field ("agent_id"), .value: not a topic segment
        ├── AgentBusy (RuntimeError)           the agent's queue of asks is full; .agent_id
        ├── MaxTurnsExceeded (RuntimeError)    no final answer within max_turns; .max_turns
        └── ModelResponseFailed (RuntimeError) the model's response ended failed/cancelled;
                                               .status, .code, .response_id

    ActorsLayerError
    └── SessionError                      a session refused or lost a stream (``sessions/``);
        │                                 .session_id
        ├── InvalidSessionRequest (openai.InvalidRequestError, so ValueError)
        │                                 rejected at the call, before any network I/O; .field
        ├── InvalidSessionId (ValueError) not usable as one topic segment / registered name;
        │                                 .field ("session_id"), .value
        ├── InvalidStreamId (ValueError)  not a stream id the session hands out; .field, .value
        ├── TooManyStreams (RuntimeError) the session already runs .limit streams
        ├── UnknownStream (LookupError)   no running or remembered stream with .stream_id
        ├── StreamStopped                 the stream was stopped before its first event
        ├── StreamLost                    a foreground stream died with its worker (a crash)
        └── TrackingFailed                a durable stream's response could not be registered
                                          (cancelled, not started); .response_id

    ActorsLayerError
    ├── FileUploadFailed                  a good file the API failed to take (``files/``);
    │                                     .path, .purpose, .upload_id; __cause__: the wire error
    ├── InvalidFileId (ValueError)        not an API file id; .field ("file_id"), .value
    └── InvalidFileName (ValueError)      an upload name the API cannot carry; .filename

    ActorsLayerError
    └── BackgroundError                   the background poller (``background/``)
        ├── InvalidBackgroundRequest (ValueError)   a create/track rejected before any I/O
        ├── InvalidResponseId (ValueError)  not an API response id; .field ("response_id"), .value
        ├── ResponseGone (LookupError)    404: unknown id, or deleted after retention; .response_id
        ├── NotRegistered                 created server-side, the registry write failed;
        │                                 .response_id, .response
        └── StoreError                    the registry store (``background/_store.py``)
            ├── UnknownResponse (KeyError)        no record with that .response_id
            ├── DuplicateResponse (ValueError)    add() of a .response_id already tracked
            ├── IllegalTransition (ValueError)    a terminal status replaced by another one;
            │                                     .response_id, .current, .requested
            ├── CorruptStore                      not a database, damaged pages, or a row that
            │   │                                 fails validation (named in the message)
            │   └── UnsupportedSchema             written by a newer streamvisor
            └── StoreClosed (trio.ClosedResourceError)   used after its ``async with`` ended

Every id error carries ``.field`` (the argument's name) and ``.value`` (what was given; its repr
is cut short in the message). Ids are matched in full against their pattern, before any hop to an
actor: session, agent and owner ids against ``NAME_PATTERN`` (``_ids.py``: one bus topic
segment), file and response ids against the wire's ``API_ID_PATTERN``. A request parameter that
is not plain JSON is the wire's ``InvalidParameter`` (a ValueError naming the field), raised as is
by the handles.

Every ``FileInputError`` names what it concerns in ``.path`` (a filesystem path, the caller's name
for in-memory bytes, or ``parts[i]`` for a hand-built input part) and the rule broken in ``.rule``
(a stable short string such as ``"max_bytes"``, for mapping to HTTP statuses and metrics).
"""

from __future__ import annotations

__all__ = ["ActorsLayerError"]


class ActorsLayerError(Exception):
    """Root of the errors raised by ``streamvisor.actors`` itself."""


def shown(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to about ``limit`` characters, for error messages."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."
