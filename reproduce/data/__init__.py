"""The data layer between files and tasks (see docs/own-data.md).

- :mod:`.images`: image data of any source (ImageFolder tree, CIFAR-10 batches, torchvision dataset,
  tensors or a Dataset from Python) as one :class:`~.images.ImageData`: classes, channels, size, splits;
  the normalisation computed on the images that train the weights.
- :mod:`.split`: seeded, stratified splits and per-class subsets, with a digest that pins them.
- :mod:`.augment`: the one CIFAR augmentation (crop, flip, normalise, cutout) on the device.
- :mod:`.text`: a text corpus whose vocabulary comes from its training split.
- :mod:`.own`: what the search and the training recipes read from an ImageData (halves, hold-outs, stem).
- :mod:`.options`: the config fields of one's own data, shared by the searches and the recipes.
- :mod:`.trained_on`: what an exported model's card says about the data its run was trained on.
"""
