"""The errors the library raises for bad input; the command lines turn each into one stderr line and exit 2.
Warnings (a damaged file skipped, a record rebuilt) are one stderr line too, through ``warn``."""
import contextlib
import os
import subprocess
import sys
import threading

COMMAND = ['resnet_graph']  # the running command's name (cli.run sets it), which prefixes warnings like errors


class UsageError(Exception):
    """A problem with the user's input (flags, files, data); its message says what was wrong and what to do."""


class Terminated(BaseException):
    """SIGTERM outside the training loop (whose own handler saves a checkpoint): raised so that cleanups run, as
    for Ctrl-C's KeyboardInterrupt; not an Exception, so no ``except Exception`` takes it for a failure."""


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


# The beginnings of the lines libjpeg prints itself for a damaged JPEG (its jerror.h messages met while decoding).
LIBJPEG_LINES = (
    'Corrupt JPEG data', 'Premature end of JPEG file', 'Premature end of input file', 'Improper call to JPEG library',
    'Input file read error', 'Invalid JPEG file structure', 'Invalid SOS parameters', 'Invalid component ID',
    'Invalid scan script', 'Invalid progressive parameters', 'Inconsistent progression sequence', 'Bogus ',
    'Unsupported marker type', 'Unsupported JPEG', 'Not a JPEG file', 'Warning: unknown JFIF revision',
    'Huffman table 0x', 'Quantization table 0x', 'Arithmetic table 0x', 'Missing Huffman code table entry',
    'Huffman code size table overflow', 'DCT coefficient out of range', 'Sampling factors too large',
    "Didn't expect more than one scan", 'JPEG datastream contains no image', 'Empty JPEG image', 'Empty input file',
    'Unknown Adobe color transform code', 'Maximum supported image dimension', 'Scan script does not transmit',
    'Application transferred too few scanlines')
_FILTER = """import sys
drop = tuple(sys.argv[1:])
for line in sys.stdin.buffer:
    if not line.decode('utf-8', 'replace').startswith(drop):
        sys.stdout.buffer.write(line)
        sys.stdout.buffer.flush()
"""


@contextlib.contextmanager
def libjpeg_lines_dropped():
    """Runs the block with file descriptor 2 through a filter process that drops libjpeg's own lines (LIBJPEG_LINES)
    and passes every other line as it comes: for decoding in TensorFlow's threads (the training stream), which
    ``stderr_silenced`` cannot wrap. A process of its own, so that the last words of a crash still arrive."""
    sys.stderr.flush()
    try:
        real = os.dup(2)
    except OSError:  # no stderr to filter
        yield
        return
    try:
        filter_process = subprocess.Popen([sys.executable, '-c', _FILTER] + list(LIBJPEG_LINES), stdin=subprocess.PIPE,
                                          stdout=real, stderr=real, start_new_session=True)  # Ctrl-C: not for it
    except OSError:  # no process to spare: the lines stay
        os.close(real)
        yield
        return
    os.dup2(filter_process.stdin.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(real, 2)
        os.close(real)
        filter_process.stdin.close()
        filter_process.wait()  # every line through before the command's last ones


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
