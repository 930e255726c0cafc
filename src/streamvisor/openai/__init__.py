"""The OpenAI wire protocol: SSE events, accumulators, errors, retry policy, model rules, client.

Knows nothing of actors.
"""
