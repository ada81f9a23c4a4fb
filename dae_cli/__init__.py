"""dae: train and apply convolutional denoising autoencoders from the command line."""

__version__ = "0.1.0"
