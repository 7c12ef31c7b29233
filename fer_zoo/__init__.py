"""fer-zoo: a PyTorch Lightning model zoo for facial expression recognition."""

__version__ = "0.1.0"
