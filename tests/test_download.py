"""--download against a loopback HTTP server: digests, atomic writes, cut transfers, hostile archives and pickles."""
import hashlib
import http.server
import io
import json
import os
import pickle
import tarfile
import threading

import numpy as np
import pytest

from resnet_graph.errors import UsageError
from resnet_graph.data import download, load_source
from test_sources import Payload, make_cifar_python, make_mnist

IDX = download._IDX


class Server(object):
    """Serves ``files`` (name -> bytes) on 127.0.0.1; a name in ``cut`` sends half its body under the full length."""

    def __init__(self):
        self.files, self.cut, self.requests = {}, set(), []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.lstrip('/')
                server.requests.append(name)
                body = server.files.get(name)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body[:len(body) // 2] if name in server.cut else body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.url = 'http://127.0.0.1:%d/' % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, kwargs=dict(poll_interval=0.05), daemon=True).start()

    def entry(self, name, body, **extra):
        """Serves body under ``name`` and returns its download-table entry (the right digest)."""
        self.files[name] = body
        return dict(url=self.url + name, sha256=hashlib.sha256(body).hexdigest(), file=name, **extra)


@pytest.fixture
def server():
    s = Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def use_table(monkeypatch, tmp_path, table):
    path = tmp_path / 'table.json'
    path.write_text(json.dumps(table))
    monkeypatch.setenv('RESNET_GRAPH_DOWNLOADS', str(path))
    return str(path)


def leftovers(directory):
    return sorted(f for f in os.listdir(directory) if f.startswith('.part-') or f.startswith('.extract-'))


def test_good_download_is_verified_kept_and_not_fetched_again(tmp_path, server, monkeypatch):
    os.makedirs(str(tmp_path / 'origin'))
    arrays = make_mnist(tmp_path / 'origin')
    use_table(monkeypatch, tmp_path, {'mnist': [
        server.entry(name, (tmp_path / 'origin' / name).read_bytes(), provides=[name]) for name in IDX]})
    monkeypatch.setenv('RESNET_GRAPH_CACHE', str(tmp_path / 'cache'))
    source = load_source('mnist', '', download=True)
    assert sorted(server.requests) == sorted(IDX)
    np.testing.assert_array_equal(source.fetch([1])[0][0, ..., 0], arrays[0][1] / np.float32(255))
    cached = tmp_path / 'cache' / 'mnist'
    assert sorted(os.listdir(str(cached))) == sorted(IDX)
    load_source('mnist', '', download=True)
    assert len(server.requests) == 4  # present files are not fetched again


def test_wrong_checksum_keeps_nothing(tmp_path, server, monkeypatch):
    entry = dict(server.entry('train-images-idx3-ubyte.gz', b'not what was pinned'), sha256='0' * 64)
    use_table(monkeypatch, tmp_path, {'mnist': [entry]})
    with pytest.raises(UsageError, match='has SHA-256 [0-9a-f]{64}, expected 0{64}.*nothing was kept'):
        download.ensure('mnist', str(tmp_path / 'd'))
    assert os.listdir(str(tmp_path / 'd')) == []


def test_truncated_transfer_keeps_nothing(tmp_path, server, monkeypatch):
    entry = server.entry('t10k-labels-idx1-ubyte.gz', os.urandom(4000))
    server.cut.add(entry['file'])
    use_table(monkeypatch, tmp_path, {'mnist': [entry]})
    with pytest.raises(UsageError, match=r'transfer of .*t10k-labels-idx1-ubyte.gz was cut short .*2000'):
        download.ensure('mnist', str(tmp_path / 'd'))
    assert os.listdir(str(tmp_path / 'd')) == []


def tar_bytes(members):
    """A .tar.gz of (TarInfo, bytes or None) pairs."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode='w:gz') as t:
        for info, data in members:
            info.size = len(data) if data is not None else 0
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def member(name, kind=tarfile.REGTYPE, linkname=''):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


@pytest.mark.parametrize('hostile, why', [
    (member('../evil.txt'), 'points outside'),
    (member('/tmp/evil.txt'), 'points outside'),
    (member('data/link', tarfile.SYMTYPE, '../../evil.txt'), 'points outside'),
    (member('data/hard', tarfile.LNKTYPE, '/etc/passwd'), 'points outside'),
    (member('data/dev', tarfile.CHRTYPE), 'device file or FIFO'),
    (member('data/fifo', tarfile.FIFOTYPE), 'device file or FIFO'),
])
def test_hostile_archive_is_refused_before_anything_is_extracted(tmp_path, server, monkeypatch, hostile, why):
    body = tar_bytes([(member('data/ok.txt'), b'fine'), (hostile, b'evil' if hostile.isfile() else None)])
    use_table(monkeypatch, tmp_path, {'cifar10': [server.entry('a.tar.gz', body, provides=['data'], extract=True)]})
    target = tmp_path / 'deep' / 'd'
    with pytest.raises(UsageError, match="a.tar.gz: .*%r.*%s" % (hostile.name, why)):
        download.ensure('cifar10', str(target))
    assert sorted(os.listdir(str(target))) == ['a.tar.gz']  # verified archive kept, nothing extracted
    assert not (tmp_path / 'deep' / 'evil.txt').exists() and not (tmp_path / 'evil.txt').exists()


def cifar_archive(tmp_path, poison=None):
    """The python-version CIFAR-10 layout as a .tar.gz (cifar-10-batches-py/...); poison replaces data_batch_1."""
    origin = tmp_path / 'origin'
    os.makedirs(str(origin), exist_ok=True)
    make_cifar_python(origin)
    if poison:
        with open(str(origin / 'cifar-10-batches-py' / 'data_batch_1'), 'wb') as f:
            pickle.dump({b'data': Payload(poison), b'labels': [0]}, f, protocol=2)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode='w:gz') as t:
        t.add(str(origin / 'cifar-10-batches-py'), arcname='cifar-10-batches-py')
    return buffer.getvalue()


def test_cifar_archive_downloads_extracts_and_loads(tmp_path, server, monkeypatch):
    use_table(monkeypatch, tmp_path, {'cifar10': [server.entry(
        'cifar-10-python.tar.gz', cifar_archive(tmp_path), provides=['cifar-10-batches-py'], extract=True)]})
    source = load_source('cifar10', str(tmp_path / 'd'), download=True)
    assert len(source.labels) == 50 and source.class_names[3] == 'class3'
    assert '.cifar-10-python.tar.gz.done' in os.listdir(str(tmp_path / 'd')) and not leftovers(str(tmp_path / 'd'))


def test_downloaded_malicious_pickle_never_runs(tmp_path, server, monkeypatch):
    marker = tmp_path / 'pwned'
    use_table(monkeypatch, tmp_path, {'cifar10': [server.entry(
        'c.tar.gz', cifar_archive(tmp_path, poison=str(marker)), provides=['cifar-10-batches-py'], extract=True)]})
    with pytest.raises(UsageError, match=r'data_batch_1 is not a CIFAR python batch: .*exec.*refused, not run'):
        load_source('cifar10', str(tmp_path / 'd'), download=True)
    assert not marker.exists()


def test_without_network_it_fails_at_once_naming_the_url_and_the_path(tmp_path, monkeypatch):
    import socket
    with socket.socket() as s:  # a loopback port nobody listens on: refused at once, like a machine offline
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    url = 'http://127.0.0.1:%d/train-images-idx3-ubyte.gz' % port
    use_table(monkeypatch, tmp_path, {'mnist': [dict(url=url, sha256='ab' * 32, file='train-images-idx3-ubyte.gz')]})
    with pytest.raises(UsageError) as error:  # the CLI prints it as one line and exits 2 (test_sources)
        load_source('mnist', str(tmp_path / 'm'), download=True)
    message = str(error.value)
    assert message.startswith('cannot download %s (' % url) and '\n' not in message
    assert message.endswith('without network, put the file there by hand: %s (sha256 %s), then run again'
                            % (tmp_path / 'm' / 'train-images-idx3-ubyte.gz', 'ab' * 32))
    assert os.listdir(str(tmp_path / 'm')) == []


def test_zip_with_a_parent_member_is_refused(tmp_path):
    import zipfile
    archive = tmp_path / 'd' / 'a.zip'
    os.makedirs(str(archive.parent))
    with zipfile.ZipFile(str(archive), 'w') as z:
        z.writestr('data/ok.txt', 'fine')
        z.writestr('data/../../evil.txt', 'evil')
    with pytest.raises(UsageError, match=r"a.zip: member 'data/../../evil.txt' points outside"):
        download.extract(str(archive), str(archive.parent))
    assert os.listdir(str(archive.parent)) == ['a.zip'] and not (tmp_path / 'evil.txt').exists()
