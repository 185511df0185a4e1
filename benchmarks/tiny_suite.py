"""The tiny benchmark suite (seconds on a CPU) of the benchmark tests and the reliability run.

:data:`SUITE` is a whole suite; the tests also put its parts together in other ways.
"""

from __future__ import annotations

GENERATORS = """
[generators.gan]
kind = "gan"
epochs = 1
options = { width = 8, noise_dim = 8, batch_size = 32 }
"""

VAE = """
[generators.vae]
kind = "vae"
epochs = 1
options = { hidden = 32, latent_dim = 4, batch_size = 64 }
"""

DETECTORS = """
[detectors.pixel-logreg]
kind = "pixel-logreg"

[detectors.spectral-fft]
kind = "spectral-fft"
"""

HEAD = """name = "tiny"
dataset = "digits"
fakes_per_generator = 200
real_train = 300
bootstrap = 20
reference_steps = 0
"""

#: the families with their own training paths: multi-class attribution, the GAN's discriminator
FAMILIES = """
[detectors.attribution]
kind = "attribution"
options = { epochs = 1, width = 4, augment = false }

[detectors.discriminator]
kind = "discriminator"
"""

SUITE = HEAD + GENERATORS + VAE + DETECTORS + FAMILIES + "\n[perturbations]\njpeg = [50]\n"
DETS = ["pixel-logreg", "spectral-fft", "attribution", "discriminator"]
