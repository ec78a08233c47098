"""The run directory: saved configuration, best record, checkpoints and event folders.

    <model_dir>/config.json        the run's configuration (rebuilds the same graph)
    <model_dir>/model.ckpt-<step>  rolling checkpoints (Saver, max_to_keep)
    <model_dir>/best/              the best-validation checkpoint
    <model_dir>/best.json          its step, validation accuracy and loss, time
    <model_dir>/train/, eval/      event files for TensorBoard

Every JSON file is written atomically (temporary file, fsync, rename), so a
crash leaves either the old or the new record, never half of one.
"""
import glob
import json
import os
import re
import tempfile

from resnet_graph import errors

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


def new_file_mode():
    """The permission bits the umask gives a new file (0o644 under umask 022)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def place_file(path, fill, durable=True):
    """Creates file ``path`` through a temporary name in its directory that ``fill(temporary path)`` writes, then a
    rename: ``path`` is whole or absent, with the permissions the umask gives a new file. ``durable``: fsync before
    the rename (records); checkpoint files skip it, as TensorFlow's own: on ext4 it would also wait for every other
    file's dirty pages, a checkpoint's hundreds of megabytes."""
    fd, tmp = tempfile.mkstemp(prefix='.tmp-', dir=os.path.dirname(os.path.abspath(path)))  # an orphan if killed
    os.close(fd)
    try:
        fill(tmp)
        if durable:
            with open(tmp, 'rb+') as f:
                os.fsync(f.fileno())
        os.chmod(tmp, new_file_mode())  # mkstemp's 0600 would hide a figure or a graph from the user's group
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_bytes(path, data, durable=True):
    """Writes ``data`` (bytes) to ``path`` (``place_file``): a crash leaves the old file or the new one."""
    def fill(tmp):
        with open(tmp, 'wb') as f:
            f.write(data)
    place_file(path, fill, durable)


def atomic_write_text(path, text):
    """Writes the string ``text`` to ``path`` as UTF-8 with ``atomic_write_bytes``."""
    atomic_write_bytes(path, text.encode('utf-8'))


def atomic_write_json(path, obj):
    """Writes ``obj`` as JSON to ``path`` (sorted keys, indented) with ``atomic_write_bytes``."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + '\n')


def read_json(path):
    """The JSON value at ``path``, or None when the file does not exist.

    Raises UsageError naming the file when it is not JSON (cut short, binary).
    """
    from resnet_graph.errors import UsageError
    if not os.path.exists(path):
        return None
    try:
        with open(path, 'rb') as f:
            return json.loads(f.read().decode('utf-8'))
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        raise UsageError('%s is damaged: not JSON (%s); restore the file (or train into a new --model_dir)'
                         % (path, str(e).splitlines()[0]))


_VERIFIED = {}  # (prefix, its files' sizes and times) -> checkpoint_problem's answer


def checkpoint_problem(prefix):
    """None when every tensor of checkpoint ``prefix`` reads in full, else what is wrong (one phrase).

    A real read of each tensor: a data file cut short or overwritten fails it
    (the index alone loads). Answers are cached while the files stay unchanged.
    """
    try:
        key = _file_key(prefix)
    except OSError:  # deleted while we looked (a save rotating it away)
        return 'its files disappeared while being read'
    if key not in _VERIFIED:
        _VERIFIED[key] = _read_every_tensor(prefix)
    return _VERIFIED[key]


def _file_key(prefix):
    """(prefix, its index and data files' names, sizes and times): changes whenever a file of it does."""
    names = [n for n in glob.glob(glob.escape(prefix) + '.*') if n.endswith('.index') or '.data-' in n]
    return (prefix, tuple(sorted((n, os.stat(n).st_size, os.stat(n).st_mtime_ns) for n in names)))


def mark_verified(prefix):
    """Records checkpoint ``prefix`` as complete without reading it (this process wrote it whole)."""
    _VERIFIED[_file_key(prefix)] = None


def _read_every_tensor(prefix):
    import tensorflow as tf
    try:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception as e:  # OpError, ValueError, or IndexError 'Read less bytes than requested' (cut short)
        lines = [line for line in str(e).splitlines() if line.strip()]
        return 'its index or data file is cut short or damaged (%s)' % (lines[0] if lines else type(e).__name__)
    return None


class RunDir(object):
    """Paths and records of one run directory."""

    def __init__(self, path, writable=True, warn=None):
        """path: the run directory; writable=False for the read-only commands (no state file repair);
        warn: a print-like function for the lines about damaged files (default: stderr)."""
        self.path = path
        self.writable = writable
        self.warn = warn or errors.warn
        self._warned = set()

    def warn_once(self, line):
        if line not in self._warned:
            self._warned.add(line)
            self.warn(line)

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
        """The saved configuration as a config.RunConfig (checked first: records.check_config), or None;
        UsageError naming a damaged field."""
        import config
        from resnet_graph.training import records
        if not os.path.exists(self.join(CONFIG)):
            return None
        saved = read_json(self.join(CONFIG))  # a JSON null is damaged too, not "no config"
        return config.RunConfig.from_json(records.check_config(saved, self.join(CONFIG)))

    def has_checkpoint_files(self):
        """Whether a checkpoint index exists here or in best/ (no TensorFlow: a cheap test of "a run exists")."""
        return any(glob.glob(os.path.join(glob.escape(d), CHECKPOINT_PREFIX + '-*.index'))
                   for d in (self.path, self.best_dir))

    def require_config(self):
        """The saved configuration; UsageError when this is not a run directory."""
        from resnet_graph.errors import UsageError
        cfg = self.load_config()
        if cfg is None:
            raise UsageError('%s is not a run directory (no config.json); train one with '
                             'python -m resnet_graph.train --model_dir %s' % (self.path, self.path))
        return cfg

    def save_config(self, cfg):
        """Writes ``cfg`` (a config.RunConfig) as config.json."""
        atomic_write_json(self.join(CONFIG), cfg.to_json())

    def load_best(self):
        """The best record, or None when there is none or it is damaged (a line says which field, once)."""
        from resnet_graph.errors import UsageError
        from resnet_graph.training import records
        try:
            record = read_json(self.join(BEST))
            problem = None if record is None else records.best_problem(record, self)
        except UsageError as e:
            problem = str(e)
        if problem:
            self.warn_once('%s; rebuilding the best record (from best/ when its checkpoint loads)' % problem)
            return None
        return record

    def save_best(self, record):
        atomic_write_json(self.join(BEST), record)

    def checkpoints(self, directory=None):
        """The prefixes of the complete checkpoints in ``directory`` (default: the run's), oldest first.

        A checkpoint counts when every tensor reads (``checkpoint_problem``):
        one cut short by a kill or damaged is left out, with a line naming it.
        """
        directory = directory or self.path
        steps = []
        for name in os.listdir(directory) if os.path.isdir(directory) else []:
            match = re.match(re.escape(CHECKPOINT_PREFIX) + r'-(\d+)\.index$', name)
            if match:
                steps.append(int(match.group(1)))
        complete = []
        for step in sorted(steps):
            prefix = os.path.join(directory, '%s-%d' % (CHECKPOINT_PREFIX, step))
            problem = checkpoint_problem(prefix)
            if problem:
                self.warn_once('skipping checkpoint %s: %s' % (prefix, problem))
                continue
            complete.append(prefix)
        return complete

    def latest_checkpoint(self, directory=None):
        """The newest complete checkpoint prefix in ``directory`` (default: the run's), or None.

        In a writable RunDir, a ``checkpoint`` state file that names a missing or
        broken checkpoint is rewritten to name this one; a read-only one never writes.
        """
        import tensorflow as tf
        directory = directory or self.path
        complete = self.checkpoints(directory)
        if not complete or not self.writable:
            return complete[-1] if complete else None
        try:
            state = tf.train.get_checkpoint_state(directory)
        except Exception:  # an unparsable state file is rewritten below
            state = None
        if state is None or os.path.abspath(state.model_checkpoint_path) != os.path.abspath(complete[-1]):
            # A copy: for a relative directory TensorFlow rewrites the list it is given in place.
            tf.compat.v1.train.update_checkpoint_state(directory, complete[-1], list(complete))
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

    def step_of(self, prefix):
        """The step in a checkpoint prefix's name (model.ckpt-<step>), or None."""
        match = re.search(re.escape(CHECKPOINT_PREFIX) + r'-(\d+)$', prefix or '')
        return int(match.group(1)) if match else None


def incompatible(saved, wanted):
    """Lists 'key: saved X, asked Y' for the architecture keys where ``wanted`` (a dict of asked values)
    differs from ``saved`` (a config.RunConfig; a run saved before a key existed was built with its default)."""
    return ['%s: saved %r, asked %r' % (k, getattr(saved, k), wanted[k])
            for k in ARCHITECTURE_KEYS if k in wanted and getattr(saved, k) != wanted[k]]
