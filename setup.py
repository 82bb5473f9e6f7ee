"""The one compiled part: the lean RTP sender's per-packet loop (camera_adapters/_rtpsend.c).

Everything else is in pyproject.toml; setuptools reads both.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "camera_adapters._rtpsend",
            ["camera_adapters/_rtpsend.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ]
)
