"""``--download``: fetch the public data sets, verify a pinned SHA-256, write atomically, extract safely.

Every file is written to a temporary name in the target directory, fsynced,
checked against its digest and only then renamed into place: a partial
download never looks complete. Archives are checked member by member before
anything is extracted (no absolute paths, no ``..``, no links leaving the
tree, no device files or FIFOs) and extracted into a temporary folder that is
moved into place, with a ``.<archive>.done`` marker written last.

The table below can be replaced with the environment variable
``RESNET_GRAPH_DOWNLOADS`` naming a JSON file of the same shape (a mirror, or
a test's loopback server).
"""
import hashlib
import http.client
import json
import os
import shutil
import socket
import stat
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile

from resnet_graph.errors import UsageError

_MNIST = 'https://storage.googleapis.com/cvdf-datasets/mnist/'
_FASHION = 'https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/'
_IDX = ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz', 't10k-images-idx3-ubyte.gz',
        't10k-labels-idx1-ubyte.gz')


def _idx_entries(base, digests):
    return [dict(url=base + name, sha256=digest, file=name, provides=[name, name[:-3]])
            for name, digest in zip(_IDX, digests)]


# dataset -> files: url, sha256 (pinned), file (its name in the data directory),
# provides (names whose presence means nothing needs fetching), extract (an archive).
TABLE = {
    'mnist': _idx_entries(_MNIST, [
        '440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609',
        '3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c',
        '8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6',
        'f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6']),
    'fashion_mnist': _idx_entries(_FASHION, [
        '3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84',
        'a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845',
        '346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073',
        '67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5']),
    'cifar10': [dict(url='https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz',
                     sha256='6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce',
                     file='cifar-10-python.tar.gz', provides=['cifar-10-batches-py'], extract=True)],
    'cifar100': [dict(url='https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz',
                      sha256='85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7',
                      file='cifar-100-python.tar.gz', provides=['cifar-100-python'], extract=True)],
}
TIMEOUT = 20  # seconds to connect or to wait for the next bytes
CHUNK = 1 << 20


def table():
    """The download table: ``TABLE``, or the JSON file named by RESNET_GRAPH_DOWNLOADS."""
    path = os.environ.get('RESNET_GRAPH_DOWNLOADS')
    if not path:
        return TABLE
    with open(path) as f:
        return json.load(f)


def cache_dir(name):
    """Where --download puts a data set when no --data_dir is given: $RESNET_GRAPH_CACHE/<name>
    (default ~/.cache/resnet_graph/<name>)."""
    root = os.environ.get('RESNET_GRAPH_CACHE') or os.path.join(os.path.expanduser('~'), '.cache', 'resnet_graph')
    return os.path.join(root, name)


def resolve(name, data_dir, download_missing):
    """The data directory of a public set (the cache directory when none is given), downloaded first if asked."""
    data_dir = data_dir or cache_dir(name)
    if download_missing:
        ensure(name, data_dir)
    return data_dir


def ensure(name, data_dir):
    """Downloads (and extracts) every file of data set ``name`` that data_dir lacks. UsageError on any failure."""
    os.makedirs(data_dir, exist_ok=True)
    for entry in table()[name]:
        if any(os.path.exists(os.path.join(data_dir, p)) for p in entry.get('provides', [entry['file']])):
            continue
        path = os.path.join(data_dir, entry['file'])
        if not os.path.exists(path):
            fetch(entry['url'], entry['sha256'], path)
        if entry.get('extract'):
            extract(path, data_dir)


def fetch(url, sha256, path):
    """Downloads ``url`` to ``path`` through a fsynced temporary file, renamed only when its SHA-256 matches."""
    manual = ('put the file there by hand: %s (sha256 %s), then run again' % (os.path.abspath(path), sha256))
    fd, tmp = tempfile.mkstemp(prefix='.part-', dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, 'wb') as out:
            digest, size, expected = _copy(url, out, manual)
            out.flush()
            os.fsync(out.fileno())
        if expected is not None and size != expected:
            raise UsageError('the transfer of %s was cut short (%d of %d bytes); nothing was kept: run again or %s'
                             % (url, size, expected, manual))
        if digest != sha256:
            raise UsageError('%s has SHA-256 %s, expected %s (a corrupt or altered file); nothing was kept: run '
                             'again or %s' % (url, digest, sha256, manual))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _copy(url, out, manual):
    """Streams ``url`` into ``out``; returns (sha256 hex, bytes, Content-Length or None)."""
    digest, size = hashlib.sha256(), 0
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            length = response.headers.get('Content-Length')
            while True:
                chunk = response.read(CHUNK)
                if not chunk:
                    break
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
    except http.client.IncompleteRead as e:
        raise UsageError('the transfer of %s was cut short after %d bytes; nothing was kept: run again or %s'
                         % (url, size + len(e.partial), manual))
    except (urllib.error.URLError, socket.timeout, http.client.HTTPException, ConnectionError) as e:
        reason = getattr(e, 'reason', None) or e
        raise UsageError('cannot download %s (%s); without network, %s' % (url, reason, manual))
    return digest.hexdigest(), size, int(length) if length is not None else None


def extract(archive, data_dir):
    """Extracts a tar or zip archive into data_dir after checking every member; then writes .<archive>.done."""
    tmp = tempfile.mkdtemp(prefix='.extract-', dir=data_dir)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                for info in z.infolist():
                    _check_member(archive, info.filename, stat.S_IFMT(info.external_attr >> 16), None)
                z.extractall(tmp)
        else:
            try:
                with tarfile.open(archive) as t:
                    members = t.getmembers()
                    for m in members:
                        _check_tar_member(archive, m)
                    t.extractall(tmp, members=members, **({'filter': 'data'} if hasattr(tarfile, 'data_filter')
                                                          else {}))
            except (tarfile.TarError, EOFError, OSError) as e:
                raise UsageError('%s is not a readable tar or zip archive (%s); delete it and run again'
                                 % (archive, e))
        for name in os.listdir(tmp):
            target = os.path.join(data_dir, name)
            if not os.path.exists(target):
                os.replace(os.path.join(tmp, name), target)
        open(os.path.join(data_dir, '.%s.done' % os.path.basename(archive)), 'w').close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _check_tar_member(archive, member):
    if member.isfile() or member.isdir():
        kind = None
    elif member.issym() or member.islnk():
        kind = 'link'
    else:
        raise UsageError('%s: member %r is a device file or FIFO; refusing to extract the archive'
                         % (archive, member.name))
    target = None
    if kind:  # a symlink's target is relative to its folder, a hard link's to the archive's root
        base = os.path.dirname(member.name) if member.issym() else ''
        target = os.path.join(base, member.linkname) if not os.path.isabs(member.linkname) else member.linkname
    _check_member(archive, member.name, None, target)


def _check_member(archive, name, mode, link_target):
    """UsageError unless ``name`` (and a link's target) stays inside the extraction folder."""
    for path, what in ((name, 'member'), (link_target and os.path.normpath(link_target), 'link target')):
        if path is None:
            continue
        parts = path.replace('\\', '/').split('/')
        if os.path.isabs(path) or path.startswith(('/', '\\')) or ':' in parts[0] or '..' in parts:
            raise UsageError('%s: %s %r points outside the extraction folder (%s); refusing to extract the archive'
                             % (archive, what, name, path))
    if mode is not None and mode not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise UsageError('%s: member %r is a link or special file; refusing to extract the archive' % (archive, name))
