# %% [markdown]
# # snntorch: quickstart
#
# snntorch's quickstart trains a small convolutional SNN of `Leaky` neurons (beta 0.9, fast-sigmoid
# surrogate with slope 25), fed the same image at every step ("direct" input), with
# `mse_count_loss(correct_rate=0.8, incorrect_rate=0.2)` and spike-count decoding. Here on the
# embedded 8x8 digits upsampled to 28x28 (`spikekit train --preset snntorch-quickstart` does the
# same from the command line). The snntorch names are also available unchanged in
# `spikekit.compat.snntorch` (see the [migration guide](../migration/snntorch.md)).

# %%
FULL = False  # True: the quickstart's 25 steps and 3 epochs (the build runs fewer)
EPOCHS = 3 if FULL else 2
T = 25 if FULL else 10
SIZE = 28

# %%
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

import spikekit as spk
from spikekit.train import Classifier, Trainer

torch.manual_seed(0)
data = spk.data.digits(batch_size=16, seed=0)


def encode(x, T):  # upsample the 8x8 digits, then repeat them over time
    return spk.encoding.direct(F.interpolate(x, size=SIZE, mode="bilinear"), T)


# conv5(8)-pool-Leaky-conv5(16)-pool-Leaky-linear-Leaky: snntorch's Leaky is a LIF with
# decay_input=False and a soft reset one step late (the model's defaults)
net = spk.create_model(
    "snntorch_convnet", input_size=SIZE, neuron_options={"surrogate": spk.surrogate.FastSigmoid(alpha=25.0)}
)
print(net)

# %% [markdown]
# ## One forward pass, by hand
#
# `net(xs)` runs the whole sequence `[T, B, ...]` from a fresh state and returns the output
# spikes `[T, B, 10]`; no `init_hidden`, no `reset` between batches.

# %%
x, y = next(iter(data.train))
spk_rec = net(encode(x, T))
loss_fn = spk.losses.mse_count_loss(correct_rate=0.8, incorrect_rate=0.2)
print("output spikes:", tuple(spk_rec.shape), " loss:", round(loss_fn(spk_rec, y).item(), 4))

# %% [markdown]
# ## Training
#
# The loop is the usual one (`bptt_epoch` is snntorch's `backprop.BPTT`); `Trainer` adds
# evaluation and history.

# %%
clf = Classifier(net, T=T, encoder=encode, criterion=loss_fn)
opt = torch.optim.Adam(net.parameters(), lr=2e-3, betas=(0.9, 0.999))
trainer = Trainer(clf, opt, data.train, data.test, progress=False)
info = trainer.fit(EPOCHS)
for row in info["history"]:
    print(f"epoch {row['epoch']}: train loss {row['train_loss']:.3f}, test acc {row['test_acc']:.3f}")
print(f"final test accuracy: {info['test_acc']:.4f}")

# %% [markdown]
# ## Spike counts of the output layer
#
# The prediction is the neuron that fires most (`spk.decoding.spike_count`).

# %%
xb, yb = next(iter(data.test))
net.eval()
with torch.no_grad():
    out = net(encode(xb[:1], T))[:, 0]  # [T, 10]
counts = spk.decoding.spike_count(out[:, None])[0]
fig, ax = plt.subplots(1, 2, figsize=(9, 3))
t_idx, n_idx = out.nonzero(as_tuple=True)
ax[0].scatter(t_idx, n_idx, marker="|", s=80)
ax[0].set_yticks(range(10)), ax[0].set_xlabel("time step"), ax[0].set_ylabel("output neuron")
ax[0].set_title(f"output spikes (label {int(yb[0])})")
ax[1].bar(range(10), counts.numpy()), ax[1].set_xticks(range(10)), ax[1].set_title("spike count")
fig.tight_layout()
