"""Model architectures, one module each: `scratch` (the thesis's plain CNN), `resnet` (residual, transfer-learned)."""

from __future__ import annotations


def input_stem(keras, input_shape, name: str = "stem"):
    """uint8-range input -> [0, 1] floats at half resolution.

    Normalisation lives in the model so the device feeds bytes. The thesis's 100x100 input is kept
    as the interface, but FER2013 faces are natively 48x48: pooling to 50x50 first loses nothing
    and cuts compute 4x, which is what makes CPU training and sub-millisecond int8 inference possible.
    """
    inp = keras.Input(shape=input_shape, name="face")
    x = keras.layers.Rescaling(1.0 / 255.0, name=f"{name}_rescale")(inp)
    x = keras.layers.AveragePooling2D(2, name=f"{name}_half")(x)
    return inp, x
