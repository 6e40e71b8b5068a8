# %% [markdown]
# # spikingjelly: a single LIF layer on Poisson input
#
# spikingjelly's "single fully connected layer" tutorial: flatten -> linear (no bias) ->
# LIF(tau=2), Poisson-encoded images for `T` steps, MSE between the output firing rate and the
# one-hot label, Adam. Here on the embedded 8x8 digits (`spikekit.data.digits`, no download);
# `spikekit train --preset spikingjelly-lif-fc` runs the same experiment from the command line.
#
# `FULL` switches to the tutorial's full-length settings (the site build runs the short ones).

# %%
FULL = False  # True: spikingjelly's T=100 and 100 epochs
EPOCHS = 100 if FULL else 3
T = 100 if FULL else 20
BATCH = 16

# %%
import matplotlib.pyplot as plt
import torch

import spikekit as spk
from spikekit.train import Classifier, Trainer

torch.manual_seed(0)
data = spk.data.digits(batch_size=BATCH, seed=0)
net = spk.create_model("spikingjelly_fc", input_size=8)  # Flatten -> Linear(64, 10, bias=False) -> LIF(tau=2)
print(net)

# %% [markdown]
# The loss is spikingjelly's: mean squared error between each class neuron's firing rate and the
# one-hot label (`spk.losses.mse_rate_loss`); the predicted class is the most active neuron.

# %%
clf = Classifier(net, T=T, encoder="poisson", criterion=spk.losses.mse_rate_loss())
opt = torch.optim.Adam(net.parameters(), lr=1e-3 if FULL else 1e-2)
trainer = Trainer(clf, opt, data.train, data.test, progress=False)
info = trainer.fit(EPOCHS)
for row in info["history"]:
    print(f"epoch {row['epoch']}: train acc {row['train_acc']:.3f}, test acc {row['test_acc']:.3f}")
print(f"final test accuracy: {info['test_acc']:.4f}")

# %%
hist = info["history"]
plt.figure(figsize=(5, 3))
plt.plot([r["epoch"] for r in hist], [r["train_acc"] for r in hist], "o-", label="train")
plt.plot([r["epoch"] for r in hist], [r["test_acc"] for r in hist], "s-", label="test")
plt.xlabel("epoch"), plt.ylabel("accuracy"), plt.legend(), plt.title("accuracy")

# %% [markdown]
# ## Visualising the output layer
#
# spikingjelly plots the output layer's membrane potential and spikes for one test image
# (`visualizing.plot_2d_heatmap` and `plot_1d_spikes`). `spk.record` collects every neuron's
# state and output over time, `[T, B, ...]`, without changing the model's return type.

# %%
x, y = next(iter(data.test))
net.eval()
with torch.no_grad(), spk.record(net) as rec:
    out = net(spk.encoding.poisson(x[:1], T))
name = next(iter(rec))  # the one LIF layer
v, s = rec[name].v[:, 0], rec.spikes[name][:, 0]  # [T, 10]
print(f"label {int(y[0])}, spike counts per class: {s.sum(0).int().tolist()}")

fig, ax = plt.subplots(1, 3, figsize=(11, 3))
ax[0].imshow(x[0, 0].numpy(), cmap="gray"), ax[0].set_title(f"input (label {int(y[0])})"), ax[0].axis("off")
im = ax[1].imshow(v.T.numpy(), aspect="auto", cmap="viridis")
ax[1].set_xlabel("time step"), ax[1].set_ylabel("output neuron"), ax[1].set_title("membrane potential")
fig.colorbar(im, ax=ax[1])
t_idx, n_idx = s.nonzero(as_tuple=True)
ax[2].scatter(t_idx, n_idx, marker="|", s=60)
ax[2].set_yticks(range(10)), ax[2].set_xlim(-0.5, T - 0.5)
ax[2].set_xlabel("time step"), ax[2].set_title("output spikes")
fig.tight_layout()

# %% [markdown]
# The Poisson input itself, one row per pixel:

# %%
xs = spk.encoding.poisson(x[:1], T)[:, 0].flatten(1)  # [T, 64]
t_idx, n_idx = xs.nonzero(as_tuple=True)
plt.figure(figsize=(6, 3))
plt.scatter(t_idx, n_idx, marker="|", s=8, color="k")
plt.xlabel("time step"), plt.ylabel("pixel"), plt.title("Poisson input raster")

# %% [markdown]
# ## Synaptic operations and energy
#
# spikingjelly and sinabs users estimate an SNN's cost by its synaptic operations: each input
# spike reaching each of its outgoing connections is one accumulate. `spk.energy` counts them
# with hooks on the weight layers during one forward pass and prices them with the common 45 nm
# figures (0.9 pJ per accumulate, 4.6 pJ per multiply-accumulate), next to the same network
# run as an ANN (every connection a MAC at every step).

# %%
rep = spk.energy(net, spk.encoding.poisson(x, T))
print(rep)
