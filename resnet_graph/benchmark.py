"""python -m resnet_graph.benchmark: images/sec of resnet_graph, side by side with Keras, in one run.

    python -m resnet_graph.benchmark --depth 50 --image_size 32 --batch_size 128 --compare keras

Each workload runs in its own process, one after the other (``resnet_graph.bench.worker``):
the machine's matrix-multiply rate, our graph, and with ``--compare keras``
the equivalent Keras model with and without ``jit_compile`` (the faster one
is the reference); ``--repeats R`` runs that sequence R times and reports
medians. Prints images/sec (median step after the warm-up), the ratio, the
time to the first finished step, peak resident memory and the achieved
FLOP/s against the matrix-multiply rate; ``--json`` prints one object, which
also says where it was measured (commit, CPU model and ISA flags, TensorFlow
and Keras versions, the machine's load): benchmarks/results/ holds such objects.
"""
import datetime
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys

import config
from resnet_graph import cli
from resnet_graph.nets import variants
from resnet_graph import flags as run_flags
from resnet_graph.errors import UsageError, require

FLAGS = run_flags.FLAGS
DEPTHS = tuple(sorted(variants.IMAGENET_STAGES))  # the depths Keras has a counterpart of
KERAS_SETTINGS = ('default', 'jit_compile')  # each timed; the faster is the reference


def validate():
    require(FLAGS.depth in DEPTHS, '--depth %s is not supported; valid depths: %s'
            % (FLAGS.depth, ', '.join(map(str, DEPTHS))))
    minimum = 32 if FLAGS.compare else 8  # keras.applications' ResNets refuse smaller inputs
    require(FLAGS.image_size >= minimum, '--image_size must be at least %d%s, got %d'
            % (minimum, ' with --compare keras' if FLAGS.compare else '', FLAGS.image_size))
    for name in ('batch_size', 'channels', 'steps', 'repeats'):
        require(FLAGS[name].value >= 1, '--%s must be at least 1, got %d' % (name, FLAGS[name].value))
    require(FLAGS.num_classes >= 2, '--num_classes must be at least 2, got %d' % FLAGS.num_classes)
    require(FLAGS.warmup >= 0, '--warmup must not be negative, got %d' % FLAGS.warmup)


def worker_env(kind):
    """The environment of a ``kind`` worker. Ours and the matmul reference get the command lines' CPU
    allocator (``cli.run``); Keras the one the caller's environment chose, as its users run it (TensorFlow's
    default unless TF_CPU_ALLOCATOR_USE_BFC is set)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
    if kind == 'keras' and cli.USER_ALLOCATOR is None:
        env.pop(cli.ALLOCATOR_VARIABLE, None)
    return env


def allocator(env):
    """'bfc' or 'default': the CPU allocator TensorFlow picks in ``env`` (it reads the variable as a bool)."""
    return 'bfc' if env.get(cli.ALLOCATOR_VARIABLE, '').strip().lower() in ('true', '1') else 'default'


def run_worker(spec):
    """Runs one ``resnet_graph.bench.worker`` process; returns its JSON result (UsageError with its stderr if it fails)."""
    proc = subprocess.run([sys.executable, '-m', 'resnet_graph.bench.worker', json.dumps(spec)],
                          capture_output=True, text=True, env=worker_env(spec['kind']))
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ['exit code %d' % proc.returncode])[-1]
        raise UsageError('the %s workload failed: %s' % (spec['kind'], last))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_repeat(spec):
    """One run of every workload of ``spec``, one process each, in a fixed order: (matmul GFLOP/s, our
    result, {Keras setting: its result}; empty without --compare keras)."""
    matmul = run_worker(dict(spec, kind='matmul'))['matmul_gflops']
    ours = run_worker(dict(spec, kind='ours', xla=spec['xla'] == 'on'))
    keras = {setting: run_worker(dict(spec, kind='keras', data='synthetic', xla=setting == 'jit_compile'))
             for setting in (KERAS_SETTINGS if spec['compare'] == 'keras' else ())}
    return matmul, ours, keras


def measure(spec):
    """Runs every workload of ``spec`` ``spec['repeats']`` times, alternated; returns the report dict (the
    ``--json`` object).

    Each figure is the median over the repeats (of each process's median step); the ratio is the median of
    the repeats' own ratios, each taken between processes that ran minutes apart, so a machine whose speed
    drifts moves both sides of a ratio alike. ``by_repeat`` lists every repeat's figures.
    """
    median = statistics.median
    repeats = [run_repeat(spec) for _ in range(spec['repeats'])]
    seconds = median([ours['seconds_per_step'] for _, ours, _ in repeats])
    matmul = median([gflops for gflops, _, _ in repeats])
    rate = spec['batch_size'] / seconds
    passes = 3 if spec['mode'] == 'train' else 1  # a backward pass costs about two forward passes
    flops = passes * repeats[0][1]['forward_flops']
    report = dict(spec, images_per_sec=rate, first_step_s=median([o['first_step_s'] for _, o, _ in repeats]),
                  peak_rss_mb=median([o['peak_rss_mb'] for _, o, _ in repeats]), gflops=rate * flops / 1e9,
                  op_seconds={name: median([o['op_seconds'][name] for _, o, _ in repeats])
                              for name in repeats[0][1]['op_seconds']},
                  matmul_gflops=matmul, fraction_of_matmul=rate * flops / 1e9 / matmul,
                  keras_images_per_sec=None, keras_setting=None, ratio=None, keras_first_step_s=None,
                  keras_peak_rss_mb=None, cpu_allocator=allocator(worker_env('ours')), keras_cpu_allocator=None,
                  by_repeat=[dict(images_per_sec=spec['batch_size'] / ours['seconds_per_step'], matmul_gflops=gflops)
                             for gflops, ours, _ in repeats])
    if spec['compare'] == 'keras':
        def keras_median(setting, field):
            return median([keras[setting][field] for _, _, keras in repeats])

        by_setting = {s: spec['batch_size'] / keras_median(s, 'seconds_per_step') for s in KERAS_SETTINGS}
        setting = max(by_setting, key=by_setting.get)
        for row, (_, ours, keras) in zip(report['by_repeat'], repeats):
            row.update(keras_images_per_sec=spec['batch_size'] / keras[setting]['seconds_per_step'])
            row.update(ratio=row['images_per_sec'] / row['keras_images_per_sec'])
        report.update(keras_images_per_sec=by_setting[setting], keras_setting=setting,
                      keras_first_step_s=keras_median(setting, 'first_step_s'),
                      keras_peak_rss_mb=keras_median(setting, 'peak_rss_mb'),
                      keras_cpu_allocator=allocator(worker_env('keras')), keras_images_per_sec_by_setting=by_setting,
                      ratio=median([row['ratio'] for row in report['by_repeat']]))
    return report


ISA_PREFIXES = ('avx', 'amx', 'fma', 'f16c', 'sse4')  # the CPU flags that decide which kernels oneDNN runs


def cpu_description(path='/proc/cpuinfo'):
    """(model, ISA flags) of the first CPU in ``path``: ('AMD EPYC (family 25, model 17)', ['avx', 'avx2', ...]);
    (platform.processor() or None, []) where it cannot be read."""
    fields = {}
    try:
        with open(path) as info:
            for line in info:
                key, _, value = line.partition(':')
                if not key.strip():
                    break  # the end of the first CPU's block
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor() or None, []
    model = fields.get('model name') or platform.processor() or None
    if model and 'cpu family' in fields and 'model' in fields:
        model = '%s (family %s, model %s)' % (model, fields['cpu family'], fields['model'])
    flags = sorted(f for f in fields.get('flags', '').split() if f.startswith(ISA_PREFIXES))
    return model, flags


def git_commit():
    """The checkout's commit (with '-dirty' when tracked files differ from it), or None outside a git checkout."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def git(*args):
        return subprocess.run(['git', '-C', root] + list(args), capture_output=True, text=True, timeout=30)
    try:
        head = git('rev-parse', 'HEAD')
        dirty = git('status', '--porcelain', '--untracked-files=no').stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (head.stdout.strip() + ('-dirty' if dirty else '')) if head.returncode == 0 else None


def package_version(*names):
    """The installed version of the first distribution of ``names`` found, or None."""
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return None


def provenance():
    """Where and with what a report was measured: commit, CPU model and ISA flags, core count, TensorFlow,
    Keras and Python versions, UTC time, and the 1-minute load average (a busy machine shows)."""
    model, isa = cpu_description()
    return dict(commit=git_commit(), cpu_model=model, cpu_flags=isa, cpu_count=os.cpu_count(),
                tensorflow_version=package_version('tensorflow', 'tensorflow-cpu', 'tf-nightly'),
                keras_version=package_version('keras'), python_version=platform.python_version(),
                measured_at=datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'),
                load_average=os.getloadavg()[0] if hasattr(os, 'getloadavg') else None)


def format_report(r):
    lines = ['ResNet-%d %s, %dx%dx%d, batch %d, %s data, %s, median of %d steps after %d warm-up%s:'
             % (r['depth'], r['mode'], r['image_size'], r['image_size'], r['channels'], r['batch_size'], r['data'],
                r.get('dtype', 'float32'), r['steps'], r['warmup'],
                ', median of %d alternated repeats' % r['repeats'] if r['repeats'] > 1 else ''),
             '  resnet_graph: %.1f images/sec, first step %.1f s, peak RSS %.0f MB, %.1f GFLOP/s '
             '(%.0f%% of the %.1f GFLOP/s matmul rate), %s CPU allocator'
             % (r['images_per_sec'], r['first_step_s'], r['peak_rss_mb'], r['gflops'],
                100 * r['fraction_of_matmul'], r['matmul_gflops'], r['cpu_allocator'])]
    if r['ratio'] is not None:
        lines.append('  keras (%s, the faster of default and jit_compile): %.1f images/sec, first step %.1f s, '
                     'peak RSS %.0f MB, %s CPU allocator' % (r['keras_setting'], r['keras_images_per_sec'],
                                                             r['keras_first_step_s'], r['keras_peak_rss_mb'],
                                                             r['keras_cpu_allocator']))
        lines.append('  ratio resnet_graph / keras: %.2fx%s' % (r['ratio'], '' if r['repeats'] == 1 else
                     ' (repeats: %s)' % ', '.join('%.2fx' % row['ratio'] for row in r['by_repeat'])))
    return '\n'.join(lines)


def main(args):
    require(not args, 'unexpected arguments: %s' % ' '.join(args))
    validate()
    spec = {name: FLAGS[name].value for name in ('depth', 'image_size', 'batch_size', 'channels', 'num_classes',
                                                 'mode', 'data', 'dataset', 'data_dir', 'steps', 'warmup',
                                                 'compare', 'xla', 'conv', 'fold_bn', 'dtype', 'repeats')}
    from resnet_graph.training import memory  # before any worker builds a graph: a step that cannot fit
    memory.check(config.RunConfig.defaults(depth=spec['depth'], image_size=spec['image_size'],
                                           batch_size=spec['batch_size']), spec['channels'], spec['num_classes'],
                 training=spec['mode'] == 'train', flags=memory.TRAIN_FLAGS + ('num_classes',))
    where = provenance()
    report = dict(measure(spec), **where)
    if where['load_average'] is not None:
        report['load_average'] = [where['load_average'], os.getloadavg()[0]]  # at the start and at the end
    print(json.dumps(report, sort_keys=True) if FLAGS.json else format_report(report))


def cli_main():
    run_flags.define_benchmark()
    cli.run('resnet_graph.benchmark', main)


if __name__ == '__main__':
    cli_main()
