# %% [markdown]
# # norse: encoders, a recurrent network and a ConvNet
#
# norse's MNIST tutorial encodes images as spike trains (constant-current LIF, Poisson, spike
# latency), trains a recurrent LIF network with a leaky-integrator (LI) readout decoded by its
# maximal membrane potential over time, then a convolutional network. Here on the embedded 8x8
# digits (`spikekit train --preset norse-mnist-conv` runs the ConvNet from the command line).

# %%
FULL = False  # True: norse's settings (T=48 steps, 28x28 input for the ConvNet, more epochs)
EPOCHS = 5 if FULL else 4
T = 48 if FULL else 32
CONV_SIZE = 28 if FULL else 16  # the ConvNet needs at least 16x16

# %%
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

import spikekit as spk
from spikekit.train import Classifier, Trainer

torch.manual_seed(0)
data = spk.data.digits(batch_size=32, seed=0)
x, y = next(iter(data.test))
img = (x[:1] - 0.1307) / 0.3081  # norse normalises with MNIST's mean and std

# %% [markdown]
# ## 1. Encoding the input
#
# Each pixel becomes one input neuron. The constant-current encoder drives a LIF neuron with the
# pixel value as a current (brighter pixels spike earlier and more often); the Poisson encoder
# fires at a rate proportional to the pixel; the latency encoder fires once, earlier for brighter
# pixels.

# %%
encoders = {
    "constant current LIF": spk.encoding.constant_current_lif(img, T, tau=10.0),
    "Poisson (f_max=200 Hz)": spk.encoding.poisson(x[:1], T, f_max=200.0),
    "spike latency LIF": spk.encoding.spike_latency_lif(img, T, tau=10.0),
}
fig, axes = plt.subplots(1, 4, figsize=(14, 3))
axes[0].imshow(x[0, 0].numpy(), cmap="gray"), axes[0].set_title(f"digit {int(y[0])}"), axes[0].axis("off")
for ax, (name, zs) in zip(axes[1:], encoders.items(), strict=True):
    t_idx, n_idx = zs[:, 0].flatten(1).nonzero(as_tuple=True)
    ax.scatter(t_idx, n_idx, marker="|", s=6, color="k")
    ax.set_xlim(-0.5, T - 0.5), ax.set_xlabel("time step"), ax.set_title(name)
axes[1].set_ylabel("input neuron (pixel)")
fig.tight_layout()
for name, zs in encoders.items():
    print(f"{name:24s} {int(zs.sum())} spikes over {T} steps")

# %% [markdown]
# ## 2. A recurrent network
#
# `norse_snn`: input -> recurrent LIF layer (100 neurons) -> linear -> LI readout. The network
# outputs the readout's membrane potential `[T, B, 10]`; the class is the neuron whose membrane
# reaches the highest value (`spk.decoding.max_membrane`), and the loss is the negative
# log-likelihood of `log_softmax(max_t v)` (`spk.losses.ce_max_membrane_loss`).


# %%
def encode_current(x, T):
    return spk.encoding.constant_current_lif((x - 0.1307) / 0.3081, T, tau=10.0)


def train(net, encode, epochs, lr=2e-3):
    clf = Classifier(net, T=T, encoder=encode, criterion=spk.losses.ce_max_membrane_loss())
    trainer = Trainer(clf, torch.optim.Adam(net.parameters(), lr=lr), data.train, data.test, progress=False)
    return trainer.fit(epochs)


rnn = spk.create_model(
    "norse_snn", input_size=8, neuron="cubalif"
)  # norse's LIFRecurrentCell is current-based
print(rnn)
info = train(rnn, encode_current, EPOCHS)
print(f"recurrent network test accuracy: {info['test_acc']:.4f}")

# %% [markdown]
# The readout's membrane traces for one test digit:

# %%
rnn.eval()
with torch.no_grad():
    v = rnn(encode_current(x[:1], T))[:, 0]  # [T, 10]
plt.figure(figsize=(6, 3))
for c in range(10):
    plt.plot(v[:, c], lw=2.5 if c == int(y[0]) else 1, label=str(c))
plt.xlabel("time step"), plt.ylabel("readout membrane"), plt.title(f"LI readout (label {int(y[0])})")
plt.legend(ncol=5, fontsize=7)
print("predicted:", int(spk.decoding.max_membrane(v[:, None]).argmax()), " label:", int(y[0]))

# %% [markdown]
# ## 3. A convolutional network
#
# norse's `ConvNet`: conv5(20) -> LIF -> pool -> conv5(50) -> LIF -> pool -> linear(500) -> LIF
# -> LI readout, current-based LIF neurons with the SuperSpike surrogate. The 8x8 digits are
# upsampled to `CONV_SIZE`.


# %%
def encode_conv(x, T):
    return encode_current(F.interpolate(x, size=CONV_SIZE, mode="bilinear"), T)


torch.manual_seed(0)
conv = spk.create_model("norse_convnet", input_size=CONV_SIZE, neuron="cubalif")
info = train(conv, encode_conv, EPOCHS)
print(f"final test accuracy: {info['test_acc']:.4f} (ConvNet)")
