"""Emotion classifiers: face input bytes -> probabilities per label."""
