// Package trainer owns the training loop around a backend: the paper's SGD
// schedule, checkpoints (one format for every device, written atomically),
// evaluation (top-1/top-5, centre and 10-crop), metrics.jsonl, PNG plots and
// the conv1 filter image.
package trainer
