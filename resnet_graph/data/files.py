"""Image files read by id: ``folder`` (one subdirectory per class) and ``csv`` (a ``path,label`` manifest).

    folder:  DIR/<class>/*.jpg|png|bmp|gif|webp, or DIR/train/<class>/... with optional
             DIR/val/ (or validation/) and DIR/test/ trees of the same classes
    csv:     a .csv file, or DIR/manifest.csv, or DIR/train.csv with optional
             val.csv (or validation.csv) and test.csv; rows ``path,label`` (an
             optional ``path,label`` header), paths relative to the manifest,
             labels class names or integers 0..K-1

A split that has no tree or manifest of its own is a stratified
``validation_fraction`` of the training images (for validation and for test).
Only paths are held; each image is decoded when its id is fetched, to
``channels`` (0: RGB) and resized to ``image_size``. A corrupt image is
replaced in its batch by the batch's first good image and counted on stderr;
with ``strict`` every image is decoded once at load and a corrupt one is an error.
"""
import csv
import io
import os
import threading

import numpy as np

from resnet_graph.errors import UsageError, stderr_silenced, utf8_text, warn
from resnet_graph.data import images as image_bounds
from resnet_graph.data.source import Source, stratified_split

EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.webp')
SPLIT_DIRS = (('train', ('train',)), ('validation', ('val', 'validation')), ('test', ('test',)))


class ImageDecoder(object):
    """Encoded bytes -> float32 [S, S, channels] in [0, 1], in its own graph and session (thread-safe)."""

    def __init__(self, channels, image_size, max_pixels=None):
        import tensorflow as tf
        from resnet_graph.data.pipeline import decode
        self._graph = tf.Graph()
        with self._graph.as_default():
            self._bytes = tf.compat.v1.placeholder(tf.string, [])
            self._out = tf.image.resize(decode(self._bytes, channels, max_pixels), [image_size, image_size],
                                        method='bilinear')
        self._session = tf.compat.v1.Session(graph=self._graph)
        self.errors = (tf.errors.OpError,)

    def __call__(self, data):
        with stderr_silenced():  # libjpeg's own line for a damaged JPEG: the caller says what was wrong
            return self._session.run(self._out, {self._bytes: data})


class FileSource(Source):
    """A Source whose images are files, decoded by id (see the module docstring)."""

    def __init__(self, name, paths, labels, class_names, splits, channels, image_size, strict, max_pixels):
        Source.__init__(self, name, None, labels, class_names, splits, channels or 3)
        self.paths = list(paths)
        self.image_size = image_size
        self.max_pixels = max_pixels
        self.skipped = set()
        self._lock, self._skip_lock = threading.Lock(), threading.Lock()
        self._decoder = None
        if strict:
            for start in range(0, len(self.paths), 256):
                self.read(np.arange(start, min(start + 256, len(self.paths))), strict=True)

    @property
    def decoder(self):
        with self._lock:  # the pipeline's threads may ask for it at once
            if self._decoder is None:
                # the cap is checked in Python first (decode_bytes): the decoder's own reason for a corrupt file stays
                self._decoder = ImageDecoder(self.channels, self.image_size)
        return self._decoder

    def _decode(self, index):
        return self.decode_bytes(image_bounds.read_capped(self.paths[index],
                                                          image_bounds.max_file_bytes(self.max_pixels)))

    def decode_bytes(self, data):
        """Encoded image bytes -> float32 [S, S, channels]; ValueError (over the pixel cap) before decoding."""
        image_bounds.check_pixels(data, self.max_pixels)
        return self.decoder(data)

    def read(self, ids, strict=False):
        """ids int64 [n] -> float32 [n, S, S, channels]; a corrupt image is replaced (or an error when strict)."""
        images, bad = [], []
        for i in ids:
            try:
                images.append(self._decode(i))
            except ValueError as e:  # over a cap: not corrupt, but not read either
                if strict:
                    raise UsageError('%s: %s, or remove it' % (self.paths[i], e))
                images.append(None)
                bad.append(int(i))
            except (OSError,) + self.decoder.errors as e:
                if strict:
                    raise UsageError('%s is not a readable %s image (%s); remove it or run without --strict_data to '
                                     'skip it' % (self.paths[i], image_bounds.FORMATS, _reason(e)))
                images.append(None)
                bad.append(int(i))
        if bad:
            self._skip(bad)
            good = next((im for im in images if im is not None), None)
            if good is None:
                raise UsageError('no readable image in a batch of %d (e.g. %s)' % (len(ids), self.paths[bad[0]]))
            images = [good if im is None else im for im in images]
        return np.stack(images).astype(np.float32)

    def fetch(self, ids):
        ids = np.asarray(ids, dtype=np.int64)
        images = self.read(ids)
        labels = self.labels[ids].copy()
        if self.skipped:  # a replaced image brings its own label
            first_good = next((k for k, i in enumerate(ids) if int(i) not in self.skipped), 0)
            for k, i in enumerate(ids):
                if int(i) in self.skipped:
                    labels[k] = self.labels[ids[first_good]]
        return images, labels

    def _skip(self, bad):
        with self._skip_lock:
            for i in bad:
                if i in self.skipped:
                    continue
                self.skipped.add(i)  # one at a time, so each line counts the images skipped up to it
                warn('skipped corrupt image %s (%d skipped so far; --strict_data makes this an error)'
                     % (self.paths[i], len(self.skipped)))


def _reason(error):
    """The decoder's own words in an OSError or a TensorFlow error ('Invalid PNG. Failed to initialize decoder.'),
    not the 'Graph execution error:' and stack that TensorFlow puts around them."""
    lines = [line for line in str(getattr(error, 'message', error)).splitlines() if line.strip()]
    reason = next((lines[k - 1].strip() for k, line in enumerate(lines[1:], 1) if line.startswith('\t [[{{node')),
                  lines[0] if lines else type(error).__name__)
    return reason.replace('jpeg::Uncompress failed. ', 'cut short or damaged: ')  # the C++ function's name says nothing


def _carve(labels, splits, fraction, seed):
    """Fills the splits that are missing (None) from a stratified fraction of the training ids."""
    missing = {name: fraction for name in ('validation', 'test') if splits[name] is None}
    if missing:
        carved = stratified_split(labels[splits['train']], missing, seed)
        for name in list(missing) + ['train']:
            splits[name] = splits['train'][carved[name]]
    return {name: np.sort(ids).astype(np.int64) for name, ids in splits.items()}


def _assemble(name, per_split, class_names, options):
    """per_split: split -> list of (path, class id) or None -> FileSource with contiguous ids."""
    paths, labels, splits = [], [], {}
    for split, _ in SPLIT_DIRS:
        rows = per_split.get(split)
        if rows is None:
            splits[split] = None
            continue
        splits[split] = np.arange(len(paths), len(paths) + len(rows), dtype=np.int64)
        paths += [p for p, _ in rows]
        labels += [c for _, c in rows]
    labels = np.asarray(labels, np.int64)
    splits = _carve(labels, splits, options['validation_fraction'], options['split_seed'])
    return FileSource(name, paths, labels, class_names, splits, options['channels'], options['image_size'],
                      options['strict'], options['max_image_pixels'])


def _class_tree(root, class_names=None):
    """(class names, [(path, class id)]) of root/<class>/<images>; UsageError for an empty or unknown class folder."""
    found = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and not d.startswith('.'))
    names = found if class_names is None else class_names
    if not found:
        raise UsageError('%s has no class folders: expected one subdirectory of images per class' % root)
    rows = []
    for folder in found:
        if folder not in names:
            raise UsageError('%s is a class the training tree does not have (%s)'
                             % (os.path.join(root, folder), ', '.join(names)))
        directory = os.path.join(root, folder)
        files = sorted(f for f in os.listdir(directory) if f.lower().endswith(EXTENSIONS) and not f.startswith('.'))
        if not files:
            raise UsageError('class folder %s holds no %s image' % (directory, image_bounds.FORMATS))
        rows += [(os.path.join(directory, f), names.index(folder)) for f in files]
    return names, rows


def load_folder(data_dir, **options):
    if not os.path.isdir(data_dir):
        raise UsageError('--data_dir %s is not a directory of class folders' % data_dir)
    trees = {split: next((os.path.join(data_dir, d) for d in dirs if os.path.isdir(os.path.join(data_dir, d))), None)
             for split, dirs in SPLIT_DIRS}
    if trees['train'] is None:
        names, rows = _class_tree(data_dir)
        return _assemble('folder', {'train': rows}, names, options)
    names, rows = _class_tree(trees['train'])
    per_split = {'train': rows}
    for split in ('validation', 'test'):
        if trees[split]:
            per_split[split] = _class_tree(trees[split], names)[1]
    return _assemble('folder', per_split, names, options)


def _read_manifest(path, roots=()):
    """[(row number, image path, label string)] of a manifest; UsageError naming file and row.

    Each image must resolve (symlinks followed) inside the manifest's directory or one of ``roots``.
    """
    rows = []
    base = os.path.dirname(os.path.abspath(path))
    allowed = [os.path.realpath(base)] + [os.path.realpath(r) for r in roots]
    with open(path, 'rb') as f:  # decoded whole, so a bad byte's position counts from the file's start
        text = utf8_text(f.read(), path, 'save the manifest as UTF-8 CSV of path,label rows')
    try:
        lines = list(csv.reader(io.StringIO(text, newline='')))
    except csv.Error as e:
        raise UsageError('%s is not a CSV manifest (%s)' % (path, e))
    for number, row in enumerate(lines, 1):
        if not row or not ''.join(row).strip():
            continue
        if number == 1 and [c.strip().lower() for c in row] == ['path', 'label']:
            continue
        if len(row) != 2:
            raise UsageError('%s row %d: expected "path,label", got %d columns' % (path, number, len(row)))
        image = os.path.join(base, row[0].strip())
        if '\0' in image:
            raise UsageError('%s row %d: the path holds a NUL byte; fix the manifest' % (path, number))
        real = os.path.realpath(image)
        if not any(os.path.commonpath([real, root]) == root for root in allowed):
            raise UsageError('%s row %d: %s resolves to %s, outside the manifest\'s directory %s; move the image '
                             'there or allow its directory with --data_roots' % (path, number, row[0].strip(), real,
                                                                              allowed[0]))
        if not os.path.isfile(image):
            raise UsageError('%s row %d: %s does not exist' % (path, number, image))
        rows.append((number, image, row[1].strip()))
    if not rows:
        raise UsageError('%s has no "path,label" rows' % path)
    return rows


def check_dense_labels(labels, where):
    """UsageError when integer labels would make mostly empty classes.

    labels: int [N]; where(i) names example i. Classes are 0..max: more than
    max(2 x, x + 1000) of them for x labels in use is a stray label, named by its row.
    """
    labels = np.asarray(labels, np.int64)
    if not len(labels):
        return
    used, count = len(np.unique(labels)), int(labels.max()) + 1
    if count > max(2 * used, used + 1000):
        row = int(np.argmax(labels))
        raise UsageError('%s: label %d would make %d classes for %d labels in use; labels are class ids 0..K-1 '
                         '(or class names): fix that row' % (where(row), labels[row], count, used))


def _manifests(data_dir):
    if os.path.isfile(data_dir):
        return {'train': data_dir}
    for name in ('manifest.csv', 'train.csv'):
        if os.path.isfile(os.path.join(data_dir, name)):
            found = {'train': os.path.join(data_dir, name)}
            break
    else:
        raise UsageError('no manifest in %s: give --data_dir FILE.csv or a directory with manifest.csv or train.csv'
                         % data_dir)
    for split, names in (('validation', ('val.csv', 'validation.csv')), ('test', ('test.csv',))):
        for name in names:
            if os.path.isfile(os.path.join(data_dir, name)):
                found[split] = os.path.join(data_dir, name)
                break
    return found


def load_csv(data_dir, **options):
    manifests = _manifests(data_dir)
    read = {split: _read_manifest(path, options['data_roots']) for split, path in manifests.items()}
    integers = all(label.lstrip('-').isdigit() for rows in read.values() for _, _, label in rows)
    if integers:
        every = [(split, number, int(label)) for split, rows in read.items() for number, _, label in rows]
        check_dense_labels([label for _, _, label in every],
                           lambda i: '%s row %d' % (manifests[every[i][0]], every[i][1]))
        count = max(label for _, _, label in every) + 1
        names = [str(c) for c in range(count)]
    else:
        names = sorted({label for _, _, label in read['train']})
    per_split = {}
    for split, rows in read.items():
        per_split[split] = []
        for number, image, label in rows:
            if label not in names:
                raise UsageError('%s row %d: label %r is outside the classes (%s)'
                                 % (manifests[split], number, label, 'integers 0..%d' % (len(names) - 1) if integers
                                    else ', '.join(names)))
            per_split[split].append((image, names.index(label)))
    return _assemble('csv', per_split, names, options)
