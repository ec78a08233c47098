"""One timed workload of ``resnet_graph.benchmark``, run in a process of its own.

    python -m resnet_graph.bench.worker '{"kind": "ours", "depth": 18, ...}'

prints one JSON line. Kinds: ``ours`` (resnet_graph's training or inference
graph in a ``tf.compat.v1.Session``), ``keras`` (the equivalent Keras model,
``model.train_on_batch`` / a compiled call, with or without ``jit_compile``)
and ``matmul`` (the machine's float32 matrix-multiply rate). A process each,
so peak memory and the time to the first finished step are each model's own.
"""
import json
import resource
import statistics
import sys
import time

from resnet_graph.bench import op_classes

STARTED = time.time()  # before TensorFlow is imported: first_step_s includes the import, for both sides


def timed(step, steps, warmup):
    """Calls ``step`` warmup + steps times.

    Returns (median seconds of the timed calls, seconds from process start to
    the end of the first call).
    """
    times, first = [], None
    for index in range(warmup + steps):
        start = time.perf_counter()
        step()
        elapsed = time.perf_counter() - start
        if first is None:
            first = time.time() - STARTED
        if index >= warmup:
            times.append(elapsed)
    return statistics.median(times), first


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def session_config(xla):
    import tensorflow as tf
    config = tf.compat.v1.ConfigProto()
    if xla:
        config.graph_options.optimizer_options.global_jit_level = tf.compat.v1.OptimizerOptions.ON_1
    return config


def synthetic_batch(spec):
    """Random images [B, S, S, C] and labels [B] held in local variables: no per-step feeding cost."""
    import tensorflow as tf
    v1 = tf.compat.v1
    shape = [spec['batch_size'], spec['image_size'], spec['image_size'], spec['channels']]
    local = [v1.GraphKeys.LOCAL_VARIABLES]
    images = v1.get_variable('synthetic_images', shape, initializer=v1.random_normal_initializer(),
                             trainable=False, collections=local)
    labels = v1.get_variable('synthetic_labels', shape[:1], tf.int64, trainable=False, collections=local,
                             initializer=v1.zeros_initializer())
    return images.read_value(), labels.read_value()


def real_batch(spec):
    """The training pipeline of ``--dataset`` (as the trainer builds it): (images, labels, loader)."""
    import tensorflow as tf
    from data_loader import DataLoader
    loader = DataLoader(spec['dataset'], spec['data_dir'], spec['image_size'])
    total = spec['warmup'] + spec['steps'] + 1  # and the traced step after them
    iterator = tf.compat.v1.data.make_one_shot_iterator(loader.train_dataset(spec['batch_size'], 0, 0, total))
    images, labels = iterator.get_next()
    return images, labels, loader


def run_ours(spec):
    import tensorflow as tf
    import config
    from resnet_graph.training import optim
    from resnet_graph.nets.model import ResNet
    v1 = tf.compat.v1
    with tf.Graph().as_default():
        v1.set_random_seed(0)
        if spec['data'] == 'real':
            images, labels, loader = real_batch(spec)
            spec = dict(spec, channels=loader.channels, num_classes=loader.num_classes)
        else:
            images, labels = synthetic_batch(spec)
        train = spec['mode'] == 'train'
        net = ResNet(spec['depth'], spec['num_classes'], spec['image_size'], spec['image_size'], spec['channels'],
                     input_tensor=images, label_tensor=labels, training=train, weight_decay=config.TRAIN['weight_decay'],
                     conv=spec['conv'], fold_bn=spec.get('fold_bn') == 'on',
                     dtype=spec.get('dtype', 'float32'))
        if train:
            global_step = v1.train.get_or_create_global_step()
            # The train command's default step: its learning rate schedule and optimizer.
            cfg = config.RunConfig.defaults(dtype=spec.get('dtype', 'float32'))  # float16: dynamic loss scaling
            op = optim.build_train_step(cfg, net, global_step, cfg.learning_decay_steps, 10 ** 6)[0]
        else:
            op = net.probabilities
        with v1.Session(config=session_config(spec['xla'])) as sess:
            sess.run([v1.global_variables_initializer(), v1.local_variables_initializer()])
            median, first = timed(lambda: sess.run(op), spec['steps'], spec['warmup'])
            peak = peak_rss_mb()  # before the traced step and the counting graph below
            trace = v1.RunMetadata()
            sess.run(op, options=v1.RunOptions(trace_level=v1.RunOptions.FULL_TRACE), run_metadata=trace)
    flops = forward_flops(spec['depth'], spec['image_size'], spec['channels'], spec['num_classes'])
    return dict(seconds_per_step=median, first_step_s=first, peak_rss_mb=peak, forward_flops=flops,
                op_seconds=op_classes.seconds_by_class(trace.step_stats))


def keras_resnet(depth, image_size, channels, num_classes):
    """keras.applications' ResNet50/101/152, or for 18/34 a Keras functional model of the same architecture."""
    import keras
    from keras import layers
    from resnet_graph.nets.variants import IMAGENET_STAGES
    shape = (image_size, image_size, channels)
    if depth in (50, 101, 152):
        build = {50: keras.applications.ResNet50, 101: keras.applications.ResNet101,
                 152: keras.applications.ResNet152}[depth]
        return build(weights=None, input_shape=shape, classes=num_classes)

    def conv_bn(x, filters, kernel, stride):
        x = layers.Conv2D(filters, kernel, stride, padding='same', use_bias=False)(x)
        return layers.BatchNormalization(epsilon=1e-5)(x)

    inputs = keras.Input(shape)
    x = layers.ReLU()(conv_bn(inputs, 64, 7, 2))
    x = layers.MaxPooling2D(3, 2, padding='same')(x)
    for stage, blocks in enumerate(IMAGENET_STAGES[depth][1]):
        width = 64 * 2 ** stage
        for index in range(blocks):
            stride = 2 if stage and not index else 1
            shortcut = conv_bn(x, width, 1, stride) if stride != 1 or x.shape[-1] != width else x
            y = layers.ReLU()(conv_bn(x, width, 3, stride))
            x = layers.ReLU()(layers.Add()([conv_bn(y, width, 3, 1), shortcut]))
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(num_classes, activation='softmax')(x))


def run_keras(spec):
    import keras
    import tensorflow as tf
    keras.utils.set_random_seed(0)
    if spec.get('dtype', 'float32') != 'float32':  # Keras's own mixed precision (float16 adds loss scaling)
        keras.mixed_precision.set_global_policy('mixed_' + spec['dtype'])
    model = keras_resnet(spec['depth'], spec['image_size'], spec['channels'], spec['num_classes'])
    shape = [spec['batch_size'], spec['image_size'], spec['image_size'], spec['channels']]
    images = tf.random.normal(shape)
    labels = tf.zeros(shape[:1], tf.int64)
    if spec['mode'] == 'train':
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss='sparse_categorical_crossentropy',
                      jit_compile=spec['xla'])
        step = lambda: model.train_on_batch(images, labels)  # noqa: E731 (returns numpy: the step has finished)
    else:
        call = tf.function(lambda x: model(x, training=False), jit_compile=spec['xla'])
        step = lambda: call(images).numpy()  # noqa: E731
    median, first = timed(step, spec['steps'], spec['warmup'])
    return dict(seconds_per_step=median, first_step_s=first, peak_rss_mb=peak_rss_mb())


def run_matmul(spec, n=2048, repeats=10):
    """float32 [n, n] x [n, n] in a session: GFLOP/s of the median call."""
    import tensorflow as tf
    v1 = tf.compat.v1
    with tf.Graph().as_default():
        a = v1.get_variable('a', [n, n], initializer=v1.random_normal_initializer())
        b = v1.get_variable('b', [n, n], initializer=v1.random_normal_initializer())
        op = tf.matmul(a, b).op  # fetched as an op: nothing is copied back to Python
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            median, _ = timed(lambda: sess.run(op), repeats, 2)
    return dict(matmul_gflops=2.0 * n ** 3 / median / 1e9)


def forward_flops(depth, image_size, channels, num_classes):
    """Floating-point operations of one image's forward pass: 2 per multiply-add of the convolutions and the
    dense layer, as ``resnet_graph.nets.counts`` counts them (BN, ReLU, pooling not counted). An int."""
    from resnet_graph.nets.counts import summarize
    return 2 * summarize(depth, image_size, channels, num_classes)['macs']


WORKERS = {'ours': run_ours, 'keras': run_keras, 'matmul': run_matmul}


def main():
    spec = json.loads(sys.argv[1])
    result = WORKERS[spec['kind']](spec)
    print(json.dumps(result))


if __name__ == '__main__':
    main()
