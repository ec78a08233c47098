"""Issue 20, items 6 and 9-13: input and command-line defects, each run end to end in a subprocess."""
import glob
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, SMALL, error_lines, run_cli

COMMANDS = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, 'resnet_graph', '*.py'))
                  if 'def cli_main' in open(p).read())


def test_every_command_is_found():
    assert {'train', 'evaluate', 'predict', 'export', 'plot', 'summary', 'benchmark', 'cluster',
            'import_keras'} <= set(COMMANDS)


@pytest.mark.parametrize('command', COMMANDS)
def test_help_lists_every_flag_with_default_and_exits_0(command):
    # the flags the command defines: its cli_main run with cli.run replaced by a printer
    code = ('import sys; from absl import flags; from resnet_graph import cli; import resnet_graph.%s as m; '
            'cli.run = lambda *a, **k: print(" ".join(n for mod, fl in flags.FLAGS.flags_by_module_dict().items() '
            'if not mod.startswith("absl") for n in sorted(f.name for f in fl))); m.cli_main()' % command)
    names = subprocess.run([sys.executable, '-c', code], env=dict(os.environ, PYTHONPATH=ROOT),
                           capture_output=True, text=True, timeout=60).stdout.split()
    assert len(names) >= 2
    for arg in ('--help', '-h', '--helpfull'):
        result = run_cli(command, arg, timeout=60)
        assert result.returncode == 0 and not result.stderr, (arg, result.stderr)
        assert 'flags:' in result.stdout
        for name in names:
            line = next((l for l in result.stdout.splitlines() if re.match(r'  --(\[no\])?%s:' % name, l)), None)
            assert line and '(default:' in line, (arg, name, result.stdout)
    assert '--flagfile' in result.stdout  # --helpfull: absl's own flags too


def test_a_bad_flag_after_tensorflow_loads_is_one_line_without_tf_cpp_min_log_level(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
    env['PYTHONPATH'] = ROOT
    # NCHW on a machine without a GPU is refused after TensorFlow has loaded (it asks TensorFlow for GPUs).
    result = subprocess.run([sys.executable, '-m', 'resnet_graph.train', '--data_format', 'NCHW', '--model_dir',
                             str(tmp_path / 'run')] + SMALL, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith('resnet_graph.train: error: --data_format'), result.stderr


def test_importing_the_package_sets_no_environment():
    env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
    env['PYTHONPATH'] = ROOT
    out = subprocess.run([sys.executable, '-c', 'import os, resnet_graph, resnet_graph.cli; '
                          'print(os.environ.get("TF_CPP_MIN_LOG_LEVEL"))'],
                         env=env, capture_output=True, text=True, timeout=60).stdout
    assert out.strip() == 'None'


def test_the_users_own_tf_cpp_min_log_level_is_kept_and_0_shows_the_notices():
    code = ('import os, sys; from resnet_graph import cli; cli.quiet_tensorflow(); '
            'print(os.environ["TF_CPP_MIN_LOG_LEVEL"], any(type(f).__name__ == "_QuietTensorFlowImport" '
            'for f in sys.meta_path))')
    for level, silenced in (('1', 'True'), ('0', 'False')):
        env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL=level)
        out = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True, timeout=60).stdout
        assert out.split() == [level, silenced]


# ---- helpers -------------------------------------------------------------------------------------------------

def write_png(path, pixels):
    from PIL import Image
    Image.fromarray(pixels).save(str(path))


def huge_png(path, width=23000, height=23000):
    """A valid small PNG whose IHDR is patched to claim width x height (the cap is read before decoding)."""
    import io
    import struct
    from PIL import Image
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(buffer, 'PNG')
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack('>II', width, height)
    with open(str(path), 'wb') as f:
        f.write(bytes(data))


def folder(root, classes=2, per_class=4, size=8, seed=0):
    rng = np.random.RandomState(seed)
    for c in range(classes):
        os.makedirs(os.path.join(str(root), 'c%d' % c), exist_ok=True)
        for i in range(per_class):
            write_png(os.path.join(str(root), 'c%d' % c, '%d.png' % i), rng.randint(0, 256, (size, size, 3)).astype(np.uint8))


# ---- item 6: empty splits ------------------------------------------------------------------------------------

@pytest.mark.slow
def test_an_empty_validation_split_is_one_line_at_start_and_no_best_record(tmp_path):
    folder(tmp_path / 'data')
    run = tmp_path / 'run'
    result = run_cli('train', *SMALL, '--dataset', 'folder', '--data_dir', tmp_path / 'data', '--model_dir', run,
                     '--max_steps', 2)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        'resnet_graph.train: error: the validation split of --dataset folder is empty (train 8, validation 0, test 0 '
        'images): give a larger --validation_fraction (0.1 of the largest class, 4 images, rounds to none; 0.25 '
        'would take one), more images per class, or a val/ and test/ tree (val.csv and test.csv)']
    assert not os.path.exists(run / 'best.json')


def test_the_advised_fraction_gives_a_validation_split(tmp_path):
    from resnet_graph.data import load_source
    from resnet_graph.data.source import check_splits
    folder(tmp_path)
    source = load_source('folder', str(tmp_path), validation_fraction=0.25, image_size=8)
    check_splits(source, 0.25)
    assert [len(source.splits[k]) for k in ('train', 'validation', 'test')] == [4, 2, 2]


# ---- item 10: resource bounds --------------------------------------------------------------------------------

@pytest.mark.parametrize('flag', ['--batch_size', '--image_size'])
def test_a_step_that_cannot_fit_fails_fast_with_the_estimate(tmp_path, flag):
    import time
    start = time.time()
    result = run_cli('train', '--depth', '18', flag, 100000, '--model_dir', tmp_path / 'run', '--max_steps', 1)
    assert result.returncode == 2 and time.time() - start < 30
    [line] = error_lines(result.stderr)
    assert re.match(r'resnet_graph\.train: error: a training step of depth 18, .* needs at least [\d.e+]+ GiB '
                    r'\(activations .*\) and this machine has [\d.e+]+ GiB available; lower (--batch_size \(\d+ fits\) '
                    r'or --image_size|--image_size \(no --batch_size fits at this size\))$', line), line
    assert not os.path.exists(tmp_path / 'run')


def test_a_benchmark_step_that_cannot_fit_fails_fast():
    result = run_cli('benchmark', '--depth', '18', '--batch_size', 100000, timeout=60)
    assert result.returncode == 2
    [line] = error_lines(result.stderr)
    assert line.startswith('resnet_graph.benchmark: error: a training step of depth 18, --batch_size 100000'), line


def test_the_memory_estimate_counts_parameters_exactly():
    import config
    from resnet_graph.errors import UsageError
    from resnet_graph.training import memory
    # every conv and dense kernel of the built graph (11,172,032 for depth 18, 23,475,392 for 50, 74,800 for 8 with
    # 10 classes and 3 channels), x4 bytes x (variable + gradient + Adam's two slots)
    for depth, kernels in ((18, 11172032), (50, 23475392), (8, 74800)):
        estimate = memory.estimate(config.RunConfig.defaults(depth=depth, image_size=32), 3, 10)
        assert estimate[1] == 4 * kernels * 4, depth
    cfg = config.RunConfig.defaults(depth=18, image_size=32, batch_size=2)
    activations, weights, inputs = memory.estimate(cfg, channels=3, num_classes=10)
    assert inputs == 4 * 2 * 32 * 32 * 3 * 10  # five batches in flight, each as fetched and as normalised
    assert memory.check(cfg, available=2 ** 40) == int(memory.TEMPORARIES * activations) + weights + inputs
    with pytest.raises(UsageError, match='needs at least'):
        memory.check(cfg, available=1000)


def test_a_step_that_fits_only_by_its_counted_activations_is_refused():
    import config
    from resnet_graph.errors import UsageError
    from resnet_graph.training import memory
    # attack: depth 8 at 16x16, batch 100000 counts 16.3 GiB, passed 22.3 GiB available, was OOM-killed at 24.4 GiB
    cfg = config.RunConfig.defaults(depth=8, image_size=16, batch_size=100000)
    assert sum(memory.estimate(cfg, 1, 10)) < 22.3 * 2 ** 30
    with pytest.raises(UsageError, match=r'needs at least 24 GiB \(activations and temporaries 23 GiB'):
        memory.check(cfg, 1, 10, available=int(22.3 * 2 ** 30))


def test_a_stray_csv_label_is_named_by_its_row(tmp_path):
    from resnet_graph.data import load_source
    from resnet_graph.errors import UsageError
    folder(tmp_path, per_class=3)
    (tmp_path / 'train.csv').write_text('c0/0.png,0\nc0/1.png,0\nc1/0.png,200000\nc1/1.png,1\n')
    with pytest.raises(UsageError) as e:
        load_source('csv', str(tmp_path))
    assert str(e.value) == ('%s row 3: label 200000 would make 200001 classes for 3 labels in use; labels are class '
                            'ids 0..K-1 (or class names): fix that row' % (tmp_path / 'train.csv'))


def test_a_stray_tfrecord_label_is_named_by_its_record(tmp_path):
    import tensorflow as tf
    from resnet_graph.data import load_source
    from resnet_graph.errors import UsageError
    png = tf.io.encode_png(np.zeros((4, 4, 3), np.uint8)).numpy()
    with tf.io.TFRecordWriter(str(tmp_path / 'train-00000-of-00001')) as writer:
        for label in (1, 2, 200000, 1):
            writer.write(tf.train.Example(features=tf.train.Features(feature={
                'image/encoded': tf.train.Feature(bytes_list=tf.train.BytesList(value=[png])),
                'image/class/label': tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))}))
                .SerializeToString())
    with pytest.raises(UsageError) as e:
        load_source('tfrecord', str(tmp_path))
    assert str(e.value).startswith('%s record 2: label 200000 would make 200001 classes for 3 labels in use'
                                   % (tmp_path / 'train-00000-of-00001'))


def test_an_image_over_the_pixel_cap_is_refused_from_its_header_everywhere(tmp_path):
    import tensorflow as tf
    from resnet_graph.data import load_source, pipeline
    from resnet_graph.errors import UsageError
    from resnet_graph.predict import read_image
    folder(tmp_path / 'data', per_class=3)
    huge_png(tmp_path / 'data' / 'c0' / '9.png')
    # training sources, by id: strict -> one line naming the file; else skipped like a corrupt image
    with pytest.raises(UsageError, match=r'9\.png: an image of 23000 x 23000 pixels, over --max_image_pixels '
                       r'40000000; raise --max_image_pixels to read it, or remove it'):
        load_source('folder', str(tmp_path / 'data'), image_size=8, strict=True)
    # predict
    preprocessor = pipeline.Preprocessor(8, [0.5], [0.5], 1)
    with pytest.raises(ValueError, match='an image of 23000 x 23000 pixels, over --max_image_pixels 40000000'):
        read_image(str(tmp_path / 'data' / 'c0' / '9.png'), preprocessor)
    # the graph check (the serving graph and the training stream): before decoding
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        data = tf.compat.v1.placeholder(tf.string, [])
        decoded = pipeline.decode(data, 1, max_pixels=1000)
        small = open(str(tmp_path / 'data' / 'c0' / '0.png'), 'rb').read()
        assert session.run(decoded, {data: small}).shape == (8, 8, 1)
        for path in (tmp_path / 'data' / 'c0' / '9.png',):
            with pytest.raises(tf.errors.InvalidArgumentError, match='over --max_image_pixels 1000'):
                session.run(decoded, {data: open(str(path), 'rb').read()})
        with pytest.raises(tf.errors.InvalidArgumentError, match='over --max_image_pixels 10'):
            session.run(pipeline.decode(data, 1, max_pixels=10), {data: small})


@pytest.mark.slow
def test_the_exported_serving_graph_applies_the_pixel_cap(digits_run, tmp_path):
    import tensorflow as tf
    v1 = tf.compat.v1
    out = tmp_path / 'served'
    result = run_cli('export', '--model_dir', digits_run, '--format', 'saved_model', '--out', out,
                     '--max_image_pixels', 100)
    assert result.returncode == 0, result.stderr
    small, large = (tf.io.encode_png(np.zeros((side, side, 1), np.uint8)).numpy() for side in (10, 11))
    with tf.Graph().as_default(), v1.Session() as session:
        meta = v1.saved_model.loader.load(session, ['serve'], str(out))
        signature = meta.signature_def['serving_default']
        feed, fetch = signature.inputs['image_bytes'].name, signature.outputs['probabilities'].name
        assert session.run(fetch, {feed: [small]}).shape == (1, 10)  # 100 pixels: at the cap
        with pytest.raises(tf.errors.InvalidArgumentError, match='an image over --max_image_pixels 100 pixels'):
            session.run(fetch, {feed: [small, large]})


def test_a_file_is_read_up_to_its_cap(tmp_path):
    from resnet_graph.data import images
    path = tmp_path / 'big.png'
    path.write_bytes(b'\x89PNG' + b'\0' * (images.max_file_bytes(10) + 10))
    with pytest.raises(ValueError, match='the file is over %d bytes' % images.max_file_bytes(10)):
        images.read_capped(str(path), images.max_file_bytes(10))


@pytest.mark.parametrize('fmt', ['png', 'jpeg', 'gif', 'bmp'])
def test_header_sizes_match_the_decoder(tmp_path, fmt):
    import io
    from PIL import Image
    from resnet_graph.data import images
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((13, 21, 3), np.uint8)).save(buffer, fmt.upper())
    assert images.header_size(buffer.getvalue()) == (21, 13)


# ---- item 11: images that need converting; .npy files ----------------------------------------------------------

def gif_and_cmyk(tmp_path, rgb):
    """Writes rgb (uint8 [h, w, 3]) as a GIF, an animated GIF (second frame inverted) and a CMYK JPEG."""
    from PIL import Image
    image = Image.fromarray(rgb)
    paths = {k: str(tmp_path / name) for k, name in (('gif', 'one.gif'), ('anim', 'anim.gif'), ('cmyk', 'cmyk.jpg'))}
    image.save(paths['gif'])
    image.save(paths['anim'], save_all=True, append_images=[Image.fromarray(255 - rgb)])
    image.convert('CMYK').save(paths['cmyk'], quality=95)
    return paths


@pytest.mark.parametrize('channels', [1, 4])
def test_gif_and_cmyk_jpeg_decode_then_convert(tmp_path, channels):
    import tensorflow as tf
    from resnet_graph.data import pipeline
    rgb = (np.random.RandomState(1).rand(6, 9, 3) * 255).astype(np.uint8)
    paths = gif_and_cmyk(tmp_path, rgb)
    preprocessor = pipeline.Preprocessor(8, [0.5] * channels, [0.5] * channels, channels)
    for name, path in paths.items():
        data = open(path, 'rb').read()
        image = preprocessor.decode(data)
        # the oracle: TensorFlow's own RGB decode (the first frame), then tf.image's gray weights or alpha 1
        expected = tf.io.decode_image(data, channels=3, expand_animations=False).numpy().astype(np.float32) / 255
        if channels == 1:
            expected = expected @ np.array([0.2989, 0.5870, 0.1140], np.float32)
            expected = expected[..., None]
        else:
            expected = np.concatenate([expected, np.ones_like(expected[..., :1])], -1)
        assert image.shape == (6, 9, channels), name
        np.testing.assert_allclose(image, expected, atol=1e-6, err_msg=name)


def test_formats_that_decoded_before_decode_as_before(tmp_path):
    import tensorflow as tf
    from resnet_graph.data import pipeline
    rgb = (np.random.RandomState(2).rand(5, 7, 3) * 255).astype(np.uint8)
    for name, data in (('png', tf.io.encode_png(rgb).numpy()), ('jpeg', tf.io.encode_jpeg(rgb).numpy())):
        for channels in (1, 3, 4):
            if name == 'jpeg' and channels == 4:
                continue
            old = tf.image.convert_image_dtype(tf.io.decode_image(data, channels=channels), tf.float32).numpy()
            np.testing.assert_array_equal(pipeline.Preprocessor(8, [0] * channels, [1] * channels, channels)
                                          .decode(data), old)


@pytest.fixture(scope='module')
def digits_run(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp('run') / 'r8'
    result = run_cli('train', *SMALL, '--model_dir', model_dir, '--max_steps', 2)
    assert result.returncode == 0, result.stderr
    return model_dir


def test_an_npy_header_whose_size_overflows_is_one_reason_without_numpy_warnings(tmp_path):
    import struct
    import warnings
    from resnet_graph.predict import read_npy
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (3037000500, 3037000500), }"
    header = (header + ' ' * (118 - len(header)) + '\n').encode()
    (tmp_path / 'ovf.npy').write_bytes(b'\x93NUMPY\x01\x00' + struct.pack('<H', len(header)) + header)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        with pytest.raises(ValueError) as raised:
            read_npy(str(tmp_path / 'ovf.npy'), 1, 40000000)
    assert [str(w.message) for w in caught] == []  # numpy's overflow warnings reached stderr beside our line
    assert str(raised.value) == 'an image of 3037000500 x 3037000500 pixels, over --max_image_pixels 40000000; ' \
        'raise --max_image_pixels to read it'


def test_predict_answers_gif_and_cmyk_on_a_gray_run_and_names_each_bad_npy(digits_run, tmp_path):
    rgb = (np.random.RandomState(3).rand(12, 12, 3) * 255).astype(np.uint8)
    good = gif_and_cmyk(tmp_path, rgb)
    bad = {'nan.npy': np.full((4, 4), np.nan, np.float32), 'inf.npy': np.full((4, 4), np.inf),
           'huge.npy': np.full((4, 4), 1e30), 'complex.npy': np.ones((4, 4), np.complex64),
           'empty.npy': np.zeros((0, 0), np.float32),
           'structured.npy': np.zeros((4, 4), [('a', np.float32), ('b', np.float32)])}
    for name, array in bad.items():
        np.save(str(tmp_path / name), array)
    np.savez(str(tmp_path / 'zipped.npz'), np.zeros((4, 4)))
    os.rename(str(tmp_path / 'zipped.npz'), str(tmp_path / 'zipped.npy'))
    bad['zipped.npy'] = None
    files = list(good.values()) + [str(tmp_path / name) for name in sorted(bad)]
    result = run_cli('predict', '--model_dir', digits_run, *files)
    assert result.returncode == 2
    answered = [line.split(': ')[0] for line in result.stdout.splitlines()]
    assert answered == list(good.values())
    lines = error_lines(result.stderr)
    assert len(lines) == len(bad) == len(result.stderr.splitlines())
    reasons = {line.split(': error: ')[1].split(': ')[0]: line.split(': ', 3)[3] for line in lines}
    assert reasons == {str(tmp_path / k): v for k, v in {
        'complex.npy': 'an array of dtype complex64; expected uint8 or integers 0..255, or floats in [0, 1]',
        'empty.npy': 'an empty array of shape (0, 0, 1): an image needs at least one pixel',
        'huge.npy': 'values from 1e+30 to 1e+30; expected floats in [0, 1]',
        'inf.npy': '16 NaN or infinite values; expected floats in [0, 1]',
        'nan.npy': '16 NaN or infinite values; expected floats in [0, 1]',
        'structured.npy': "an array of dtype [('a', '<f4'), ('b', '<f4')]; expected uint8 or integers 0..255, or "
                          "floats in [0, 1]",
        'zipped.npy': 'a .npz archive (zip), not one .npy array; save one array with numpy.save'}.items()}


# ---- item 12: manifests, flag files, --model_dir '' ----------------------------------------------------------

def test_manifest_paths_must_resolve_inside_its_directory_or_an_allowed_root(tmp_path):
    from resnet_graph.data import load_source
    from resnet_graph.errors import UsageError
    data, outside = tmp_path / 'data', tmp_path / 'private'
    folder(data, per_class=3)
    folder(outside, per_class=1, seed=1)
    os.symlink(str(outside / 'c0' / '0.png'), str(data / 'c0' / 'link.png'))
    rows = 'c0/0.png,0\nc0/1.png,0\nc1/0.png,1\nc1/1.png,1\n'
    for row, shown in (('../private/c0/0.png', '../private/c0/0.png'),
                       (str(outside / 'c0' / '0.png'), str(outside / 'c0' / '0.png')),
                       ('c0/link.png', 'c0/link.png'),
                       ('../../../../../../../../etc/passwd', '../../../../../../../../etc/passwd')):
        (data / 'train.csv').write_text(rows + '%s,1\n' % row)
        with pytest.raises(UsageError) as e:
            load_source('csv', str(data))
        real = os.path.realpath(os.path.join(str(data), row))
        assert str(e.value) == ("%s row 5: %s resolves to %s, outside the manifest's directory %s; move the image "
                                "there or allow its directory with --data_roots"
                                % (data / 'train.csv', shown, real, os.path.realpath(str(data)))), row
    (data / 'train.csv').write_text(rows + 'c0/link.png,1\n../private/c1/0.png,0\n')
    source = load_source('csv', str(data), data_roots=[str(outside)], validation_fraction=0.34)
    assert len(source.paths) == 6


@pytest.mark.slow
def test_a_non_utf8_manifest_is_one_line(tmp_path):
    folder(tmp_path / 'data', per_class=3)
    (tmp_path / 'data' / 'train.csv').write_bytes(b'c0/0.png,0\nc0/1.png,\xff\xfe\x00\x81\n')
    result = run_cli('train', *SMALL, '--dataset', 'csv', '--data_dir', tmp_path / 'data', '--model_dir',
                     tmp_path / 'run', '--max_steps', 1)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        'resnet_graph.train: error: %s is not UTF-8 text (byte 20: invalid start byte); save the manifest as UTF-8 '
        'CSV of path,label rows' % (tmp_path / 'data' / 'train.csv')]


@pytest.mark.parametrize('command', ['train', 'evaluate'])
def test_a_binary_flagfile_is_one_line(tmp_path, command):
    flagfile = tmp_path / 'flags.bin'
    flagfile.write_bytes(b'\x89PNG\r\n\x1a\n\xff\xfe\x00\x00binary')
    result = run_cli(command, '--flagfile', flagfile, timeout=60)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        'resnet_graph.%s: error: --flagfile %s is not UTF-8 text (byte 0: invalid start byte); give a text file of '
        '--flag=value lines' % (command, flagfile)] and len(result.stderr.splitlines()) == 1


def test_an_empty_model_dir_is_refused(tmp_path):
    result = run_cli('train', *SMALL, '--model_dir', '', '--max_steps', 1, cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert error_lines(result.stderr) == ["resnet_graph.train: error: --model_dir '' names no directory; give a run "
                                          "directory, or leave the flag out for runs/resnet<depth>"]
    assert not os.path.exists(tmp_path / 'runs')


@pytest.mark.slow
def test_evaluate_on_an_empty_split_is_one_line(tmp_path):
    # train/ and val/ trees: validation is the tree, test is carved from train by the fraction (none of 4)
    folder(tmp_path / 'data' / 'train')
    folder(tmp_path / 'data' / 'val', per_class=2, seed=5)
    run = tmp_path / 'run'
    result = run_cli('train', *SMALL, '--dataset', 'folder', '--data_dir', tmp_path / 'data', '--model_dir', run,
                     '--max_steps', 1, '--channels', 1)
    assert result.returncode == 0, result.stderr
    assert run_cli('evaluate', '--model_dir', run, '--split', 'validation').returncode == 0
    result = run_cli('evaluate', '--model_dir', run)
    assert result.returncode == 2
    assert error_lines(result.stderr) == [
        'resnet_graph.evaluate: error: the test split of --dataset folder is empty (train 8, validation 4, test 0 '
        'images): give a larger --validation_fraction (0.1 of the largest class, 4 images, rounds to none; 0.25 '
        'would take one), more images per class, or a val/ and test/ tree (val.csv and test.csv)']


@pytest.mark.slow
def test_a_run_trained_on_a_relative_data_dir_is_served_from_any_directory(tmp_path):
    # config.json kept "data" as given, and predict from elsewhere said "--data_dir data is not a directory"
    folder(tmp_path / 'data', per_class=4)
    trained = run_cli('train', *SMALL, '--dataset', 'folder', '--data_dir', 'data', '--validation_fraction', 0.25,
                      '--model_dir', 'run', '--max_steps', 2, '--eval_every', 2, cwd=str(tmp_path))
    assert trained.returncode == 0, trained.stderr
    image = tmp_path / 'data' / 'c0' / '0.png'
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    result = run_cli('predict', '--model_dir', tmp_path / 'run', image, cwd=str(elsewhere))
    assert result.returncode == 0 and result.stdout.startswith('%s: c' % image), result.stderr
