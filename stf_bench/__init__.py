"""stf_bench: a runnable benchmark of deep spatio-temporal fusion for land surface temperature."""

__version__ = "0.1.0"
