"""Extract the embedded default data set (run once; kept for provenance).

Writes resnet_graph/data/digits.npz with the 1,797 8x8 images of the UCI
"Optical Recognition of Handwritten Digits" set (CC BY 4.0), as shipped by
scikit-learn's ``load_digits``:

- ``images``: uint8 [1797, 8, 8], ink counts 0..16 (0 is background);
- ``labels``: uint8 [1797], classes 0..9.

scikit-learn is needed only to run this script, never at run time.
"""
import os

import numpy as np
from sklearn.datasets import load_digits

OUT = os.path.join(os.path.dirname(__file__), os.pardir, 'resnet_graph', 'data', 'digits.npz')


def main():
    digits = load_digits()
    images = digits.images.astype(np.uint8)
    labels = digits.target.astype(np.uint8)
    assert images.shape == (1797, 8, 8) and images.max() == 16
    np.savez_compressed(OUT, images=images, labels=labels)
    print('wrote %s (%d bytes)' % (os.path.normpath(OUT), os.path.getsize(OUT)))


if __name__ == '__main__':
    main()
