"""emotion-trainer: folder-per-class faces -> six int8 TFLite emotion models, honestly evaluated."""
