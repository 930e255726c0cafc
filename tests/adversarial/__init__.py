"""The adversarial suite (issue 7, part 8): generated bad input against a running daemon.

Run it alone with ``.venv/bin/python -m pytest tests/adversarial``. Every generated input must
get a typed refusal (a ``ValueError``/``TypeError``/``LookupError`` from the facade, a typed 4xx
from the gateway, a typed ``error`` message on the WebSocket), with no actor crashed or restarted
and a healthy daemon after. The gateway's authentication is wired in one place:
``conftest.auth_headers`` (and ``gateway_settings``). ``STREAMVISOR_ADVERSARIAL_EXAMPLES`` sets
the examples per generated test (default 25; the example sequence is fixed, so runs repeat).
"""
