"""forensics: make fakes with the generative models of the course, then catch them.

Image convention (the one place it is written down): a batch of images is a
``torch.float32`` (or ``numpy.float32``) array of shape ``(N, C, H, W)`` with
values in ``[0, 1]``; ``C`` is 1 (grayscale) or 3 (RGB). Files on disk are
8-bit PNGs. Every reader, generator and detector produces and accepts this.
"""

__version__ = "0.1.0"
