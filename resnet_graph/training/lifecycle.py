"""A writer's hold on its run directory: one writer, leftovers of killed saves, where a resume starts.

- ``hold``: an OS lock (``fcntl.flock`` on ``<model_dir>/.lock``) for the
  writer's life (train, the imports); the kernel drops it when the process dies (kill -9 too),
  so no stale pid file can block a restart. A second writer gets a
  UsageError naming the directory and the holder's command, pid and host. While it
  holds the lock it removes the temporary files of saves that were killed.
  A start that fails before its first checkpoint removes the directory it
  created, so the corrected command finds nothing in its way.
- ``resume_point``: the newest checkpoint that really loads, rolling or best/.
- ``StopOnSignal``: SIGTERM or Ctrl-C ends the loop after the step in flight (a checkpoint is saved).
"""
import contextlib
import fcntl
import glob
import os
import re
import shutil
import signal
import socket
import time

from resnet_graph.errors import UsageError

LOCK = '.lock'
# What a killed save leaves: TensorFlow's temporary checkpoint files (and the sharded saves' _temp folders, and
# the state and .meta files it writes through '<name>.tmp<32 hex digits>'), and our atomic writes' temporary files.
ORPHAN_PATTERNS = ('*.tempstate*', '*_temp', '.tmp-*', '*.tmp' + '[0-9a-f]' * 32)
# The files of a checkpoint whose index is gone (a removal killed half way) or never came (a save killed).
_CHECKPOINT_PART = re.compile(r'^(model\.ckpt-\d+)\.(data-\d+-of-\d+|meta)$')


def _acquire(path, who='train'):
    """Locks run directory ``path`` (creating it) for command ``who``; returns the open lock file. UsageError
    when it is held."""
    os.makedirs(path, exist_ok=True)
    handle = open(os.path.join(path, LOCK), 'a+')
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read()
        handle.close()
        raise _in_use(path, holder)
    handle.seek(0)
    handle.truncate()
    handle.write('resnet_graph.%s, pid %d on host %s since %s\n' % (who, os.getpid(), socket.gethostname(),
                                                                    time.strftime('%Y-%m-%dT%H:%M:%S%z')))
    handle.flush()
    return handle


def _in_use(path, holder):
    return UsageError('%s is in use by another writer (%s); wait for it to end, or stop it, or write into another '
                      '--model_dir' % (path, holder.strip() or 'a process that has not written its name yet'))


def holder(path):
    """The line a writer holding run directory ``path``'s lock wrote ('' before it wrote it), or None when no
    process holds it; writes nothing."""
    try:
        handle = open(os.path.join(path, LOCK))
    except OSError:
        return None  # no lock file: no writer yet
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return handle.read()
    return None


def require_free(path):
    """UsageError (as ``hold``'s) when another process holds run directory ``path``'s lock; writes nothing.
    A command's early check; only ``hold`` keeps a second writer out."""
    line = holder(path)
    if line is not None:
        raise _in_use(path, line)


def remove_orphans(run):
    """Removes what killed saves (and removals) left in the run directory and best/; returns (count, bytes)."""
    count = size = 0
    for directory in (run.path, run.best_dir):
        names = os.listdir(directory) if os.path.isdir(directory) else []
        parts = [os.path.join(directory, n) for n in names
                 if _CHECKPOINT_PART.match(n) and _CHECKPOINT_PART.match(n).group(1) + '.index' not in names]
        for path in parts + [p for pattern in ORPHAN_PATTERNS
                             for p in glob.glob(os.path.join(glob.escape(directory), pattern))]:
            try:
                if os.path.isdir(path):
                    size += sum(os.path.getsize(os.path.join(r, n)) for r, _, ns in os.walk(path) for n in ns)
                    shutil.rmtree(path)
                else:
                    size += os.path.getsize(path)
                    os.remove(path)
                count += 1
            except OSError:
                continue  # removed meanwhile, or not ours to remove: it blocks nothing
    return count, size


@contextlib.contextmanager
def hold(run, who='train'):
    """Holds ``run``'s lock for the block; cleans leftovers first; undoes a first start that failed.

    Args: run: RunDir (its ``warn`` says what was cleaned); who: the command holding it (train, import_keras,
    import_checkpoint), named to a second writer.
    """
    created = not os.path.isdir(run.path)
    handle = _acquire(run.path, who)
    try:
        count, size = remove_orphans(run)
        if count:
            run.warn('removed %d temporary files (%d bytes) left by saves that were killed' % (count, size))
        yield
    except BaseException:
        if created and not run.has_checkpoint_files():
            shutil.rmtree(run.path, ignore_errors=True)  # ours, and nothing worth keeping: the retry starts clean
        raise
    finally:
        handle.close()


def resume_point(run):
    """The checkpoint a run resumes from: the newest rolling one that really loads, else best/ (None: fresh);
    ``run.warn`` says when it is not the newest rolling checkpoint.

    best/ holds every variable too (optimizer slots, global step), so when no
    rolling checkpoint is left, continuing from it loses the least.
    """
    latest = run.latest_checkpoint()
    best = None if latest else run.best_checkpoint()
    if best:
        run.warn('no rolling checkpoint in %s; continuing from the best checkpoint %s (step %d), the newest '
            'state saved' % (run.path, best, run.step_of(best)))
        return best
    if latest is None and os.path.exists(run.join('best.json')):
        run.warn('no loadable checkpoint in %s or %s; training starts again from step 0' % (run.path, run.best_dir))
    return latest


def save_failure(error, saver, prefix):
    """Why a checkpoint save failed, in one phrase: for a full disk the path, the bytes one checkpoint needs
    and the bytes free ("Graph execution error:" alone says nothing).

    Args: error: the OSError or tf.errors.OpError; saver: the Saver (its variables size the checkpoint);
    prefix: the checkpoint prefix being written.
    """
    import errno
    text = getattr(error, 'strerror', None) or getattr(error, 'message', None) or str(error)
    if getattr(error, 'errno', None) == errno.ENOSPC or 'no space left on device' in text.lower():
        import tensorflow as tf
        variables = getattr(saver, '_var_list', None) or tf.compat.v1.global_variables()
        variables = list(variables.values()) if isinstance(variables, dict) else variables
        needed = sum(v.shape.num_elements() * v.dtype.base_dtype.size for v in variables
                     if v.shape.is_fully_defined())
        try:
            free = shutil.disk_usage(os.path.dirname(os.path.abspath(prefix))).free
        except OSError:
            free = None
        return 'no space left on device writing %s (a checkpoint needs about %d bytes%s)' % (
            prefix, needed, '' if free is None else ', %d bytes are free' % free)
    lines = [line.strip() for line in text.splitlines()
             if line.strip() and not line.startswith(('Graph execution error', 'Detected at node', '\t'))]
    return lines[-1] if lines else type(error).__name__


class StopOnSignal(object):
    """SIGTERM and SIGINT set a flag the loop checks after each step; a second one exits at once."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.received = None

    def __enter__(self):
        self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def _handle(self, signum, frame):
        if self.received is not None:
            os._exit(128 + signum)
        self.received = signum

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
