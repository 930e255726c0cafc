"""The embedded OpenAI-compatible server (hypercorn on trio) with fault injection."""
