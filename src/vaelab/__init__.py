"""vaelab: train auto-encoders and VAEs and measure what their latent spaces learn.

The Python API mirrors the CLI::

    import vaelab
    run = vaelab.train("vae", dataset="mnist-5k", epochs=5, out="runs/vae")
    run = vaelab.load("runs/vae")
    codes = vaelab.encode(run)          # test-split codes: mean, logvar, labels
"""

__version__ = "0.1.0"
__all__ = ["__version__", "encode", "load", "train"]


def __getattr__(name):
    # Lazy: `import vaelab` (and `vaelab --help`) must not pay for importing torch.
    if name in ("train", "load", "encode"):
        from vaelab import api

        return getattr(api, name)
    raise AttributeError(f"module 'vaelab' has no attribute {name!r}")
