"""vaelab: train auto-encoders and VAEs and measure what their latent spaces learn.

The Python API mirrors the CLI::

    import vaelab
    run = vaelab.train("vae", dataset="mnist-5k", epochs=5, out="runs/vae")
    run = vaelab.load("runs/vae")
    codes = vaelab.encode(run)          # test-split codes: mean, logvar, labels
    vaelab.evaluate("runs/vae")         # every measure -> runs/vae/measures.json
    vaelab.reproduce("results")         # the thesis study -> results/report.html
"""

__version__ = "0.1.0"
__all__ = ["__version__", "compare", "encode", "evaluate", "load", "report", "reproduce", "train"]
_API = ("train", "load", "encode", "evaluate", "compare", "reproduce", "report")


def __getattr__(name):
    # Lazy: `import vaelab` (and `vaelab --help`) must not pay for importing torch.
    if name in _API:
        from vaelab import api

        return getattr(api, name)
    raise AttributeError(f"module 'vaelab' has no attribute {name!r}")
