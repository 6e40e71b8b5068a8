# %% [markdown]
# # snetx: batch-first spiking VGG with TET and an alpha schedule
#
# snetx trains spiking VGG/ResNet networks on CIFAR with batch-first sequences `[B, T, ...]`,
# direct encoding, the ATan surrogate, the TET loss (a cross-entropy at every time step) and a
# surrogate whose sharpness `alpha` grows over training (`EvolvedAlpha`). `FULL = True` trains
# the spiking VGG-11 with batch norm on the embedded digits upsampled to 32x32, with snetx's SGD
# (`spikekit train --preset snetx-vgg-cifar10` does the same from the command line, on CIFAR-10
# when it is there). The site build trains a five-conv VGG on the 8x8 digits as they are, with
# Adam, which gets going within a few epochs.

# %%
FULL = False  # True: spiking VGG-11-BN on 32x32 input, SGD, 200 epochs
EPOCHS = 200 if FULL else 5
T = 4

# %%
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

import spikekit as spk

torch.manual_seed(0)
data = spk.data.digits(batch_size=32, seed=0)

# batch_first=True: the model takes and returns [B, T, ...], as snetx's networks do
options = {"surrogate": spk.surrogate.ATan(alpha=2.0)}
if FULL:
    SIZE = 32
    net = spk.create_model(
        "spiking_vgg11_bn", in_channels=1, input_size=SIZE, batch_first=True, neuron_options=options
    )
else:
    from spikekit.models.vgg import SpikingVGG

    SIZE = 8  # conv-BN-LIF blocks as in VGG: 32, pool, 64, 64, pool, 128, 128, pool (8x8 -> 1x1)
    net = SpikingVGG(
        [32, "M", 64, 64, "M", 128, 128, "M"],
        norm_layer="bn",
        neuron="lif",
        neuron_options=options,
        num_classes=10,
        in_channels=1,
        input_size=SIZE,
        batch_first=True,
        hidden=256,
        pool_size=1,
        dropout=0.0,
    )
print(net.features)
print(sum(p.numel() for p in net.parameters()), "parameters")


def encode(x):  # [B, 1, 8, 8] -> [B, T, 1, SIZE, SIZE]: the same image at every step
    if SIZE != 8:
        x = F.interpolate(x, size=SIZE, mode="bilinear")
    return spk.encoding.direct(x, T, batch_first=True)


# %% [markdown]
# ## TET loss and the alpha schedule
#
# `spk.losses.tet_loss(lamb=0, batch_first=True)` is snetx's `TETLoss(..., lamb=0)`: the mean
# over time of the per-step cross-entropy. `AlphaSchedule` sharpens the surrogate each epoch,
# touching only the model it is given.

# %%
loss_fn = spk.losses.tet_loss(lamb=0.0, batch_first=True)
sched = spk.surrogate.AlphaSchedule(base=2.0, epochs=EPOCHS)
if FULL:
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
else:
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
lr_sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, EPOCHS)


def evaluate():
    net.eval()
    correct = 0
    with torch.no_grad():
        for x, y in data.test:
            correct += int((net(encode(x)).mean(1).argmax(-1) == y).sum())
    net.train()
    return correct / len(data.test.dataset)


history = []
for epoch in range(EPOCHS):
    alpha = sched.apply(net, epoch)
    total = 0.0
    for x, y in data.train:
        out = net(encode(x))  # [B, T, 10]
        loss = loss_fn(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item() * len(y)
    lr_sched.step()
    acc = evaluate()
    history.append((alpha, total / len(data.train.dataset), acc))
    print(f"epoch {epoch + 1}: alpha {alpha:.2f}, train loss {history[-1][1]:.3f}, test acc {acc:.3f}")
print(f"final test accuracy: {history[-1][2]:.4f}")

# %%
fig, ax = plt.subplots(1, 3, figsize=(12, 3))
ep = range(1, EPOCHS + 1)
ax[0].plot(ep, [h[0] for h in history], "o-"), ax[0].set_title("surrogate alpha")
ax[1].plot(ep, [h[1] for h in history], "o-"), ax[1].set_title("TET loss (train)")
ax[2].plot(ep, [h[2] for h in history], "o-"), ax[2].set_title("test accuracy")
for a in ax:
    a.set_xlabel("epoch")
fig.tight_layout()

# %% [markdown]
# The ATan surrogate's derivative at the alphas the schedule used: sharper each epoch.

# %%
u = torch.linspace(-2, 2, 401)
plt.figure(figsize=(5, 3))
for a in sorted({h[0] for h in history}):
    plt.plot(u, spk.surrogate.ATan(alpha=a).grad(u), label=f"alpha {a:.2f}")
plt.xlabel("v - v_th"), plt.ylabel("surrogate derivative"), plt.legend()
