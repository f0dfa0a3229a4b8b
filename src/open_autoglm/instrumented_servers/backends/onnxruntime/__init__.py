"""``onnxruntime`` and ``tensorrt``: a decoder-with-past ONNX model in onnxruntime, and the
preparation of the models it runs (:mod:`.models`).

Light on purpose: importing the package imports neither numpy nor onnxruntime; the backend
itself (``._backend``) is imported by name from the registry in
:mod:`open_autoglm.instrumented_servers.backends` when it is built.
"""

__all__: list[str] = []
