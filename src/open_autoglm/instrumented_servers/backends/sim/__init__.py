"""``sim``: a labelled simulator of a continuous-batching engine, for tests and demos
(``._backend``), with its whitespace tokenizer (``._tokenizer``).

The registry in :mod:`open_autoglm.instrumented_servers.backends` imports ``._backend`` when
the backend is built.
"""

__all__: list[str] = []
