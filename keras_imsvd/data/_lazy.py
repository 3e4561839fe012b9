"""TensorFlow, imported on first use so `import keras_imsvd` stays light."""

import importlib


class _LazyModule:
    def __init__(self, name, install_hint):
        self._name = name
        self._install_hint = install_hint
        self._module = None

    def __getattr__(self, attribute):
        if self._module is None:
            try:
                self._module = importlib.import_module(self._name)
            except ImportError as error:
                raise ImportError(
                    f"keras_imsvd.data needs `{self._name}`: {self._install_hint}"
                ) from error
        return getattr(self._module, attribute)


# tf.data runs the input pipeline under every Keras backend.
tf = _LazyModule("tensorflow", "pip install tensorflow-cpu (or tensorflow)")
