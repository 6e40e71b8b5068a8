"""Build-time figures for the concept pages (mkdocs-gen-files; matplotlib Agg, a few seconds).

Writes ``concepts/img/*.png``: one membrane trace per neuron, each surrogate's primitive and
derivative, the reset modes, and encoder rasters. Everything runs on the reference loop
(``spk.kernels.use("reference")``) so no kernel is compiled during the build.
"""

from __future__ import annotations

import io
import sys
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import mkdocs_gen_files
import torch

import spikekit as spk

t0 = time.perf_counter()


def save(fig, name: str) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    with mkdocs_gen_files.open(f"concepts/img/{name}.png", "wb") as f:
        f.write(buf.getvalue())


def trace(neuron, xs):
    """The neuron's first state field and outputs over time for one input neuron."""
    with spk.record(neuron) as rec:
        out = neuron(xs)
    state = next(iter(rec.values()))
    return state, out


# ---------------------------------------------------------------- neurons
T = 100
step_input = torch.zeros(T, 1, 1)
step_input[10:80] = 1.0
NEURONS = {  # name: (constructor arguments, input amplitude)
    "IF": ("v_th=8.0", 0.3),
    "LIF": ("tau=10.0", 1.5),
    "CubaLIF": ("tau=10.0, tau_syn=5.0", 0.5),
    "ALIF": ("tau=10.0", 3.0),
    "AlphaLIF": ("", 0.4),
    "LI": ("tau=10.0", 1.0),
    "QIF": ("", 1.5),
    "EIF": ("", 1.5),
    "Izhikevich": ("", 10.0),
    "AdEx": ("", 4.0),
    "RF": ("", 1.5),
}
with spk.kernels.use("reference"), torch.no_grad():
    for name, (args, gain) in NEURONS.items():
        neuron = eval(f"spk.{name}({args})")
        xs = step_input * gain
        state, out = trace(neuron, xs)
        fields = state._fields
        fig, ax = plt.subplots(2, 1, figsize=(6, 3.2), sharex=True, height_ratios=[3, 1])
        ax[0].plot(getattr(state, fields[0])[:, 0, 0], label=f"{fields[0]} (membrane)")
        for f in fields[1:]:
            ax[0].plot(getattr(state, f)[:, 0, 0], lw=1, alpha=0.8, label=f)
        ax[0].legend(fontsize=7, loc="upper right")
        ax[0].set_title(f"spk.{name}({args}): input {gain:g} during steps 10-79")
        if name == "LI":
            ax[1].plot(xs[:, 0, 0], color="gray"), ax[1].set_ylabel("input")
        else:
            t_idx = out[:, 0, 0].nonzero().flatten()
            ax[1].vlines(t_idx, 0, 1, color="k"), ax[1].set_yticks([]), ax[1].set_ylabel("spikes")
        ax[1].set_xlabel("time step")
        save(fig, f"neuron_{name}")

    # ------------------------------------------------------------ resets
    fig, ax = plt.subplots(1, 4, figsize=(13, 2.8), sharey=True)
    xs = step_input * 1.6
    for a, (title, opts) in zip(
        ax,
        [
            ("reset='hard'", {"reset": "hard"}),
            ("reset='soft'", {"reset": "soft"}),
            ("reset='none'", {"reset": "none"}),
            ("soft, reset_delay=True", {"reset": "soft", "reset_delay": True}),
        ],
        strict=True,
    ):
        state, out = trace(spk.LIF(tau=10.0, **opts), xs)
        a.plot(state.v[:, 0, 0])
        a.vlines(out[:, 0, 0].nonzero().flatten(), 1.05, 1.35, color="k")
        a.axhline(1.0, color="gray", ls=":")
        a.set_title(title), a.set_xlabel("time step")
    ax[0].set_ylabel("v (ticks: spikes)")
    save(fig, "resets")

# ---------------------------------------------------------------- surrogates
u = torch.linspace(-3, 3, 601)
for name in spk.surrogate.names():
    sg = spk.surrogate.get(name)
    fig, ax = plt.subplots(1, 2, figsize=(7, 2.4))
    ax[0].plot(u, (u >= 0).float(), color="gray", ls=":", label="H(x)")
    ax[0].plot(u, sg.primitive(u), label="primitive")
    ax[1].plot(u, sg.grad(u), color="tab:orange")
    ax[0].set_title(f"{type(sg).__name__}: primitive"), ax[1].set_title("derivative (used as dH/dx)")
    ax[0].legend(fontsize=7)
    for a in ax:
        a.set_xlabel("x = h - v_th")
    save(fig, f"surrogate_{name}")

# ---------------------------------------------------------------- encoders
torch.manual_seed(0)
x = torch.linspace(0, 1, 32)[None]  # 32 inputs from 0 to 1
Te = 40
enc = {
    "direct": spk.encoding.direct(x, Te),
    "poisson": spk.encoding.poisson(x, Te),
    "latency": spk.encoding.latency(x, Te, normalize=True, linear=True),
    "constant_current_lif": spk.encoding.constant_current_lif(3 * x, Te, tau=5.0),
    "population": spk.encoding.population(torch.tensor([[0.0, 0.33, 0.67, 1.0]]), Te, 8),
    "delta": spk.encoding.delta(
        torch.sin(torch.linspace(0, 6.28, Te))[:, None, None].repeat(1, 1, 4)
        * torch.tensor([0.5, 1.0, 1.5, 2.0]),
        0.1,
        off_spike=True,
    ),
}
fig, axes = plt.subplots(2, 3, figsize=(12, 5.5))
for ax, (name, zs) in zip(axes.flat, enc.items(), strict=True):
    z = zs[:, 0].flatten(1)
    if name == "direct":
        ax.imshow(z.T.numpy(), aspect="auto", cmap="viridis", origin="lower")
    else:
        t_idx, n_idx = (z != 0).nonzero(as_tuple=True)
        ax.scatter(t_idx, n_idx, marker="|", s=10, c=z[t_idx, n_idx], cmap="coolwarm", vmin=-1, vmax=1)
    ax.set_title(f"encoding.{name}"), ax.set_xlabel("time step"), ax.set_ylabel("input neuron")
fig.tight_layout()
save(fig, "encoders")

print(f"figures: {time.perf_counter() - t0:.1f} s", file=sys.__stderr__, flush=True)
