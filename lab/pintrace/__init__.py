"""Pin leaks traced to their call site.

When a workload leaks FOLL_PIN pins, lab runs it once more with kprobe
events on the pin acquire and release paths of the kernel under test (with
kernel stack traces, through tracefs) and names the call sites of the pins
that were never released: "2 pins acquired via ib_umem_get <-
rxe_mr_init_user were never released".

    probes.py   the kprobe events, their filters, the tracefs commands (pure)
    trace.py    trace text -> pins per page -> balance -> call sites (pure)
    rerun.py    the traced rerun in the guest, and the pin-leak case it
                annotates (effects)
"""

from lab.pintrace.rerun import follow_up
from lab.pintrace.trace import Attribution, analyse

__all__ = ["Attribution", "analyse", "follow_up"]
