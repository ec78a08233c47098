"""Decompression bombs past the pixel cap: WebP (no size read before), animated GIFs (frames not counted),
GIF frames larger than the screen, JPEG XL, and junk before a JPEG's start-of-frame."""
import io
import os
import struct

import numpy as np
import pytest

CAP = 10000


def webp(size, **options):
    from PIL import Image
    buffer = io.BytesIO()
    mode = options.pop('mode', 'RGB')
    Image.new(mode, size, (200, 10, 10, 100)[:len(mode)]).save(buffer, 'WEBP', **options)
    return buffer.getvalue()


def gif_frames(side, frames, screen=None):
    """A GIF of ``frames`` frames of side x side pixels (the bomb of the report, small); ``screen``: its own side."""
    from PIL import Image
    buffer = io.BytesIO()
    Image.new('P', (side, side), 0).save(buffer, 'GIF')
    data = buffer.getvalue()
    i = data.index(b'\x2c\x00\x00\x00\x00')
    data = data[:i] + data[i:-1] * frames + b'\x3b'
    return data[:6] + struct.pack('<HH', screen, screen) + data[10:] if screen else data


KINDS = {'lossless': dict(lossless=True), 'lossy': dict(quality=80), 'extended': dict(mode='RGBA', quality=80)}


@pytest.mark.parametrize('kind', sorted(KINDS))
def test_webp_header_sizes_match_the_decoder(kind):
    import tensorflow as tf
    from resnet_graph.data import images
    data = webp((21, 13), **KINDS[kind])
    assert data[12:16] == {'lossless': b'VP8L', 'lossy': b'VP8 ', 'extended': b'VP8X'}[kind]
    assert images.header_size(data) == (21, 13)
    assert tf.io.decode_image(data, expand_animations=False).shape[:2] == (13, 21)


def python_refusals(data, tmp_path, channels=3):
    """The line of predict's read_image and of a strict folder source (the file named .png) for ``data``."""
    from resnet_graph.data import load_source, pipeline
    from resnet_graph.errors import UsageError
    from resnet_graph.predict import read_image
    from PIL import Image
    for c in ('cat', 'dog'):
        os.makedirs(tmp_path / c, exist_ok=True)
        for i in range(2):
            Image.fromarray(np.full((6, 6, 3), 40 * i, np.uint8)).save(tmp_path / c / ('%d.png' % i))
    (tmp_path / 'cat' / 'bomb.png').write_bytes(data)
    with pytest.raises(ValueError) as predicted:
        read_image(str(tmp_path / 'cat' / 'bomb.png'), pipeline.Preprocessor(8, [0.5] * channels,
                                                                              [0.5] * channels, channels), CAP)
    with pytest.raises(UsageError) as trained:
        load_source('folder', str(tmp_path), image_size=8, strict=True, max_image_pixels=CAP)
    return str(predicted.value), str(trained.value)


def graph_refusal(data, channels=3, max_pixels=CAP):
    import tensorflow as tf
    from resnet_graph.data import pipeline
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        feed = tf.compat.v1.placeholder(tf.string, [])
        with pytest.raises(tf.errors.InvalidArgumentError) as e:
            session.run(pipeline.decode(feed, channels, max_pixels), {feed: data})
    return e.value.message


@pytest.mark.parametrize('kind', sorted(KINDS))
def test_a_webp_over_the_cap_is_refused_before_decoding(tmp_path, kind):
    line = 'an image of 200 x 100 pixels, over --max_image_pixels 10000; raise --max_image_pixels to read it'
    predicted, trained = python_refusals(webp((200, 100), **KINDS[kind]), tmp_path)
    assert predicted == line
    assert trained == '%s: %s, or remove it' % (tmp_path / 'cat' / 'bomb.png', line)
    assert 'an image over --max_image_pixels 10000 pixels' in graph_refusal(webp((200, 100), **KINDS[kind]))


def test_the_9000_square_webp_of_the_report_is_refused_in_the_graph():
    data = webp((9000, 9000), lossless=True)  # 81 M pixels in a few KB
    assert len(data) < 10000
    assert 'an image over --max_image_pixels 100 pixels' in graph_refusal(data, max_pixels=100)


def test_an_animated_gif_counts_every_frame(tmp_path):
    from resnet_graph.data import images
    bomb = gif_frames(40, 20)  # 1600 pixels a frame, under the cap; 32000 in all, over it
    assert images.gif_frames(bomb) == (20, (40, 40))
    predicted, trained = python_refusals(bomb, tmp_path)
    line = ('an animated GIF of 20 frames of 40 x 40 pixels (32000 pixels), over --max_image_pixels 10000; '
            'raise --max_image_pixels to read it')
    assert predicted == line
    assert trained == '%s: %s, or remove it' % (tmp_path / 'cat' / 'bomb.png', line)
    assert 'an image over --max_image_pixels 10000 pixels' in graph_refusal(bomb)


def test_a_gif_frame_larger_than_its_screen_counts_at_its_own_size(tmp_path):
    import tensorflow as tf
    bomb = gif_frames(120, 1, screen=5)  # the decoder gives 120 x 120, whatever the screen says
    assert tf.io.decode_image(bomb, expand_animations=False).shape[:2] == (120, 120)
    predicted, _ = python_refusals(bomb, tmp_path)
    assert predicted == ('an image of 120 x 120 pixels, over --max_image_pixels 10000; raise --max_image_pixels '
                         'to read it')
    assert 'an image over --max_image_pixels 10000 pixels' in graph_refusal(bomb)


def test_animated_gifs_under_the_cap_still_decode_their_first_frame():
    import tensorflow as tf
    from resnet_graph.data import pipeline
    data = gif_frames(30, 5)
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        feed = tf.compat.v1.placeholder(tf.string, [])
        assert session.run(pipeline.decode(feed, 3, 5 * 900), {feed: data}).shape == (30, 30, 3)
        with pytest.raises(tf.errors.InvalidArgumentError, match='over --max_image_pixels 4499 pixels'):
            session.run(pipeline.decode(feed, 3, 5 * 900 - 1), {feed: data})


def test_a_gif_of_one_byte_sub_blocks_is_refused_by_its_block_budget(tmp_path):
    from resnet_graph.data import images
    data = gif_frames(4, 1)
    i = data.index(b'\x2c\x00\x00\x00\x00') + 11  # the first sub-block of the frame's data
    data = data[:i] + b'\x01\x00' * 20000 + data[i:]  # 20000 sub-blocks of one byte each
    with pytest.raises(ValueError) as e:
        images.check_pixels(data, CAP)
    assert str(e.value) == ('a GIF of more than %d blocks, more than its %d bytes hold when written by an '
                            'encoder; re-encode it' % (4096 + len(data) // 64, len(data)))
    assert 'a GIF of more blocks than its bytes hold' in graph_refusal(data)


def test_bytes_the_header_check_cannot_size_are_refused_in_the_graph():
    line = ('not a PNG, JPEG, GIF, BMP or WebP image the header check can size (by its first bytes), so it is not '
            'decoded; convert it to one of those')
    for data in (b'\xff\x0a' + b'\0' * 40, b'RIFF\0\0\0\0WEBPVP8Q' + b'\0' * 30, b'not an image at all'):
        assert line in graph_refusal(data)


def test_jpeg_xl_and_an_unknown_webp_chunk_are_refused_in_python(tmp_path):
    from resnet_graph.data import images
    cases = ((b'\xff\x0a' + b'\0' * 40, 'JPEG XL'), (b'\x00\x00\x00\x0cJXL \r\n\x87\n' + b'\0' * 40, 'JPEG XL'),
             (b'RIFF\0\0\0\0WEBPVP8Q' + b'\0' * 30, 'WebP'))
    for data, name in cases:
        with pytest.raises(ValueError) as e:
            images.check_pixels(data, CAP)
        assert str(e.value) == ('a %s image whose size its header check cannot read, so it is not decoded; '
                                'convert it to PNG, JPEG, GIF, BMP or WebP' % name)


def test_junk_before_a_jpegs_start_of_frame_does_not_hide_its_size():
    import tensorflow as tf
    from resnet_graph.data import images
    data = tf.io.encode_jpeg(np.zeros((120, 120, 3), np.uint8)).numpy()
    data = data[:20] + b'junk' + data[20:]  # after the JFIF segment: libjpeg skips it ("extraneous bytes") and decodes
    assert tf.io.decode_jpeg(data).shape == (120, 120, 3)
    assert images.header_size(data) == (120, 120)


@pytest.mark.parametrize('channels', [1, 4])
def test_a_webp_decodes_then_converts_for_a_gray_or_rgba_run(channels):
    import tensorflow as tf
    from resnet_graph.data import pipeline
    data = webp((12, 10), lossless=True)  # (200, 10, 10) everywhere: gray 0.299 R + 0.587 G + 0.114 B
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        feed = tf.compat.v1.placeholder(tf.string, [])
        image = session.run(pipeline.decode(feed, channels, CAP), {feed: data})
    assert image.shape == (10, 12, channels)
    expected = [(0.299 * 200 + 0.587 * 10 + 0.114 * 10) / 255] if channels == 1 else [200 / 255, 10 / 255, 10 / 255, 1]
    np.testing.assert_allclose(image[0, 0], expected, atol=1 / 255)


def animated_webp():
    from PIL import Image
    frames = [Image.new('RGB', (20, 20), (10 * k, 0, 0)) for k in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, 'WEBP', save_all=True, append_images=frames[1:], duration=100)
    return buffer.getvalue()


@pytest.mark.parametrize('channels', [1, 3])
def test_an_animated_webp_is_refused_before_the_decoder_sees_it(tmp_path, channels):
    # at 1 channel TensorFlow's decoder corrupted the heap (free(): corrupted unsorted chunks, SIGABRT)
    import tensorflow as tf
    from resnet_graph.data import images, pipeline
    data = animated_webp()
    with pytest.raises(ValueError, match='^an animated WebP, which is not decoded'):
        images.check_pixels(data, CAP)
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        feed = tf.compat.v1.placeholder(tf.string, [])
        with pytest.raises(tf.errors.InvalidArgumentError, match='an animated WebP, which is not decoded'):
            session.run(pipeline.decode(feed, channels, CAP), {feed: data})
