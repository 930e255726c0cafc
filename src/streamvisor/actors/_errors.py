"""The errors of the actors layer: the root here, each actor package's subtree in its own
``_errors.py`` (``sessions/``, ``background/``, ``files/``, ``agents/``).

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
    └── AgentError                        agents and their tools (``agents/``)
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
    └── SessionError                      a session refused or lost a stream (``sessions/``);
        │                                 .session_id
        ├── InvalidSessionRequest (openai.InvalidRequestError, so ValueError)
        │                                 rejected at the call, before any network I/O; .field
        ├── InvalidSessionId (ValueError) not usable as one topic segment / registered name
        ├── TooManyStreams (RuntimeError) the session already runs .limit streams
        ├── UnknownStream (LookupError)   no running or remembered stream with .stream_id
        ├── StreamStopped                 the stream was stopped before its first event
        ├── StreamLost                    a foreground stream died with its worker (a crash)
        └── TrackingFailed                a durable stream's response could not be registered
                                          (cancelled, not started); .response_id

    ActorsLayerError
    ├── FileUploadFailed                  a good file the API failed to take (``files/``);
    │                                     .path, .purpose, .upload_id; __cause__: the wire error
    ├── InvalidFileId (ValueError)        a file id that cannot name a file; .file_id
    └── InvalidFileName (ValueError)      an upload name the API cannot carry; .filename

    ActorsLayerError
    └── BackgroundError                   the background poller (``background/``)
        ├── InvalidBackgroundRequest (ValueError)   a create/track rejected before any I/O
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

Every ``FileInputError`` names what it concerns in ``.path`` (a filesystem path, the caller's name
for in-memory bytes, or ``parts[i]`` for a hand-built input part) and the rule broken in ``.rule``
(a stable short string such as ``"max_bytes"``, for mapping to HTTP statuses and metrics).
"""

from __future__ import annotations

__all__ = ["ActorsLayerError"]


class ActorsLayerError(Exception):
    """Root of the errors raised by ``streamvisor.actors`` itself."""
