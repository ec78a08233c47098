"""--flagfile, read before absl sees the command line: each file checked, and its lines put in its place.

absl reads a flag file's lines itself, but a line it cannot read (an indented ``--flagfile=``, a file that
includes itself, a directory, ``/dev/zero``) becomes a warning it skips, a cryptic flag error or a hang.
Here every file is read once, checked, and expanded in place with absl's rules (blank lines and ``#`` or
``//`` comments dropped, every other line one argument, nested ``--flagfile=`` lines expanded) except that
a line's indentation never changes what it is; absl then parses the expanded command line.
"""
import os
import stat

from resnet_graph.errors import UsageError, utf8_text

DIRECTIVES = ('--flagfile=', '-flagfile=')  # absl's forms inside a file (and --flagfile F on the command line)
MAX_BYTES = 1 << 20  # a file of --flag=value lines; more is not one (e.g. /dev/zero, a data file)
HINT = '; give a text file of --flag=value lines'


def read(name):
    """The text of flag file ``name`` (a regular file or a pipe); UsageError saying why it cannot be one."""
    try:
        mode = os.stat(name).st_mode
    except OSError as e:
        raise UsageError('cannot read --flagfile %s: %s%s' % (name, e.strerror or e, HINT))
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):  # a pipe: bash's <(...)
        raise UsageError('--flagfile %s is %s, not a file%s' % (
            name, 'a directory' if stat.S_ISDIR(mode) else 'a device', HINT))
    try:
        with open(name, 'rb') as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise UsageError('cannot read --flagfile %s: %s%s' % (name, e.strerror or e, HINT))
    if len(data) > MAX_BYTES:
        raise UsageError('--flagfile %s is over %d bytes: not a file of flags%s' % (name, MAX_BYTES, HINT))
    text = utf8_text(data, '--flagfile %s' % name, HINT[2:])
    if '\0' in text:  # valid UTF-8, yet binary; and a NUL inside a value would not show in the error about it
        raise UsageError('--flagfile %s holds a NUL byte (byte %d): not a text file%s'
                         % (name, data.index(b'\0'), HINT))
    return text


def _lines(name, chain):
    """The arguments flag file ``name`` stands for, nested files expanded, each as (argument, (file, line number));
    ``chain``: [(real path, name)] of the files including it. UsageError for a file that cannot be read or that
    includes itself."""
    if not name:  # absl ignores it; a script's unset variable, whose flags would silently not apply
        raise UsageError('--flagfile%s names no file; write --flagfile=FILE, or leave it out'
                         % (' line in %s' % chain[-1][1] if chain else ''))
    real = os.path.realpath(name)
    if real in [r for r, _ in chain]:
        raise UsageError('--flagfile %s includes itself (%s); remove the circular --flagfile line'
                         % (name, ' -> '.join([n for _, n in chain] + [name])))
    arguments = []
    for number, line in enumerate(read(name).splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(('#', '//')):
            continue
        if line.startswith(DIRECTIVES):
            arguments += _lines(os.path.expanduser(line.split('=', 1)[1].strip()), chain + [(real, name)])
        elif line in ('--flagfile', '-flagfile'):
            raise UsageError('--flagfile %s: the line %r names no file; write --flagfile=FILE' % (name, line))
        elif line.startswith('-') and len(line.split('=', 1)[0].split()) > 1:
            raise UsageError('--flagfile %s: the line %r is not --flag=value; write %s=%s' % (
                name, line, line.split()[0], line.split(None, 1)[1].strip()))
        else:
            arguments.append((line, (name, number)))
    return arguments


def expand(args):
    """Command-line ``args`` with each --flagfile (before a ``--``) replaced by the arguments of its file.

    Returns: the new list, each argument as (argument, where): where is (flag file, line number) for an argument
    read from a file, else None. Raises UsageError for a file that cannot be read or that includes itself (absl
    would skip that line with a warning and run without the flags it meant), or a --flagfile without a name.
    """
    expanded, rest = [], list(args)
    while rest:
        arg = rest.pop(0)
        if arg == '--':
            return expanded + [(a, None) for a in [arg] + rest]
        if arg in ('--flagfile', '-flagfile'):
            if not rest:
                raise UsageError('--flagfile needs a file name: --flagfile=FILE')
            expanded += _lines(os.path.expanduser(rest.pop(0)), [])
        elif arg.startswith(DIRECTIVES):
            expanded += _lines(os.path.expanduser(arg.split('=', 1)[1].strip()), [])
        else:
            expanded.append((arg, None))
    return expanded


def origin(expanded, flag, value=None):
    """' (line N of --flagfile F)' when flag ``flag`` (its name; with ``value``, set to it) came from a flag file
    in ``expanded`` (``expand``'s list), else ''."""
    for arg, where in expanded:
        if arg == '--':
            break
        name, _, given = arg.lstrip('-').partition('=')
        if where and arg.startswith('-') and flag in (name, name[2:] if name.startswith('no') else None) and (
                value is None or given == value):
            return ' (line %d of --flagfile %s)' % (where[1], where[0])
    return ''
