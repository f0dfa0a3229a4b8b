"""``vllm``: the real vLLM engine in-process, with its own scheduler (``._backend``) and every
vLLM interface it uses in one place (``._compat``).

Light on purpose: importing the package does not import vLLM; the registry in
:mod:`open_autoglm.instrumented_servers.backends` imports ``._backend`` when it is built.
"""

__all__: list[str] = []
