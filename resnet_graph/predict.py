"""python -m resnet_graph.predict --model_dir DIR FILE...: each file's own top-k classes.

PNG, JPEG, BMP and GIF files are decoded to the run's channel count; .npy
files hold one image [h, w] or [h, w, c], integers 0..255 or floats in [0, 1]
(NaN, Inf, out-of-range values, empty arrays, other dtypes refused). An image
whose header says more than --max_image_pixels pixels is refused before decoding.
Every image is resized and normalised exactly as in training. A file that
cannot be read gets its own error line; the others are still answered, and
the exit code is then 2.
"""
import json
import sys

import numpy as np

import config
from resnet_graph import cli
from resnet_graph import flags as run_flags
from resnet_graph.errors import require, require_directory, shown
from resnet_graph.training.run_dir import RunDir

FLAGS = run_flags.FLAGS


def _npy_header(f):
    """(shape, dtype) from the header of the .npy file open as ``f``; ValueError for a header numpy refuses."""
    from numpy.lib import format as npy_format
    version = npy_format.read_magic(f)
    if version[0] not in (1, 2, 3):
        raise ValueError('.npy format version %d.%d' % version)
    read = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
    shape, _, dtype = read(f)
    return shape, dtype


def read_npy(path, channels, max_pixels):
    """A .npy file -> float32 [h, w, channels] in [0, 1]; ValueError saying what is wrong with it.

    Header first (shape, dtype, the pixel cap), then the values: integers in
    0..255, floats in [0, 1] (NaN, Inf and out-of-range values refused).
    """
    try:
        with open(path, 'rb') as f:
            magic = f.read(6)
            if magic[:4] == b'PK\x03\x04':
                raise ValueError('a .npz archive (zip), not one .npy array; save one array with numpy.save')
            if magic != b'\x93NUMPY':
                raise ValueError('not a .npy array (no NUMPY header)')
            f.seek(0)
            shape, dtype = _npy_header(f)  # no values read yet, and no mmap (its size overflows on a huge shape)
    except OSError as e:
        raise ValueError('cannot read it (%s)' % (e.strerror or e))
    except ValueError as e:
        if 'not a .npy' in str(e) or '.npz' in str(e):
            raise
        raise ValueError('not a readable .npy array (%s)' % e)
    if dtype.names is not None or dtype.kind not in 'uif':
        raise ValueError('an array of dtype %s; expected uint8 or integers 0..255, or floats in [0, 1]' % dtype)
    if len(shape) == 2:
        shape = shape + (1,)
    if len(shape) != 3 or shape[-1] != channels:
        raise ValueError('array of shape %s; expected [h, w] or [h, w, %d]' % (shape, channels))
    if not shape[0] or not shape[1]:
        raise ValueError('an empty array of shape %s: an image needs at least one pixel' % (shape,))
    if shape[0] * shape[1] > max_pixels:
        raise ValueError('an image of %d x %d pixels, over --max_image_pixels %d; raise --max_image_pixels to '
                         'read it' % (shape[1], shape[0], max_pixels))
    try:
        array = np.load(path, allow_pickle=False).reshape(shape)
    except (OSError, ValueError) as e:
        raise ValueError('not a readable .npy array (%s)' % e)
    return _checked_values(array)


def _checked_values(array):
    """Integers 0..255 or floats in [0, 1] -> float32 in [0, 1]; ValueError naming the values out of range."""
    integer = np.issubdtype(array.dtype, np.integer)
    values = array.astype(np.float64)
    if not integer and not np.isfinite(values).all():
        raise ValueError('%d NaN or infinite values; expected floats in [0, 1]' % np.sum(~np.isfinite(values)))
    low, high = (0, 255) if integer else (0.0, 1.0)
    if values.min() < low or values.max() > high:
        raise ValueError('values from %g to %g; expected %s' % (values.min(), values.max(), 'integers 0..255'
                                                                if integer else 'floats in [0, 1]'))
    return (values / 255.0 if integer else values).astype(np.float32)


def read_image(path, preprocessor, max_pixels=config.TRAIN['max_image_pixels']):
    """A file -> float32 [h, w, channels] in [0, 1]. Raises ValueError saying why it is not an image.

    max_pixels: the cap on the pixels an image's header may say (and, 4 bytes a pixel, on the file's size).
    """
    import tensorflow as tf
    from resnet_graph.data import images as image_bounds
    from resnet_graph.data.files import _reason
    if not path:
        raise ValueError("an empty name, not a file; give each image's path")
    if path.lower().endswith('.npy'):
        return read_npy(path, preprocessor.channels, max_pixels)
    try:
        data = image_bounds.read_capped(path, image_bounds.max_file_bytes(max_pixels))
    except OSError as e:
        raise ValueError('cannot read it (%s)' % (e.strerror or e))
    image_bounds.check_pixels(data, max_pixels)
    try:
        return preprocessor.decode(data)
    except tf.errors.InvalidArgumentError as e:
        raise ValueError('not a readable %s image (%s)' % (image_bounds.FORMATS, _reason(e)))


def predict_files(restored, paths, top_k, max_pixels=config.TRAIN['max_image_pixels']):
    """Returns one dict per path: {file, top_k: [{class, name, probability}]} or {file, error}."""
    preprocessor, model, names = restored.preprocessor, restored.model, restored.class_names
    results = []
    for path in paths:
        try:
            image = read_image(path, preprocessor, max_pixels)
        except ValueError as e:
            results.append(dict(file=path, error=str(e)))
            continue
        batch = preprocessor(image[None])
        probabilities = restored.session.run(model.probabilities, {model.input_x: batch})[0]
        best = np.argsort(-probabilities)[:top_k]
        results.append(dict(file=path, top_k=[dict(
            class_id=int(c), name=names[c], probability=float(probabilities[c])) for c in best]))
    return results


def main(paths):
    require_directory('model_dir', FLAGS.model_dir, 'the run directory written by resnet_graph.train')
    require(paths, 'no files given: python -m resnet_graph.predict --model_dir DIR FILE...')
    require(FLAGS.top_k >= 1, '--top_k must be at least 1, got %d' % FLAGS.top_k)
    RunDir(FLAGS.model_dir).require_config()  # before TensorFlow loads: a wrong path fails fast
    from resnet_graph.serving.inference import RestoredRun
    restored = RestoredRun(FLAGS.model_dir, FLAGS.checkpoint)
    results = predict_files(restored, paths, min(FLAGS.top_k, restored.config.num_classes),
                            FLAGS.max_image_pixels)
    restored.close()
    for result in results:
        if 'error' in result:
            print('resnet_graph.predict: error: %s: %s' % (shown(result['file']), result['error']), file=sys.stderr)
    if FLAGS.json:
        print(json.dumps(results))
    else:
        for result in results:
            if 'top_k' in result:
                print('%s: %s' % (shown(result['file']), ', '.join(
                    '%s (%.4f)' % (p['name'], p['probability']) for p in result['top_k'])))
    return 2 if any('error' in r for r in results) else 0


def cli_main():
    run_flags.define_predict()
    cli.run('resnet_graph.predict', main)


if __name__ == '__main__':
    cli_main()
