"""Looking inside a model: saliency, feature maps, clusters, layer health, predictions, TTA."""
