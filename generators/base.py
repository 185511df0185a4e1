"""What every generator provides, and the option dataclass they share.

A generator owns its networks (``self.nets``, an ``nn.ModuleDict``) and its
optimizers, performs one training step on a batch of real images, and samples
images in the toolkit's convention (``(N, C, H, W)`` float in [0, 1]).

Training steps call the networks through ``self.live``: the networks themselves,
or, while :meth:`Generator.parallel` is in effect (``torchrun``, ``--compile``),
their DistributedDataParallel / ``torch.compile`` wrappers. Sampling and
everything else use ``self.nets``, so one rank alone can draw a sample grid.
Networks' forward passes in training steps run under :meth:`Generator.autocast`
(bf16 when asked for); the losses are computed in float32 from their outputs, and
backward passes and optimizer steps run outside it.
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from forensics.errors import ForensicsError
from forensics.registry import coerce


@dataclasses.dataclass
class Options:
    """Base of every model's options: typed, JSON round-trip, validated."""

    batch_size: int = 64
    lr: float = 1e-3

    #: options that apply to some variants only: ``{option: {variant: default}}``, the variant
    #: being the value of the field :attr:`variant_field`. Such an option is ``None`` (unset)
    #: until :meth:`from_dict` gives it the variant's default; for any other variant it stays
    #: ``None`` (config.json then says it played no part) and :meth:`refuse_inapplicable`
    #: refuses it when a user sets it.
    by_variant: ClassVar[dict[str, dict[str, Any]]] = {}
    variant_field: ClassVar[str] = "variant"
    #: options added after runs were saved without them: ``{option: the value those runs
    #: used}``, so an older run folder opens (and resumes) as it was trained
    earlier: ClassVar[dict[str, Any]] = {}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Options:
        """The options of ``values`` (text or typed), validated, with every default that
        depends on the variant filled in: what ``config.json`` records is what ran."""
        hints = typing.get_type_hints(cls)
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ForensicsError(
                f"unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        parsed = {}
        for key, value in values.items():
            parsed[key] = coerce(key, value, hints[key])
        options = cls(**parsed)
        options.settle()
        options.validate()
        return options

    def settle(self) -> None:
        """Give each variant-dependent option left unset its variant's default (or ``None``
        where it does not apply)."""
        variant = getattr(self, self.variant_field, None)
        for key, defaults in self.by_variant.items():
            if variant not in defaults:
                setattr(self, key, None)
            elif getattr(self, key) is None:
                setattr(self, key, defaults[variant])

    @classmethod
    def refuse_inapplicable(cls, values: dict[str, Any]) -> None:
        """One line for an option ``values`` set that the chosen variant does not use."""
        variant = values.get(cls.variant_field)
        if variant is None:
            field = next((f for f in dataclasses.fields(cls) if f.name == cls.variant_field), None)
            variant = field.default if field is not None else None
        for key, defaults in cls.by_variant.items():
            if values.get(key) is not None and variant not in defaults:
                raise ForensicsError(f"option {key} applies only to {cls.variant_field} "
                                     f"{' or '.join(defaults)}, not {variant}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        if self.batch_size < 1:
            raise ForensicsError("batch_size must be positive")
        if self.lr <= 0:
            raise ForensicsError("lr must be positive")

    def check_choice(self, key: str, choices: tuple[str, ...]) -> None:
        if getattr(self, key) not in choices:
            raise ForensicsError(f"{key} must be one of {', '.join(choices)}")


class Generator:
    """Base class: subclasses set ``Options``, build ``self.nets`` and optimizers."""

    name: ClassVar[str]
    Options: ClassVar[type[Options]] = Options
    #: ``sample`` modes this generator supports (``reconstruct`` needs an encoder)
    modes: ClassVar[tuple[str, ...]] = ("sample",)
    #: epochs of a ``forensics train`` run without ``--epochs`` (and of benchmark entries without)
    default_epochs: ClassVar[int] = 20
    #: the smallest sensible options: contract tests and tiny suites train with these
    tiny_options: ClassVar[dict[str, Any]] = {}
    #: a trained model has a discriminator the ``discriminator`` detector can use
    has_discriminator: ClassVar[bool] = False
    #: ``explore`` draws the encoder's 2-D latent space (a VAE's posterior means)
    has_latent_space: ClassVar[bool] = False
    #: the latent codes ``explore`` varies one at a time (``traverse(code, rng)``)
    traversable_codes: ClassVar[tuple[str, ...]] = ()
    #: options ``generate`` / ``explore`` may change on a trained model (``--sampler``, ``--steps``)
    sampling_options: ClassVar[tuple[str, ...]] = ()
    #: other ways of drawing from a trained model that ``benchmarks.generators`` also scores and
    #: the default detector also trains on (a fake source each, e.g. ``diffusion-ddim-25``)
    benchmark_samplings: ClassVar[tuple[dict[str, Any], ...]] = ()
    #: ``explore`` draws the reverse chain (``trajectory(n, rng, keep)``) of a diffusion model
    has_trajectory: ClassVar[bool] = False
    #: ``explore`` draws straight lines between draws of the prior (``interpolate_prior``)
    interpolates_prior: ClassVar[bool] = False

    @classmethod
    def variant_of(cls, options: dict[str, Any]) -> str:
        """The variant name a manifest records for a run with these (given) options."""
        return ""

    def discriminator(self) -> tuple[nn.Module, nn.Module]:
        """(body, head) of the trained discriminator: head(body(x)) is D's real-logit."""
        raise ForensicsError(f"a {self.name} run has no discriminator; use a run of a generator "
                             "that has one (gan, infogan)")

    def __init__(self, options: Options, image_shape: tuple[int, int, int]) -> None:
        self.options = options
        self.image_shape = tuple(int(v) for v in image_shape)
        self.nets = nn.ModuleDict()
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self._live: dict[str, nn.Module] = {}
        self.precision = "fp32"

    @property
    def live(self) -> dict[str, nn.Module] | nn.ModuleDict:
        """The networks as training steps call them (wrapped while :meth:`parallel` runs)."""
        return self._live or self.nets

    @contextmanager
    def parallel(self, wrap: Callable[[nn.Module], nn.Module]) -> Iterator[None]:
        """Train through ``wrap(net)`` for every network (DDP, torch.compile) meanwhile."""
        self._live = {name: wrap(net) for name, net in self.nets.items()}
        try:
            yield
        finally:
            self._live = {}

    @contextmanager
    def no_sync(self, *names: str) -> Iterator[None]:
        """Skip DDP's gradient all-reduce for these networks in the forward passes meanwhile
        (the gradients they get are thrown away, e.g. D's in G's step)."""
        with ExitStack() as stack:
            for name in names:
                quiet = getattr(self.live[name], "no_sync", None)
                if quiet is not None:
                    stack.enter_context(quiet())
            yield

    def autocast(self):
        """The context of a training step's network forward passes: bf16 autocast or nothing."""
        from forensics.runtime import autocast

        return autocast(self.device, self.precision)

    @property
    def dim(self) -> int:
        return int(np.prod(self.image_shape))

    @property
    def device(self) -> torch.device:
        return next(self.nets.parameters()).device

    def to(self, device: torch.device | str) -> Generator:
        self.nets.to(device)
        # a resumed run's optimizer state was loaded beside CPU weights: torch's own loading
        # puts each state tensor where its parameter now lives (a fused Adam's step too)
        for opt in self.optimizers.values():
            if opt.state:
                opt.load_state_dict(opt.state_dict())
        return self

    # -- training -----------------------------------------------------------
    def train_step(self, x: torch.Tensor) -> dict[str, float]:
        raise NotImplementedError

    def end_epoch(self, train_images: torch.Tensor) -> None:
        """Hook after each epoch (e.g. refit the AE's code distribution)."""

    # -- making images ------------------------------------------------------
    def sample(self, n: int, rng: torch.Generator) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
        """``n`` images in [0, 1] and the latent codes that made them."""
        raise NotImplementedError

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        raise ForensicsError(f"{self.name} cannot reconstruct images (no encoder)")

    def sampling(self) -> dict[str, Any]:
        """How ``sample`` draws images now, as manifests record it (``{}``: one way only)."""
        return {}

    def set_sampling(self, **changes: Any) -> None:
        """Change ``sampling_options`` of a trained model (given as values or as text)."""
        unknown = sorted(set(changes) - set(self.sampling_options))
        if unknown:
            takes = ", ".join(self.sampling_options) or "none"
            raise ForensicsError(f"{self.name} has no sampling option {', '.join(unknown)} "
                                 f"(it takes: {takes})")
        self.options = type(self.options).from_dict({**self.options.to_dict(), **changes})

    def interpolate_prior(self, rng: torch.Generator, rows: int = 5, steps: int = 10) -> torch.Tensor:
        """``rows`` × ``steps`` images: each row decodes the straight line between two draws
        of the generator's input (for classes with ``interpolates_prior``)."""
        raise ForensicsError(f"{self.name} has no prior to interpolate in")

    def preview(self, rng: torch.Generator) -> torch.Tensor:
        """Images for the per-epoch sample grid (100 by default)."""
        return self.sample(100, rng)[0]

    # -- state --------------------------------------------------------------
    def weights(self) -> dict[str, torch.Tensor]:
        return self.nets.state_dict()

    def load_weights(self, state: dict[str, torch.Tensor]) -> None:
        try:
            self.nets.load_state_dict(state)
        except RuntimeError as error:  # torch's first line is a heading; the second says what
            first = " ".join(line.strip() for line in str(error).splitlines()[:2])[:300]
            raise ForensicsError(f"weights do not fit this {self.name} model: {first}") from None

    def training_state(self) -> dict[str, Any]:
        return {name: opt.state_dict() for name, opt in self.optimizers.items()}

    def load_training_state(self, state: dict[str, Any]) -> None:
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state[name])


def seeded(seed: int, *parts: int) -> torch.Generator:
    """A torch RNG whose seed is derived from a run seed and counters."""
    from forensics.runtime import derive_seed

    return torch.Generator().manual_seed(derive_seed(seed, *parts))


class CodeDensity(nn.Module):
    """A Gaussian mixture over a model's codes, fitted to the codes of its training images
    (ex-post density estimation, Ghosh et al. 2020): what the AE samples from, and the VAE's
    ``gmm`` sampler. Its parameters are buffers, saved and hashed with the weights."""

    def __init__(self, components: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("weights", torch.full((components,), 1.0 / components))
        self.register_buffer("means", torch.zeros(components, dim))
        self.register_buffer("chol", torch.eye(dim).repeat(components, 1, 1))

    @torch.no_grad()
    def fit(self, codes: torch.Tensor) -> None:
        """Maximum likelihood (EM, scikit-learn; seeded, so refits are reproducible). With fewer
        codes than components (a tiny data set), as many components as codes; the rest get
        weight 0. EM starts from k-means every time: started from the previous epoch's mixture
        it stayed in that epoch's poorer optimum as the codes moved (AE, seed 0: 33 % of samples
        recognised against 76 %)."""
        from sklearn.mixture import GaussianMixture

        codes = codes.detach().cpu().double()
        used = min(self.weights.numel(), len(codes))
        gmm = GaussianMixture(used, covariance_type="full", reg_covar=1e-4, random_state=0)
        gmm.fit(codes.numpy())
        dim = self.means.shape[1]
        self.weights.zero_()
        self.means.zero_()
        self.chol.copy_(torch.eye(dim).expand_as(self.chol))
        self.weights[:used] = torch.as_tensor(gmm.weights_)
        self.means[:used] = torch.as_tensor(gmm.means_)
        self.chol[:used] = torch.linalg.cholesky(torch.as_tensor(gmm.covariances_))

    @torch.no_grad()
    def draw(self, n: int, rng: torch.Generator, temperature: float = 1.0
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` codes (on the CPU) and the component each came from; ``temperature`` scales each
        component's spread (1: the fitted mixture; below 1, codes nearer the components' means:
        the sampling temperature of Kingma & Dhariwal 2018, BigGAN's truncation in kind)."""
        component = torch.multinomial(self.weights.cpu(), n, replacement=True, generator=rng)
        eps = torch.randn(n, self.means.shape[1], generator=rng) * temperature
        chol, means = self.chol.cpu(), self.means.cpu()
        return means[component] + torch.einsum("nij,nj->ni", chol[component], eps), component


class MovingAverage(nn.Module):
    """An exponential moving average of a network's weights, for sampling (GAN's G, the
    diffusion U-Net): θ_avg ← d θ_avg + (1 − d) θ after each update, with the warm-up
    d_n = min(d, (1 + n) / (10 + n)) over the n updates so far, so the random initial weights
    do not dominate; buffers (BatchNorm statistics) are copied as they are, and a network with
    BatchNorm then re-estimates them for the averaged weights (:meth:`recalibrate`).

    The average and its update count are parameters and a buffer of the run's weights
    (safetensors; a resumed run continues the same average) — not diffusers' ``EMAModel``,
    whose state would be pickled.
    """

    def __init__(self, net: nn.Module, decay: float) -> None:
        super().__init__()
        self.net = copy.deepcopy(net).requires_grad_(False)
        self.decay = decay
        self.register_buffer("updates", torch.zeros((), dtype=torch.int64))

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        n = int(self.updates)
        decay = min(self.decay, (1 + n) / (10 + n))
        torch._foreach_lerp_(list(self.net.parameters()), [p.detach() for p in net.parameters()],
                             1.0 - decay)
        for mine, theirs in zip(self.net.buffers(), net.buffers(), strict=True):
            mine.copy_(theirs)
        self.updates += 1

    @torch.no_grad()
    def recalibrate(self, inputs: list[torch.Tensor]) -> None:
        """BatchNorm's running statistics of the averaged network, re-estimated from its own
        activations on ``inputs`` (torch's ``update_bn``, as for stochastic weight averaging:
        the statistics copied from the live network belong to other weights — measured on the
        GAN, ema 0.99: domain FD 22.8 with copied statistics, 11.8 with its own; README)."""
        from torch.optim.swa_utils import update_bn

        update_bn(inputs, self.net)
