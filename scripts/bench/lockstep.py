"""Serve a benchmark peer's training step one request at a time (bench/_lockstep.ts).

The bench alternates its own steps with the peer's, so a slow spell of a shared host (other
tenants, CPU steal) lands on both sides instead of on whichever ran during it. Protocol, one
JSON object per stdout line: {"ready": true, ...info} once set up; then for each stdin line
a request name ("step", or one of the names the peer serves), {"step_s": seconds, "cpu_s":
process CPU seconds (all threads), "loss": value}; "stats" answers {"peak_rss_mb": ...}; "quit"
(or end of input) ends the process. The
step's time is taken here, around the step alone, so the pipe's round trip is not counted.

Before each step both sides wait `settle` seconds (the bench passes it in the ready exchange,
default 0.03): a thread pool keeps spinning on the cores for a while after its last parallel
region (libgomp's default spin count is 300,000 iterations, milliseconds), and without the
pause each side's step would start against the other's spinning threads.
"""
import json
import resource
import sys
import time


def serve(handlers, info=None, settle=0.03, stats=None):
    """handlers: a function (served as "step") or {request name: function}; each runs one
    measured unit (a training step, a forward pass) and returns its loss as a float, or None.
    stats(): extra fields for the "stats" reply."""
    if callable(handlers):
        handlers = {"step": handlers}
    print(json.dumps({"ready": True, "settle_s": settle, "serves": sorted(handlers), **(info or {})}), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "quit":
            break
        if cmd == "stats":
            # ru_maxrss: KiB on Linux
            print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **(stats() if stats else {})}), flush=True)
            continue
        if cmd not in handlers:
            print(json.dumps({"error": f"unknown request {cmd!r} (serves {sorted(handlers)})"}), flush=True)
            continue
        time.sleep(settle)
        c0, t0 = time.process_time(), time.perf_counter()
        loss = handlers[cmd]()
        t1, c1 = time.perf_counter(), time.process_time()
        print(json.dumps({"step_s": t1 - t0, "cpu_s": c1 - c0, "loss": loss}), flush=True)
