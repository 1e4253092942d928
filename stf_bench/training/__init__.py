"""LightningModules (supervised, adversarial, diffusion) and losses."""
