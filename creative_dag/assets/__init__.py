"""Software-defined assets, one module per stage; each holds thin wrappers over compute modules."""
