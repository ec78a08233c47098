"""The run directory: saved configuration, best record, checkpoints and event folders.

    <model_dir>/config.json        the run's configuration (rebuilds the same graph)
    <model_dir>/model.ckpt-<step>  rolling checkpoints (Saver, max_to_keep)
    <model_dir>/best/              the best-validation checkpoint
    <model_dir>/best.json          its step, validation accuracy and loss, time
    <model_dir>/train/, eval/      event files for TensorBoard

Every JSON file is written atomically (temporary file, fsync, rename), so a
crash leaves either the old or the new record, never half of one.
"""
import json
import os
import re
import tempfile

CONFIG = 'config.json'
BEST = 'best.json'
CHECKPOINT_PREFIX = 'model.ckpt'

# Configuration keys a resumed run cannot change: most fix the graph's
# variables (other values would silently mix incompatible weights), the rest
# the optimizer's slots or the validation split.
ARCHITECTURE_KEYS = ('depth', 'num_classes', 'image_size', 'channels', 'dataset', 'architecture', 'shortcut',
                     'resnet_version', 'stride_in', 'width_multiplier', 'no_residual', 'data_format', 'variant',
                     'optimizer', 'freeze_stages',  # these two fix the optimizer's slot variables
                     'dtype',  # float16 adds the loss-scale variables (warm-start across dtypes instead)
                     'validation_fraction', 'split_seed')  # and these the validation split a resume must keep


def atomic_write_json(path, obj):
    """Writes ``obj`` as JSON to ``path`` through a fsynced temporary file and a rename."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix='.tmp-', dir=directory)
    try:
        with os.fdopen(fd, 'w') as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write('\n')
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def read_json(path):
    """The JSON object at ``path``, or None when the file does not exist."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


class RunDir(object):
    """Paths and records of one run directory."""

    def __init__(self, path):
        self.path = path

    def join(self, *parts):
        return os.path.join(self.path, *parts)

    @property
    def checkpoint_prefix(self):
        return self.join(CHECKPOINT_PREFIX)

    @property
    def best_dir(self):
        return self.join('best')

    def create(self):
        for sub in ('', 'best', 'train', 'eval'):
            os.makedirs(self.join(sub), exist_ok=True)

    def load_config(self):
        return read_json(self.join(CONFIG))

    def require_config(self):
        """The saved configuration; UsageError when this is not a run directory."""
        from resnet_graph.errors import UsageError
        cfg = self.load_config()
        if cfg is None:
            raise UsageError('%s is not a run directory (no config.json); train one with '
                             'python -m resnet_graph.train --model_dir %s' % (self.path, self.path))
        return cfg

    def save_config(self, cfg):
        atomic_write_json(self.join(CONFIG), cfg)

    def load_best(self):
        return read_json(self.join(BEST))

    def save_best(self, record):
        atomic_write_json(self.join(BEST), record)

    def checkpoints(self, directory=None):
        """The prefixes of the complete checkpoints in ``directory`` (default: the run's), oldest first.

        A checkpoint counts when its index and data files load: one cut short
        by a kill is left out.
        """
        import tensorflow as tf
        directory = directory or self.path
        steps = []
        for name in os.listdir(directory) if os.path.isdir(directory) else []:
            match = re.match(re.escape(CHECKPOINT_PREFIX) + r'-(\d+)\.index$', name)
            if match:
                steps.append(int(match.group(1)))
        complete = []
        for step in sorted(steps):
            prefix = os.path.join(directory, '%s-%d' % (CHECKPOINT_PREFIX, step))
            try:
                tf.train.load_checkpoint(prefix)
            except (tf.errors.OpError, ValueError):
                continue
            complete.append(prefix)
        return complete

    def latest_checkpoint(self, directory=None):
        """The newest complete checkpoint prefix in ``directory`` (default: the run's), or None.

        A ``checkpoint`` state file that names a missing or broken checkpoint is
        rewritten to name this one.
        """
        import tensorflow as tf
        directory = directory or self.path
        complete = self.checkpoints(directory)
        if not complete:
            return None
        try:
            state = tf.train.get_checkpoint_state(directory)
        except Exception:  # an unparsable state file is rewritten below
            state = None
        if state is None or os.path.abspath(state.model_checkpoint_path) != os.path.abspath(complete[-1]):
            tf.compat.v1.train.update_checkpoint_state(directory, complete[-1], complete)
        return complete[-1]

    def best_checkpoint(self):
        return self.latest_checkpoint(self.best_dir)

    def resolve_checkpoint(self, which):
        """'best', 'latest' or a checkpoint path -> a checkpoint prefix, or None if there is none."""
        if which == 'best':
            return self.best_checkpoint()
        if which == 'latest':
            return self.latest_checkpoint()
        return which


def incompatible(saved, wanted):
    """Lists 'key: saved X, asked Y' for architecture keys that differ.

    A run saved before the architecture variants existed lacks their keys
    and was built with their defaults.
    """
    from resnet_graph.nets.variants import DEFAULTS
    saved = dict(DEFAULTS, **saved)
    return ['%s: saved %r, asked %r' % (k, saved[k], wanted[k])
            for k in ARCHITECTURE_KEYS if k in saved and k in wanted and saved[k] != wanted[k]]
