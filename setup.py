"""Build of fearkd's one compiled module; everything else is in pyproject.toml.

``fearkd.models._kernels`` holds the fast CNN blocks' passes and the fused LSTM and GRU
layers. It is optional: where it cannot be built (no C compiler), the install goes on and
fearkd runs the same layers through PyTorch operations instead
(``fearkd.models._fused.available`` says which).
"""

import sys

from setuptools import Extension, setup

openmp = [] if sys.platform in ("win32", "darwin") else ["-fopenmp"]

setup(
    ext_modules=[
        Extension(
            "fearkd.models._kernels",
            sources=["src/fearkd/models/_kernels.c"],
            depends=["src/fearkd/models/_kernels_body.h", "src/fearkd/models/_chan_body.h",
                     "src/fearkd/models/_rnn_body.h"],
            extra_compile_args=["-O3", *openmp],
            extra_link_args=openmp,
            optional=True,
        )
    ]
)
