"""What the official SDK leaves behind under trio, for the tests that drive it."""

from __future__ import annotations

import pytest

#: The SDK (3.x) stops iterating its own async generators at `data: [DONE]` or at a terminal
#: event without closing them, and under trio their finalizers warn. Since 3.63 it also drains an
#: HTTP/1.1 body after `[DONE]` while its event generator is still suspended on httpcore's byte
#: stream (`HTTP11ConnectionByteStream.__aiter__`). That is the SDK's doing, not the server's:
#: silence only those generators.
SDK_GENERATOR_LEAK = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <async_generator object"
    r" (SSEDecoder\.aiter_bytes|AsyncStream\._iter_events|Response\.aiter_bytes"
    r"|PoolByteStream\.__aiter__|AsyncStream\.__stream__|HTTP11ConnectionByteStream\.__aiter__)"
    r":pytest.PytestUnraisableExceptionWarning"
)
