"""Writes the performance tables from the benchmark's own results: never typed by hand.

    python scripts/perf_table.py            # rewrite README.md and docs/performance.md
    python scripts/perf_table.py --check    # exit 1 if either is out of date with benchmarks/results/

Reads every ``*.json`` in benchmarks/results/ (each the object that
``python -m resnet_graph.benchmark ... --json`` prints) and replaces the text
between the marker comments:

- docs/performance.md, ``<!-- perf_table:details -->`` ... ``<!-- /perf_table:details -->``:
  one table per CPU and TensorFlow version, every result a row;
- README.md, ``<!-- perf_table:summary -->`` ... ``<!-- /perf_table:summary -->``:
  one table, the latest result of each configuration and CPU, with the command that reproduces it.

Bad input (a file that is not a benchmark result, a missing marker) is one line on stderr and exit 2.
"""
import argparse
import functools
import glob
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARKERS = {'summary': ('<!-- perf_table:summary -->', '<!-- /perf_table:summary -->'),
           'details': ('<!-- perf_table:details -->', '<!-- /perf_table:details -->'),
           'ops': ('<!-- perf_table:ops -->', '<!-- /perf_table:ops -->')}
REQUIRED = ('depth', 'image_size', 'batch_size', 'mode', 'images_per_sec', 'steps', 'warmup')
# Flags written into every reproducing command; the others only where a result differs from the benchmark's
# default (read from its flag definitions, the one place they live).
ALWAYS = ('depth', 'image_size', 'batch_size', 'mode', 'steps', 'warmup')
OPTIONAL = ('channels', 'num_classes', 'data', 'dataset', 'data_dir', 'compare', 'xla', 'conv', 'fold_bn', 'dtype',
            'repeats')

class InputError(Exception):
    """A results file or a target file this script cannot use; the message names it."""


def load_results(directory):
    """Every result in ``directory``: a list of (file name, report dict), in table order (configuration, then
    CPU, then time)."""
    results = []
    for path in sorted(glob.glob(os.path.join(directory, '*.json'))):
        try:
            with open(path) as f:
                report = json.load(f)
        except (OSError, ValueError) as e:
            raise InputError('%s is not readable JSON (%s): put only benchmark --json output there' % (path, e))
        missing = [k for k in REQUIRED if not isinstance(report, dict) or k not in report]
        if missing:
            raise InputError('%s lacks %s: is it the output of python -m resnet_graph.benchmark --json?'
                             % (path, ', '.join(missing)))
        results.append((os.path.basename(path), report))
    results.sort(key=lambda item: (row_key(item[1]), item[1].get('measured_at') or '', item[0]))
    return results


def row_key(r):
    """What makes two results the same row: the configuration and the CPU."""
    return (r['depth'], r['mode'], r['image_size'], r['batch_size'], r.get('dtype', 'float32'),
            r.get('data', 'synthetic'), r.get('compare', ''), r.get('cpu_model') or '')


@functools.lru_cache(maxsize=None)
def benchmark_defaults():
    """{flag: default} of ``python -m resnet_graph.benchmark`` for the OPTIONAL flags."""
    sys.path.insert(0, ROOT)
    from absl import flags
    from resnet_graph import flags as run_flags
    run_flags.define_benchmark()
    return {name: flags.FLAGS[name].default for name in OPTIONAL}


def command(r):
    """The benchmark command line that reproduces result ``r``."""
    defaults = benchmark_defaults()
    args = ['--%s %s' % (k, r[k]) for k in ALWAYS]
    args += ['--%s %s' % (k, r[k]) for k in OPTIONAL if r.get(k, defaults[k]) != defaults[k]]
    return 'python -m resnet_graph.benchmark %s --json' % ' '.join(args)


def rate(x):
    """Images/sec as the tables show it: 1056.7 -> '1,057', 56.81 -> '56.8', 6.521 -> '6.52'; None -> '-'."""
    if x is None:
        return '-'
    return '{:,.0f}'.format(x) if x >= 1000 else '%.1f' % x if x >= 10 else '%.2f' % x


def ratio(r):
    return '-' if r.get('ratio') is None else '%.2fx' % r['ratio']


def cpu(r):
    return '%s, %s cores' % (r.get('cpu_model') or 'unknown CPU', r.get('cpu_count') or '?')


def commit(r):
    c = r.get('commit')
    return '-' if not c else c[:7] + ('-dirty' if c.endswith('-dirty') else '')


def loads(r):
    """The 1-minute load averages a result recorded (at its start and end): a list, empty when it has none."""
    value = r.get('load_average')
    return [] if value is None else value if isinstance(value, list) else [value]


def load(r):
    return ' / '.join('%.1f' % v for v in loads(r)) or '-'


def machine(r):
    """The CPU cell of the summary: the CPU, and 'busy' where other work shared the machine: a load above the
    cores + 1 (the benchmark's own processes keep about as many cores busy as there are)."""
    busy = any(v > (r.get('cpu_count') or 1) + 1 for v in loads(r))
    return cpu(r) + (', busy (load %s)' % load(r) if busy else '')


def table(header, rows):
    lines = ['| %s |' % ' | '.join(header), '|' + '---|' * len(header)]
    return lines + ['| %s |' % ' | '.join(row) for row in rows]


def details(results):
    """The markdown of docs/performance.md: one table per (CPU, TensorFlow version), every result a row."""
    if not results:
        return 'No results yet: run a benchmark with `--json` into `benchmarks/results/` and rerun this script.'
    groups = {}
    for name, r in results:
        groups.setdefault((cpu(r), r.get('tensorflow_version') or '?', r.get('keras_version') or '?'), []).append(
            (name, r))
    out = []
    for (cpu_cell, tf_version, keras_version), items in sorted(groups.items()):
        flags = items[-1][1].get('cpu_flags') or []
        out.append('**%s**, TensorFlow %s, Keras %s; ISA flags: %s' % (
            cpu_cell, tf_version, keras_version, ' '.join(f for f in flags if f.startswith(('avx', 'amx'))) or '-'))
        out.append('')
        header = ['ResNet', 'mode', 'image', 'batch', 'dtype', 'resnet_graph img/s (% of matmul)',
                  'Keras img/s (setting)', 'ratio', 'first step s (ours / Keras)', 'peak RSS MB (ours / Keras)',
                  'repeats', 'load', 'commit', 'file']
        rows = []
        for name, r in items:
            share = r.get('fraction_of_matmul')
            keras = '-' if r.get('keras_images_per_sec') is None else '%s (%s)' % (
                rate(r['keras_images_per_sec']), r.get('keras_setting'))
            first = '%.1f / %s' % (r.get('first_step_s') or 0, '-' if r.get('keras_first_step_s') is None
                                   else '%.1f' % r['keras_first_step_s'])
            rss = '{:,.0f} / {}'.format(r.get('peak_rss_mb') or 0, '-' if r.get('keras_peak_rss_mb') is None
                                        else '{:,.0f}'.format(r['keras_peak_rss_mb']))
            rows.append([str(r['depth']), r['mode'], str(r['image_size']), str(r['batch_size']),
                         r.get('dtype', 'float32'),
                         rate(r['images_per_sec']) + ('' if share is None else ' (%.0f %%)' % (100 * share)),
                         keras, ratio(r), first, rss, str(r.get('repeats', 1)), load(r), commit(r),
                         '`%s`' % name])
        out += table(header, rows) + ['']
    return '\n'.join(out).rstrip('\n')


def ops(results):
    """The markdown of docs/performance.md's op breakdown: per result with a traced step (``op_seconds``), each op
    class's share of the summed op time, and that sum over the step's wall time (above 1: ops overlapped)."""
    traced = [(name, r) for name, r in results if r.get('op_seconds')]
    if not traced:
        return 'No result with a traced step yet.'
    sys.path.insert(0, ROOT)
    from resnet_graph.bench.op_classes import NAMES
    header = ['ResNet', 'mode', 'image', 'batch', 'dtype', 'CPU'] + list(NAMES) + ['op time / step', 'file']
    rows = []
    for name, r in traced:
        seconds = r['op_seconds']
        total = sum(seconds.values()) or 1.0
        rows.append([str(r['depth']), r['mode'], str(r['image_size']), str(r['batch_size']), r.get('dtype', 'float32'),
                     cpu(r)] + ['%.0f %%' % (100.0 * seconds.get(k, 0.0) / total) for k in NAMES]
                    + ['%.2f' % (total * r['images_per_sec'] / r['batch_size']), '`%s`' % name])
    return '\n'.join(table(header, rows))


def summary(results):
    """The markdown of README.md: the latest result of each configuration and CPU, with its command."""
    if not results:
        return 'No results yet (see [docs/performance.md](docs/performance.md)).'
    latest = {}
    for _, r in results:  # in time order within a configuration: the last one wins
        latest[row_key(r)] = r
    header = ['ResNet', 'mode', 'image', 'batch', 'resnet_graph img/s', 'Keras img/s', 'ratio', 'CPU',
              'reproduce']
    rows = [[str(r['depth']), r['mode'], str(r['image_size']), str(r['batch_size']), rate(r['images_per_sec']),
             rate(r.get('keras_images_per_sec')), ratio(r), machine(r), '`%s`' % command(r)]
            for r in latest.values()]
    return '\n'.join(table(header, rows))


def replace_between(text, which, body, path):
    """``text`` with the lines between the ``which`` markers replaced by ``body``."""
    start, end = MARKERS[which]
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise InputError('%s needs the markers %s and %s, once each, in that order' % (path, start, end))
    head, rest = text.split(start)
    _, tail = rest.split(end)
    return '%s%s\n%s\n%s%s' % (head, start, body, end, tail)


def write_atomic(path, text):
    """Writes ``text`` to ``path`` atomically (``resnet_graph.training.run_dir.atomic_write_text``)."""
    sys.path.insert(0, ROOT)
    from resnet_graph.training.run_dir import atomic_write_text
    atomic_write_text(path, text)


def update(results_dir, readme, performance, check=False):
    """Rewrites the generated parts of ``readme`` and ``performance``; returns the paths that changed (with
    ``check``, the paths that would change, nothing written)."""
    results = load_results(results_dir)
    texts = {}
    parts = {performance: (('details', details(results)), ('ops', ops(results))),
             readme: (('summary', summary(results)),)}
    for path, bodies in parts.items():
        try:
            with open(path) as f:
                old = f.read()
        except OSError as e:
            raise InputError('cannot read %s: %s' % (path, e.strerror))
        new = old
        for which, body in bodies:
            new = replace_between(new, which, body, path)
        texts[path] = (old, new)  # every file checked before any is written
    changed = [path for path, (old, new) in texts.items() if new != old]
    for path in changed if not check else ():
        write_atomic(path, texts[path][1])
    return changed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--results', default=os.path.join(ROOT, 'benchmarks', 'results'))
    parser.add_argument('--readme', default=os.path.join(ROOT, 'README.md'))
    parser.add_argument('--performance', default=os.path.join(ROOT, 'docs', 'performance.md'))
    parser.add_argument('--check', action='store_true', help='exit 1 if a file is out of date; write nothing')
    args = parser.parse_args(argv)
    try:
        changed = update(args.results, args.readme, args.performance, args.check)
    except InputError as e:
        print('perf_table.py: error: %s' % e, file=sys.stderr)
        return 2
    for path in changed:
        print('%s %s' % ('out of date:' if args.check else 'wrote', os.path.relpath(path)))
    return 1 if args.check and changed else 0


if __name__ == '__main__':
    sys.exit(main())
