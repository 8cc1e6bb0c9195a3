"""Residual backbone for transfer learning: our own compact ResNet (pre-trained on six FER2013
classes by `emotion-trainer pretrain`) or a Keras ResNet50 with a local weights file."""

from __future__ import annotations

from pathlib import Path

from edge.core.errors import UserError

from . import input_stem

BACKBONES = ("fer-resnet", "resnet50")


def _basic_block(keras, x, filters: int, stride: int, reg, name: str):
    shortcut = x
    y = keras.layers.Conv2D(
        filters, 3, strides=stride, padding="same", use_bias=False, kernel_regularizer=reg, name=f"{name}_conv1"
    )(x)
    y = keras.layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = keras.layers.ReLU(name=f"{name}_relu1")(y)
    y = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_regularizer=reg, name=f"{name}_conv2")(y)
    y = keras.layers.BatchNormalization(name=f"{name}_bn2")(y)
    if stride != 1 or shortcut.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(
            filters, 1, strides=stride, use_bias=False, kernel_regularizer=reg, name=f"{name}_proj"
        )(shortcut)
        shortcut = keras.layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def fer_backbone(input_shape=(100, 100, 3), width: int = 32, blocks=(1, 2, 2), weight_decay: float = 1e-4):
    """stem conv @50x50, then residual stages @25, @13, @7 with 2w, 4w, 8w channels; global average pool."""
    import keras

    reg = keras.regularizers.l2(weight_decay) if weight_decay else None
    inp, x = input_stem(keras, input_shape)
    x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, kernel_regularizer=reg, name="stem_conv")(x)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    for s, n in enumerate(blocks):
        for b in range(n):
            x = _basic_block(keras, x, width * 2 ** (s + 1), 2 if b == 0 else 1, reg, f"stage{s + 1}_block{b + 1}")
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inp, x, name="backbone")


def keras_resnet50_backbone(input_shape, weights_file: Path):
    """Keras ResNet50 with the user's local ImageNet weights (no download); caffe-style input."""
    import keras

    inp = keras.Input(shape=input_shape, name="face")
    # ResNet50's ImageNet weights expect BGR 0-255 minus the ImageNet means; grey input makes BGR/RGB moot.
    x = keras.layers.Normalization(mean=[103.939, 116.779, 123.68], variance=[1.0, 1.0, 1.0], name="imagenet_mean")(inp)
    base = keras.applications.ResNet50(include_top=False, weights=str(weights_file), input_tensor=x, pooling="avg")
    return keras.Model(inp, base.output, name="backbone")


def build_backbone(kind: str, input_shape, width: int, weight_decay: float, weights_file: Path | None = None):
    if kind == "fer-resnet":
        backbone = fer_backbone(input_shape, width, weight_decay=weight_decay)
        if weights_file:
            try:
                backbone.load_weights(str(weights_file))
            except (ValueError, OSError) as exc:
                raise UserError(
                    f"backbone weights {weights_file} do not fit the fer-resnet backbone (width {width}): "
                    f"{str(exc).splitlines()[0]}; fix: re-run 'emotion-trainer pretrain' with the same width"
                ) from None
        return backbone
    if kind == "resnet50":
        if not weights_file or not Path(weights_file).is_file():
            raise UserError(
                "backbone resnet50 needs --backbone-weights FILE (Keras ResNet50 'notop' ImageNet weights); "
                "they cannot be downloaded at run time"
            )
        return keras_resnet50_backbone(input_shape, Path(weights_file))
    raise UserError(f"unknown backbone {kind!r}; fix: use one of {', '.join(BACKBONES)}")


def build(num_classes: int, backbone, dropout: float = 0.5):
    import keras

    x = keras.layers.Dropout(dropout, name="dropout")(backbone.output)
    out = keras.layers.Dense(num_classes, activation="softmax", name="softmax")(x)
    return keras.Model(backbone.input, out, name="resnet_classifier")
