"""Writing a run's checkpoints: the rolling ones and best/, each directory keeping its newest few.

A save writes the files, then the ``checkpoint`` state file naming them, then
removes the oldest beyond ``keep``: the order ``tf.train.Saver`` keeps, so a
kill at any point leaves the previous checkpoints loadable. Two savings:
- the rolling checkpoint of a step whose best/ checkpoint was just written is
  a file copy of best/'s (a kernel copy, not a second serialisation; its own
  bytes, so damage to one file never reaches the other);
- the MetaGraphDef (``.meta``) is exported once per process and its bytes
  written beside every later checkpoint: a finalized graph's is always the same.
"""
import contextlib
import glob
import os
import shutil

import tensorflow as tf

from resnet_graph.training import lifecycle
from resnet_graph.training.run_dir import CHECKPOINT_PREFIX, atomic_write_bytes, mark_verified, place_file

META = '.meta'


class CheckpointWriteError(Exception):
    """A checkpoint could not be written (a full disk, a read-only directory); the message says where and why."""


def _copy(source, target):
    """Copies file ``source`` to ``target``, whole or absent (``run_dir.place_file``, no fsync)."""
    place_file(target, lambda tmp: shutil.copyfile(source, tmp), durable=False)


class CheckpointKeeper(object):
    """Saves checkpoints ``<directory>/model.ckpt-<step>`` and keeps the newest ``keep`` of them.

    Args:
      saver: the ``tf.compat.v1.train.Saver`` whose variables are saved.
      directory: the run directory, or its best/.
      keep: how many checkpoints stay (older ones this keeper knows are removed).
      existing: the complete checkpoint prefixes already there, oldest first (a resumed run's).
      meta: a dict shared by a graph's keepers, holding its exported MetaGraphDef bytes under 'bytes'.
    """

    def __init__(self, saver, directory, keep, existing=(), meta=None):
        self.saver, self.directory, self.keep = saver, directory, keep
        self.kept = list(existing)
        self.meta = {} if meta is None else meta

    def prefix(self, step):
        return os.path.join(self.directory, '%s-%d' % (CHECKPOINT_PREFIX, step))

    def save(self, sess, step):
        """Writes the session's variables as the checkpoint of ``step``; returns its prefix.

        Raises CheckpointWriteError (the earlier checkpoints stay) when the files cannot be written.
        """
        prefix = self.prefix(step)
        with self._failures(prefix):
            os.makedirs(self.directory, exist_ok=True)
            first = 'bytes' not in self.meta
            self.saver.save(sess, prefix, write_meta_graph=first, write_state=False)
            if first:
                with open(prefix + META, 'rb') as f:
                    self.meta['bytes'] = f.read()
            else:
                atomic_write_bytes(prefix + META, self.meta['bytes'], durable=False)
            self._add(prefix)
        return prefix

    def copy(self, source, step):
        """Copies checkpoint ``source`` (a prefix, e.g. best/'s) as the checkpoint of ``step`` here; returns the
        new prefix. Data files first and the index last: a checkpoint counts by
        its index, so a kill leaves none that is half there. Raises CheckpointWriteError like ``save``."""
        prefix = self.prefix(step)
        with self._failures(prefix):
            os.makedirs(self.directory, exist_ok=True)
            data = sorted(glob.glob(glob.escape(source) + '.data-*'))
            for name in data + [source + '.index'] + ([source + META] if os.path.exists(source + META) else []):
                _copy(name, prefix + name[len(source):])
            self._add(prefix)
        return prefix

    def _add(self, prefix):
        mark_verified(prefix)  # written by this process and complete: resumes and the last lines need not re-read it
        self.kept = [p for p in self.kept if p != prefix] + [prefix]
        removed, self.kept = self.kept[:-self.keep], self.kept[-self.keep:]
        tf.compat.v1.train.update_checkpoint_state(self.directory, prefix, list(self.kept))
        for old in removed:  # the index first: a checkpoint counts by it, so a kill here leaves none half there
            for name in sorted(glob.glob(glob.escape(old) + '.*'), key=lambda n: not n.endswith('.index')):
                try:
                    os.remove(name)
                except OSError:
                    continue  # removed meanwhile: nothing to do

    @contextlib.contextmanager
    def _failures(self, prefix):
        """Turns an OSError or OpError in the block into CheckpointWriteError naming the cause (full disk: bytes)."""
        try:
            yield
        except (OSError, tf.errors.OpError) as e:
            complete = os.path.exists(prefix + '.index')  # then an earlier save of this step: only temporaries go
            for name in glob.glob(glob.escape(prefix) + '.*') + glob.glob(glob.escape(prefix) + '_temp*'):
                if not complete or '.tempstate' in name or name.endswith('_temp'):  # what the failed save left
                    shutil.rmtree(name, ignore_errors=True) if os.path.isdir(name) else os.remove(name)
            raise CheckpointWriteError(lifecycle.save_failure(e, self.saver, prefix)) from None
