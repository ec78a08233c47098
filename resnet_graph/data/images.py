"""Bounds on image files before they are decoded: a pixel cap read from the header, a byte cap on reads.

A 514 KB PNG can hold 23000 x 23000 pixels (3.4 GB once decoded), so the
header's size is checked against ``max_pixels`` first, in Python (files read
by id, predict) and in the graph (the training stream, the serving graph).
"""
import struct

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
        if data[k] != 0xFF:  # junk between markers: the decoder scans on to the next 0xFF, and so does this
            k += 1
            continue
        marker = data[k + 1]
        if marker == 0xFF:  # fill byte
            k += 1
            continue
        if marker in (0xD8, 0x01, 0x00) or 0xD0 <= marker <= 0xD7:
            k += 2
            continue
        length = struct.unpack('>H', data[k + 2:k + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack('>HH', data[k + 5:k + 9])
            return width, height
        k += 2 + length
    return None


FORMATS = 'PNG, JPEG, GIF, BMP or WebP'
JPEG_XL = (b'\xff\x0a', b'\x00\x00\x00\x0cJXL \r\n\x87\n')  # the decoder takes these, the header check does not


def gif_block_budget(length):
    """The most blocks and sub-blocks a GIF of ``length`` bytes may have (encoders write 255-byte sub-blocks)."""
    return 4096 + length // 64


def gif_frames(data):
    """(frames, (width, height) of the largest frame) of GIF bytes, walking the blocks; None over the block budget.

    Frames are counted as their image descriptors (0x2C) are met, so a GIF cut short counts those before the cut.
    """
    flags, k, steps, budget = data[10], 13, 0, gif_block_budget(len(data))
    if flags & 0x80:
        k += 3 << ((flags & 7) + 1)  # the global colour table
    frames, largest = 0, (0, 0)
    while k < len(data) and data[k] in (0x21, 0x2C):
        if data[k] == 0x21:
            k += 2  # introducer, label
        else:
            if k + 10 > len(data):
                break
            width, height = struct.unpack('<HH', data[k + 5:k + 9])
            frames += 1
            largest = max(largest, (width, height), key=lambda s: s[0] * s[1])
            table = (3 << ((data[k + 9] & 7) + 1)) if data[k + 9] & 0x80 else 0
            k += 11 + table  # the descriptor, its colour table, the LZW code size
        while k < len(data):  # the sub-blocks, to the 0 that ends them
            steps += 1
            if steps > budget:
                return None
            size = data[k]
            k += 1 + size
            if not size:
                break
    return frames, largest


def webp_size(data):
    """(width, height) of WebP bytes from the VP8, VP8L or VP8X chunk; None for another chunk or a short header."""
    chunk = data[12:16]
    if chunk == b'VP8 ' and len(data) >= 30:
        width, height = struct.unpack('<HH', data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b'VP8L' and len(data) >= 25:
        bits = struct.unpack('<I', data[21:25])[0]
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b'VP8X' and len(data) >= 30:
        return (int.from_bytes(data[24:27], 'little') + 1, int.from_bytes(data[27:30], 'little') + 1)
    return None


def is_webp(data):
    return data[:4] == b'RIFF' and data[8:12] == b'WEBP'


def header_size(data):
    """(width, height) from the header of PNG, JPEG, GIF, BMP or WebP bytes; None for another or a cut-short one."""
    if data[:8] == b'\x89PNG\r\n\x1a\n' and len(data) >= 24:
        return struct.unpack('>II', data[16:24])
    if data[:3] == b'GIF' and len(data) >= 10:
        return struct.unpack('<HH', data[6:10])
    if data[:2] == b'BM' and len(data) >= 26:
        width, height = struct.unpack('<ii', data[18:26])
        return abs(width), abs(height)
    if data[:3] == b'\xff\xd8\xff':
        return _jpeg_size(data)
    if is_webp(data):
        return webp_size(data)
    return None


def _refuse(what, pixels, max_pixels):
    raise ValueError('%s (%d pixels), over --max_image_pixels %d; raise --max_image_pixels to read it'
                     % (what, pixels, max_pixels))


# TensorFlow's decoder refuses an animated WebP at 3 channels and corrupts its heap at 0 (a 1-channel run's).
ANIMATED_WEBP = 'an animated WebP, which is not decoded; save its first frame as a PNG or a still WebP'


def check_pixels(data, max_pixels):
    """ValueError when image bytes ``data`` would decode to more than ``max_pixels`` pixels, by their header.

    GIF: every frame counts (the decoder holds them all), each at least the logical screen. WebP: its canvas; an
    animated one is refused (ANIMATED_WEBP). JPEG XL and WebP of another chunk (the decoder takes them, the header check
    cannot size them): refused. Bytes of no format the decoder knows go on to it, which refuses them unread.
    """
    size = header_size(data)
    if data[:3] == b'GIF' and len(data) >= 13:
        walked = gif_frames(data)
        if walked is None:
            raise ValueError('a GIF of more than %d blocks, more than its %d bytes hold when written by an encoder; '
                             're-encode it' % (gif_block_budget(len(data)), len(data)))
        frames, largest = walked
        width, height = max(size, largest, key=lambda s: s[0] * s[1])
        if max(frames, 1) * width * height > max_pixels:
            if frames > 1:
                _refuse('an animated GIF of %d frames of %d x %d pixels' % (frames, width, height),
                        frames * width * height, max_pixels)
            size = (width, height)
    elif is_webp(data) and data[12:16] == b'VP8X' and (len(data) > 20 and data[20] & 2 or b'ANMF' in data):
        raise ValueError(ANIMATED_WEBP)
    elif size is None and (is_webp(data) or data.startswith(JPEG_XL)):
        raise ValueError('a %s image whose size its header check cannot read, so it is not decoded; convert it '
                         'to %s' % ('WebP' if is_webp(data) else 'JPEG XL', FORMATS))
    if size and size[0] * size[1] > max_pixels:
        raise ValueError('an image of %d x %d pixels, over --max_image_pixels %d; raise --max_image_pixels to '
                         'read it' % (size[0], size[1], max_pixels))


def _graph_gif_frames(at, length):
    """In the graph: (frames, largest frame's pixels, whether the walk ended within its budget) of GIF bytes.

    at(k): int64 byte k of the bytes (0 past their end). The walk of ``gif_frames`` as a tf.while_loop, one
    block or sub-block an iteration, at most ``gif_block_budget`` of them.
    """
    import tensorflow as tf
    flags = at(10)
    start = 13 + tf.where(flags >= 128, tf.bitwise.left_shift(tf.constant(3, tf.int64), flags % 8 + 1), 0)

    def body(k, chain, frames, area, done):
        c = at(k)
        is_ext, is_img = tf.equal(c, 0x21), tf.equal(c, 0x2C)
        f = at(k + 9)
        table = tf.where(f >= 128, tf.bitwise.left_shift(tf.constant(3, tf.int64), f % 8 + 1), 0)
        image = tf.logical_and(tf.logical_not(chain), is_img)
        frame = (at(k + 5) + 256 * at(k + 6)) * (at(k + 7) + 256 * at(k + 8))
        new_k = tf.where(chain, k + 1 + c, tf.where(is_ext, k + 2, k + 11 + table))
        new_chain = tf.where(chain, tf.not_equal(c, 0), tf.logical_or(is_ext, is_img))
        stop = tf.logical_and(tf.logical_not(chain), tf.logical_not(tf.logical_or(is_ext, is_img)))
        return (new_k, new_chain, frames + tf.cast(image, tf.int64), tf.where(image, tf.maximum(area, frame), area),
                tf.logical_or(stop, new_k >= length))

    zero = tf.constant(0, tf.int64)
    _, _, frames, area, done = tf.while_loop(
        lambda k, chain, frames, area, done: tf.logical_not(done), body,
        (start, tf.constant(False), zero, zero, start >= length), back_prop=False,
        maximum_iterations=tf.cast(gif_block_budget(length) + 1, tf.int32))
    return frames, area, done


def _graph_count(data, marker):
    """In the graph: how many times ``marker`` (bytes) occurs in scalar string ``data`` (vectorised, no copies)."""
    import tensorflow as tf
    b = tf.io.decode_raw(data, tf.uint8)
    n = tf.maximum(tf.size(b) - len(marker) + 1, 0)
    hits = tf.ones([n], tf.bool)
    for j, byte in enumerate(bytearray(marker)):
        hits = tf.logical_and(hits, tf.equal(b[j:j + n], byte))
    return tf.reduce_sum(tf.cast(hits, tf.int64))


def graph_pixels(data):
    """In the graph: a scalar string tensor of image bytes -> int64 pixels they would decode to, by their header.

    As ``check_pixels``: a GIF's frames (walked) each at least its screen, an animated WebP refused; and bytes
    longer than an image of that many pixels takes (``max_file_bytes``) count as that many. Bytes that are no
    PNG, JPEG, GIF, BMP or WebP the header check can size, and a GIF over its block budget, fail here
    (InvalidArgumentError) before decoding.
    """
    import tensorflow as tf
    padded = tf.strings.join([data, tf.constant(b'\0' * 32)])  # short input reads zeros, not past the end
    length = tf.cast(tf.strings.length(data), tf.int64)
    raw = tf.cast(tf.io.decode_raw(padded, tf.uint8), tf.int64)

    def at(k):
        return tf.gather(raw, tf.clip_by_value(tf.cast(k, tf.int64), 0, length + 31))

    def little_endian(offset, count, signed=False):
        value = tf.add_n([at(offset + j) * 256 ** j for j in range(count)])
        return tf.abs(tf.where(value >= 2 ** 31, value - 2 ** 32, value)) if signed else value

    def big_endian(offset, count):
        return tf.add_n([at(offset + j) * 256 ** (count - 1 - j) for j in range(count)])

    def gif():
        frames, area, done = _graph_gif_frames(at, length)
        pixels = tf.maximum(frames, 1) * tf.maximum(little_endian(6, 2) * little_endian(8, 2), area)
        return tf.where(done, pixels, tf.constant(-2, tf.int64))

    chunk = tf.strings.substr(padded, 12, 4)
    webp = tf.logical_and(tf.equal(tf.strings.substr(padded, 0, 4), b'RIFF'),
                          tf.equal(tf.strings.substr(padded, 8, 4), b'WEBP'))
    head = tf.strings.substr(padded, 0, 3)
    jpeg = lambda: tf.reduce_prod(tf.cast(tf.image.extract_jpeg_shape(data)[:2], tf.int64))  # noqa: E731
    lossless = lambda: ((little_endian(21, 4) % 16384 + 1)  # noqa: E731
                        * (tf.bitwise.right_shift(little_endian(21, 4), 14) % 16384 + 1))
    extended = lambda: tf.where(  # noqa: E731
        tf.logical_or(tf.equal(tf.bitwise.bitwise_and(at(20), 2), 2), _graph_count(data, b'ANMF') > 0),
        tf.constant(-3, tf.int64), (little_endian(24, 3) + 1) * (little_endian(27, 3) + 1))
    pixels = tf.case([
        (tf.equal(tf.strings.substr(padded, 0, 8), b'\x89PNG\r\n\x1a\n'), lambda: big_endian(16, 4) * big_endian(20, 4)),
        (tf.equal(head, b'GIF'), gif),
        (tf.equal(tf.strings.substr(padded, 0, 2), b'BM'),
         lambda: little_endian(18, 4, True) * little_endian(22, 4, True)),
        (tf.equal(head, b'\xff\xd8\xff'), jpeg),
        (tf.logical_and(webp, tf.equal(chunk, b'VP8 ')), lambda: (little_endian(26, 2) % 16384)
         * (little_endian(28, 2) % 16384)),
        (tf.logical_and(webp, tf.equal(chunk, b'VP8L')), lossless),
        (tf.logical_and(webp, tf.equal(chunk, b'VP8X')), extended)],
        default=lambda: tf.constant(-1, tf.int64), exclusive=False)
    known = tf.debugging.assert_none_equal(pixels, tf.constant(-1, tf.int64), message=(
        'not a %s image the header check can size (by its first bytes), so it is not decoded; convert it to '
        'one of those' % FORMATS))
    walked = tf.debugging.assert_none_equal(pixels, tf.constant(-2, tf.int64), message=(
        'a GIF of more blocks than its bytes hold when written by an encoder; re-encode it'))
    still = tf.debugging.assert_none_equal(pixels, tf.constant(-3, tf.int64), message=ANIMATED_WEBP)
    with tf.control_dependencies([known, walked, still]):
        return tf.maximum(pixels, (length - HEADER_SLACK) // BYTES_PER_PIXEL)
