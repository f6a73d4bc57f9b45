"""vaelab: train auto-encoders and VAEs and measure what their latent spaces learn.

The Python API mirrors the CLI::

    import vaelab
    run = vaelab.train("vae", dataset="mnist-5k", epochs=5, out="runs/vae")
    run = vaelab.load("runs/vae")
    codes = vaelab.encode(run)          # test-split codes: mean, logvar, labels
    vaelab.evaluate("runs/vae")         # every measure -> runs/vae/measures.json
    vaelab.run_study("my-study.yaml", out="studies/mine")  # any study file -> report.html
    vaelab.reproduce("results")         # the thesis study -> results/report.html
    vaelab.explore(["runs/vae", "runs/ae"]).run()  # the interactive explorer (the explore extra)
"""

from vaelab.version import __version__

__all__ = ["__version__", "compare", "encode", "evaluate", "explore", "load", "report", "reproduce", "run_study",
           "train"]
_API = ("train", "load", "encode", "evaluate", "compare", "reproduce", "run_study", "report", "explore")


def __getattr__(name):
    # Lazy: `import vaelab` (and `vaelab --help`) must not pay for importing torch.
    if name in _API:
        from vaelab import api

        return getattr(api, name)
    raise AttributeError(f"module 'vaelab' has no attribute {name!r}")
