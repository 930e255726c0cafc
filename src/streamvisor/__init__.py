"""streamvisor: an OTP-style supervised actor daemon on trio for the OpenAI streaming APIs."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
