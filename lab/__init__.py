"""lab: a QEMU integration test lab for patched Linux kernels."""

__version__ = "0.1.0"
