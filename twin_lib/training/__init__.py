"""Training: the offline base model, LoRA SFT then DPO with TRL, checkpoints and outputs."""
