"""python -m resnet_graph.predict --model_dir DIR FILE...: each file's own top-k classes.

PNG, JPEG, BMP and GIF files are decoded to the run's channel count; .npy
files hold one image [h, w] or [h, w, c], uint8 (0..255) or float in [0, 1].
Every image is resized and normalised exactly as in training. A file that
cannot be read gets its own error line; the others are still answered, and
the exit code is then 2.
"""
import json
import sys

import numpy as np

from resnet_graph import cli
from resnet_graph import flags as run_flags
from resnet_graph.errors import require
from resnet_graph.training.run_dir import RunDir

FLAGS = run_flags.FLAGS


def read_image(path, preprocessor):
    """A file -> float32 [h, w, channels] in [0, 1]. Raises ValueError saying why it is not an image."""
    import tensorflow as tf
    channels = preprocessor.channels
    if path.lower().endswith('.npy'):
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise ValueError('not a readable .npy array (%s)' % e)
        if array.ndim == 2:
            array = array[..., None]
        if array.ndim != 3 or array.shape[-1] != channels:
            raise ValueError('array of shape %s; expected [h, w] or [h, w, %d]' % (array.shape, channels))
        if np.issubdtype(array.dtype, np.integer):
            return array.astype(np.float32) / 255.0
        return array.astype(np.float32)
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as e:
        raise ValueError('cannot read it (%s)' % (e.strerror or e))
    try:
        return preprocessor.decode(data)
    except tf.errors.InvalidArgumentError:
        raise ValueError('not a PNG, JPEG, BMP or GIF image')


def predict_files(restored, paths, top_k):
    """Returns one dict per path: {file, top_k: [{class, name, probability}]} or {file, error}."""
    preprocessor, model, names = restored.preprocessor, restored.model, restored.class_names
    results = []
    for path in paths:
        try:
            image = read_image(path, preprocessor)
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
    require(FLAGS.model_dir, '--model_dir is required: the run directory written by resnet_graph.train')
    require(paths, 'no files given: python -m resnet_graph.predict --model_dir DIR FILE...')
    require(FLAGS.top_k >= 1, '--top_k must be at least 1, got %d' % FLAGS.top_k)
    RunDir(FLAGS.model_dir).require_config()  # before TensorFlow loads: a wrong path fails fast
    from resnet_graph.serving.inference import RestoredRun
    restored = RestoredRun(FLAGS.model_dir, FLAGS.checkpoint)
    results = predict_files(restored, paths, min(FLAGS.top_k, restored.config['num_classes']))
    restored.close()
    for result in results:
        if 'error' in result:
            print('resnet_graph.predict: error: %s: %s' % (result['file'], result['error']), file=sys.stderr)
    if FLAGS.json:
        print(json.dumps(results))
    else:
        for result in results:
            if 'top_k' in result:
                print('%s: %s' % (result['file'], ', '.join(
                    '%s (%.4f)' % (p['name'], p['probability']) for p in result['top_k'])))
    return 2 if any('error' in r for r in results) else 0


def cli_main():
    run_flags.define_predict()
    cli.run('resnet_graph.predict', main)


if __name__ == '__main__':
    cli_main()
