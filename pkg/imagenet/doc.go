// Package imagenet owns finding an ILSVRC2012 (ImageNet) dataset on disk:
// detecting its layout (the official tars, an extracted tree, or Kaggle's
// layout), listing its training and validation images with labels, the
// class list (sorted WNIDs, as torchvision, Caffe and FFCV index them) and
// its names, the validation labels (LOC_val_solution.csv, the devkit's
// ground truth mapped through meta.mat, or a --val-labels file), and reading
// any image's bytes by random access.
//
// Archives are read in place, never extracted. Open lists a tar by reading
// its headers only, seeking past the contents, including the 1000 tars
// nested in ILSVRC2012_img_train.tar, and records where each image's bytes
// lie; ReadItem then reads them with one ReadAt.
//
// Items are kept small (1.28 million of them stay in memory): an Item's
// Name shares the bytes of its Path.
//
// Concurrency: Open runs on the caller's goroutine. A Dataset is read-only
// after Open, and ReadItem is safe for concurrent use from any number of
// goroutines, in any order; it issues only ReadAt calls on the archives,
// which stay open until Close.
package imagenet
