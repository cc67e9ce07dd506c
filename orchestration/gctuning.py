"""Every use of CPython's cyclic garbage collector in this project, behind one off switch (`PYTHON_GC_TUNING=false`:
each function here does nothing, and collection runs as CPython runs it).

Loading the code location creates about 300,000 Python objects that live as long as the process (Dagster, dbt and
dagster-dbt, the dbt project's assets) and almost no garbage. The collector does not know that: while they are
created it runs full passes over them, and every later full pass walks them again, and so does the interpreter's
teardown after `make run`. What this module does about it:

- `collection_paused`: no collection while the code location loads, then what was loaded is frozen (`gc.freeze`:
  later passes skip it; reference counting frees as ever);
- `frozen`: what is alive when a long step starts (all of Dagster, in an asset) is left out of the passes its
  short-lived objects cause, until the step ends (the dbt build's nodes, the TikTok delivery);
- `freeze_before_exit`: the teardown of `make run` skips what is alive.

The figures and the paired runs that justify it, with the switch as the baseline, are in docs/decisions.md.
"""

import contextlib
import gc
import os
from collections.abc import Iterator

# The interpreter state this module changes (tests/test_definitions.py checks each exists, and that no other module
# of the project touches the collector)
PRIVATE_SYMBOLS = [("gc", "disable"), ("gc", "enable"), ("gc", "isenabled"), ("gc", "freeze"), ("gc", "unfreeze")]


def enabled() -> bool:
    return (os.environ.get("PYTHON_GC_TUNING") or "true").strip().lower() not in ("false", "0", "no", "off")


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block; afterwards every object alive is frozen, and collection is
    back as it was (still off if the caller had turned it off)."""
    if not enabled():
        yield
        return
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if collecting:
            gc.enable()


def freeze() -> bool:
    """Freeze what is alive now; True when done (pair with `unfreeze`)."""
    if not enabled():
        return False
    gc.freeze()
    return True


def unfreeze() -> None:
    """Let go of every freeze: what a finished step loaded can be collected (a process running many steps, as the
    tests do, would otherwise keep it for good). The code location is frozen again by the next `freeze`."""
    if enabled():
        gc.unfreeze()


@contextlib.contextmanager
def frozen() -> Iterator[None]:
    froze = freeze()
    try:
        yield
    finally:
        if froze:
            unfreeze()


def freeze_before_exit() -> None:
    freeze()
