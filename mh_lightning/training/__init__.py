"""Training with Lightning: the LightningModule, callbacks, resume and fault handling, the LightningCLI."""
