from __future__ import annotations

import openai
import pytest

# The SDK (3.x) stops iterating its own async generators at `data: [DONE]` without closing them;
# under trio their finalizer warns. That is the SDK's, not the server's: silence only that.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <async_generator object"
    r" (SSEDecoder\.aiter_bytes|AsyncStream\._iter_events|Response\.aiter_bytes"
    r"|PoolByteStream\.__aiter__):pytest.PytestUnraisableExceptionWarning"
)


async def test_sdk_chat(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hello"}], stream=True
    )
    text = ""
    async with stream:
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
    assert text == "You said: hello"


async def test_sdk_chat_helper(client: openai.AsyncOpenAI) -> None:
    async with client.chat.completions.stream(
        model="gpt-4o", messages=[{"role": "user", "content": "hello"}]
    ) as stream:
        final = await stream.get_final_completion()
    assert final.choices[0].message.content == "You said: hello"


async def test_sdk_responses_helper(client: openai.AsyncOpenAI) -> None:
    async with client.responses.stream(model="gpt-4o", input="hello") as stream:
        final = await stream.get_final_response()
    assert final.output_text == "You said: hello"
