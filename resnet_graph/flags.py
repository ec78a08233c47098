"""Every command-line flag, defined in one place; defaults come from ``config.py``.

Each command calls its ``define_*`` function once, before parsing.
"""
from absl import flags

import config

FLAGS = flags.FLAGS
T = config.TRAIN


def define_train():
    flags.DEFINE_integer('depth', T['depth'], 'ResNet depth: 18, 34, 50, 101 or 152.')
    flags.DEFINE_string('dataset', T['dataset'], 'Data set name (digits: the embedded default).')
    flags.DEFINE_string('data_dir', T['data_dir'], 'Where the data set lives (unused for digits).')
    flags.DEFINE_string('model_dir', T['model_dir'], 'Run directory (default runs/resnet<depth>); '
                        'an existing one is resumed.')
    flags.DEFINE_integer('image_size', T['image_size'], 'Side of the square images the network sees.')
    flags.DEFINE_integer('batch_size', T['batch_size'], 'Training batch size.')
    flags.DEFINE_integer('epochs', T['epochs'], 'Training epochs (ignored when --max_steps is set).')
    flags.DEFINE_integer('max_steps', T['max_steps'], 'Total training steps; 0: --epochs decide.')
    flags.DEFINE_float('learning_rate', T['learning_rate'], 'Initial Adam learning rate.')
    flags.DEFINE_float('learning_decay_rate', T['learning_decay_rate'], 'Exponential decay factor.')
    flags.DEFINE_integer('learning_decay_steps', T['learning_decay_steps'], 'Steps per decay (staircase).')
    flags.DEFINE_float('weight_decay', T['weight_decay'], 'L2 factor on conv and dense kernels.')
    flags.DEFINE_float('bn_momentum', T['bn_momentum'], 'Batch-norm moving-average decay.')
    flags.DEFINE_integer('eval_every', T['eval_every'], 'Validate every N steps; 0: once per epoch.')
    flags.DEFINE_integer('log_every', T['log_every'], 'Log and write train summaries every N steps.')
    flags.DEFINE_integer('histogram_every', T['histogram_every'], 'Write weight and BN-statistics histograms '
                         'every N steps; 0: never.')
    flags.DEFINE_integer('trace_step', T['trace_step'], 'Write a Chrome trace of this training step into '
                         'train/; -1: none.')
    flags.DEFINE_integer('max_to_keep', T['max_to_keep'], 'Rolling checkpoints kept.')
    flags.DEFINE_integer('seed', T['seed'], 'Seed of the initialisation and the data order.')
    flags.DEFINE_enum('nan_policy', T['nan_policy'], ['stop', 'skip'], 'At a NaN or Inf loss: stop the run '
                      '(nothing is saved after it) or skip that update and count it.')


def define_restore():
    flags.DEFINE_string('model_dir', None, 'Run directory written by resnet_graph.train.')
    flags.DEFINE_string('checkpoint', 'best', 'best, latest, or a checkpoint path.')
    flags.DEFINE_boolean('json', False, 'Print one JSON document instead of text.')


def define_evaluate():
    define_restore()
    flags.DEFINE_enum('split', 'test', ['test', 'validation', 'train'], 'Which split to evaluate.')


def define_predict():
    define_restore()
    flags.DEFINE_integer('top_k', 3, 'Classes listed per file.')
