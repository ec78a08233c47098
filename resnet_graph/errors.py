"""The errors the library raises for bad input; the command lines turn each into one stderr line and exit 2.
Warnings (a damaged file skipped, a record rebuilt) are one stderr line too, through ``warn``."""
import contextlib
import os
import sys
import threading

COMMAND = ['resnet_graph']  # the running command's name (cli.run sets it), which prefixes warnings like errors


class UsageError(Exception):
    """A problem with the user's input (flags, files, data); its message says what was wrong and what to do."""


_SILENCED = dict(lock=threading.Lock(), depth=0, saved=None)


@contextlib.contextmanager
def stderr_silenced():
    """Points file descriptor 2 at /dev/null for the block: the lines C libraries print themselves (libjpeg's
    "Premature end of JPEG file", TensorFlow's start-up notices), which Python cannot filter. Threads may
    overlap their blocks: the first to enter saves the real stderr, the last to leave puts it back."""
    with _SILENCED['lock']:
        if not _SILENCED['depth']:
            sys.stderr.flush()
            _SILENCED['saved'] = os.dup(2)
            with open(os.devnull, 'w') as null:
                os.dup2(null.fileno(), 2)
        _SILENCED['depth'] += 1
    try:
        yield
    finally:
        with _SILENCED['lock']:
            _SILENCED['depth'] -= 1
            if not _SILENCED['depth']:
                os.dup2(_SILENCED['saved'], 2)
                os.close(_SILENCED['saved'])


def warn(line):
    """Prints warning ``line`` on stderr as one line: '<command>: warning: <line>'."""
    print('%s: warning: %s' % (COMMAND[0], ' '.join(str(line).split())), file=sys.stderr, flush=True)


def shown(name):
    """File name ``name`` as one line shows it: itself, or quoted with Python's escapes (repr) when it is empty or
    holds a newline or another character that does not print."""
    return name if name and name.isprintable() else repr(name)


def utf8_text(data, who, advice):
    """Bytes ``data`` (a whole file: a bad byte's position then counts from its start) as UTF-8 text, a leading
    byte order mark (Windows editors write one) dropped. UsageError '<who> is not UTF-8 text (byte N: why); <advice>'.
    """
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as e:
        raise UsageError('%s is not UTF-8 text (byte %d: %s); %s' % (who, e.start, e.reason, advice))
    return text[1:] if text.startswith('\ufeff') else text


def require(condition, message):
    """Raises UsageError(message) unless condition holds."""
    if not condition:
        raise UsageError(message)


def require_directory(flag, value, what):
    """UsageError unless directory flag ``--flag`` names one: missing -> required, blank -> names no directory.

    Args: flag: the flag's name; value: its value (a string, or a list of them for a repeated flag; None: not
    given); what: the directory it should name, e.g. 'the run directory written by resnet_graph.train'.
    """
    require_named(flag, value, what, 'directory')


def require_named(flag, value, what, kind):
    """UsageError unless flag ``--flag`` names a ``kind`` (a file, a checkpoint): missing -> required, blank ->
    names no ``kind``. Args as for ``require_directory``."""
    values = value if isinstance(value, (list, tuple)) else [value]
    require(value is not None and values, '--%s is required: %s' % (flag, what))
    for v in values:
        require(v is not None and v.strip(), "--%s %r names no %s; give %s" % (flag, v or '', kind, what))
