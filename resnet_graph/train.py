"""python -m resnet_graph.train --depth 50: train (or resume) a ResNet and keep the best checkpoint.

Running the same command again on the same --model_dir resumes; flags not
given on the command line keep the run's saved values.
"""
import os
import signal

import config
from resnet_graph import cli
from resnet_graph import flags as run_flags
from resnet_graph.cli import require
from resnet_graph.run_dir import RunDir, incompatible

FLAGS = run_flags.FLAGS
DEPTHS = (18, 34, 50, 101, 152)


def validate(cfg):
    """Raises UsageError for the first value out of range."""
    require(cfg['depth'] in DEPTHS, '--depth %s is not supported; valid depths: %s'
            % (cfg['depth'], ', '.join(map(str, DEPTHS))))
    from resnet_graph.data import SOURCES
    require(cfg['dataset'] in SOURCES, '--dataset %r is unknown; valid: %s' % (cfg['dataset'], ', '.join(SOURCES)))
    for name, low in (('batch_size', 1), ('epochs', 1), ('max_steps', 0), ('image_size', 8), ('eval_every', 0),
                      ('log_every', 1), ('max_to_keep', 1), ('learning_decay_steps', 1), ('seed', 0),
                      ('histogram_every', 0), ('trace_step', -1)):
        require(cfg[name] >= low, '--%s must be at least %d, got %s' % (name, low, cfg[name]))
    require(cfg['learning_rate'] > 0, '--learning_rate must be positive, got %s' % cfg['learning_rate'])
    require(0 < cfg['learning_decay_rate'] <= 1, '--learning_decay_rate must be in (0, 1], got %s'
            % cfg['learning_decay_rate'])
    require(cfg['weight_decay'] >= 0, '--weight_decay must not be negative, got %s' % cfg['weight_decay'])
    require(0 <= cfg['bn_momentum'] < 1, '--bn_momentum must be in [0, 1), got %s' % cfg['bn_momentum'])


def resolve_config():
    """The run's configuration from the flags and, when resuming, the saved config.json.

    Flags given on the command line win; the others keep the saved values.
    Raises UsageError when they ask for another architecture than the saved run.
    """
    cfg = {name: FLAGS[name].value for name in config.TRAIN}
    cfg['model_dir'] = cfg['model_dir'] or os.path.join('runs', 'resnet%d' % cfg['depth'])
    if os.path.exists(cfg['model_dir']) and not os.path.isdir(cfg['model_dir']):
        raise cli.UsageError('--model_dir %s exists and is not a directory' % cfg['model_dir'])
    saved = RunDir(cfg['model_dir']).load_config()
    if saved:
        asked = {k: v for k, v in cfg.items() if FLAGS[k].present}
        clash = incompatible(saved, asked)
        require(not clash, '%s holds a run with another configuration (%s); use another --model_dir or drop '
                'those flags to resume it' % (cfg['model_dir'], '; '.join(clash)))
        cfg.update({k: saved[k] for k in saved if k not in asked and k != 'model_dir'})
    validate(cfg)
    return cfg


def main(args):
    require(not args, 'unexpected arguments: %s' % ' '.join(args))
    cfg = resolve_config()
    from resnet_graph.trainer import Trainer, TrainingError
    try:
        result = Trainer(cfg, log=lambda line: print(line, flush=True)).train()
    except OSError as e:
        raise cli.UsageError('cannot write the run directory %s: %s' % (cfg['model_dir'], e.strerror or e))
    except TrainingError as e:
        raise cli.UsageError(e)
    return 130 if result['stopped'] == signal.SIGINT else 0


def cli_main():
    run_flags.define_train()
    cli.run('resnet_graph.train', main)


if __name__ == '__main__':
    cli_main()
