"""Seed instability: a GAN's result depends on its random seed; it drops modes that EM recovers.

Claim: adversarial training is unstable: a GAN trained on a mixture of well-separated Gaussians covers
    only some of its modes, and how many depends on the seed, where expectation-maximisation on a
    Gaussian mixture (its number of components chosen by BIC) recovers them all every time.
Source: seeds/003_f388986fd4a90ec9.txt (item 5: "GANs often don't train well, with heavy
    dependence on rand seed"); Metz, Poole, Pfau & Sohl-Dickstein 2017, "Unrolled Generative
    Adversarial Networks"; Srivastava et al. 2017, "VEEGAN"; Lucic et al. 2018, "Are GANs Created
    Equal?"; Gulrajani et al. 2017, "Improved Training of Wasserstein GANs".
Setup: knob m = number of modes: m equal Gaussians on a ring of radius 2, std 0.02 (means at
    2π·k/m, k < m: `endpoint=False`, the published demo's ring repeats one mode), or for m = 25 the
    5×5 grid at {-4, -2, 0, 2, 4}², std 0.05 (the settings of the references, §6a/§6b). The learner
    sees `n_train` samples and returns 2,500 generated points; the means and std stay hidden.
    Scaled to CPU: the quick profile trains 2×64 MLPs, z of dimension 16, batch 128, 2,000 generator
    updates (published: 2×128, z 256, batch 512, 25,000 steps; the paper profile). That budget
    under-trains rather than collapses: at m = 8 the vanilla GANs hit 6-7 of 8 modes with 1-3 %
    high-quality samples. Longer runs at m = 8 (3 seeds) approach the published setting without
    reproducing its collapse: gan_metz at 10,000 steps, 2×64 / z 16: 7.7 modes hit, 22 % HQ, coverage
    0.42; at 2×128 / z 64 / batch 256, 5,000 steps: 7.7 modes, 29 % HQ, coverage 0.54; 12,000 steps:
    8 modes in every seed, 70 % HQ, coverage 0.92 (1 seed of 3 below 0.9: the seed matters, through
    uneven quality, not a dropped mode); gan_dcgan at 12,000 steps: 8 modes, 77 % HQ, coverage 1.0
    in every seed.
Deep contender: vanilla GAN (non-saturating loss), generator and discriminator 2-layer tanh MLPs
    (width 64 quick, 128 paper), Adam β1 0.5, all seeds trained at once as one ensemble, in two
    standard settings: (a) Metz et al.'s demo (lr_D 1e-4, lr_G 1e-3), (b) Radford et al.'s DCGAN rule
    (lr 2e-4 for both).
Remedy: WGAN-GP (same networks, 5 critic steps per generator step, λ = 10, Adam lr 1e-4,
    β = (0.5, 0.9): Gulrajani et al.'s defaults).
Alternative: `sklearn.mixture.GaussianMixture` (EM, full covariances, k-means init) on the first
    2,000 training samples, the number of components chosen by BIC from 1 … 30, then sampled.
Metric: mode coverage = fraction of modes that receive at least a fifth of their fair share of
    high-quality samples (within 3σ of the mode), scored by the probe on 2,500 samples; threshold
    0.9 (chance 0). Also: modes covered in the references' sense (≥ 1 sample within 3σ), % high
    quality, and `failed` (coverage < 0.9) whose mean over seeds is the fraction of seeds that fail.
Reference figure: GDPP / VEEGAN Table 1 (ring of 8, radius 1, std 0.01; grid 5×5): GAN 1 mode / 99.3 %
    HQ on the ring, 3.3 modes / 0.5 % on the grid; unrolled GAN 7.6 / 35.6 % and 23.6 / 16 %; WGAN-GP
    6.8 / 59.6 % and 24.2 / 28.7 %.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from deeplimits.ensemble import chunked, seeded
from deeplimits.probe import Answer, Contender, Context, Knob, Metric, Probe, Profile, Reference, Task, Threshold

N_EVAL = 2_500  # generated samples scored per trial (the references' count)


# --- profiles -------------------------------------------------------------------------------
@dataclass(frozen=True)
class SeedInstabilityProfile(Profile):
    steps: int = 2_000
    batch: int = 128
    z_dim: int = 16
    width: int = 64
    n_train: int = 5_000
    critic_steps: int = 5
    gp_weight: float = 10.0
    max_components: int = 30
    em_samples: int = 2_000


PROFILES = {
    "smoke": SeedInstabilityProfile("smoke", knob=(2, 8), seeds=3, steps=30, batch=32, z_dim=4, width=16,
                                    n_train=500, critic_steps=1, max_components=9, em_samples=300),
    "quick": SeedInstabilityProfile("quick", knob=(2, 8), seeds=3),  # (2, 8, 25) × 5 seeds: ≈ 450 CPU-s
    "paper": SeedInstabilityProfile("paper", knob=(2, 4, 8, 16, 25), seeds=50, steps=25_000, batch=512, z_dim=256,
                                    width=128, n_train=100_000),
}


# --- task -----------------------------------------------------------------------------------
def mixture(m: int) -> tuple[np.ndarray, float]:
    """The modes' means [m, 2] and their common std."""
    if m == 25:
        g = np.array([-4.0, -2.0, 0.0, 2.0, 4.0])
        return np.stack(np.meshgrid(g, g), -1).reshape(-1, 2), 0.05
    angles = np.linspace(0.0, 2 * np.pi, m, endpoint=False)
    return 2.0 * np.stack([np.cos(angles), np.sin(angles)], 1), 0.02


@dataclass(frozen=True)
class Samples:
    """The learner's view: samples of the mixture and a seed for its own noise."""

    x: np.ndarray  # float32 [n_train, 2]
    noise_seed: int


def make_task(m: int, rng: np.random.Generator, profile: SeedInstabilityProfile) -> Task:
    means, std = mixture(m)
    x = means[rng.integers(0, m, profile.n_train)] + std * rng.normal(size=(profile.n_train, 2))
    return Task(Samples(x.astype(np.float32), int(rng.integers(2**62))), (means, std))


def score(task: Task, output: np.ndarray, ctx: Context) -> dict[str, float]:
    means, std = task.hidden
    x = np.asarray(output, dtype=np.float64).reshape(-1, 2)
    dist = np.linalg.norm(x[:, None, :] - means[None], axis=-1)
    nearest, close = dist.argmin(1), dist.min(1) <= 3 * std
    counts = np.bincount(nearest[close], minlength=len(means))
    coverage = float((counts >= 0.2 * len(x) / len(means)).mean())
    return {"coverage": coverage, "modes": float((counts >= 1).sum()), "hq": float(close.mean()),
            "failed": float(coverage < 0.9)}


# --- deep arms: GANs, every seed one member of an ensemble ------------------------------------
def mlp(inputs: int, width: int, outputs: int) -> nn.Module:
    return nn.Sequential(nn.Linear(inputs, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(),
                         nn.Linear(width, outputs))


def streams(publics: list[Samples], prof: SeedInstabilityProfile):
    """Per-member batches of (real samples [B, 2], noise [B, z]), each from the member's own generator."""
    def maker(p: Samples):
        gen = torch.Generator().manual_seed(p.noise_seed)
        data = torch.as_tensor(p.x)

        def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
            idx = torch.randint(0, len(data), (n, prof.batch), generator=gen)
            return data[idx], torch.randn(n, prof.batch, prof.z_dim, generator=gen)

        return make

    return chunked([maker(p) for p in publics])


def generate(gen: nn.Module, publics: list[Samples], prof: SeedInstabilityProfile) -> list[Answer]:
    z = torch.stack([torch.randn(N_EVAL, prof.z_dim, generator=torch.Generator().manual_seed(p.noise_seed + 1))
                     for p in publics])
    with torch.no_grad():
        return [Answer(x) for x in gen(z).numpy()]


class BatchedMLP(nn.Module):
    """E independent 2-hidden-layer tanh MLPs as stacked weights, run with batched matmuls.
    Hand-batched rather than `deeplimits.ensemble.Ensemble`: vmap over functional_call costs several
    times more per step for nets this small, and a GAN takes three passes per step."""

    def __init__(self, members: list[nn.Sequential]) -> None:
        super().__init__()
        linears = [[m for m in member if isinstance(m, nn.Linear)] for member in members]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.stack([ls[i].weight.detach().T for ls in linears])) for i in range(3))
        self.biases = nn.ParameterList(
            nn.Parameter(torch.stack([ls[i].bias.detach()[None] for ls in linears])) for i in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(3):
            x = torch.baddbmm(self.biases[i], x, self.weights[i])
            x = torch.tanh(x) if i < 2 else x
        return x


def networks(ctxs: list[Context], prof: SeedInstabilityProfile) -> tuple[BatchedMLP, BatchedMLP]:
    g = BatchedMLP([seeded(lambda: mlp(prof.z_dim, prof.width, 2), c.rng_seed) for c in ctxs])
    d = BatchedMLP([seeded(lambda: mlp(2, prof.width, 1), c.rng_seed + 1) for c in ctxs])
    return g, d


def vanilla_gan(publics: list[Samples], ctxs: list[Context], lr_d: float, lr_g: float) -> list[Answer]:
    prof: SeedInstabilityProfile = ctxs[0].profile
    g, d = networks(ctxs, prof)
    opt_g = torch.optim.Adam(g.parameters(), lr=lr_g, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=lr_d, betas=(0.5, 0.999))
    bce = nn.functional.binary_cross_entropy_with_logits
    batches = streams(publics, prof)
    for step in range(prof.steps):
        real, z = batches(step)
        fake = g(z)
        out_real, out_fake = d(real), d(fake.detach())
        loss_d = bce(out_real, torch.ones_like(out_real)) + bce(out_fake, torch.zeros_like(out_fake))
        opt_d.zero_grad(set_to_none=True)
        (loss_d * len(ctxs)).backward()  # times E: each member's gradient is its own mean loss's
        opt_d.step()
        out_g = d(fake)
        loss_g = bce(out_g, torch.ones_like(out_g))  # the non-saturating generator loss
        opt_g.zero_grad(set_to_none=True)
        (loss_g * len(ctxs)).backward()
        opt_g.step()
    return generate(g, publics, prof)


def gan_metz(publics: list[Samples], ctxs: list[Context]) -> list[Answer]:
    return vanilla_gan(publics, ctxs, lr_d=1e-4, lr_g=1e-3)


def gan_dcgan(publics: list[Samples], ctxs: list[Context]) -> list[Answer]:
    return vanilla_gan(publics, ctxs, lr_d=2e-4, lr_g=2e-4)


def wgan_gp(publics: list[Samples], ctxs: list[Context]) -> list[Answer]:
    prof: SeedInstabilityProfile = ctxs[0].profile
    g, d = networks(ctxs, prof)
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-4, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(d.parameters(), lr=1e-4, betas=(0.5, 0.9))
    batches = streams(publics, prof)
    gen = torch.Generator().manual_seed(publics[0].noise_seed + 2)
    step = 0
    for _ in range(prof.steps):
        for _ in range(prof.critic_steps):
            real, z = batches(step)
            step += 1
            with torch.no_grad():
                fake = g(z)
            eps = torch.rand(*real.shape[:2], 1, generator=gen)
            mix = (eps * real + (1 - eps) * fake).requires_grad_(True)
            grad = torch.autograd.grad(d(mix).sum(), mix, create_graph=True)[0]
            penalty = ((grad.norm(dim=-1) - 1) ** 2).mean(-1)  # [E]
            loss_d = d(fake).mean((1, 2)) - d(real).mean((1, 2)) + prof.gp_weight * penalty
            opt_d.zero_grad(set_to_none=True)
            loss_d.sum().backward()
            opt_d.step()
        _, z = batches(step)
        step += 1
        loss_g = -d(g(z)).mean((1, 2))
        opt_g.zero_grad(set_to_none=True)
        loss_g.sum().backward()
        opt_g.step()
    return generate(g, publics, prof)


# --- alternative: EM on a Gaussian mixture, components chosen by BIC ---------------------------
def gaussian_mixture(public: Samples, ctx: Context) -> np.ndarray:
    from sklearn.mixture import GaussianMixture

    seed = ctx.rng_seed % 2**31
    x = public.x[:ctx.profile.em_samples]  # EM needs far fewer samples than a GAN; 30 fits on all would be slow
    fits = [GaussianMixture(k, random_state=seed).fit(x) for k in range(1, ctx.profile.max_components + 1)]
    best = min(fits, key=lambda f: f.bic(x))
    return best.sample(N_EVAL)[0]


# --- the probe ------------------------------------------------------------------------------
TUNING_METZ = ("not searched: Metz et al.'s published demo setting (Adam β1 0.5, lr_D 1e-4, lr_G 1e-3), the one "
               "the reference table was measured with; checked at m = 2 (easy end) to cover both modes")
TUNING_DCGAN = ("not searched: Radford et al.'s DCGAN rule (Adam β1 0.5, lr 2e-4 for both networks); checked at "
                "m = 2 (easy end)")

PROBE = Probe(
    id="seed_instability",
    family="training",
    claim="GAN training is unstable: on a mixture of well-separated Gaussians a GAN covers only some of the modes, "
          "and how many depends on the seed, where EM on a Gaussian mixture recovers them all.",
    sources=("seeds/003_f388986fd4a90ec9.txt",
             "Metz, Poole, Pfau & Sohl-Dickstein 2017, Unrolled Generative Adversarial Networks, ICLR",
             "Srivastava et al. 2017, VEEGAN, NeurIPS",
             "Lucic, Kurach, Michalski, Gelly & Bousquet 2018, Are GANs Created Equal?, NeurIPS",
             "Gulrajani et al. 2017, Improved Training of Wasserstein GANs, NeurIPS"),
    version=1,
    knob=Knob("modes", "Gaussians in the mixture (a ring; 25 = the 5×5 grid)",
              validate=lambda v: isinstance(v, int) and 1 <= v <= 64),
    metrics=(
        Metric("coverage", "fraction of modes with ≥ 1/5 of their fair share of samples within 3σ", chance=0.0,
               lo=0.0, hi=1.0),
        Metric("modes", "modes with at least one sample within 3σ (the references' count)", lo=0.0, hi=64.0),
        Metric("hq", "fraction of samples within 3σ of a mode (high quality)", lo=0.0, hi=1.0),
        Metric("failed", "1 when coverage < 0.9: its mean is the fraction of seeds that fail", lo=0.0, hi=1.0,
               direction="lower"),
    ),
    rule=Threshold("coverage", success=0.9),
    profiles=PROFILES,
    make_task=make_task,
    score=score,
    contenders=(
        Contender("gan_metz", "deep", gan_metz, "vanilla GAN, 2-layer tanh MLPs, Adam β1 0.5, lr_D 1e-4 / lr_G 1e-3",
                  batched=True, tuning=TUNING_METZ),
        Contender("gan_dcgan", "deep", gan_dcgan, "vanilla GAN, 2-layer tanh MLPs, Adam β1 0.5, lr 2e-4", batched=True,
                  tuning=TUNING_DCGAN),
        Contender("wgan_gp", "remedy", wgan_gp, "WGAN-GP, 5 critic steps, λ 10, Adam 1e-4 β (0.5, 0.9)", batched=True),
        Contender("gaussian_mixture", "alternative", gaussian_mixture,
                  "EM on a Gaussian mixture (scikit-learn), components by BIC"),
    ),
    references=(
        Reference("GDPP Table 1 / VEEGAN Table 1 (ring of 8: radius 1, std 0.01; 2,500 samples)",
                  "GAN, unrolled GAN, WGAN-GP; modes with ≥ 1 sample within 3σ",
                  "GAN 1 mode (99.3 % HQ), unrolled GAN 7.6 (35.6 %), VEEGAN 8.0 (52.9 %), WGAN-GP 6.8 (59.6 %)",
                  "verbatim (M-Elfeki/GDPP Figures/Fig_2.png)", points=((8, 1.0),), metric="modes"),
        Reference("GDPP Table 1 / VEEGAN Table 1 (grid 5×5, std 0.05)", "same models",
                  "GAN 3.3 modes (0.5 % HQ), unrolled GAN 23.6 (16.0 %), WGAN-GP 24.2 (28.7 %)",
                  "verbatim (M-Elfeki/GDPP Figures/Fig_2.png)", points=((25, 3.3),), metric="modes"),
    ),
    budget=lambda p: (f"2×{p.width} tanh MLPs, z {p.z_dim}, {p.steps:,} generator steps × batch {p.batch} "
                      f"(WGAN-GP: {p.critic_steps} critic steps each), {p.n_train:,} training samples"),
    budget_fields=("steps",),
    fit=None,  # the data are samples of the distribution itself: failing to fit it is the claim
)
