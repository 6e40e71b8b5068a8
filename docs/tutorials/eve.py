# %% [markdown]
# # eve-mli: IF vs LIF, and surrogate sweeps
#
# eve-mli's SNN tutorial trains one small network (three stride-2 conv + BN + spiking layers,
# then linear-neuron-linear, Poisson input, cross-entropy of the time-averaged output) under
# several settings and compares the accuracies: the number of time steps, IF vs LIF neurons,
# learnable thresholds, and the surrogate gradient. `spikekit sweep` runs the whole comparison
# from the command line; this page runs a few of its rows on the embedded digits.

# %%
FULL = False  # True: eve's T=5 on 28x28 input and more epochs per setting
EPOCHS = 10 if FULL else 3
T = 5 if FULL else 4
SIZE = 28 if FULL else 8  # eve_mnist's three stride-2 convs take 8x8 too (8 -> 4 -> 2 -> 1)

# %%
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

import spikekit as spk
from spikekit.train import Classifier, Trainer

data = spk.data.digits(batch_size=64, seed=0)


def encode(x, T):
    if SIZE != 8:
        x = F.interpolate(x, size=SIZE, mode="bilinear")
    return spk.encoding.poisson(x, T)


def run(neuron="if", **options):
    """Train eve's network with one setting; returns its final test accuracy."""
    torch.manual_seed(0)
    net = spk.create_model("eve_mnist", input_size=SIZE, neuron=neuron, neuron_options=options)
    clf = Classifier(net, T=T, encoder=encode)  # CE of the time-mean output
    trainer = Trainer(clf, torch.optim.Adam(net.parameters(), lr=2e-2), data.train, data.test, progress=False)
    # Every setting is a new (neuron, options) pair, and the first use of each compiles a fused
    # kernel (a few seconds, then cached on disk). For these short runs at T=4 the reference loop
    # is as fast, so the sweep forces it (see "Kernels and backends").
    with spk.kernels.use("reference"):
        return trainer.fit(EPOCHS)["test_acc"]


print(spk.create_model("eve_mnist", input_size=SIZE, neuron="if"))

# %% [markdown]
# ## IF vs LIF
#
# eve's `IFNode` integrates without leak; `LIFNode` leaks towards rest with time constant `tau`.

# %%
results = {}
t0 = time.perf_counter()
for label, neuron, opts in [
    ("IF", "if", {}),
    ("LIF tau=2", "lif", {"tau": 2.0}),
    ("IF, learnt v_th", "if", {"learn": ("v_th",)}),
]:
    results[label] = run(neuron, **opts)
    print(f"{label:18s} test accuracy {results[label]:.3f}")
print(f"({time.perf_counter() - t0:.1f} s)")

# %% [markdown]
# ## Surrogate gradients
#
# The spike is a step function; its gradient is replaced by a surrogate's derivative. eve-mli's
# default is the sigmoid (its `alpha` is 1; spikekit's `Sigmoid` defaults to 4, see the
# [migration guide](../migration/eve.md)).

# %%
sweep = {"sigmoid": results["IF"]}  # eve's default: the IF run above
surrogates = {
    "atan": spk.surrogate.ATan(),
    "fast_sigmoid": spk.surrogate.FastSigmoid(),
    "triangle": spk.surrogate.Triangle(),
}
for name, sg in surrogates.items():
    sweep[name] = run("if", surrogate=sg)
    print(f"{name:14s} test accuracy {sweep[name]:.3f}")
print(f"final test accuracy: {max(sweep.values()):.4f} (best surrogate: {max(sweep, key=sweep.get)})")

# %%
fig, ax = plt.subplots(1, 2, figsize=(10, 3))
ax[0].bar(list(results), list(results.values()), color="tab:blue"), ax[0].set_title("neuron")
ax[1].bar(list(sweep), list(sweep.values()), color="tab:orange"), ax[1].set_title("surrogate (IF)")
for a in ax:
    a.set_ylim(0, 1), a.set_ylabel("test accuracy")
fig.tight_layout()

# %% [markdown]
# ## ANN mode
#
# eve switches a whole network between spiking and non-spiking mode; `spk.non_spike(net)` makes
# IF act as ReLU (and LIF as LeakyReLU), `spk.spike(net)` switches back.

# %%
net = spk.create_model("eve_mnist", input_size=SIZE, neuron="if")
x, _ = next(iter(data.test))
with torch.no_grad():
    spk.non_spike(net)
    ann = net(encode(x, T))
    spk.spike(net)
    snn = net(encode(x, T))
print("ANN-mode output std", round(ann.std().item(), 3), "| SNN-mode output std", round(snn.std().item(), 3))
