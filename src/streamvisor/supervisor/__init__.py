"""The generic OTP runtime on trio: actors, supervisors, monitors, a name registry, an event bus.

Knows nothing of OpenAI.
"""
