import os

# Triton decides when it is imported whether its kernels run compiled or interpreted, so the
# interpreter is switched on for the whole session, before anything imports triton: then
# ``kernels.use("triton")`` runs the generated GPU kernels on CPU tensors (tests/test_triton.py).
# Nothing else here runs Triton (torch.compile's CPU backend generates C++).
os.environ.setdefault("TRITON_INTERPRET", "1")

import torch

# Two xdist workers on two cores: one thread each avoids oversubscription.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
