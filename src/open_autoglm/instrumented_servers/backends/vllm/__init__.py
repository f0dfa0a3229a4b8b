"""``vllm``: the real vLLM engine in-process, with its own scheduler (``._backend``) and every
vLLM interface it uses in one place (:mod:`.compat`, also what the vLLM instrumentor of
:mod:`open_autoglm.attach` reads vLLM's request stats with).

Light on purpose: importing the package does not import vLLM; the registry in
:mod:`open_autoglm.instrumented_servers.backends` imports ``._backend`` when it is built.
"""

from open_autoglm.instrumented_servers.backends.vllm import _compat as compat

__all__ = ["compat"]
