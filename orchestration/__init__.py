"""Ray wiring: train one fold with Ray Train, sweep folds and hyperparameters with Ray Tune."""
