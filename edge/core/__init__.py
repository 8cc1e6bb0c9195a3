"""Pure numpy/OpenCV core shared by the device and the trainer: types, preprocessing, manifest, runtime."""
