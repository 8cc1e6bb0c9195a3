"""The thesis recipe from scratch: conv blocks with ReLU, dense ReLU, Dropout 0.5, softmax."""

from __future__ import annotations

from . import input_stem


def build(
    num_classes: int, input_shape=(100, 100, 3), width: int = 32, dropout: float = 0.5, weight_decay: float = 1e-4
):
    import keras

    reg = keras.regularizers.l2(weight_decay) if weight_decay else None

    def conv(x, filters, name):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_regularizer=reg, name=name)(x)
        x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
        return keras.layers.ReLU(name=f"{name}_relu")(x)

    inp, x = input_stem(keras, input_shape)
    # 50 -> 25 -> 12 -> 6 -> 3; one conv in the first (largest, costliest) block, two after.
    for i, (filters, n_convs) in enumerate(((width, 1), (2 * width, 2), (4 * width, 2), (8 * width, 2))):
        for j in range(n_convs):
            x = conv(x, filters, f"block{i + 1}_conv{j + 1}")
        x = keras.layers.MaxPooling2D(2, name=f"block{i + 1}_pool")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(8 * width, activation="relu", kernel_regularizer=reg, name="dense_relu")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    out = keras.layers.Dense(num_classes, activation="softmax", name="softmax")(x)
    return keras.Model(inp, out, name="scratch_cnn")
