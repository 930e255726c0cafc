"""The OpenAI wire protocol: SSE events, accumulators, errors, retry policy, model rules, client.

Knows nothing of actors. See docs/contracts.md §2.
"""

from __future__ import annotations

from ._chat import ChatAccumulator
from ._client import ClientStatistics, OpenAIClient, Polled
from ._errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CancelRejected,
    ConflictError,
    InsufficientQuotaError,
    InternalServerError,
    InvalidId,
    InvalidParameter,
    InvalidRequestError,
    MalformedStreamError,
    NotFoundError,
    OpenAIError,
    OutcomeUnknownError,
    PermissionDeniedError,
    RateLimitError,
    SequenceError,
    StreamError,
    StreamInterrupted,
    UnprocessableEntityError,
    UploadFailed,
)
from ._events import TERMINAL_TYPES, StreamEvent
from ._files import MAX_PART_SIZE, FilePager
from ._models import SAMPLING_PARAMS, ModelRules, apply_model_rules, is_reasoning_model, rules_for
from ._responses import ResponseAccumulator
from ._retry import RateLimits, RetryPolicy, parse_go_duration, parse_retry_after
from ._settings import DEFAULT_BASE_URL, ClientSettings
from ._stream import EventStream
from ._validation import (
    API_ID_PATTERN,
    MAX_JSON_DEPTH,
    MAX_REQUEST_BYTES,
    MODEL_PATTERN,
    check_id,
    check_json,
    check_model,
    check_request,
    encode_json,
    id_segment,
)

__all__ = [
    "API_ID_PATTERN",
    "DEFAULT_BASE_URL",
    "MAX_JSON_DEPTH",
    "MAX_PART_SIZE",
    "MAX_REQUEST_BYTES",
    "MODEL_PATTERN",
    "SAMPLING_PARAMS",
    "TERMINAL_TYPES",
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "CancelRejected",
    "ChatAccumulator",
    "ClientSettings",
    "ClientStatistics",
    "ConflictError",
    "EventStream",
    "FilePager",
    "InsufficientQuotaError",
    "InternalServerError",
    "InvalidId",
    "InvalidParameter",
    "InvalidRequestError",
    "MalformedStreamError",
    "ModelRules",
    "NotFoundError",
    "OpenAIClient",
    "OpenAIError",
    "OutcomeUnknownError",
    "PermissionDeniedError",
    "Polled",
    "RateLimitError",
    "RateLimits",
    "ResponseAccumulator",
    "RetryPolicy",
    "SequenceError",
    "StreamError",
    "StreamEvent",
    "StreamInterrupted",
    "UnprocessableEntityError",
    "UploadFailed",
    "apply_model_rules",
    "check_id",
    "check_json",
    "check_model",
    "check_request",
    "encode_json",
    "id_segment",
    "is_reasoning_model",
    "parse_go_duration",
    "parse_retry_after",
    "rules_for",
]
