"""The gateway's ``/v1`` held to the official OpenAI SDK, sync and asyncio."""
