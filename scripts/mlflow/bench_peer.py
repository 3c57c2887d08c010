"""Peer figures for bench/tracking.ts: the Python mlflow client against the same server.

points: log N metric points with MlflowClient.log_batch (1000 per call), report points/s.
steps:  S simulated 100 ms training steps (busy CPU), each logging 100 metrics with one
        synchronous log_batch; report the logging overhead in percent of step time.
Prints one JSON object.
"""
import json
import sys
import time

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient


def main():
    uri, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("bench-python")
    exp_id = exp.experiment_id if exp else client.create_experiment("bench-python")
    run = client.create_run(exp_id, run_name=f"python-{mode}")
    rid = run.info.run_id
    if mode == "points":
        ts = int(time.time() * 1000)
        per_step = 100
        metrics = [Metric(f"m{i % per_step}", float(i), ts + i // per_step, i // per_step) for i in range(n)]
        t0 = time.perf_counter()
        for s in range(0, n, 1000):
            client.log_batch(rid, metrics=metrics[s:s + 1000])
        dt = time.perf_counter() - t0
        print(json.dumps({"points": n, "seconds": dt, "points_per_s": n / dt}))
    else:
        step_s = 0.1
        in_steps = 0.0
        t0 = time.perf_counter()
        for s in range(n):
            t_step = time.perf_counter()
            while time.perf_counter() - t_step < step_s:
                pass
            in_steps += time.perf_counter() - t_step
            ts = int(time.time() * 1000)
            client.log_batch(rid, metrics=[Metric(f"m{i}", float(s * 100 + i), ts, s) for i in range(100)])
        dt = time.perf_counter() - t0
        print(json.dumps({"steps": n, "seconds": dt, "overhead_pct": (dt - in_steps) / in_steps * 100}))
    client.set_terminated(rid)


if __name__ == "__main__":
    main()
