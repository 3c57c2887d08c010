"""Profile a compiled step per node: where its time goes and how busy the threads are.

Usage (a developer tool, not part of the product or the tests):
  RASS_COMPILE_DUMP=/tmp/dump node dist/bench/run.js engine --no-wasm-train   # any compiled step
  .venv/native-cpu-*/bin/python scripts/profile-graph.py /tmp/dump/<function>.<pid>.json [--threads 2] [--runs 10] [--top 25] [--session]

The JSON is what framework/engine/compile-dump.ts writes for each function compileStep
registers. This script rebuilds it in TensorFlow (same ops, attrs and constants; the
repository's kernels from native/build/rass_ops.node), feeds random inputs of the recorded
shapes (floats N(0, 0.1), integers 0) and runs it:
- by default as a tf.function called eagerly, the path the binding takes (a function op in an
  eager context: same Grappler passes, same oneDNN kernels), traced with TensorFlow's profiler:
  the function's wall time per run, the time per op type and the slowest nodes;
- with --session, in a TF1 session with full tracing, which also gives each node's input shapes
  and how much of a run had 0, 1 or 2+ nodes in flight (inter-op overlap). With oneDNN on a
  session rewrites the graph differently and its kernels run slower than the function's: read
  its milliseconds as relative.
"""
import argparse
import base64
import collections
import glob
import json
import os
import shutil
import tempfile
import time

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import attr_value_pb2

ATTR_STRING, ATTR_INT, ATTR_FLOAT, ATTR_BOOL, ATTR_TYPE, ATTR_SHAPE = 0, 1, 2, 3, 4, 5


# scalar and list fields of an AttrValue, by the binding's attr type
FIELDS = {ATTR_TYPE: 'type', ATTR_INT: 'i', ATTR_FLOAT: 'f', ATTR_BOOL: 'b', ATTR_STRING: 's'}


def attr_value(kind, value):
    a = attr_value_pb2.AttrValue()
    if kind == ATTR_SHAPE:
        if value is None:
            a.shape.unknown_rank = True
        else:
            for d in value:
                a.shape.dim.add(size=d)
        return a
    if kind not in FIELDS:
        raise ValueError(f'attr type {kind} not handled')
    enc = (lambda v: v.encode()) if kind == ATTR_STRING else (lambda v: v)
    if isinstance(value, list):
        getattr(a.list, FIELDS[kind]).extend(enc(v) for v in value)
    else:
        setattr(a, FIELDS[kind], enc(value))
    return a


def input_specs(dump):
    """The function's inputs: one per Placeholder node, in order."""
    specs = []
    for n in dump['nodes']:
        if n['op'] == 'Placeholder':
            a = {x['name']: x['value'] for x in n['attrs']}
            specs.append(tf.TensorSpec(a['shape'], tf.as_dtype(a['dtype'])))
    return specs


def build(dump):
    """The dump as a TF1 graph fed through placeholders (--session)."""
    g = tf.Graph()
    with g.as_default():
        placeholders = [tf.compat.v1.placeholder(s.dtype, s.shape) for s in input_specs(dump)]
        fetches = build_into(dump, placeholders)
    return g, placeholders, fetches


def build_into(dump, inputs):
    """The dump's ops in the current graph (a tf.function's), Placeholders bound to `inputs`."""
    g = tf.compat.v1.get_default_graph()
    outs, k = [], 0
    for n in dump['nodes']:
        op = n['op']
        if op == 'Const':
            outs.append(tf.constant(np.frombuffer(base64.b64decode(n['data']), dtype=np.dtype(n['dtype'])).reshape(n['shape'])).op)
        elif op == 'Placeholder':
            outs.append(tf.identity(inputs[k]).op)
            k += 1
        else:
            attrs = {a['name']: attr_value(a['type'], a['value']) for a in n['attrs']}
            flat = [outs[n['inputs'][j]].outputs[n['inputs'][j + 1]] for j in range(0, len(n['inputs']), 2)]
            outs.append(g._create_op_internal(op, flat, attrs=attrs))
    return [outs[dump['outputs'][j]].outputs[dump['outputs'][j + 1]] for j in range(0, len(dump['outputs']), 2)]


def profile_function(dump, args):
    """Run the dump as a tf.function (the binding's path) under TensorFlow's profiler."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter or args.threads)
    sig = input_specs(dump)
    fn = tf.function(lambda *inputs: build_into(dump, inputs), input_signature=sig, autograph=False)
    rng = np.random.default_rng(0)
    feeds = [tf.constant((rng.standard_normal(s.shape) * 0.1).astype(s.dtype.as_numpy_dtype)) if s.dtype.is_floating else tf.zeros(s.shape, s.dtype) for s in sig]
    for _ in range(3):
        fn(*feeds)
    logdir = tempfile.mkdtemp(prefix='rass-profile-')
    try:
        tf.profiler.experimental.start(logdir)
        for _ in range(args.runs):
            fn(*feeds)
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        with open(glob.glob(os.path.join(logdir, '**', '*.xplane.pb'), recursive=True)[0], 'rb') as f:
            space.ParseFromString(f.read())
    finally:
        shutil.rmtree(logdir, ignore_errors=True)
    runs, by_type, by_node = [], collections.defaultdict(lambda: [0.0, 0]), collections.Counter()
    spans = []  # (start ps, end ps, op type) of every node, for the wall-time split
    for plane in space.planes:
        names = {k: v.name for k, v in plane.event_metadata.items()}
        for line in plane.lines:
            for e in line.events:
                name = names.get(e.metadata_id, '')
                ms = e.duration_ps / 1e9
                if name == 'KernelAndDeviceFunc::Run':
                    runs.append(ms)
                elif ':' in name and '::' not in name and ' ' not in name:
                    node, kind = name.rsplit(':', 1)
                    by_type[kind][0] += ms / args.runs
                    by_type[kind][1] += 1
                    by_node[name] += ms / args.runs
                    start = line.timestamp_ns * 1000 + e.offset_ps
                    spans.append((start, start + e.duration_ps, kind, name))
    total = sum(v[0] for v in by_type.values())
    print(f'{dump["name"]}: {len(dump["nodes"])} recorded nodes; {args.threads} threads; function run median {np.median(runs):.2f} ms over {len(runs)} runs (min {min(runs):.2f})')
    print(f'\nnode time per run (sum {total:.1f} ms; nodes overlap on several threads) by op type:')
    for k, (ms, n) in sorted(by_type.items(), key=lambda kv: -kv[1][0])[:args.top]:
        print(f'  {k:40s} {ms:8.2f} ms {100 * ms / total:5.1f}%  x{n // args.runs}')
    wall, idle = wall_share([(s, e, k) for s, e, k, _ in spans])
    node_wall, _ = wall_share([(s, e, n) for s, e, _, n in spans])
    print(f'\nwall time per run by op type (each instant split among the nodes in flight; {idle / args.runs:.2f} ms with none):')
    for k, ms in sorted(wall.items(), key=lambda kv: -kv[1])[:args.top]:
        print(f'  {k:40s} {ms / args.runs:8.2f} ms')
    print('\nslowest nodes (node time, wall share):')
    for name, ms in node_wall.most_common(args.top):
        print(f'  {by_node[name]:8.2f} ms {ms / args.runs:8.2f} ms  {name}')


def wall_share(spans):
    """Milliseconds of wall time per key (op type or node), each instant shared equally among
    the nodes then running (so two products overlapping on two threads count half each), and
    the time inside the profile with no node running (between runs included)."""
    events = sorted([(s, 1, k) for s, _, k in spans] + [(e, -1, k) for _, e, k in spans], key=lambda t: (t[0], t[1]))
    running, last, share, idle = collections.Counter(), events[0][0], collections.Counter(), 0
    for t, d, k in events:
        n = sum(running.values())
        if n:
            for kind, c in running.items():
                share[kind] += (t - last) * c / n / 1e9
        else:
            idle += (t - last) / 1e9
        running[k] += d
        if not running[k]:
            del running[k]
        last = t
    return share, idle


def concurrency(stats):
    """Seconds of the run with 0, 1, 2+ nodes in flight."""
    events = []
    for s in stats:
        events.append((s.all_start_micros, 1))
        events.append((s.all_start_micros + max(s.all_end_rel_micros, 1), -1))
    events.sort()
    level, last, hist = 0, events[0][0], collections.Counter()
    for t, d in events:
        hist[min(level, 2)] += t - last
        level += d
        last = t
    return hist, events[-1][0] - events[0][0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('dump')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--inter', type=int, default=None, help='inter-op threads (default: --threads)')
    ap.add_argument('--runs', type=int, default=10)
    ap.add_argument('--top', type=int, default=25)
    ap.add_argument('--session', action='store_true', help='profile in a TF1 session (step stats, input shapes, overlap) instead of as a function')
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ops = os.path.join(root, 'native', 'build', 'rass_ops.node')
    if os.path.exists(ops):
        tf.load_op_library(ops)
    with open(args.dump) as f:
        dump = json.load(f)
    if not args.session:
        profile_function(dump, args)
        return
    g, placeholders, fetches = build(dump)
    rng = np.random.default_rng(0)
    feeds = {}
    for ph in placeholders:
        shape = ph.shape.as_list()
        feeds[ph] = (rng.standard_normal(shape) * 0.1).astype(ph.dtype.as_numpy_dtype) if ph.dtype.is_floating else np.zeros(shape, ph.dtype.as_numpy_dtype)
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=args.threads, inter_op_parallelism_threads=args.inter or args.threads)
    with tf.compat.v1.Session(graph=g, config=config) as sess:
        for _ in range(3):
            sess.run(fetches, feeds)
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            sess.run(fetches, feeds)
            times.append(time.perf_counter() - t0)
        md = tf.compat.v1.RunMetadata()
        sess.run(fetches, feeds, options=tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE), run_metadata=md)
    stats = [s for d in md.step_stats.dev_stats for s in d.node_stats if s.node_name not in ('_SOURCE', '_SINK')]
    print(f'{dump["name"]}: {len(dump["nodes"])} recorded nodes, {len(stats)} executed after Grappler; '
          f'{args.threads} threads; median {np.median(times) * 1e3:.2f} ms over {args.runs} runs (min {min(times) * 1e3:.2f})')
    by_type = collections.defaultdict(lambda: [0, 0])
    for s in stats:
        label = s.timeline_label.split(' = ', 1)[-1].split('(', 1)[0] or s.node_name
        by_type[label][0] += s.op_end_rel_micros - s.op_start_rel_micros
        by_type[label][1] += 1
    total = sum(v[0] for v in by_type.values())
    print(f'\nnode time (traced run, sum {total / 1e3:.1f} ms) by op type:')
    for k, (us, n) in sorted(by_type.items(), key=lambda kv: -kv[1][0])[:args.top]:
        print(f'  {k:40s} {us / 1e3:8.2f} ms {100 * us / total:5.1f}%  x{n}')
    print(f'\nslowest nodes:')
    for s in sorted(stats, key=lambda s: -(s.op_end_rel_micros - s.op_start_rel_micros))[:args.top]:
        try:
            shapes = ' <- ' + ' '.join(str(t.shape.as_list()).replace(' ', '') for t in g.get_operation_by_name(s.node_name).inputs)
        except (KeyError, ValueError):
            shapes = ''
        print(f'  {(s.op_end_rel_micros - s.op_start_rel_micros) / 1e3:8.2f} ms  {s.timeline_label.split("] ")[-1][:90]}{shapes}')
    hist, span = concurrency(stats)
    print(f'\ntraced run {span / 1e3:.1f} ms: ' + ', '.join(f'{k if k < 2 else "2+"} in flight {100 * hist[k] / max(span, 1):.0f}%' for k in (0, 1, 2)))


if __name__ == '__main__':
    main()
