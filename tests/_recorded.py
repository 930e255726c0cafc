"""Where the recorded OpenAI traffic lives: inside the repository (provenance in its SOURCES.md)."""

from __future__ import annotations

from pathlib import Path

#: Real recorded OpenAI streams and transcripts, copied byte for byte (see SOURCES.md there).
RECORDED = Path(__file__).resolve().parent / "fixtures" / "recorded"
