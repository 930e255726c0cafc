"""streamvisor's benchmarks, run by ``make bench`` (``python -m bench [runtime|wire|daemon|all]``).

Each benchmark module exposes ``main(*, smoke: bool = False) -> bench._common.Table``. Every row
is a ratio against a reference measured side by side in the same run, never an absolute threshold.
"""
