"""Bounds on image files before they are decoded: a pixel cap read from the header, a byte cap on reads.

A 514 KB PNG can hold 23000 x 23000 pixels (3.4 GB once decoded), so the
header's size is checked against ``max_pixels`` first, in Python (files read
by id, predict) and in the graph (the training stream, the serving graph).
"""
import struct

import numpy as np

# Bytes an encoded image may have per pixel of the cap (BMP: 4, plus headers and slack).
BYTES_PER_PIXEL = 4
HEADER_SLACK = 1 << 20


def max_file_bytes(max_pixels):
    """The byte cap on one image file: what an uncompressed image of ``max_pixels`` pixels takes."""
    return int(max_pixels) * BYTES_PER_PIXEL + HEADER_SLACK


READ_CHUNK = 1 << 20


def read_capped(path, max_bytes):
    """The bytes of ``path``; ValueError when it holds more than ``max_bytes`` (not read whole), OSError as open."""
    chunks, size = [], 0
    with open(path, 'rb') as f:
        while size <= max_bytes:  # in chunks: one read of max_bytes + 1 allocates that much, whatever the file holds
            chunk = f.read(min(READ_CHUNK, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    data = b''.join(chunks)
    if len(data) > max_bytes:
        raise ValueError('the file is over %d bytes, more than an image within --max_image_pixels can take; '
                         'raise --max_image_pixels to read it' % max_bytes)
    return data


def _jpeg_size(data):
    """(width, height) from a JPEG's first start-of-frame marker, or None."""
    k = 2
    while k + 9 <= len(data):
        if data[k] != 0xFF:
            return None
        marker = data[k + 1]
        if marker == 0xFF:  # fill byte
            k += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            k += 2
            continue
        length = struct.unpack('>H', data[k + 2:k + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack('>HH', data[k + 5:k + 9])
            return width, height
        k += 2 + length
    return None


def header_size(data):
    """(width, height) from the header of PNG, JPEG, GIF or BMP bytes; None for another or a cut-short header."""
    if data[:8] == b'\x89PNG\r\n\x1a\n' and len(data) >= 24:
        return struct.unpack('>II', data[16:24])
    if data[:3] == b'GIF' and len(data) >= 10:
        return struct.unpack('<HH', data[6:10])
    if data[:2] == b'BM' and len(data) >= 26:
        width, height = struct.unpack('<ii', data[18:26])
        return abs(width), abs(height)
    if data[:3] == b'\xff\xd8\xff':
        return _jpeg_size(data)
    return None


def check_pixels(data, max_pixels):
    """ValueError when the header of image bytes ``data`` says more than ``max_pixels`` pixels."""
    size = header_size(data)
    if size and size[0] * size[1] > max_pixels:
        raise ValueError('an image of %d x %d pixels, over --max_image_pixels %d; raise --max_image_pixels to '
                         'read it' % (size[0], size[1], max_pixels))


def graph_pixels(data):
    """In the graph: a scalar string tensor of image bytes -> int64 pixels its header says (0: unknown format)."""
    import tensorflow as tf
    padded = tf.strings.join([data, tf.constant(b'\0' * 32)])  # short input reads zeros, not past the end

    def field(offset, length):
        raw = tf.cast(tf.io.decode_raw(tf.strings.substr(padded, offset, length), tf.uint8), tf.int64)
        return raw

    def big_endian(offset, length):
        return tf.reduce_sum(field(offset, length) * (256 ** np.arange(length - 1, -1, -1, dtype=np.int64)))

    def little_endian(offset, length, signed=False):
        value = tf.reduce_sum(field(offset, length) * (256 ** np.arange(length, dtype=np.int64)))
        return tf.abs(tf.where(value >= 2 ** 31, value - 2 ** 32, value)) if signed else value

    head = tf.strings.substr(padded, 0, 3)
    jpeg = lambda: tf.reduce_prod(tf.cast(tf.image.extract_jpeg_shape(data)[:2], tf.int64))  # noqa: E731
    return tf.case([
        (tf.equal(tf.strings.substr(padded, 0, 8), b'\x89PNG\r\n\x1a\n'), lambda: big_endian(16, 4) * big_endian(20, 4)),
        (tf.equal(head, b'GIF'), lambda: little_endian(6, 2) * little_endian(8, 2)),
        (tf.equal(tf.strings.substr(padded, 0, 2), b'BM'),
         lambda: little_endian(18, 4, True) * little_endian(22, 4, True)),
        (tf.equal(head, b'\xff\xd8\xff'), jpeg)], default=lambda: tf.constant(0, tf.int64), exclusive=False)
