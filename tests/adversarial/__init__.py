"""The adversarial suite (issue 7, part 8): generated bad input against a running daemon.

Run it::

    .venv/bin/python -m pytest tests/adversarial -rxX          # report mode (the default)
    STREAMVISOR_ADVERSARIAL=enforce .venv/bin/python -m pytest tests/adversarial

In report mode what fails is xfailed (``-rxX`` lists it); once the hardening branches are merged,
flip the default in ``conftest.py`` (``MODE``) to ``enforce``. The gateway's authentication is
wired in one place: ``conftest.auth_headers`` (and ``gateway_settings``, which configures the
token while ``[gateway]`` has a ``token`` setting). ``STREAMVISOR_ADVERSARIAL_EXAMPLES`` sets the
examples per generated test (default 25; the example sequence is fixed, so runs are repeatable).
"""
