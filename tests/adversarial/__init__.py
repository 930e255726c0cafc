"""The adversarial suite (issue 7, part 8): generated bad input against a running daemon.

Run it alone with ``.venv/bin/python -m pytest tests/adversarial``. Every generated input must
get a typed refusal (a ``ValueError``/``TypeError``/``LookupError`` from the facade, a typed 4xx
from the gateway, a typed ``error`` message on the WebSocket), with no actor crashed or restarted
and a healthy daemon after. ``STREAMVISOR_ADVERSARIAL_EXAMPLES`` sets the examples per generated
test (default 25; the example sequence is fixed, so runs repeat); the named bad ids of
``_inputs.NAMED_BAD_IDS`` are each tried too, whatever the examples drew.
"""
