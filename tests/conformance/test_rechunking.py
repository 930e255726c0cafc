"""Every recorded stream, re-chunked by the server at arbitrary byte boundaries (HTTP chunks cut
inside lines, inside UTF-8 sequences, between `\\n` and `\\n`), yields the same events and the same
result as the recording read whole.

The embedded server's replay mode cuts the body into chunks of the given sizes (cycling through
them) and sends each as its own HTTP chunk over loopback; the client sees the cuts.
"""

from __future__ import annotations

from typing import Any

import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from streamvisor.openai import StreamEvent

from .conftest import ALL_RECORDINGS, GUARD, OpenClient, client_opener, running_server
from .test_recordings import (
    completed_payload,
    read_chat_replay,
    read_response_replay,
    recorded_frames,
)

#: Chunk-size cycles: many 1-byte cuts mixed with larger pieces, averaging a few hundred bytes so
#: the 190 KB recording stays quick.
CHUNK_SIZES = st.lists(
    st.one_of(st.integers(1, 8), st.integers(9, 900)), min_size=1, max_size=6
).filter(lambda sizes: sum(sizes) / len(sizes) >= 40)


def comparable(events: list[StreamEvent]) -> list[tuple[str, int, Any]]:
    return [(e.type, e.sequence_number, e.data) for e in events]


class TestRechunkedReplays:
    @settings(
        max_examples=6,
        deadline=None,
    )
    @given(sizes=CHUNK_SIZES)
    async def test_every_recording_cut_anywhere_yields_the_events_of_the_whole_recording(
        self, sizes: list[int]
    ) -> None:
        """For each recording, the events (type, number, data) and the final result read from a
        re-chunked replay equal those read from the replay sent frame by frame."""
        cycle = ",".join(map(str, sizes))
        # Each example gets its own server (fixtures are not re-created between examples).
        with trio.fail_after(GUARD):
            async with running_server() as server:
                await self.check_all(client_opener(server), cycle)

    async def check_all(self, open_client: OpenClient, cycle: str) -> None:
        for stem in ALL_RECORDINGS:
            read = read_chat_replay if "_chat_" in stem else read_response_replay
            whole_events, whole_result = await read(open_client, stem)
            cut_events, cut_result = await read(open_client, stem, cycle)
            assert comparable(cut_events) == comparable(whole_events), stem
            assert cut_result == whole_result, stem
            if "_responses_" in stem:
                assert [e.data for e in cut_events] == recorded_frames(stem), stem
                assert cut_result == completed_payload(stem), stem
