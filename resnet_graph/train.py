"""python -m resnet_graph.train --depth 50: train (or resume) a ResNet and keep the best checkpoint.

Running the same command again on the same --model_dir resumes; flags not
given on the command line keep the run's saved values.
"""
import contextlib
import math
import os
import re
import signal

import config
from resnet_graph import cli
from resnet_graph import flags as run_flags
from resnet_graph.errors import UsageError, libjpeg_lines_dropped, require, require_directory
from resnet_graph.training.run_dir import RunDir, incompatible

FLAGS = run_flags.FLAGS
SEED_MAX = 2 ** 32 - 1  # numpy's seeds are 32-bit: a larger one is its traceback


def require_finite(cfg):
    """Raises UsageError naming the first float value of ``cfg`` (a config.RunConfig; a float or a list of them),
    among the train flags, that is NaN or infinite: no range check below may see one."""
    for name in config.TRAIN:
        value = getattr(cfg, name)
        values = value if isinstance(value, (list, tuple)) else [value]
        if any(isinstance(v, float) and not math.isfinite(v) for v in values):
            raise UsageError('--%s must be a finite number, got %s'
                             % (name, ','.join('%g' % x for x in values) if values is value else value))


def validate(cfg):
    """Raises UsageError for the first value of ``cfg`` (a config.RunConfig) out of range."""
    require_finite(cfg)
    for name in config.TRAIN:  # a saved config.json can hold what an enum flag would refuse
        choices = getattr(FLAGS[name].parser, 'enum_values', None) if name in FLAGS else None
        require(not choices or getattr(cfg, name) in choices, '--%s must be one of %s, got %r'
                % (name, ', '.join(choices or ()), getattr(cfg, name)))
    validate_architecture(cfg)
    from resnet_graph.data import SOURCES
    require(cfg.dataset in SOURCES, '--dataset %r is unknown; valid: %s' % (cfg.dataset, ', '.join(SOURCES)))
    for name, low in (('batch_size', 1), ('epochs', 1), ('max_steps', 0), ('image_size', 8), ('eval_every', 0),
                      ('log_every', 1), ('max_to_keep', 1), ('learning_decay_steps', 1), ('seed', 0),
                      ('histogram_every', 0), ('trace_step', -1)):
        require(getattr(cfg, name) >= low, '--%s must be at least %d, got %s' % (name, low, getattr(cfg, name)))
    for name in ('seed', 'split_seed'):
        value = getattr(cfg, name)
        require(0 <= value <= SEED_MAX, '--%s must be at least 0 and at most %d, got %s' % (name, SEED_MAX, value))
    require(cfg.learning_rate > 0, '--learning_rate must be positive, got %s' % cfg.learning_rate)
    require(0 < cfg.learning_decay_rate <= 1, '--learning_decay_rate must be in (0, 1], got %s'
            % cfg.learning_decay_rate)
    require(cfg.weight_decay >= 0, '--weight_decay must not be negative, got %s' % cfg.weight_decay)
    require(0 <= cfg.bn_momentum < 1, '--bn_momentum must be in [0, 1), got %s' % cfg.bn_momentum)
    validate_data(cfg)
    validate_recipe(cfg)
    validate_finetune(cfg)
    validate_dtype(cfg)
    from resnet_graph import cluster
    cluster.validate_flags(cfg)


def validate_architecture(cfg):
    """Raises UsageError for a depth or architecture variant that does not exist (resnet_graph/nets/variants.py)."""
    from resnet_graph.nets import variants
    try:
        variants.resolve(cfg.depth, **variants.from_config(cfg))
    except ValueError as e:
        raise UsageError(str(e).replace('depth ', '--depth ', 1) if str(e).startswith('depth ') else e)


def validate_data(cfg):
    """Raises UsageError for a data-source flag out of range."""
    require(0 < cfg.validation_fraction < 1, '--validation_fraction must be in (0, 1), got %s'
            % cfg.validation_fraction)
    require(cfg.channels in (0, 1, 3, 4), '--channels must be 0 (the data set\'s own), 1, 3 or 4, got %s'
            % cfg.channels)
    require(not cfg.data_dir or cfg.data_dir.strip(), "--data_dir %r names no directory; give the data set's "
            "directory (or a manifest .csv), or leave the flag out for digits" % cfg.data_dir)
    require(cfg.dataset == 'digits' or cfg.data_dir or cfg.download,
            '--dataset %s needs --data_dir DIR (or --download for the public sets)' % cfg.dataset)
    from resnet_graph.data.download import TABLE
    require(not cfg.download or cfg.dataset in TABLE, '--download knows %s, not %s'
            % (', '.join(TABLE), cfg.dataset))


def validate_recipe(cfg):
    """Raises UsageError for an optimizer or schedule flag out of range or a combination that means nothing."""
    for name, low, high in (('momentum', 0, 1), ('adamw_weight_decay', 0, 1), ('label_smoothing', 0, 1)):
        value = getattr(cfg, name)
        require(low <= value < high, '--%s must be in [%g, %g), got %s' % (name, low, high, value))
    for name in ('warmup_epochs', 'clip_gradient_norm'):
        value = getattr(cfg, name)
        require(0 <= value < float('inf'), '--%s must be a number >= 0, got %s' % (name, value))
    require(not cfg.nesterov or (cfg.optimizer == 'momentum' and cfg.momentum > 0),
            '--nesterov needs --optimizer momentum with --momentum > 0 (got --optimizer %s --momentum %s)'
            % (cfg.optimizer, cfg.momentum))
    require(cfg.max_steps or cfg.warmup_epochs < cfg.epochs, '--warmup_epochs %s must be shorter than '
            'the run (--epochs %s)' % (cfg.warmup_epochs, cfg.epochs))
    boundaries, values = cfg.boundaries_epochs, cfg.lr_values
    piecewise = cfg.schedule == 'piecewise'
    require(piecewise or not (boundaries or values), '--boundaries_epochs and --lr_values belong to --schedule '
            'piecewise (got --schedule %s)' % cfg.schedule)
    require(not piecewise or boundaries, '--schedule piecewise needs --boundaries_epochs, e.g. 91,136')
    require(all(0 < b < float('inf') for b in boundaries) and all(a < b for a, b in zip(boundaries, boundaries[1:])),
            '--boundaries_epochs must be positive and strictly increasing, got %s'
            % ','.join('%g' % b for b in boundaries))
    require(not values or len(values) == len(boundaries) + 1, '--lr_values needs one rate per piece: %d for %d '
            'boundaries, got %d' % (len(boundaries) + 1, len(boundaries), len(values)))
    require(all(0 < v < float('inf') for v in values), '--lr_values must all be positive, got %s'
            % ','.join('%g' % v for v in values))


def validate_dtype(cfg):
    """Raises UsageError for a --dtype that this run cannot use."""
    require(cfg.dtype in config.COMPUTE_DTYPES, '--dtype must be one of %s, got %r'
            % (', '.join(config.COMPUTE_DTYPES), cfg.dtype))
    require(cfg.dtype != 'float16' or (cfg.num_devices <= 1 and not cfg.devices), '--dtype float16 '
            'needs one tower (its loss scaling differentiates the loss itself); use --dtype bfloat16 with '
            '--num_devices/--devices')


def validate_finetune(cfg):
    """Raises UsageError for fine-tuning flags out of range or without --warm_start_from."""
    from resnet_graph.nets import variants
    stages = len(variants.resolve(cfg.depth, **variants.from_config(cfg)).num_blocks)
    require(0 <= cfg.freeze_stages <= stages, '--freeze_stages must be in [0, %d] (the stages of this network), '
            'got %s' % (stages, cfg.freeze_stages))
    require(not cfg.freeze_stages or cfg.variant not in ('legacy',) + variants.SLIM_VARIANTS, '--freeze_stages '
            'does not apply to --variant %s (its layers are not named by stage); fine-tune it without freezing'
            % cfg.variant)
    require(not cfg.warm_start_from or cfg.warm_start_from.strip(), '--warm_start_from %r names no run directory '
            'or checkpoint; give one, or leave the flag out' % cfg.warm_start_from)
    for flag in ('warm_start_exclude', 'freeze_stages'):
        require(cfg.warm_start_from or not getattr(cfg, flag), '--%s needs --warm_start_from (a trained run directory '
                'or checkpoint)' % flag)
    for pattern in cfg.warm_start_exclude:
        try:
            re.compile(pattern)
        except re.error as e:
            raise UsageError('--warm_start_exclude %r is not a regular expression: %s' % (pattern, e))


def asked_flags():
    """The names of the train flags given on the command line."""
    return [k for k in config.TRAIN if k in FLAGS and FLAGS[k].present]


def resolve_config():
    """The run's configuration (a config.RunConfig) from the flags and, when resuming, the saved config.json.

    Flags given on the command line win; the others keep the saved values.
    Raises UsageError when they ask for another architecture than the saved run.
    """
    cfg = config.RunConfig.from_flags(FLAGS)
    if FLAGS['model_dir'].present:
        require_directory('model_dir', cfg.model_dir, 'a run directory, or leave the flag out for runs/resnet<depth>')
    cfg = cfg.replace(model_dir=cfg.model_dir or os.path.join('runs', 'resnet%d' % cfg.depth))
    if os.path.exists(cfg.model_dir) and not os.path.isdir(cfg.model_dir):
        raise UsageError('--model_dir %s exists and is not a directory' % cfg.model_dir)
    run = RunDir(cfg.model_dir)
    saved = run.load_config()
    if saved is not None:
        asked = {k: getattr(cfg, k) for k in asked_flags()}
        validate_saved(saved, run.join('config.json'))
        # Until its first checkpoint a run directory is provisional: its config fills the flags not given, but a
        # failed or killed first start never blocks the corrected command.
        clash = incompatible(saved, asked) if run.has_checkpoint_files() else []
        require(not clash, '%s holds a run with another configuration (%s); use another --model_dir or drop '
                'those flags to resume it' % (cfg.model_dir, '; '.join(clash)))
        cfg = saved.replace(**dict(asked, model_dir=cfg.model_dir))  # model_dir: where it is now
    if cfg.warm_start_from and not run.has_checkpoint_files():
        cfg = inherit_input(cfg)
    validate(cfg)
    if FLAGS['data_dir'].present and cfg.data_dir:  # config.json is read from other directories (predict, evaluate)
        cfg = cfg.replace(data_dir=os.path.abspath(cfg.data_dir))
    return cfg


def inherit_input(cfg):
    """A fresh run warm-started from an imported run or from a family's checkpoint (--variant slim_v1, ...) takes
    that family's preprocessing and channels (unless --channels says otherwise): the weights expect the input they
    were trained on. Returns the config."""
    from resnet_graph.serving.imported import warm_start_input
    given = warm_start_input(cfg.warm_start_from, cfg.variant, cfg.depth)
    if not given:
        return cfg
    preprocessing, variant, depth = given.pop('preprocessing'), given.pop('variant'), given.pop('depth')
    require((cfg.variant, cfg.depth) == (variant, depth), '--warm_start_from %s is an imported %s ResNet-%s: '
            'train it with --variant %s --depth %s (another network has other layers), got --variant %s --depth %s'
            % (cfg.warm_start_from, variant, depth, variant, depth, cfg.variant, cfg.depth))
    if 'channels' in asked_flags() and cfg.channels != given['channels']:
        return cfg  # another input: the warm start names the first convolution that cannot take it
    cfg = cfg.replace(**given)
    print('input as in %s: %s preprocessing (its family\'s), %d channels'
          % (cfg.warm_start_from, preprocessing, cfg.channels), flush=True)
    return cfg


def validate_saved(saved, path):
    """Raises UsageError naming config.json at ``path`` (not a flag) when its saved values (``saved``: a
    config.RunConfig) do not validate."""
    try:
        validate(saved)
    except UsageError as e:
        raise UsageError('%s is damaged: the saved value %s; restore the file (or train into a new --model_dir)'
                         % (path, str(e).replace('--', '')))


def main(args):
    require(not args, 'unexpected arguments: %s' % ' '.join(args))
    from resnet_graph import cluster
    from resnet_graph.training import tf_config
    spec = tf_config.from_environment()  # TF_CONFIG (several machines), checked before TensorFlow loads
    cfg = resolve_config()
    cluster.validate_for_cluster(cfg, spec, asked_flags())
    from resnet_graph.training import memory
    memory.check(cfg, cfg.channels or 3)  # before TensorFlow and the data load: a step that cannot fit
    if os.environ.get(cluster.CHECK_ONLY):
        return 0
    from resnet_graph.nets.model import check_data_format
    try:  # before the data and the graph: NCHW on a machine without a GPU
        check_data_format(cfg.data_format)
    except ValueError as e:
        raise UsageError('--%s' % e)
    from resnet_graph.training.trainer import Trainer, TrainingError
    log = lambda line: print(line, flush=True)  # noqa: E731
    try:
        if spec is None:
            trainer = Trainer(cfg, log=log)
        else:
            from resnet_graph.training import distributed
            trainer = distributed.trainer(cfg, spec, log=log)
        with libjpeg_lines_dropped() if cfg.dataset == 'tfrecord' else contextlib.nullcontext():  # its stream decodes
            result = trainer.train()
    except BrokenPipeError:
        raise  # stdout closed (`| head`): cli.run ends quietly; not the run directory's failure
    except OSError as e:
        raise UsageError('cannot write the run directory %s: %s' % (cfg.model_dir, e.strerror or e))
    except TrainingError as e:
        raise UsageError(e)
    return 130 if result['stopped'] == signal.SIGINT else 0


def cli_main():
    run_flags.define_train()
    cli.run('resnet_graph.train', main)


if __name__ == '__main__':
    cli_main()
